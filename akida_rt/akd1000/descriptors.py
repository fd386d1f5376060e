"""AKD1000 DMA descriptors, the output header, and the event words that flow in and out:
layouts as data, encode and decode both ways (host side and chip side).

From BrainChip's Akida Engine (dma_desc_format.h, dma_events_format.h, dma_events_ops.cpp).
Events are two 32-bit words each; arrays of events are numpy arrays of shape (n, 2), uint32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from akida_rt.akd1000.registers import Field
from akida_rt.errors import ProgramFormatError

DESC_VERSION = 1  # the descriptor format version the engine writes in word 0 bits 3:0

# --- config DMA descriptor: 8 words (32 bytes) -------------------------------------------
CONFIG_DESC_WORDS = 8
CFG_DIRECTION = Field("DIRECTION", 28, 4)  # 1 = write packets to NPs, 0 = read back
CFG_INT_DISABLE_OB = Field("INT_DISABLE_OB", 12)
CFG_INT_DISABLE_IB = Field("INT_DISABLE_IB", 13)
CFG_NNID = Field("NNID", 4, 4)
CFG_VERSION = Field("VERSION", 0, 4)
CFG_BUF_SIZE = Field("DATA_BUF_SZ", 0, 16)  # word 2: length of the input buffer in words


@dataclass(frozen=True)
class ConfigDescriptor:
    """A config-DMA job: `write` streams `words` 32-bit words of packets from `input_addr`
    into the mesh; a read sends the packet header at `input_addr` (`words` = 2) and the
    chip writes the words it reads at `output_addr`."""

    write: bool
    input_addr: int
    words: int
    output_addr: int = 0

    def encode(self) -> np.ndarray:
        d = np.zeros(CONFIG_DESC_WORDS, np.uint32)
        d[0] = CFG_VERSION.set(CFG_DIRECTION.set(0, int(self.write)), DESC_VERSION)
        d[1] = self.input_addr
        d[2] = CFG_BUF_SIZE.set(0, self.words)
        d[3] = self.output_addr
        return d

    @classmethod
    def decode(cls, words: np.ndarray | list[int]) -> ConfigDescriptor:
        w = [int(x) for x in words[:4]]
        return cls(CFG_DIRECTION.get(w[0]) == 1, w[1], CFG_BUF_SIZE.get(w[2]), w[3])


# --- event DMA descriptor: 8 words --------------------------------------------------------
EVENT_DESC_WORDS = 8
JOB_ID = Field("JOBID", 16, 16)  # word 0, event and HRC descriptors
INT_DISABLE_OB = Field("INT_DISABLE_OB", 12)
INT_DISABLE_IB = Field("INT_DISABLE_IB", 13)
EVT_BUF_SIZE = Field("DATA_BUF_SZ", 0, 24)  # word 2: input length in words
LEARN_CLASS = Field("LEARN_CLASS", 16, 10)  # event word 4 / HRC word 8: label + 1, 0 = none
EVT_MD = Field("MD", 30, 2)
MAX_DMA_EVENTS = EVT_BUF_SIZE.max // 2  # events per descriptor


def _word0(job_id: int) -> int:
    # The engine disables the inbound interrupt so that only the outbound end is seen.
    return JOB_ID.set(INT_DISABLE_IB.set(CFG_VERSION.set(0, DESC_VERSION), 1), job_id)


@dataclass(frozen=True)
class EventDescriptor:
    """An inference on sparse input events: `words` words of events at `input_addr`,
    output header and events written at `output_addr`."""

    job_id: int
    input_addr: int
    words: int
    output_addr: int
    learn_class: int = 0  # label + 1 on a learning inference

    def encode(self) -> np.ndarray:
        d = np.zeros(EVENT_DESC_WORDS, np.uint32)
        d[0] = _word0(self.job_id)
        d[1] = self.input_addr
        d[2] = EVT_BUF_SIZE.set(0, self.words)
        d[3] = self.output_addr
        d[4] = LEARN_CLASS.set(0, self.learn_class)
        return d

    @classmethod
    def decode(cls, words: np.ndarray | list[int]) -> EventDescriptor:
        w = [int(x) for x in words[:5]]
        return cls(JOB_ID.get(w[0]), w[1], EVT_BUF_SIZE.get(w[2]), w[3], LEARN_CLASS.get(w[4]))


# --- HRC DMA descriptor: 9 words, padded to 16 in the ring --------------------------------
HRC_DESC_REAL_WORDS = 9
HRC_DESC_WORDS = 16
HRC_ROW_BYTES = Field("ROW_BYTESZ", 0, 16)  # word 2
HRC_COL_HEIGHT = Field("COL_HEIGHT", 16, 16)
HRC_NEXT_ROW_OFFSET = Field("NEXT_ROW_BYTESZ_OFFSET", 0, 16)  # word 3
HRC_ROW_BYTES_EXT = Field("ROW_BYTESZ_EXT", 16, 16)  # row bytes >> 16
HRC_WIN_ROW_BYTES = Field("WIN_ROW_BYTESZ", 0, 16)  # word 4
HRC_WIN_COL_HEIGHT = Field("WIN_COL_HEIGHT", 16, 16)
HRC_WIN_OVERLAP = Field("WIN_OVERLAP_LR", 0, 16)  # word 5
HRC_PADDING_DISABLE = Field("PADDING_DISABLE_LR", 16, 16)
HRC_X_OFFSET = Field("X_OFFSET", 0, 16)  # word 6
HRC_Y_OFFSET = Field("Y_OFFSET", 16, 16)
HRC_OB_CONT_SIZE = Field("OB_CONT_SZ", 0, 16)  # word 8


@dataclass(frozen=True)
class HrcDescriptor:
    """An inference on a dense 8-bit image (h, w, c) through the HRC. With a dense window
    (a valid convolution) the rows sent are the window's, and `next_row_offset` steps over
    the full image row; without one (bypass) `next_row_offset` is 0."""

    job_id: int
    input_addr: int
    output_addr: int
    row_bytes: int
    height: int
    next_row_offset: int = 0
    window_row_bytes: int = 0
    window_height: int = 0
    overlap: int = 0
    x_offset: int = 0
    y_offset: int = 0
    learn_class: int = 0

    @classmethod
    def for_image(
        cls,
        job_id: int,
        input_addr: int,
        output_addr: int,
        shape: tuple[int, int, int],
        window_w: int = 0,
        window_h: int = 0,
        learn_class: int = 0,
    ) -> HrcDescriptor:
        """The descriptor the engine sends for an (h, w, c) image and the program's window."""
        h, w, c = shape
        if window_w and window_h:
            return cls(job_id, input_addr, output_addr, window_w * c, window_h, w * c,
                       window_w * c, window_h, learn_class=learn_class)  # fmt: skip
        return cls(job_id, input_addr, output_addr, w * c, h, 0, window_w * c, window_h,
                   learn_class=learn_class)  # fmt: skip

    def encode(self) -> np.ndarray:
        d = np.zeros(HRC_DESC_WORDS, np.uint32)
        d[0] = _word0(self.job_id)
        d[1] = self.input_addr
        d[2] = HRC_COL_HEIGHT.set(HRC_ROW_BYTES.set(0, self.row_bytes & 0xFFFF), self.height)
        d[3] = HRC_ROW_BYTES_EXT.set(
            HRC_NEXT_ROW_OFFSET.set(0, self.next_row_offset), self.row_bytes >> 16
        )
        d[4] = HRC_WIN_COL_HEIGHT.set(
            HRC_WIN_ROW_BYTES.set(0, self.window_row_bytes), self.window_height
        )
        d[5] = HRC_WIN_OVERLAP.set(0, self.overlap)
        d[6] = HRC_Y_OFFSET.set(HRC_X_OFFSET.set(0, self.x_offset), self.y_offset)
        d[7] = self.output_addr
        d[8] = LEARN_CLASS.set(0, self.learn_class)
        return d

    @classmethod
    def decode(cls, words: np.ndarray | list[int]) -> HrcDescriptor:
        w = [int(x) for x in words[:HRC_DESC_REAL_WORDS]]
        return cls(
            job_id=JOB_ID.get(w[0]),
            input_addr=w[1],
            output_addr=w[7],
            row_bytes=HRC_ROW_BYTES.get(w[2]) | (HRC_ROW_BYTES_EXT.get(w[3]) << 16),
            height=HRC_COL_HEIGHT.get(w[2]),
            next_row_offset=HRC_NEXT_ROW_OFFSET.get(w[3]),
            window_row_bytes=HRC_WIN_ROW_BYTES.get(w[4]),
            window_height=HRC_WIN_COL_HEIGHT.get(w[4]),
            overlap=HRC_WIN_OVERLAP.get(w[5]),
            x_offset=HRC_X_OFFSET.get(w[6]),
            y_offset=HRC_Y_OFFSET.get(w[6]),
            learn_class=LEARN_CLASS.get(w[8]),
        )


