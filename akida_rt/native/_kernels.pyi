"""Type stubs of akida_rt.native._kernels (C, akida_rt/csrc/): the loops numpy cannot make fast."""

import numpy as np

_Buffer = bytes | bytearray | memoryview | np.ndarray

def evt2_decode(
    words: np.ndarray,
    state: np.ndarray,
    event_dtype: np.dtype,
    first_offset: int,
    width: int,
    height: int,
    last_t: int,
    offsets: bool,
) -> tuple[np.ndarray, np.ndarray | None, int, int, bool]: ...
def evt3_decode(
    words: np.ndarray,
    state: np.ndarray,
    event_dtype: np.dtype,
    first_offset: int,
    width: int,
    height: int,
    last_t: int,
    offsets: bool,
) -> tuple[np.ndarray, np.ndarray | None, int, int, bool]: ...
def aedat4_unpack(packet: _Buffer, lz4: bool, scratch: _Buffer) -> tuple[int, int]: ...
def aedat4_events(
    src: _Buffer, offset: int, count: int, out: np.ndarray, at: int, last_t: int
) -> int | None: ...
def aedat4_walk(
    buf: _Buffer,
    lo: int,
    hi: int,
    stream_id: int,
    kind: int,
    scratch: _Buffer,
    out: np.ndarray,
    at: int,
    last_t: int,
) -> tuple[int, int, int, int, int, int, int, int]: ...
def frame_counts(
    held: np.ndarray,
    events: np.ndarray,
    bounds: np.ndarray,
    table: np.ndarray,
    sensor_w: int,
    sensor_h: int,
    split: bool,
    pixels: int,
) -> np.ndarray: ...
def activate(
    acc: np.ndarray, scale: np.ndarray, offset: np.ndarray, top: float
) -> tuple[np.ndarray, int]: ...
def max_pool(
    acc: np.ndarray, k: int, s: int, pad_top: int, pad_left: int, oh: int, ow: int
) -> np.ndarray: ...
def im2col(
    x: np.ndarray, k: int, s: int, pad_top: int, pad_left: int, oh: int, ow: int, pad_value: float
) -> np.ndarray: ...
def count_nonzero(x: np.ndarray) -> int: ...
def learn(
    weights: np.ndarray,
    swaps: np.ndarray,
    spikes: np.ndarray,
    labels: np.ndarray,
    out: np.ndarray,
    params: tuple[int, int, int, int, int],
) -> None: ...
