"""The program file: a fixed header (magic, format version, length, SHA-256) and one
protobuf Program message holding the model and, optionally, its mapping.

Everything malformed is refused with ProgramFormatError before anything is loaded.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from akida_rt.errors import ModelError, ProgramFormatError
from akida_rt.format.layer_kinds import LAYER_CLASSES
from akida_rt.format.layer_params import (
    CHANNEL_VARIABLES,
    MAX_NAME_CHARS,
    LayerType,
    Padding,
    Pooling,
)
from akida_rt.format.layers import Layer
from akida_rt.format.proto import program_pb2 as pb

MAGIC = b"AKIDARTP"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHHIQ32s")  # magic, version, flags, reserved, length, sha256
FLAG_MAPPED = 1
MAX_DIM = 1 << 16
MAX_NDIM = 4
MAX_TENSOR_ELEMENTS = 1 << 28

_DTYPES: dict[int, np.dtype[Any]] = {
    pb.INT8: np.dtype("<i1"),
    pb.INT32: np.dtype("<i4"),
    pb.INT64: np.dtype("<i8"),
    pb.FLOAT32: np.dtype("<f4"),
    pb.UINT8: np.dtype("u1"),
    pb.FLOAT64: np.dtype("<f8"),
}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}
_KINDS = {
    LayerType.InputData: pb.INPUT_DATA,
    LayerType.InputConv2D: pb.INPUT_CONV2D,
    LayerType.Conv2D: pb.CONV2D,
    LayerType.SeparableConv2D: pb.SEPARABLE_CONV2D,
    LayerType.FullyConnected: pb.FULLY_CONNECTED,
}
_KIND_TYPES = {v: k for k, v in _KINDS.items()}
_PADDINGS = {Padding.Valid: pb.VALID, Padding.Same: pb.SAME}
_PADDING_TYPES = {v: k for k, v in _PADDINGS.items()}
_POOLINGS = {
    Pooling.NoPooling: pb.POOL_NONE,
    Pooling.Max: pb.MAX_2X2,
    Pooling.GlobalAvg: pb.GLOBAL_AVG,
}
_POOLING_TYPES = {v: k for k, v in _POOLINGS.items()}
# Each variable is stored with one dtype (the one Layer.set_variable keeps) and rank;
# predict()'s float64 scale and offset are also read from float32 (files written before).
_TENSOR_FIELDS: dict[str, tuple[tuple[pb.DType.ValueType, ...], int]] = {
    "weights": ((pb.INT8,), 4),
    "pointwise": ((pb.INT8,), 4),
    "bias": ((pb.INT32,), 1),
    "act_scale": ((pb.INT64,), 1),
    "act_offset": ((pb.INT64,), 1),
    "output_scale": ((pb.FLOAT64, pb.FLOAT32), 1),
    "output_offset": ((pb.FLOAT64, pb.FLOAT32), 1),
}
assert set(_TENSOR_FIELDS) == {"weights", "pointwise", *CHANNEL_VARIABLES}


# --------------------------------------------------------------------------- tensors
def encode_tensor(arr: np.ndarray, out: pb.Tensor) -> None:
    dtype = np.dtype(arr.dtype).newbyteorder("<") if arr.dtype.itemsize > 1 else np.dtype(arr.dtype)
    code = _DTYPE_CODES.get(dtype)
    if code is None:
        raise ProgramFormatError(f"cannot store dtype {arr.dtype}")
    out.dtype = code  # type: ignore[assignment]
    out.shape[:] = list(arr.shape)
    out.data = np.ascontiguousarray(arr, dtype=dtype).tobytes()


def decode_tensor(
    t: pb.Tensor,
    where: str,
    *,
    dtype_code: tuple[pb.DType.ValueType, ...] | None = None,
    ndim: int | None = None,
) -> np.ndarray:
    """The tensor's array; ProgramFormatError unless its dtype (and rank, when given) is
    as expected, its shape is in range and its data holds exactly that many elements."""
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise ProgramFormatError(f"{where}: unknown tensor dtype code {t.dtype}")
    if dtype_code is not None and t.dtype not in dtype_code:
        raise ProgramFormatError(
            f"{where}: dtype {pb.DType.Name(t.dtype)}, expected "
            + " or ".join(pb.DType.Name(c) for c in dtype_code)
        )
    shape = tuple(int(d) for d in t.shape)
    if len(shape) > MAX_NDIM or any(d < 0 or d > MAX_DIM for d in shape):
        raise ProgramFormatError(
            f"{where}: bad tensor shape {shape[:8]}: at most {MAX_NDIM} dimensions of 0..{MAX_DIM}"
        )
    if ndim is not None and len(shape) != ndim:
        raise ProgramFormatError(f"{where}: tensor shape {shape} is not {ndim}-D")
    count = math.prod(shape)  # Python ints: a numpy product can wrap to 0 and pass
    if count > MAX_TENSOR_ELEMENTS:
        raise ProgramFormatError(
            f"{where}: tensor of {count} elements is above the limit of {MAX_TENSOR_ELEMENTS}"
        )
    if len(t.data) != count * dtype.itemsize:
        raise ProgramFormatError(
            f"{where}: tensor shape {shape} needs {count * dtype.itemsize} bytes of {dtype}, "
            f"got {len(t.data)}"
        )
    arr = np.frombuffer(t.data, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ProgramFormatError(f"{where}: tensor holds NaN or infinite values")
    return arr


# ---------------------------------------------------------------------------- layers
def encode_layer(layer: Layer, out: pb.Layer) -> None:
    out.name = layer.name
    out.kind = _KINDS[layer.layer_type]  # type: ignore[assignment]
    out.input_shape[:] = list(layer.input_shape or ())
    out.kernel_size = layer.kernel_size
    out.filters = layer.filters
    out.stride = layer.stride
    out.padding = _PADDINGS[layer.padding]  # type: ignore[assignment]
    out.pooling = _POOLINGS[layer.pooling]  # type: ignore[assignment]
    out.weight_bits = layer.weight_bits
    out.input_bits = layer.input_bits
    out.activation = layer.activation
    out.activation_bits = layer.activation_bits
    out.act_shift = layer.act_shift
    out.pool_size = layer.pool_size
    out.pool_stride = layer.pool_stride
    out.pool_padding = _PADDINGS[layer.pool_padding]  # type: ignore[assignment]
    out.padding_value = layer.padding_value
    out.potential_bits = layer.potential_bits
    for key in _TENSOR_FIELDS:
        if key in layer.variables:
            encode_tensor(layer.variables[key], getattr(out, key))


def decode_layer(msg: pb.Layer, index: int) -> Layer:
    """One layer from its message; checks the fields' ranges and the variables' tensors
    (Layer.validate, run by decode_layers, checks how they fit together)."""
    where = f"layer {index} {msg.name[:64]!r}"
    try:
        layer_type = _KIND_TYPES[msg.kind]
        padding = _PADDING_TYPES[msg.padding]
        pooling = _POOLING_TYPES[msg.pooling]
        pool_padding = (  # unspecified in files written before pool_padding existed
            Padding.Valid
            if msg.pool_padding == pb.PADDING_UNSPECIFIED
            else _PADDING_TYPES[msg.pool_padding]
        )
    except KeyError:
        raise ProgramFormatError(
            f"{where}: unknown kind/padding/pooling code ({msg.kind}/{msg.padding}/{msg.pooling})"
        ) from None
    ints = (
        msg.kernel_size,
        msg.filters,
        msg.stride,
        msg.weight_bits,
        msg.input_bits,
        msg.pool_size,
        msg.pool_stride,
        msg.padding_value,
        msg.potential_bits,
    )
    if any(v < 0 or v > MAX_DIM for v in ints):
        raise ProgramFormatError(f"{where}: hyper-parameter out of range {ints}")
    shape = tuple(msg.input_shape)
    if len(shape) != 3 or any(d < 1 or d > MAX_DIM for d in shape):
        raise ProgramFormatError(f"{where}: bad input shape {shape}")
    cls = LAYER_CLASSES[layer_type]
    layer = cls.__new__(cls)
    Layer.__init__(
        layer,
        msg.name,
        filters=msg.filters,
        kernel_size=msg.kernel_size,
        stride=msg.stride,
        padding=padding,
        pooling=pooling,
        weight_bits=msg.weight_bits,
        input_bits=msg.input_bits,
        activation=msg.activation,
        activation_bits=msg.activation_bits,
        act_shift=msg.act_shift,
        pool_size=msg.pool_size or 2,
        pool_stride=msg.pool_stride or 2,
        pool_padding=pool_padding,
        padding_value=msg.padding_value,
        potential_bits=msg.potential_bits,
        input_shape=shape,  # type: ignore[arg-type]
    )
    for key, (code, ndim) in _TENSOR_FIELDS.items():
        if msg.HasField(key):  # type: ignore[arg-type]
            arr = decode_tensor(getattr(msg, key), f"{where} {key}", dtype_code=code, ndim=ndim)
            try:
                layer.set_variable(key, arr)
            except ModelError as exc:
                raise ProgramFormatError(str(exc)) from None
    return layer


def decode_layers(msgs: Sequence[pb.Layer]) -> list[Layer]:
    """The model's layers, checked one by one and as a chain (each layer's input is the
    previous layer's output); ProgramFormatError naming the first fault."""
    if not msgs:
        raise ProgramFormatError("program has no layers")
    layers = [decode_layer(m, i) for i, m in enumerate(msgs)]
    seen: set[str] = set()
    for i, layer in enumerate(layers):
        if layer.name in seen:
            raise ProgramFormatError(f"layer {i}: duplicate layer name {layer.name[:64]!r}")
        seen.add(layer.name)
        if i:
            prev = layers[i - 1]
            if layer.input_shape != prev.output_shape or layer.input_bits != prev.output_bits:
                raise ProgramFormatError(
                    f"layer {layer.name[:64]!r} input {layer.input_shape}/{layer.input_bits}-bit "
                    f"does not chain from {prev.name[:64]!r} output "
                    f"{prev.output_shape}/{prev.output_bits}-bit"
                )
        try:
            layer.validate(is_first=i == 0, is_last=i == len(layers) - 1)
        except ModelError as exc:
            raise ProgramFormatError(str(exc)) from None
    return layers


