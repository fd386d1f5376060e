"""The akidad wire format, shared by the daemon and the client: framing, tensors, memfds.

A frame is a little-endian u32 payload length and a serialized `Request`/`Response`
(akida_rt/proto/daemon.proto). Large tensors travel in a memfd passed as SCM_RIGHTS.
"""

from __future__ import annotations

import math
import mmap
import os
import socket
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from akida_rt.errors import DaemonError
from akida_rt.proto import daemon_pb2 as dpb

PROTOCOL = 2  # 2: Infer and its result may travel as tensor frames (tensor_frames.py)
LENGTH = struct.Struct("<I")
DEFAULT_MAX_FRAME = 64 << 20
DEFAULT_SHM_THRESHOLD = 64 << 10
MAX_FDS_PER_FRAME = 4
SYSTEM_SOCKET = "/run/akida/akida.sock"

DTYPES: dict[int, np.dtype[Any]] = {
    dpb.UINT8: np.dtype("u1"),
    dpb.INT32: np.dtype("<i4"),
    dpb.INT64: np.dtype("<i8"),
    dpb.FLOAT32: np.dtype("<f4"),
}
MAX_DIMS = 4
MAX_TENSOR_BYTES = 1 << 40  # no tensor is larger; also keeps numpy's size arithmetic safe


class FrameError(DaemonError):
    """The byte stream does not hold a valid frame (too long, or truncated)."""


class MessageError(DaemonError):
    """A frame does not decode into a known message; `status` says which way."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RemoteError(DaemonError):
    """The daemon answered with an error status.

    Attributes:
        status: the `Status` enum value.
        status_name: its name, e.g. "BAD_INPUT".
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        known = status in dpb.Status.values()
        self.status_name = dpb.Status.Name(status) if known else str(status)  # type: ignore[arg-type]
        super().__init__(f"{self.status_name}: {message}")


# ------------------------------------------------------------------------ framing
def encode_frame(message: Any) -> bytes:
    """Serialize a message behind its length prefix."""
    body = message.SerializeToString()
    return LENGTH.pack(len(body)) + body


def split_frames(buffer: bytearray, max_frame: int) -> list[bytes]:
    """Remove and return every complete frame payload at the start of `buffer`.

    Raises:
        FrameError: a length prefix announces more than `max_frame` bytes; the stream
            cannot be resynchronised after that.
    """
    frames: list[bytes] = []
    pos = 0
    end = len(buffer)
    while end - pos >= LENGTH.size:
        (length,) = LENGTH.unpack_from(buffer, pos)
        if length > max_frame:
            del buffer[:pos]
            raise FrameError(f"frame of {length} bytes is over the {max_frame}-byte limit")
        if end - pos - LENGTH.size < length:
            break
        start = pos + LENGTH.size
        frames.append(bytes(buffer[start : start + length]))
        pos = start + length
    if pos:
        del buffer[:pos]
    return frames


def decode_request(payload: bytes) -> dpb.Request:
    """Parse one request payload; a body must be set.

    Raises:
        MessageError: BAD_MESSAGE when the bytes are not a Request, UNKNOWN_TYPE when no
            known body is set (for example a newer client's message type).
    """
    req = dpb.Request()
    try:
        req.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MessageError(dpb.BAD_MESSAGE, f"frame is not a Request message: {exc}") from None
    if req.WhichOneof("body") is None:
        raise MessageError(
            dpb.UNKNOWN_TYPE,
            f"request {req.id} has no known message type "
            f"(known: {', '.join(f.name for f in dpb.Request.DESCRIPTOR.oneofs[0].fields)})",
        )
    return req


def decode_response(payload: bytes) -> dpb.Response:
    """Parse one response payload (client side)."""
    resp = dpb.Response()
    try:
        resp.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise MessageError(dpb.BAD_MESSAGE, f"daemon sent an undecodable frame: {exc}") from None
    return resp


def error_response(req_id: int, status: int, message: str) -> dpb.Response:
    resp = dpb.Response(id=req_id)
    resp.error.status = status  # type: ignore[assignment]
    resp.error.message = message
    return resp


# ------------------------------------------------------------------------ tensors
# Keyed by the dtype itself: a big-endian dtype is not equal to its little-endian twin, so
# it misses and is converted. (dtype.str builds a string on every call: 5x slower.)
CODE_OF = {dt: code for code, dt in DTYPES.items()}


def _layout(t: dpb.Tensor) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """(dtype, shape, bytes) a Tensor describes (validates all three)."""
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        raise MessageError(dpb.BAD_INPUT, f"unknown tensor dtype code {t.dtype}")
    shape = tuple(t.shape)
    if not 1 <= len(shape) <= MAX_DIMS:
        raise MessageError(dpb.BAD_INPUT, f"tensor has {len(shape)} dimensions, 1..4 allowed")
    return dtype, shape, shape_nbytes(shape, dtype)