# --- output header: 32 bytes before the output events or dense values ---------------------
OUTPUT_HEADER_BYTES = 0x20
OUTPUT_WORD_SIZE = Field("OUTPUT_WORD_SIZE", 0, 28)  # 32-bit words after the header
OUTPUT_FORMAT_TYPE = Field("FORMAT_TYPE", 28, 4)


def encode_output_header(n_words: int, format_type: int = 0) -> np.ndarray:
    """The 8-word header the chip writes before `n_words` words of output."""
    h = np.zeros(OUTPUT_HEADER_BYTES // 4, np.uint32)
    h[0] = OUTPUT_FORMAT_TYPE.set(OUTPUT_WORD_SIZE.set(0, n_words), format_type)
    return h


def decode_output_header(word0: int) -> int:
    """The count of 32-bit output words in a header whose first word is `word0`."""
    return OUTPUT_WORD_SIZE.get(int(word0))


# --- events -------------------------------------------------------------------------------
# CNP events: word 1 = x[11:0], y[27:16] (and the 4 potential MSBs [31:28] for HRC outputs);
# word 2 = feature[10:0], then either an activation byte [23:16] or a potential [31:12].
CNP_X = Field("X", 0, 12)
CNP_Y = Field("Y", 16, 12)
CNP_POT_MSB = Field("POTENTIAL_MSB", 28, 4)
CNP_F = Field("F", 0, 11)
CNP_ACTIVATION = Field("ACTIVATION", 16, 8)
CNP_POT_LSB = Field("POTENTIAL_LSB", 12, 20)
# FNP events: word 1 = feature[17:0]; word 2 = value or signed potential [25:0], polarity 31.
FNP_F = Field("F", 0, 18)
FNP_VALUE = Field("ACTIVATION", 0, 26)
FNP_POLARITY = Field("POLARITY", 31)


def _signed(v: np.ndarray, bits: int) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v).astype(np.int32)


