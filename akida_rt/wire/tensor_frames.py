"""Tensor frames: the binary layout of an inference request and its result, and of a
learn request and its answer (the one encoding of a tensor on akidad's wire).

Every other akidad message is protobuf (akida_rt/wire/proto/daemon.proto). These carry a
tensor each, as one `struct` header and the raw tensor bytes, read with one
`unpack_from` and one `np.frombuffer` (protobuf would copy the tensor twice).

A tensor frame travels in the same length-prefixed framing as protobuf payloads; its
first byte is 0, which no protobuf message can start with (field number 0 is invalid),
so each payload says what it is. All integers are little-endian.

    infer request (48-byte header, then the tensor bytes unless IN_SHM):
        u8 0, u8 kind=1, u8 flags (PREDICT | IN_SHM | OUTPUT_TO_SHM), u8 dtype, u8 ndim,
        3 pad, u64 id, u64 session, u32 timeout_ms, 4 x u32 dims, 4 pad
    result (56-byte header, then the tensor bytes unless IN_SHM, then the device id):
        u8 0, u8 kind=2, u8 flags (IN_SHM), u8 dtype, u8 ndim, 3 pad, u64 id,
        u32 batch_frames, u32 device_len, f64 queue_s, f64 run_s, 4 x u32 dims
    learn request (56-byte header, then the uint8 NHWC samples, then n_labels x i64 labels):
        u8 0, u8 kind=3, u8 flags (0), u8 dtype, u8 ndim, 3 pad, u64 id, u64 session,
        u32 timeout_ms, 4 x u32 dims, u32 n_labels, u64 update_id
    learned (40-byte header, then the int32 potentials, then the state as UTF-8 JSON),
    the answer once the learned state is durable:
        u8 0, u8 kind=4, u8 flags (0), u8 dtype, u8 ndim, 3 pad, u64 id, u32 state_len,
        4 x u32 dims, 4 pad

IN_SHM and OUTPUT_TO_SHM requests send one sealed memfd with the frame (ipc.py). dtype
codes are those of the protobuf `DType` enum. Errors are protobuf `Response`s.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np

from akida_rt.errors import DaemonError, ErrorKind, FrameRefused
from akida_rt.wire import ipc

MARKER = 0
INFER, RESULT, LEARN, LEARNED = 1, 2, 3, 4
PREDICT, IN_SHM, OUTPUT_TO_SHM = 1, 2, 4
INFER_HEAD = struct.Struct("<BBBBB3xQQI4I4x")
RESULT_HEAD = struct.Struct("<BBBBB3xQIIdd4I")
LEARN_HEAD = struct.Struct("<BBBBB3xQQI4IIQ")
LEARNED_HEAD = struct.Struct("<BBBBB3xQI4I4x")
LABEL = np.dtype("<i8")
INFER_FRAME = struct.Struct("<I" + INFER_HEAD.format[1:])  # length prefix, then the header
_ZEROS = (0, 0, 0, 0)
NO_LIMIT = 1 << 40  # what a client accepts from its daemon (the frame bounds it anyway)


class InferFrame(NamedTuple):
    """A decoded infer request. `x` is the input (read-only) unless `in_shm`, in which
    case `dtype` and `shape` describe what the shared memory holds."""

    id: int
    session: int
    predict: bool
    timeout_ms: int
    in_shm: bool
    output_to_shm: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    x: np.ndarray | None


class ResultFrame(NamedTuple):
    """A decoded result. `y` is the output unless `in_shm` (then read it from memory)."""

    id: int
    device: str
    batch_frames: int
    queue_s: float
    run_s: float
    in_shm: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    y: np.ndarray | None


class LearnFrame(NamedTuple):
    """A decoded learn request: uint8 NHWC samples `x` (read-only) and their labels
    (one per sample, one for all, or none when unlabelled)."""

    id: int
    session: int
    timeout_ms: int
    update_id: int
    x: np.ndarray
    labels: list[int]


class LearnedFrame(NamedTuple):
    """A decoded learn answer: the (N, U) potentials before learning (empty for an update
    applied already) and the learned state as plain data (JSON)."""

    id: int
    potentials: np.ndarray
    state_json: str


def is_tensor_frame(payload: bytes) -> bool:
    return len(payload) > 0 and payload[0] == MARKER


def is_learn_frame(payload: bytes) -> bool:
    return is_tensor_frame(payload) and len(payload) > 1 and payload[1] == LEARN


def uses_shm(payload: bytes) -> bool:
    """Whether an infer frame says a memfd came with it (readable from any frame that
    has its flags byte, however malformed the rest: the descriptor must be consumed)."""
    return len(payload) > 2 and payload[1] == INFER and bool(payload[2] & (IN_SHM | OUTPUT_TO_SHM))


def _layout(arr: np.ndarray) -> tuple[int, tuple[int, ...], np.ndarray]:
    """(dtype code, dims padded to 4, little-endian array) for an array that can travel."""
    code, arr = ipc.wire_array(arr)
    if not 1 <= arr.ndim <= ipc.MAX_DIMS:
        raise DaemonError(f"tensor has {arr.ndim} dimensions, 1..4 allowed")
    return code, arr.shape + _ZEROS[arr.ndim :], arr


def infer_parts(
    req_id: int,
    session: int,
    x: np.ndarray,
    *,
    predict: bool = False,
    timeout_ms: int = 0,
    in_shm: bool = False,
    output_to_shm: bool = False,
) -> tuple[bytes, memoryview | bytes]:
    """A whole framed infer request as (length prefix and header, tensor body), to send
    with one `ipc.send_frame` without copying the tensor into a frame first."""
    code, dims, x = _layout(x)
    flags = (PREDICT if predict else 0) | (IN_SHM if in_shm else 0)
    flags |= OUTPUT_TO_SHM if output_to_shm else 0
    size = INFER_HEAD.size if in_shm else INFER_HEAD.size + x.nbytes
    head = INFER_FRAME.pack(size, MARKER, INFER, flags, code, x.ndim, req_id, session,
                            timeout_ms, *dims)  # fmt: skip
    return head, b"" if in_shm else np.ascontiguousarray(x).data


def encode_infer(req_id: int, session: int, x: np.ndarray, **options: Any) -> bytes:
    """A whole framed infer request as one bytes object (`infer_parts`' arguments)."""
    head, body = infer_parts(req_id, session, x, **options)
    return head + bytes(body)


def encode_result(
    req_id: int,
    y: np.ndarray,
    device: str,
    batch_frames: int,
    queue_s: float,
    run_s: float,
    *,
    in_shm: bool = False,
) -> bytes:
    """A whole framed result (length prefix included)."""
    code, dims, y = _layout(y)
    data = b"" if in_shm else y.tobytes()
    name = device.encode()
    head = RESULT_HEAD.pack(MARKER, RESULT, IN_SHM if in_shm else 0, code, y.ndim, req_id,
                            batch_frames, len(name), queue_s, run_s, *dims)  # fmt: skip
    return ipc.LENGTH.pack(RESULT_HEAD.size + len(data) + len(name)) + head + data + name


def _tensor(
    code: int, ndim: int, dims: tuple[int, int, int, int], req_id: int, limit: int
) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """(dtype, shape, bytes) a header describes."""
    dtype = ipc.DTYPES.get(code)
    if dtype is None:
        raise FrameRefused(req_id, f"unknown tensor dtype code {code}")
    if not 1 <= ndim <= ipc.MAX_DIMS:
        raise FrameRefused(req_id, f"tensor has {ndim} dimensions, 1..4 allowed")
    shape = dims[:ndim]
    try:
        return dtype, shape, ipc.shape_nbytes(shape, dtype, limit)
    except DaemonError as exc:
        raise FrameRefused(req_id, str(exc)) from None


def decode_infer(payload: bytes, limit: int) -> InferFrame:
    """Parse an infer tensor frame (its payload, without the length prefix) whose tensor
    may be up to `limit` bytes.

    Raises:
        FrameRefused: with the request id when it could be read, and what is wrong.
    """
    if len(payload) < INFER_HEAD.size:
        raise FrameRefused(
            0, f"tensor frame of {len(payload)} bytes is shorter than its "
            f"{INFER_HEAD.size}-byte header", ErrorKind.BAD_MESSAGE
        )  # fmt: skip
    _, kind, flags, code, ndim, req_id, session, timeout_ms, d0, d1, d2, d3 = (
        INFER_HEAD.unpack_from(payload)
    )
    if kind != INFER:
        raise FrameRefused(
            req_id, f"tensor frame kind {kind} is not a request", ErrorKind.UNKNOWN_TYPE
        )
    dtype, shape, need = _tensor(code, ndim, (d0, d1, d2, d3), req_id, limit)
    in_shm = bool(flags & IN_SHM)
    x = None
    if not in_shm:
        got = len(payload) - INFER_HEAD.size
        if got != need:
            raise FrameRefused(
                req_id, f"tensor {shape} of {dtype.name} needs {need} bytes, got {got}"
            )
        x = np.frombuffer(payload, dtype=dtype, count=need // dtype.itemsize,
                          offset=INFER_HEAD.size).reshape(shape)  # fmt: skip
    return InferFrame(req_id, session, bool(flags & PREDICT), timeout_ms, in_shm,
                      bool(flags & OUTPUT_TO_SHM), dtype, shape, x)  # fmt: skip


def decode_result(payload: bytes, at: int = 0) -> ResultFrame:
    """Parse a result tensor frame (client side): the payload starting at byte `at` (a
    buffer holding one whole frame may be parsed after its length prefix, uncopied)."""
    size = len(payload) - at
    if size < RESULT_HEAD.size:
        raise FrameRefused(0, "result frame shorter than its header", ErrorKind.BAD_MESSAGE)
    _, kind, flags, code, ndim, req_id, batch, name_len, queue_s, run_s, d0, d1, d2, d3 = (
        RESULT_HEAD.unpack_from(payload, at)
    )
    if kind != RESULT:
        raise FrameRefused(
            req_id, f"tensor frame kind {kind} is not a result", ErrorKind.BAD_MESSAGE
        )
    dtype, shape, need = _tensor(code, ndim, (d0, d1, d2, d3), req_id, NO_LIMIT)
    in_shm = bool(flags & IN_SHM)
    body = 0 if in_shm else need
    if size != RESULT_HEAD.size + body + name_len:
        raise FrameRefused(req_id, "result frame length does not match its header",
                           ErrorKind.BAD_MESSAGE)  # fmt: skip
    start = at + RESULT_HEAD.size
    y = None
    if not in_shm:
        y = np.frombuffer(payload, dtype, need // dtype.itemsize, start).reshape(shape)
    device = payload[start + body :].decode(errors="replace")
    return ResultFrame(req_id, device, batch, queue_s, run_s, in_shm, dtype, shape, y)


def encode_learn(
    req_id: int,
    session: int,
    x: np.ndarray,
    labels: list[int],
    *,
    timeout_ms: int = 0,
    update_id: int = 0,
) -> bytes:
    """A whole framed learn request (length prefix included) of uint8 samples `x`."""
    code, dims, x = _layout(x)
    body = x.tobytes() + np.asarray(labels, LABEL).tobytes()
    head = LEARN_HEAD.pack(MARKER, LEARN, 0, code, x.ndim, req_id, session, timeout_ms,
                           *dims, len(labels), update_id)  # fmt: skip
    return ipc.LENGTH.pack(LEARN_HEAD.size + len(body)) + head + body


def decode_learn(payload: bytes, limit: int) -> LearnFrame:
    """Parse a learn tensor frame (without its length prefix) of samples up to `limit` bytes.

    Raises:
        FrameRefused: with the request id when it could be read, and what is wrong.
    """
    if len(payload) < LEARN_HEAD.size:
        raise FrameRefused(
            0, f"learn frame of {len(payload)} bytes is shorter than its "
            f"{LEARN_HEAD.size}-byte header", ErrorKind.BAD_MESSAGE
        )  # fmt: skip
    _, kind, _, code, ndim, req_id, session, timeout_ms, d0, d1, d2, d3, n_labels, update_id = (
        LEARN_HEAD.unpack_from(payload)
    )
    if kind != LEARN:
        raise FrameRefused(req_id, f"tensor frame kind {kind} is not a learn request",
                           ErrorKind.UNKNOWN_TYPE)  # fmt: skip
    dtype, shape, need = _tensor(code, ndim, (d0, d1, d2, d3), req_id, limit)
    if dtype != np.uint8 or ndim != 4 or need == 0:
        raise FrameRefused(req_id, f"learn: samples {shape} of {dtype.name}: send uint8 NHWC "
                           "frames")  # fmt: skip
    got = len(payload) - LEARN_HEAD.size
    if got != need + n_labels * LABEL.itemsize:
        raise FrameRefused(
            req_id, f"learn: samples {shape} and {n_labels} labels need "
            f"{need + n_labels * LABEL.itemsize} bytes, got {got}"
        )  # fmt: skip
    start = LEARN_HEAD.size
    x = np.frombuffer(payload, np.uint8, need, start).reshape(shape)
    labels = np.frombuffer(payload, LABEL, n_labels, start + need).tolist()
    return LearnFrame(req_id, session, timeout_ms, update_id, x, labels)


def encode_learned(req_id: int, potentials: np.ndarray, state_json: str) -> bytes:
    """A whole framed learn answer (length prefix included)."""
    code, dims, pots = _layout(np.asarray(potentials, np.int32))
    body = pots.tobytes() + state_json.encode()
    head = LEARNED_HEAD.pack(MARKER, LEARNED, 0, code, pots.ndim, req_id,
                             len(state_json.encode()), *dims)  # fmt: skip
    return ipc.LENGTH.pack(LEARNED_HEAD.size + len(body)) + head + body


def decode_learned(payload: bytes) -> LearnedFrame:
    """Parse a learn answer (client side; the payload without its length prefix)."""
    if len(payload) < LEARNED_HEAD.size:
        raise FrameRefused(0, "learned frame shorter than its header", ErrorKind.BAD_MESSAGE)
    _, kind, _, code, ndim, req_id, state_len, d0, d1, d2, d3 = LEARNED_HEAD.unpack_from(payload)
    dtype, shape, need = _tensor(code, ndim, (d0, d1, d2, d3), req_id, NO_LIMIT)
    if kind != LEARNED or len(payload) != LEARNED_HEAD.size + need + state_len:
        raise FrameRefused(req_id, "learned frame length does not match its header",
                           ErrorKind.BAD_MESSAGE)  # fmt: skip
    start = LEARNED_HEAD.size
    pots = np.frombuffer(payload, dtype, need // dtype.itemsize, start).reshape(shape).copy()
    state = payload[start + need :].decode(errors="replace")
    return LearnedFrame(req_id, pots, state)


def decode_answer(payload: bytes) -> ResultFrame | LearnedFrame:
    """A tensor frame akidad answers with: a result, or a learn answer."""
    if len(payload) > 1 and payload[1] == LEARNED:
        return decode_learned(payload)
    return decode_result(payload)
