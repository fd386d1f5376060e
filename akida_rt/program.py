"""The program file: a fixed header (magic, format version, length, SHA-256) and one
protobuf Program message holding the model and, optionally, its mapping.

Everything malformed is refused with ProgramFormatError before anything is loaded.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from akida_rt.errors import ModelError, ProgramFormatError
from akida_rt.layers import (
    LAYER_CLASSES,
    Layer,
    LayerType,
    Padding,
    Pooling,
)
from akida_rt.proto import program_pb2 as pb

MAGIC = b"AKIDARTP"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHHIQ32s")  # magic, version, flags, reserved, length, sha256
FLAG_MAPPED = 1
MAX_DIM = 1 << 16
MAX_TENSOR_ELEMENTS = 1 << 28

_DTYPES: dict[int, np.dtype[Any]] = {
    pb.INT8: np.dtype("<i1"),
    pb.INT32: np.dtype("<i4"),
    pb.INT64: np.dtype("<i8"),
    pb.FLOAT32: np.dtype("<f4"),
    pb.UINT8: np.dtype("u1"),
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
_TENSOR_FIELDS = (
    "weights",
    "pointwise",
    "bias",
    "act_scale",
    "act_offset",
    "output_scale",
    "output_offset",
)


# --------------------------------------------------------------------------- tensors
def encode_tensor(arr: np.ndarray, out: pb.Tensor) -> None:
    dtype = np.dtype(arr.dtype).newbyteorder("<") if arr.dtype.itemsize > 1 else np.dtype(arr.dtype)
    code = _DTYPE_CODES.get(dtype)
    if code is None:
        raise ProgramFormatError(f"cannot store dtype {arr.dtype}")
    out.dtype = code  # type: ignore[assignment]
    out.shape[:] = list(arr.shape)
    out.data = np.ascontiguousarray(arr, dtype=dtype).tobytes()


def decode_tensor(t: pb.Tensor, where: str) -> np.ndarray:
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise ProgramFormatError(f"{where}: unknown tensor dtype code {t.dtype}")
    shape = tuple(t.shape)
    if any(d < 0 or d > MAX_DIM for d in shape) or len(shape) > 4:
        raise ProgramFormatError(f"{where}: bad tensor shape {shape}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > MAX_TENSOR_ELEMENTS:
        raise ProgramFormatError(f"{where}: tensor of {count} elements is too large")
    if len(t.data) != count * dtype.itemsize:
        raise ProgramFormatError(
            f"{where}: tensor shape {shape} needs {count * dtype.itemsize} bytes of {dtype}, "
            f"got {len(t.data)}"
        )
    return np.frombuffer(t.data, dtype=dtype).reshape(shape).copy()


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
    for key in _TENSOR_FIELDS:
        if key in layer.variables:
            encode_tensor(layer.variables[key], getattr(out, key))


def decode_layer(msg: pb.Layer, index: int) -> Layer:
    where = f"layer {index} '{msg.name[:64]}'"
    try:
        layer_type = _KIND_TYPES[msg.kind]
        padding = _PADDING_TYPES[msg.padding]
        pooling = _POOLING_TYPES[msg.pooling]
    except KeyError:
        raise ProgramFormatError(
            f"{where}: unknown kind/padding/pooling code ({msg.kind}/{msg.padding}/{msg.pooling})"
        ) from None
    ints = (msg.kernel_size, msg.filters, msg.stride, msg.weight_bits, msg.input_bits)
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
        input_shape=shape,  # type: ignore[arg-type]
    )
    for key in _TENSOR_FIELDS:
        if msg.HasField(key):  # type: ignore[arg-type]
            try:
                layer.set_variable(key, decode_tensor(getattr(msg, key), f"{where} {key}"))
            except ModelError as exc:
                raise ProgramFormatError(str(exc)) from None
    return layer


# ---------------------------------------------------------------------- file framing
def pack(message: pb.Program, *, mapped: bool = False) -> bytes:
    """Header + serialized Program."""
    message.format_version = FORMAT_VERSION
    payload = message.SerializeToString()
    flags = FLAG_MAPPED if mapped else 0
    header = HEADER.pack(
        MAGIC, FORMAT_VERSION, flags, 0, len(payload), hashlib.sha256(payload).digest()
    )
    return header + payload


def unpack(data: bytes, source: str = "program") -> pb.Program:
    """Check the header and parse the Program message; ProgramFormatError on any fault."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProgramFormatError(f"{source}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER.size:
        raise ProgramFormatError(
            f"{source}: truncated: {len(data)} bytes, the header alone is {HEADER.size}"
        )
    magic, version, _flags, _reserved, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProgramFormatError(
            f"{source}: not an akida_rt program (magic {magic!r}, expected {MAGIC!r})"
        )
    if version != FORMAT_VERSION:
        raise ProgramFormatError(
            f"{source}: unknown format version {version}; this akida_rt reads version "
            f"{FORMAT_VERSION} (upgrade akida-rt or re-convert the model)"
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
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
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