def _as_words(events: np.ndarray) -> np.ndarray:
    ev = np.asarray(events, dtype=np.uint32)
    if ev.ndim == 1:
        if ev.size % 2:
            raise ProgramFormatError(
                f"an odd number of event words ({ev.size}): events are word pairs"
            )
        ev = ev.reshape(-1, 2)
    return ev


def encode_cnp_events(x: np.ndarray, y: np.ndarray, f: np.ndarray, value: np.ndarray) -> np.ndarray:
    """CNP events with activation bytes (inputs to a CNP, or activations out of one)."""
    w = np.zeros((len(x), 2), np.uint32)
    w[:, 0] = (np.asarray(x, np.uint32) & CNP_X.max) | (
        (np.asarray(y, np.uint32) & CNP_Y.max) << CNP_Y.lsb
    )
    w[:, 1] = (np.asarray(f, np.uint32) & CNP_F.max) | (
        (np.asarray(value, np.uint32) & CNP_ACTIVATION.max) << CNP_ACTIVATION.lsb
    )
    return w


def decode_cnp_events(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, f, activation) of CNP activation events."""
    ev = _as_words(events)
    w1, w2 = ev[:, 0], ev[:, 1]
    return (w1 & CNP_X.max, (w1 >> CNP_Y.lsb) & CNP_Y.max, w2 & CNP_F.max,
            (w2 >> CNP_ACTIVATION.lsb) & CNP_ACTIVATION.max)  # fmt: skip


def encode_cnp_potentials(x: np.ndarray, y: np.ndarray, f: np.ndarray, potential: np.ndarray,
                          hrc: bool = False) -> np.ndarray:  # fmt: skip
    """CNP potential events: a 20-bit signed potential in word 2 [31:12]; for an HRC output
    (`hrc`) 24 bits, the 4 MSBs in word 1 [31:28]."""
    p = np.asarray(potential, np.int64)
    w = np.zeros((len(x), 2), np.uint32)
    w[:, 0] = (np.asarray(x, np.uint32) & CNP_X.max) | (
        (np.asarray(y, np.uint32) & CNP_Y.max) << CNP_Y.lsb
    )
    if hrc:
        w[:, 0] |= (((p >> 20) & CNP_POT_MSB.max) << CNP_POT_MSB.lsb).astype(np.uint32)
    w[:, 1] = (np.asarray(f, np.uint32) & CNP_F.max) | (
        ((p & CNP_POT_LSB.max) << CNP_POT_LSB.lsb).astype(np.uint32)
    )
    return w


def decode_cnp_potentials(events: np.ndarray, hrc: bool = False) -> tuple[np.ndarray, ...]:
    """(x, y, f, potential) of CNP potential events (24-bit HRC potentials if `hrc`)."""
    ev = _as_words(events)
    w1, w2 = ev[:, 0], ev[:, 1]
    lsb = (w2 >> CNP_POT_LSB.lsb).astype(np.int64)
    if hrc:
        msb = _signed((w1 >> CNP_POT_MSB.lsb) & CNP_POT_MSB.max, 4).astype(np.int64)
        pot = ((msb << 20) | lsb).astype(np.int32)
    else:
        pot = _signed(lsb, 20)
    return w1 & CNP_X.max, (w1 >> CNP_Y.lsb) & CNP_Y.max, w2 & CNP_F.max, pot


def encode_fnp_events(f: np.ndarray, value: np.ndarray) -> np.ndarray:
    """FNP events: feature index and value (activation, or signed 26-bit potential); the
    polarity bit is always set, as the engine and the chip do."""
    w = np.zeros((len(f), 2), np.uint32)
    w[:, 0] = np.asarray(f, np.uint32) & FNP_F.max
    w[:, 1] = (np.asarray(value, np.int64) & FNP_VALUE.max).astype(np.uint32) | np.uint32(
        1 << FNP_POLARITY.lsb
    )
    return w


def decode_fnp_events(events: np.ndarray, signed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(feature, value) of FNP events; values as signed 26-bit potentials if `signed`."""
    ev = _as_words(events)
    v = ev[:, 1] & FNP_VALUE.max
    return ev[:, 0] & FNP_F.max, (_signed(v, 26) if signed else v.astype(np.int32))