def check_name(name: str, what: str) -> None:
    """ProgramFormatError unless `name` is at most MAX_NAME_CHARS printable characters."""
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ProgramFormatError(
            f"{what} {name[:64]!r}: at most {MAX_NAME_CHARS} printable characters"
        )


def decode_input_scaling(msg: pb.Program) -> tuple[float, float] | None:
    """(scale, offset), None when absent; the scale must be finite and non-zero."""
    if not msg.HasField("input_scaling"):
        return None
    scale, offset = msg.input_scaling.scale, msg.input_scaling.offset
    if not (math.isfinite(scale) and math.isfinite(offset)) or scale == 0:
        raise ProgramFormatError(
            f"input_scaling: scale {scale} and offset {offset} must be finite, the scale non-zero"
        )
    return scale, offset


def check_learning(msg: pb.LearningConfig) -> None:
    """The learning configuration is carried, not used, by the loader: check its ranges."""
    if msg.num_weights < 0 or msg.num_classes < 0:
        raise ProgramFormatError(
            f"learning: negative count (num_weights {msg.num_weights}, "
            f"num_classes {msg.num_classes})"
        )
    floats = (
        msg.initial_plasticity,
        msg.min_plasticity,
        msg.plasticity_decay,
        msg.learning_competition,
    )
    if not all(math.isfinite(v) for v in floats):
        raise ProgramFormatError(f"learning: non-finite parameter in {floats}")
    if msg.HasField("plasticity"):
        decode_tensor(msg.plasticity, "learning plasticity", dtype_code=(pb.FLOAT32,), ndim=1)
    if msg.HasField("v1_learning_gate"):
        decode_tensor(msg.v1_learning_gate, "learning v1 gate", dtype_code=(pb.INT32,), ndim=1)