def shape_nbytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """Bytes of a tensor; refuses shapes numpy cannot hold, even empty ones (numpy checks
    the product of the non-zero dimensions too).

    Raises:
        MessageError: BAD_INPUT naming the shape.
    """
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_TENSOR_BYTES or (
        not size and math.prod(d for d in shape if d) * dtype.itemsize > MAX_TENSOR_BYTES
    ):
        raise MessageError(
            dpb.BAD_INPUT, f"tensor shape {shape} of {dtype.name} is over {MAX_TENSOR_BYTES} bytes"
        )
    return size


def wire_array(arr: np.ndarray) -> tuple[int, np.ndarray]:
    """(dtype code, the array in little-endian) for an array that can travel.

    Raises:
        DaemonError: the dtype has no wire code.
    """
    code = CODE_OF.get(arr.dtype)
    if code is None and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
        code = CODE_OF.get(arr.dtype)
    if code is None:
        raise DaemonError(f"dtype {arr.dtype} cannot travel; use uint8, int32, int64 or float32")
    return code, arr


def tensor_from_array(arr: np.ndarray, out: dpb.Tensor, *, inline: bool = True) -> None:
    """Describe `arr` in `out` (little-endian on the wire); with inline=False only shape
    and dtype are set."""
    code, arr = wire_array(arr)
    out.dtype = code  # type: ignore[assignment]
    out.shape[:] = arr.shape
    if inline:
        out.data = arr.tobytes()
    else:
        out.in_shm = True


def array_from_tensor(t: dpb.Tensor, shm: memoryview | None = None) -> np.ndarray:
    """The array a Tensor describes, read-only; from `shm` when the tensor is in_shm.

    Raises:
        MessageError: BAD_INPUT with the mismatch (dtype, dimensions, byte count).
    """
    dtype, shape, need = _layout(t)
    if t.in_shm:
        if shm is None:
            raise MessageError(dpb.BAD_INPUT, "tensor is in_shm but no descriptor came with it")
        return array_in_shm(shm, dtype, shape)
    else:
        raw: Any = t.data
        if len(raw) != need:
            raise MessageError(
                dpb.BAD_INPUT,
                f"tensor {shape} of {dtype.name} needs {need} bytes, got {len(raw)}",
            )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def array_in_shm(shm: memoryview, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """The array at the start of a shared-memory region (a view: copy before unmapping).

    Raises:
        MessageError: BAD_INPUT when the region is smaller than the tensor.
    """
    need = shape_nbytes(shape, dtype)
    if len(shm) < need:
        raise MessageError(
            dpb.BAD_INPUT, f"shared memory holds {len(shm)} bytes, tensor needs {need}"
        )
    return np.frombuffer(shm[:need], dtype=dtype).reshape(shape)


# ------------------------------------------------------------------- shared memory
def memfd_with(size: int, name: str = "akida-tensor") -> int:
    """A sealed-size-free anonymous memory file of `size` bytes (close it when done)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.ftruncate(fd, max(size, 1))
    return fd


def map_fd(fd: int, writable: bool = True) -> mmap.mmap:
    """Map a whole memfd / shm file."""
    size = os.fstat(fd).st_size
    if size <= 0:
        raise MessageError(dpb.BAD_INPUT, "shared-memory descriptor is empty")
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)


def send_frame(
    sock: socket.socket, head: bytes, body: bytes | memoryview = b"", fds: Sequence[int] = ()
) -> None:
    """Send a whole frame on a blocking socket: `head` (which starts with the length
    prefix) and `body`, gathered by one sendmsg; `fds` ride on its first byte."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
    sent = sock.sendmsg((head, body), anc)
    total = LENGTH.unpack_from(head)[0] + LENGTH.size
    if sent < total:  # a full socket buffer: the rest as a blocking sendall
        sock.sendall(memoryview(head + bytes(body))[sent:])


def fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors in recvmsg ancillary data."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    return fds


# ------------------------------------------------------------------------- paths
def user_runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR, or a private /tmp/akida-<uid> when it is unset."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return Path(xdg) if xdg else Path(f"/tmp/akida-{os.getuid()}")


def user_socket_path() -> Path:
    return user_runtime_dir() / "akida" / "akida.sock"


def default_socket_path() -> Path:
    """Where clients look: $AKIDA_SOCKET, else the user daemon if running, else the system one."""
    env = os.environ.get("AKIDA_SOCKET")
    if env:
        return Path(env)
    user = user_socket_path()
    return user if user.exists() else Path(SYSTEM_SOCKET)