def cnp_input_events(dense: np.ndarray) -> np.ndarray:
    """The event words the engine sends for a dense uint8 (x, y, c) input to a CNP: one
    event per non-zero value in x, y, c order; a single dummy event just outside the shape
    when there is none (NSoC_v2 needs at least one event)."""
    a = np.asarray(dense)
    xs, ys, cs = np.nonzero(a)
    if xs.size == 0:
        sx, sy, sc = a.shape
        return encode_cnp_events(np.array([sx]), np.array([sy]), np.array([sc]), np.array([1]))
    return encode_cnp_events(xs, ys, cs, a[xs, ys, cs])


def fnp_input_events(dense: np.ndarray) -> np.ndarray:
    """The event words the engine sends for a dense uint8 input to an FNP: one event per
    non-zero value, the feature being its row-major index; when there is none, one dummy
    event at the column-major index of the shape itself (just past the tensor)."""
    a = np.asarray(dense)
    flat = a.ravel()
    (idx,) = np.nonzero(flat)
    if idx.size == 0:
        dims = a.shape if a.ndim == 3 else (flat.size, 1, 1)
        past = dims[0] + dims[1] * dims[0] + dims[2] * dims[0] * dims[1]
        return encode_fnp_events(np.array([past]), np.array([1]))
    return encode_fnp_events(idx, flat[idx])
