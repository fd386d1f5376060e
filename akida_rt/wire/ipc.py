"""The akidad wire format, shared by the daemon and the client: framing, control
messages, tensor sizes, sealed memfds, and the checks that keep the socket private.

A frame is a little-endian u32 payload length and a payload: a serialized protobuf
`Request`/`Response` (akida_rt/wire/proto/daemon.proto) for control messages, or a tensor
frame (akida_rt/wire/tensor_frames.py) for an inference and its result. Large tensors travel
in a memfd sealed against shrinking and growing, passed as SCM_RIGHTS with its frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import pwd
import socket
import ssl
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from akida_rt.errors import DaemonError, ErrorKind, FrameError, FrameRefused
from akida_rt.wire.proto import daemon_pb2 as dpb

PROTOCOL = 4  # the daemon protocol this side speaks; PROTOCOLS names each
PROTOCOLS = {
    3: "protocol 3 (inference as tensor frames, learning samples as protobuf Learn)",
    4: "protocol 4 (inference and learning samples as tensor frames)",
}
# Request fields of earlier protocols, by number: what replaced them.
RETIRED_REQUESTS = {
    6: "Infer is a tensor frame since protocol 3",
    11: "Learn (learning samples as protobuf bytes, protocol 3) is a tensor frame since protocol 4",
}
LENGTH = struct.Struct("<I")
DEFAULT_MAX_FRAME = 64 << 20
DEFAULT_SHM_THRESHOLD = 64 << 10
SYSTEM_SOCKET = "/run/akida/akida.sock"
SYSTEM_USER = "akidad"  # the system service's (dynamic) user: a server clients trust
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW  # a mapped memfd cannot change size
UCRED = struct.Struct("3i")

DTYPES: dict[int, np.dtype[Any]] = {
    dpb.UINT8: np.dtype("u1"),
    dpb.INT32: np.dtype("<i4"),
    dpb.INT64: np.dtype("<i8"),
    dpb.FLOAT32: np.dtype("<f4"),
}
# Keyed by the dtype itself: a big-endian dtype is not equal to its little-endian twin, so
# it misses and is converted.
CODE_OF = {dt: code for code, dt in DTYPES.items()}
MAX_DIMS = 4


# ------------------------------------------------------------------------ framing
def encode_frame(message: Any) -> bytes:
    """Serialize a message behind its length prefix."""
    body = message.SerializeToString()
    return LENGTH.pack(len(body)) + body


def take_frame(buffer: bytearray, max_frame: int) -> bytes | None:
    """Remove and return the first complete frame's payload from `buffer`; None when
    the buffer holds no complete frame yet.

    Raises:
        FrameError: the length prefix announces more than `max_frame` bytes; the stream
            cannot be resynchronised after that.
    """
    if len(buffer) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack_from(buffer)
    if length > max_frame:
        raise FrameError(f"frame of {length} bytes is over the {max_frame}-byte limit")
    end = LENGTH.size + length
    if len(buffer) < end:
        return None
    payload = bytes(buffer[LENGTH.size : end])
    del buffer[:end]
    return payload


def decode_request(payload: bytes) -> dpb.Request:
    """Parse one control request; a body must be set.

    Raises:
        FrameRefused: BAD_MESSAGE when the bytes are not a Request, UNKNOWN_TYPE when no
            known body is set (for example a newer client's message type).
    """
    req = dpb.Request()
    try:
        req.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise FrameRefused(
            0, f"frame is not a Request message: {exc}", ErrorKind.BAD_MESSAGE
        ) from None
    if req.WhichOneof("body") is None:
        unknown = UnknownFieldSet(req)
        for number in {unknown[i].field_number for i in range(len(unknown))}:
            if number in RETIRED_REQUESTS:
                raise FrameRefused(
                    req.id,
                    f"request {req.id}: {RETIRED_REQUESTS[number]}; this client "
                    f"speaks an older protocol than akidad's {PROTOCOLS[PROTOCOL]}",
                    ErrorKind.PROTOCOL_MISMATCH,
                )
        known = ", ".join(f.name for f in dpb.Request.DESCRIPTOR.oneofs[0].fields)
        raise FrameRefused(
            req.id,
            f"request {req.id} has no known message type (known: {known})",
            ErrorKind.UNKNOWN_TYPE,
        )
    return req


def decode_response(payload: bytes) -> dpb.Response:
    """Parse one control response (client side)."""
    resp = dpb.Response()
    try:
        resp.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise DaemonError(
            f"akidad sent an undecodable frame: {exc}", ErrorKind.BAD_MESSAGE
        ) from None
    return resp


def error_response(req_id: int, status: int, message: str) -> dpb.Response:
    resp = dpb.Response(id=req_id)
    resp.error.status = status  # type: ignore[assignment]
    resp.error.message = message
    return resp


def send_frame(
    sock: socket.socket, head: bytes, body: bytes | memoryview = b"", fds: Sequence[int] = ()
) -> None:
    """Send a whole frame on a blocking socket: `head` (which starts with the length
    prefix) and `body`, gathered by one sendmsg; `fds` ride on its first byte. (A TLS
    socket has no sendmsg, and no descriptors cross hosts.)"""
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(head + bytes(body))
        return
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
    sent = sock.sendmsg((head, body), anc)
    if sent < len(head) + len(body):  # a full socket buffer: the rest as a blocking sendall
        sock.sendall(memoryview(head + bytes(body))[sent:])


def fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors in recvmsg ancillary data."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    return fds


# ------------------------------------------------------------------------ tensors
def shape_nbytes(shape: Sequence[int], dtype: np.dtype[Any], limit: int) -> int:
    """Bytes of a tensor, in Python ints (no overflow); refuses more than `limit`, and
    shapes numpy cannot hold even when empty (numpy checks the non-zero dimensions too).

    Raises:
        DaemonError: BAD_INPUT naming the shape and the limit.
    """
    size = math.prod(shape) * dtype.itemsize
    if size > limit or (not size and math.prod(d for d in shape if d) * dtype.itemsize > limit):
        raise DaemonError(f"tensor shape {tuple(shape)} of {dtype.name} is over {limit} bytes")
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


# ------------------------------------------------------------------- shared memory
def sealed_memfd(size: int, name: str = "akida-tensor") -> int:
    """An anonymous memory file of `size` bytes, sealed against shrinking and growing
    (a peer may map it without fear of SIGBUS); close it when done."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, max(size, 1))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def map_sealed(fd: int, need: int, limit: int) -> mmap.mmap:
    """Map a peer's memfd for a tensor of `need` bytes. It must be sealed against
    shrinking and growing (else the peer could shrink it under the mapping and kill this
    process with SIGBUS) and at most `limit` bytes (it is checked before mapping).

    Raises:
        DaemonError: BAD_INPUT saying which rule the descriptor breaks.
    """
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        seals = 0
    if seals & SEALS != SEALS:
        raise DaemonError(
            "shared memory must be a memfd sealed with F_SEAL_SHRINK and F_SEAL_GROW "
            "(ipc.sealed_memfd makes one)"
        )
    size = os.fstat(fd).st_size
    if size > limit:
        raise DaemonError(f"shared memory of {size} bytes is over the {limit}-byte limit")
    if size < max(need, 1):
        raise DaemonError(f"shared memory holds {size} bytes, the tensor needs {need}")
    try:  # sealed against writing, or sent read-only: the answer could not go there
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as exc:
        raise DaemonError(
            f"cannot map the shared memory for writing ({exc.strerror}): send a writable "
            "memfd, not sealed with F_SEAL_WRITE or F_SEAL_FUTURE_WRITE"
        ) from None


# ---------------------------------------------------------------- who is who
def peer_uid(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    pid, uid, gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    return pid, uid, gid


def trusted_server_uids() -> set[int]:
    """Who may serve this process: root, its own uid, and the system service's user."""
    uids = {0, os.getuid()}
    with contextlib.suppress(KeyError):
        uids.add(pwd.getpwnam(SYSTEM_USER).pw_uid)
    return uids


def check_socket_dir(path: Path, owners: set[int], private: bool) -> None:
    """Refuse a socket directory another user could have planted or could tamper with.

    The directory and every ancestor must be owned by one of `owners` or root, and none
    writable by others unless it is sticky and root's (like /tmp). `private`: the
    directory itself must also be mode 0700 (a user-mode daemon's).

    Raises:
        DaemonError: PERMISSION_DENIED naming the directory, its owner and mode.
    """
    for i, folder in enumerate([path, *path.parents]):
        try:
            st = folder.stat()
        except OSError as exc:
            raise DaemonError(
                f"cannot check {folder}: {exc.strerror}", ErrorKind.PERMISSION_DENIED
            ) from None
        mode = stat.S_IMODE(st.st_mode)
        shared = mode & 0o022 and not (mode & stat.S_ISVTX and st.st_uid == 0)
        bad = st.st_uid not in owners | {0} or shared or (i == 0 and private and mode != 0o700)
        if bad:
            want = "mode 0700 and owned by uid " if i == 0 and private else "owned by uid "
            raise DaemonError(
                f"unsafe socket directory {folder} (owner uid {st.st_uid}, mode {mode:04o}): "
                f"it must be {want}{' or '.join(map(str, sorted(owners)))} and writable by "
                "no one else; another user may have created it",
                ErrorKind.PERMISSION_DENIED,
            )


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
