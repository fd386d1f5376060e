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
        RegField("ACTIVATION", 3, 15, 1, "activation on (always 1 on a CNP)"),
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
        RegField("INPUT_Y", 8, 0, 16, "input dims[1]"),
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
        RegField("SEPARABLE_MODE", 20, 0, 4, "separable: 1 with one filter per NP, else 2"),
        RegField("FILTERS_1BIT", 21, 16, 16, "Conv2D, 1-bit weights, k > 1: filters in this NP"),
        RegField("FILTERS_NBIT", 21, 0, 16, "Conv2D, 2/4-bit weights, k > 1: filters in this NP"),
        RegField(
            "STRIPE_OUTPUT_START",
            24,
            16,
            12,
            "wide inputs: the stripe's first output column, (STRIPE_START + halo) / stride / "
            "pool stride",
        ),
        RegField("OUTPUT_X", 25, 16, 16, "output dims[0] after max pooling"),
        RegField("OUTPUT_Y", 25, 0, 16, "output dims[1] after max pooling"),
        RegField("NP_FILTERS", 26, 16, 16, "filters in this NP"),
        RegField("FIRST_FILTER", 26, 0, 16, "index of this NP's first filter in the layer"),
        RegField("POOL_SIZE", 27, 0, 4, "max pooling size (1: none)"),
        RegField("POOL_STRIDE", 27, 4, 4, "max pooling stride (1 with no pooling)"),
        RegField("GLOBAL_AVG", 27, 8, 1, "global average pooling"),
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
        RegField("INPUT_CHUNKS", 14, 0, 16, "inputs in 32-input chunks (bit 31 is set)"),
        RegField("UNITS", 15, 0, 16, "units (neurons) in this NP"),
        RegField("ACTIVATION_2", 16, 29, 1, "activation on (second copy)"),
        RegField("WEIGHT_WORDS", 17, 0, 16, "words of FNP weight memory used"),
    ]
)

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

# Register words with bits no field names, as seen in every program of the conformance
# suite and the zoo (tests/test_akd1000_encode.py checks that no other word has any):
# constants, values derived from fields above, or routing. `unpack` carries them raw.
UNEXPLAINED = {
    "CNP": {
        1: "bit 22 on CNPs of large layers (AkidaNet's first layers)",
        4: "bit 31 set; bits 15-0 = INPUT_Y x word 28 bits 15-0 (every CNP seen)",
        6: "0x04040000 always",
        9: "bits 28 and 12: set with stride 2 on odd input sizes (padding of the strided grid)",
        10: "word 8's bits 27-0 on 1136 of 1187 NPs seen; differs on the others",
        11: "bits 11-0: 0x4, 0x8, 0x10, 0x14, ...; not explained",
        12: "0x52000000 always",
        13: "0x10 always",
        20: "bit 4 on separable NPs of 256 filters",
        22: "separable: bits 31-16 grow with the depthwise SRAM size",
        28: "bits 15-0 and 31-16 vary with INPUT_X, channels and input bits",
        29: "0x10000 mostly; 0x40000, 0x80000, 0x100000 on some layers",
        37: "0xff000000 always",
        44: "0x06080001 on the program's last layer, else 0xff080000",
        45: "routing to the next layer (bits 25-24 follow the layer index)",
        46: "routing",
        47: "routing",
    },
    "FNP": {
        1: "bits 24-20: 0x15 on every FNP3, 0x7 on every FNP2",
        6: "0x04040000 always",
        11: "bits 19-12 vary with the input shape",
        12: "0x52000000 always",
        13: "0x10 always",
        14: "bit 31 set (bits 15-0 are INPUT_CHUNKS)",
        17: "bit 20 set on every FNP3, clear on every FNP2",
        37: "0xff000000 always",
        44: "0x06080001 on a program's last layer, else 0xff080000",
        45: "routing",
        46: "routing",
        47: "routing",
        49: "0x20301 on every FNP2, 0 on FNP3s",
    },
    "HRC": {
        4: "0x1, 0x10 or 0x110",
        8: "bits 13 and 21: set with valid padding",
        10: "bytes 1 and 2: the padding value again",
        11: "padding amounts, a nibble per side",
    },
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
    return {KIND.name: KIND, **(CNP if kind == "CNP" else FNP)}


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
