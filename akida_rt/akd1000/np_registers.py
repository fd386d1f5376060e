"""The AKD1000 NP and HRC configuration registers as data: which word and bits hold which
v1 layer parameter, with the transform both ways.

Measured, not read from any source (BrainChip's compiler is closed): akida 2.19.3 maps
v1 models that differ in one parameter on `akida.AKD1000()` and the register words of
each NP are compared (docs/program-binary.md says how each field was measured). Words
this table does not name are listed in UNEXPLAINED with what was seen.

CNP and FNP registers: the 50-word packet of type 8 at start 0. HRC registers: word
addresses of type-8 packets to the HRC (start 4, 8-15, 32, 64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any


def _ident(v: int) -> int:
    return v


def _log2(v: int) -> int:
    return v.bit_length() - 1


def _pow2(v: int) -> int:
    return 1 << v


def _minus1(v: int) -> int:
    return v - 1


def _negated4(v: int) -> int:
    return -v % 16


def _plus1(v: int) -> int:
    return v + 1


@dataclass(frozen=True)
class RegField:
    """`width` bits at `lsb` of register word `word`; `decode` turns the bits into the
    parameter, `encode` the parameter into the bits."""

    name: str
    word: int
    lsb: int
    width: int
    meaning: str
    decode: Callable[[int], int] = _ident
    encode: Callable[[int], int] = _ident

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, words: Sequence[int] | Any) -> int:
        return self.decode((int(words[self.word]) >> self.lsb) & ((1 << self.width) - 1))

    def put(self, words: MutableSequence[int] | Any, value: int) -> None:
        bits = self.encode(value)
        if not 0 <= bits < 1 << self.width:
            raise ValueError(f"{self.name}={value} does not fit {self.width} bits")
        words[self.word] = (int(words[self.word]) & ~self.mask) | (bits << self.lsb)


def _table(fields: Iterable[RegField]) -> dict[str, RegField]:
    return {f.name: f for f in fields}


# The bits that tell a CNP from an FNP: word 1 bits 7-0 are 0x60 on every CNP, 0x70 on
# every FNP (bits 22-16 vary on both, not explained).
KIND = RegField("KIND", 1, 0, 8, "0x60 on a CNP, 0x70 on an FNP")
CNP_KIND, FNP_KIND = 0x60, 0x70

CNP = _table(
    [
        RegField("LAYER", 3, 24, 8, "index of the layer in its program (the HRC layer is 0)"),
        RegField("LAYER_NPS", 3, 16, 8, "NPs the layer is spread over"),
        RegField("ACTIVATION", 3, 15, 1, "activation on (clear: the NP sends potentials)"),
        RegField("ACT_BITS", 3, 12, 2, "activation bits (log2)", _pow2, _log2),
        RegField("CONV_WEIGHTS_4BIT", 3, 3, 1, "Conv2D with 4-bit weights"),
        RegField("SEPARABLE", 3, 2, 1, "SeparableConv2D"),
        RegField(
            "DW_WEIGHT_BITS", 3, 8, 2, "separable: depthwise weight bits (log2)", _pow2, _log2
        ),
        RegField(
            "PW_WEIGHT_BITS", 3, 4, 2, "separable: pointwise weight bits (log2)", _pow2, _log2
        ),
        RegField("INPUT_BITS", 3, 0, 2, "input bits (log2)", _pow2, _log2),
        RegField("INPUT_X", 8, 16, 12, "input dims[0] (on wide inputs, the NP's stripe's)"),
        RegField("INPUT_Y", 8, 0, 12, "input dims[1] (on tall inputs, the NP's row band's)"),
        RegField(
            "ROW_HALO",
            8,
            12,
            4,
            "tall inputs: kernel-halo rows before the band (held negated; 0 first)",
            _negated4,
            _negated4,
        ),
        RegField("ROW_START", 9, 0, 12, "tall inputs: the band's first input row, halo in"),
        RegField(
            "STRIPE_HALO",
            8,
            28,
            4,
            "wide inputs: kernel-halo columns before the stripe (held negated; 0 first)",
            _negated4,
            _negated4,
        ),
        RegField(
            "STRIPE_START", 9, 16, 12, "wide inputs: the stripe's first input column, halo in"
        ),
        RegField("CHANNEL_BLOCKS", 11, 12, 8, "filter-SRAM rows (4 words) per input channel"),
        RegField("KERNEL", 20, 28, 4, "kernel size"),
        RegField("K1_FILTERS", 20, 16, 8, "1x1 Conv2D: filters in this NP"),
        RegField("STRIDE", 20, 8, 4, "convolution stride", _plus1, _minus1),
        RegField("SEPARABLE_MODE", 20, 0, 8, "separable: pointwise payload halves per channel"),
        RegField("FILTERS_1BIT", 21, 16, 16, "Conv2D, 1-bit weights, k > 1: filters in this NP"),
        RegField("FILTERS_NBIT", 21, 0, 16, "Conv2D, 2/4-bit weights, k > 1: filters in this NP"),
        RegField("OUTPUT_X", 25, 16, 16, "output dims[0] after max pooling"),
        RegField("OUTPUT_Y", 25, 0, 16, "output dims[1] after max pooling"),
        RegField("NP_FILTERS", 26, 16, 16, "filters in this NP"),
        RegField("FIRST_FILTER", 26, 0, 16, "index of this NP's first filter in the layer"),
        RegField("POOL_SIZE", 27, 0, 4, "max pooling size (1: none)"),
        RegField("POOL_STRIDE", 27, 4, 4, "max pooling stride (1 with no pooling)"),
        RegField("GLOBAL_AVG", 27, 8, 1, "global average pooling"),
        # measured while building np_compile (docs/program-binary.md, "Derived words")
        RegField("POOL_PAD_X", 27, 12, 2, "max pooling's padding after the edge, dims[0]"),
        RegField("POOL_PAD_Y", 27, 14, 2, "max pooling's padding after the edge, dims[1]"),
        RegField("INPUT_WORDS", 4, 0, 16, "input words: ROW_WORDS x INPUT_Y_2"),
        RegField("INPUT_WORDS_ON", 4, 31, 1, "always 1"),
        RegField("STRIDE_ODD_X", 9, 28, 1, "stride 2 on an odd input dims[0]"),
        RegField("STRIDE_ODD_Y", 9, 12, 1, "stride 2 on an odd input dims[1]"),
        RegField("INPUT_X_2", 10, 16, 16, "columns the NP reads: INPUT_X and halos both sides"),
        RegField("LARGE_INPUT", 1, 22, 1, "INPUT_WORDS over 5376"),
        RegField("INPUT_Y_2", 10, 0, 16, "rows the NP reads: INPUT_Y and halos both sides"),
        RegField("ROW_X", 11, 0, 12, "INPUT_X rounded up to a multiple of 4"),
        RegField("PW_START", 22, 16, 16, "separable: pointwise start in filter SRAM x 8"),
        RegField("OUTPUT_START", 24, 16, 16, "wide inputs: the stripe's first output column"),
        RegField("OUTPUT_START_Y", 24, 0, 16, "tall inputs: the band's first output row"),
        RegField("ROW_BYTES", 28, 16, 16, "bytes of one channel of an input row (halo in)"),
        RegField("ROW_WORDS", 28, 0, 16, "words of an input row: ROW_BYTES x C / 4, up"),
        RegField("FILTER_GROUPS", 29, 16, 16, "the NP's filters in groups of 8, rounded up"),
    ]
)

FNP = _table(
    [
        RegField("LAYER", 3, 24, 8, "index of the layer in its program"),
        RegField("LAYER_NPS", 3, 16, 8, "NPs the layer is spread over"),
        RegField("ACTIVATION", 3, 15, 1, "activation on"),
        RegField("ACT_BITS", 3, 12, 2, "activation bits (log2)", _pow2, _log2),
        RegField("WEIGHTS_MULTIBIT", 3, 7, 1, "weights of 2 or 4 bits"),
        RegField("WEIGHTS_4BIT", 3, 5, 1, "weights of 4 bits"),
        RegField("INPUT_BITS", 3, 0, 2, "input bits (log2)", _pow2, _log2),
        RegField("INPUT_X", 10, 16, 16, "input dims[0]"),
        RegField("INPUT_Y", 10, 0, 16, "input dims[1]"),
        RegField("INPUT_PIXELS", 11, 12, 20, "input dims[0] x dims[1]"),
        RegField("INPUT_CHUNKS", 14, 0, 16, "inputs in 32-input chunks (bit 31 is set)"),
        RegField("INPUT_CHUNKS_ON", 14, 31, 1, "always 1"),
        RegField("UNITS", 15, 0, 16, "units (neurons) in this NP"),
        RegField("ACTIVATION_2", 16, 29, 1, "activation on (second copy)"),
        RegField("WEIGHT_WORDS", 17, 0, 16, "words of FNP weight memory used (FNP2: 0)"),
        RegField("WEIGHTS_IN_NP", 17, 20, 1, "weights in the NP's memory (FNP3; FNP2: DDR)"),
    ]
)

# Event routing, the same words on CNPs and FNPs: columns of the mesh as (lo, hi) byte
# pairs. The host's event DMA sits at column 3 (a first layer's SRC), the HRC at column
# 1, and events that leave the mesh go to columns 1-3.
ROUTE = _table(
    [
        RegField("NEXT_LAYER", 45, 24, 8, "layer the NP's events go to (0xff: out of the mesh)"),
        RegField("TO_HOST", 45, 16, 8, "0x10 when the events leave the mesh"),
        RegField("DEST_COL_HI", 45, 8, 8, "last column of the next layer's NPs"),
        RegField("DEST_COL_LO", 45, 0, 8, "first column of the next layer's NPs"),
        RegField("SRC_COL_HI", 46, 8, 8, "last column of the previous layer's NPs"),
        RegField("SRC_COL_LO", 46, 0, 8, "first column of the previous layer's NPs"),
        RegField("SPAN_COL_HI", 47, 8, 8, "last column of the layer's and next layer's NPs"),
        RegField("SPAN_COL_LO", 47, 0, 8, "first column of the layer's and next layer's NPs"),
    ]
)
ROUTE_OUT = 0xFF  # NEXT_LAYER of a program's last layer
HOST_COLS = (1, 3)  # the columns events leaving the mesh are sent to
DMA_COLS = (3, 3)  # SRC of a program's first layer fed by the event DMA
HRC_COLS = (1, 1)  # SRC of the layer after the HRC
LAST_LAYER_WORD44 = 0x06080001  # word 44 of a program's last layer's NPs
INNER_LAYER_WORD44 = 0xFF080000  # word 44 of the other NPs
NP_CONSTANTS = {6: 0x04040000, 12: 0x52000000, 13: 0x10, 37: 0xFF000000}

# HRC registers, by word address of the type-8 packets to the HRC.
HRC = _table(
    [
        RegField("INPUT_CHANNELS", 64, 0, 4, "input channels (1 or 3)"),
        RegField("ACT_BITS", 8, 8, 2, "activation bits (log2)", _pow2, _log2),
        RegField(
            "KERNEL",
            8,
            4,
            2,
            "kernel size: (k - 3) / 2",
            lambda v: 2 * v + 3,
            lambda k: (k - 3) // 2,
        ),
        RegField("ONE_CHANNEL", 8, 12, 1, "one input channel"),
        RegField("POOL", 8, 16, 2, "max pooling 2x2 (3), none (0)"),
        RegField("VALID", 8, 20, 1, "valid padding (bits 13 and 21 move with it)"),
        RegField("STRIDE_X", 9, 4, 4, "stride dims[0]"),
        RegField("STRIDE_Y", 9, 0, 4, "stride dims[1]"),
        RegField("PADDING_VALUE", 10, 0, 8, "padding value (repeated in bytes 1 and 2)"),
        RegField("FILTERS", 12, 16, 8, "filters", _plus1, _minus1),
        RegField(
            "SRAM_SELECT",
            32,
            0,
            32,
            "bank the next SRAM packets fill (1, 2, 4; 1<<31 = thresholds)",
        ),
    ]
)
HRC_THRESHOLD_BANK = 1 << 31
FNP3_WORD1 = 0x01500070  # word 1 of an FNP3 (KIND 0x70, bits 22-16 0x150)
FNP2_WORD1 = 0x00700070  # word 1 of an FNP2
FNP2_WORD49 = 0x00020301  # word 49 of an FNP2 (0 on FNP3s)

# Words whose value np_compile reproduces but whose meaning is not known: constants, or
# values that follow a fact without naming a parameter.
UNEXPLAINED = {
    "CNP": {
        6: "0x04040000 always (also on FNPs)",
        12: "0x52000000 always (also on FNPs)",
        13: "0x10 always (also on FNPs)",
        37: "0xff000000 always (also on FNPs)",
        44: "0x06080001 on a program's last layer, else 0xff080000 (also on FNPs)",
    },
    "FNP": {
        1: "bits 22-16: 0x150 on an FNP3, 0x70 on an FNP2 (FNP3_WORD1, FNP2_WORD1)",
        49: "0x20301 on an FNP2, 0 on an FNP3",
    },
    "HRC": {
        4: "0x10 with an InputConvolutional (bit 8: it is the program's last layer), "
        "0x1 when the program's input is not the HRC's",
    },
}

# Words with bits no field of the kind's table names, in the programs of the conformance
# suite and the zoo (tests/test_akd1000_encode.py checks it): `unpack` carries those bits
# raw. UNEXPLAINED's words, the CNP constants on FNPs too, and the HRC's derived words 8
# (bits 13, 21), 10 (bytes 1-2) and 11 (padding per side), which np_compile computes.
RAW_WORDS = {
    "CNP": set(UNEXPLAINED["CNP"]),
    "FNP": set(UNEXPLAINED["FNP"]) | set(UNEXPLAINED["CNP"]),
    "HRC": set(UNEXPLAINED["HRC"]) | {8, 10, 11},
}


def read(table: dict[str, RegField], words: Sequence[int] | Any) -> dict[str, int]:
    """Every field of `table` in `words`."""
    return {name: f.get(words) for name, f in table.items()}


# --- packing: register words <-> fields, with the bits no field names carried raw -----------
KINDS = ("CNP", "FNP", "HRC")


def table_of(kind: str) -> dict[str, RegField]:
    """The fields of an NP of `kind` (CNP, FNP or HRC); CNP and FNP tables include KIND."""
    if kind == "HRC":
        return HRC
    if kind not in KINDS:
        raise ValueError(f"register kind {kind!r}: use one of {', '.join(KINDS)}")
    return {KIND.name: KIND, **(CNP if kind == "CNP" else FNP), **ROUTE}


def kind_of(words: Sequence[int] | Any, hrc: bool = False) -> str:
    """CNP or FNP from word 1 (KIND), or HRC."""
    if hrc:
        return "HRC"
    return "CNP" if KIND.get(words) == CNP_KIND else "FNP"


@dataclass(frozen=True)
class Registers:
    """An NP's register words as named fields plus `raw`: per word, the bits no field of
    the kind's table names (words whose unnamed bits are all zero are left out).

    `pack` gives back the exact words `unpack` read: fields never overlap, and each
    field's encode undoes its decode on every bit pattern."""

    kind: str
    fields: dict[str, int]
    raw: dict[int, int]
    size: int = 128

    def replace(self, **fields: int) -> Registers:
        """These registers with `fields` changed (names of the kind's table)."""
        table = table_of(self.kind)
        unknown = sorted(set(fields) - set(table))
        if unknown:
            raise ValueError(f"{self.kind} registers have no field {', '.join(unknown)}")
        return Registers(self.kind, {**self.fields, **fields}, dict(self.raw), self.size)


def covered_bits(kind: str) -> dict[int, int]:
    """Per register word, the bits the fields of `kind` name."""
    out: dict[int, int] = {}
    for f in table_of(kind).values():
        out[f.word] = out.get(f.word, 0) | f.mask
    return out


def unpack(kind: str, words: Sequence[int] | Any) -> Registers:
    """The fields of register `words` of an NP of `kind`, and the unnamed bits raw."""
    table = table_of(kind)
    named = covered_bits(kind)
    raw = {}
    for i, w in enumerate(words):
        rest = int(w) & ~named.get(i, 0) & 0xFFFFFFFF
        if rest:
            raw[i] = rest
    return Registers(kind, {n: f.get(words) for n, f in table.items()}, raw, len(words))


def pack(regs: Registers) -> list[int]:
    """The register words of `regs` (raises ValueError when a field does not fit)."""
    words = [0] * regs.size
    for i, bits in regs.raw.items():
        words[i] = bits
    for name, f in table_of(regs.kind).items():
        f.put(words, regs.fields[name])
    return words