# ---------------------------------------------------------------------- file framing
def pack(message: pb.Program) -> bytes:
    """Header + serialized Program (flagged as mapped when it holds a mapping)."""
    message.format_version = FORMAT_VERSION
    return pack_payload(message.SerializeToString(), mapped=message.HasField("mapping"))


def pack_payload(payload: bytes, *, mapped: bool) -> bytes:
    """Header + `payload` as it is: its length and SHA-256 go in the header.

    `pack` is the way to write a program; this also frames payloads that are not a valid
    Program (the format tests feed the loader such files).
    """
    flags = FLAG_MAPPED if mapped else 0
    digest = hashlib.sha256(payload).digest()
    return HEADER.pack(MAGIC, FORMAT_VERSION, flags, 0, len(payload), digest) + bytes(payload)


def unpack(data: bytes, source: str = "program") -> pb.Program:
    """Check the header and parse the Program message; ProgramFormatError on any fault."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProgramFormatError(f"{source}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER.size:
        raise ProgramFormatError(
            f"{source}: truncated: {len(data)} bytes, the header alone is {HEADER.size}"
        )
    magic, version, flags, reserved, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProgramFormatError(
            f"{source}: not an akida_rt program (magic {magic!r}, expected {MAGIC!r})"
        )
    if version != FORMAT_VERSION:
        raise ProgramFormatError(
            f"{source}: unknown format version {version}; this akida_rt reads version "
            f"{FORMAT_VERSION} (upgrade akida-rt or re-convert the model)"
        )
    if flags & ~FLAG_MAPPED or reserved:
        raise ProgramFormatError(
            f"{source}: unknown header flags {flags:#06x} or reserved word {reserved:#010x} "
            "(written by a newer akida-rt?)"
        )
    payload = data[HEADER.size :]
    if len(payload) != length:
        what = "truncated" if len(payload) < length else "trailing bytes"
        raise ProgramFormatError(
            f"{source}: {what}: header says {length} payload bytes, file has {len(payload)}"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise ProgramFormatError(f"{source}: content hash mismatch: the file is corrupted")
    message = pb.Program()
    try:
        message.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ProgramFormatError(
            f"{source}: payload is not a valid Program message: {exc}"
        ) from None
    if message.format_version != FORMAT_VERSION:
        raise ProgramFormatError(
            f"{source}: message format_version {message.format_version} does not match header"
        )
    mapped = bool(flags & FLAG_MAPPED)
    if mapped != message.HasField("mapping"):
        raise ProgramFormatError(
            f"{source}: the header says {'mapped' if mapped else 'not mapped'}, the message "
            f"{'lacks' if mapped else 'has'} a mapping"
        )
    return message


def content_hash(data: bytes) -> str:
    """Hex SHA-256 of a packed program's payload: the program's identity."""
    return HEADER.unpack_from(data)[5].hex() if len(data) >= HEADER.size else ""


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync
    of the folder. Returns once the data and the rename are durable.

    The temp file is `.<name>.<random>.tmp`, so a crash mid-write leaves only a dot-file
    that readers can recognise and remove. The file gets `mode` (before the rename).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a folder's entries (a rename, an unlink) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A program file's bytes; a pipe, socket or device is refused (it could block)."""
    file = Path(path)
    if file.exists() and not file.is_dir() and not file.is_file():
        raise ProgramFormatError(
            f"{path}: not a regular file (a pipe, socket or device); give a program file"
        )
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise ProgramFormatError(f"{path}: no such program file") from None
    except IsADirectoryError:
        raise ProgramFormatError(f"{path}: is a directory, not a program file") from None
    except PermissionError:
        raise ProgramFormatError(f"{path}: permission denied") from None


def layers_to_message(layers: list[Layer], message: pb.Program, **meta: Any) -> None:
    for layer in layers:
        encode_layer(layer, message.layers.add())
    for key, value in meta.items():
        setattr(message, key, value)
