"""akida_rt's AKD1000 NP state against BrainChip's compiler, word for word.

For every conformance model, the zoo (digits CNN, DS-CNN, AkidaNet 0.5; AllNps and
Minimal), a learning FNP3 and probes of the derived words (odd max pooling, large
inputs, separable filter counts), akida 2.19.3 maps the model on `akida.AKD1000()`; its
program binaries are decoded into v1 layers and a placement, `np_state_for` computes the
NP state from those, and every register word and memory must equal the state BrainChip's
packets write. Our own mapper's placement (mapping.np_slots.placement_for on the model's
import) must be the one read from each binary, and give the same NP state. Skips without
`akida`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

akida = pytest.importorskip("akida")

from akida_rt.tools.metatf import import_model  # noqa: E402
from akida_rt.tools.metatf_export import program_binaries  # noqa: E402

from akida_rt import AKD1000  # noqa: E402
from akida_rt.akd1000.decode import decode_mesh, io_of  # noqa: E402
from akida_rt.akd1000.np_compare import differences, present  # noqa: E402
from akida_rt.akd1000.np_compile import np_state_for, pointwise_halves  # noqa: E402
from akida_rt.akd1000.np_placement import placement_from  # noqa: E402
from akida_rt.akd1000.np_state import from_program  # noqa: E402
from akida_rt.akd1000.program_binary import ProgramBinary  # noqa: E402
from akida_rt.mapping.mapper import Backend, MapMode, map_layers  # noqa: E402
from akida_rt.mapping.np_slots import placement_for  # noqa: E402
from akida_rt.model import zoo  # noqa: E402
from tests.akd1000_programs import learning_model  # noqa: E402
from tests.metatf_models import N_MODELS, random_model, random_weights, v1_zoo  # noqa: E402

# Register words or memories (np_compare names) that differ somewhere, with the reason.
# Empty: every word and memory of every program matches.
KNOWN_GAPS: dict[str, str] = {}
# Programs ("model/sequence") where our mapper's placement differs from BrainChip's, with
# the reason. Empty: every NP, filter share and stripe is BrainChip's.
PLACEMENT_GAPS: dict[str, str] = {}


def _probe(shape: tuple[int, int, int], *hidden: Any, bits: int = 4) -> Any:
    m = akida.Model()
    m.add(akida.InputData(input_shape=shape, input_bits=bits))
    for layer in hidden:
        m.add(layer)
    m.add(akida.FullyConnected(units=4, weights_bits=4, act_bits=4))
    random_weights(m, np.random.default_rng(0))
    return m


def _conv(k: int, filters: int, bits: int = 4, stride: int = 1, **kw: Any) -> Any:
    return akida.Convolutional(kernel_size=(k, k), filters=filters, weights_bits=bits,
                               act_bits=bits, kernel_stride=(stride, stride), **kw)  # fmt: skip


def _sep(filters: int, bits: int = 4, stride: int = 1) -> Any:
    return akida.SeparableConvolutional(kernel_size=(3, 3), filters=filters, weights_bits=bits,
                                        act_bits=bits, kernel_stride=(stride, stride))  # fmt: skip


def _probes() -> dict[str, Any]:
    """Models that vary one parameter a derived word depends on (mapped Minimal)."""
    out = {}
    for x, y, size, stride in [(9, 9, 2, 2), (9, 8, 2, 2), (8, 9, 2, 1)]:
        pool = dict(pool_size=(size, size), pool_stride=(stride, stride),
                    pool_type=akida.PoolType.Max)  # fmt: skip
        out[f"maxpool {x}x{y} {size}/{stride}"] = _probe((x, y, 8), _conv(3, 8, **pool))
    for x, y, c in [(25, 25, 66), (25, 25, 67), (24, 28, 64)]:  # 5375, 5450, 5376 words
        out[f"input words {x}x{y}x{c}"] = _probe((x, y, c), _conv(3, 8))
    for wb in (2, 4):
        for f in (9, 17, 36, 50):
            out[f"separable {f} filters {wb}-bit"] = _probe((8, 8, 8), _sep(f, wb))
    # filter-SRAM rows per channel: whole groups of 8 filters at 1 and 2 bits
    out["conv 7x7 4/2/1-bit"] = _probe((20, 20, 8), _conv(7, 40), _conv(7, 20, 2), _conv(7, 20, 1))
    out["conv 3x3 2-bit 20 filters"] = _probe((12, 12, 2), _conv(3, 20, 2))
    # wide inputs in stripes: odd size and stride 2, 1x1, 2-bit separable stride 2
    out["wide 63x61 stride 2"] = _probe((63, 61, 16), _conv(3, 16, stride=2))
    out["wide 96x96 1x1"] = _probe((96, 96, 16), _conv(1, 16))
    out["wide 96x96 2-bit separable stride 2"] = _probe((96, 96, 16), _sep(16, 2, 2), bits=2)
    # tall inputs in bands of rows too, tiles x-major (akida 2.19.3 on these shapes; rows
    # of whole bytes per channel decide 48x200 as 3x3 and 33x100 as 4 stripes)
    out["tall 24x300 in 6 bands"] = _probe((24, 300, 64), _conv(3, 16))
    out["tall 64x200 in 4x3 tiles"] = _probe((64, 200, 64), _conv(3, 16))
    out["tall 48x200 in 3x3 tiles"] = _probe((48, 200, 64), _conv(3, 16))
    out["tall 40x300 stride 2"] = _probe((40, 300, 32), _conv(3, 16, stride=2))
    out["wide 33x100 4 stripes"] = _probe((33, 100, 64), _conv(3, 16))
    out["wide 64x64 7x7 in 2x2 tiles"] = _probe((64, 64, 64), _conv(7, 16))
    pool = dict(pool_size=(2, 2), pool_stride=(2, 2), pool_type=akida.PoolType.Max)
    out["tall 40x120 pooled in 2x2 tiles"] = _probe(
        (40, 120, 64), _conv(3, 16, **pool), _conv(3, 8)
    )
    # a last Conv2D without activation: potentials out, its act_steps stay on the chip
    m = _probe((12, 12, 8), _conv(3, 8))
    m.pop_layer()
    m.add(akida.Convolutional(kernel_size=(3, 3), filters=6, weights_bits=4, activation=False))
    m.layers[-1].set_variable("weights", np.ones((3, 3, 8, 6), np.int8))
    m.layers[-1].set_variable("act_step", np.array([2, 3, 0.5, 1, 1, 7], np.float32))
    out["conv without activation"] = m
    return out


def _models() -> dict[str, tuple[Any, str]]:
    models: dict[str, tuple[Any, str]] = {}
    for seed in range(N_MODELS):
        models[f"conformance {seed}"] = (random_model(seed)[0], "AllNps")
    for name in ("digits_cnn", "ds_cnn_kws", "akidanet"):
        for mode in ("AllNps", "Minimal"):
            models[f"{name} {mode}"] = (v1_zoo(getattr(zoo, name)(), n=1)[0], mode)
    models["learning FNP3"] = (learning_model(), "AllNps")
    models.update({k: (m, "Minimal") for k, m in _probes().items()})
    # AllNps on a wide input: filter groups within each stripe (7 groups of 10 by 5 stripes)
    models["wide 100x100 AllNps"] = (_probe((100, 100, 32), _conv(3, 64, stride=2), _sep(200)),
                                     "AllNps")  # fmt: skip
    return models


def _our_plans(model: Any, mode: str) -> tuple[list[Any], list[Any]]:
    """(the import's layers, its hardware sequences) as our mapper places them."""
    layers = import_model(model).layers
    plans = map_layers(layers, AKD1000(), mode=MapMode(mode))
    return layers, [p for p in plans if p.backend is Backend.Hardware]


@pytest.fixture(scope="session")
def compared() -> dict[str, Any]:
    """Per program: the items it has and those that differ, from BrainChip's placement
    and from ours; BrainChip's binaries are made once per session."""
    have: Counter[str] = Counter()
    bad: dict[str, list[str]] = {}
    placed: dict[str, str] = {}  # program -> how our placement or its state differs
    programs = 0
    for name, (model, mode) in _models().items():
        layers, plans = _our_plans(model, mode)
        binaries = [b for b in program_binaries(model, mode=mode) if b is not None]
        assert len(plans) == len(binaries), name
        for i, (binary, plan) in enumerate(zip(binaries, plans, strict=True)):
            program = ProgramBinary.from_bytes(binary, f"{name} sequence {i}")
            theirs = from_program(program)
            decoded = decode_mesh(theirs, io_of(program))
            placement = placement_from(program, theirs, decoded.layers)
            ours = np_state_for(decoded.layers, placement, decoded.learning)
            programs += 1
            have.update(present(ours) | present(theirs))
            for item, idents in differences(ours, theirs).items():
                bad.setdefault(item, []).append(f"{name}/{i} NP {idents[0]}")
            mine = placement_for(plan, layers, AKD1000())
            if mine != placement:
                placed[f"{name}/{i}"] = f"placement {mine} != {placement}"
            elif diff := differences(np_state_for(decoded.layers, mine, decoded.learning), theirs):
                placed[f"{name}/{i}"] = f"state differs: {sorted(diff)}"
    return {"have": have, "bad": bad, "programs": programs, "placed": placed}


def test_every_word_and_memory_matches_brainchips_compiler(compared: dict[str, Any]) -> None:
    have, bad = compared["have"], compared["bad"]
    assert compared["programs"] > 100
    unexplained = {k: v[:3] for k, v in bad.items() if k not in KNOWN_GAPS}
    table = {k: f"{have[k] - len(bad.get(k, []))}/{have[k]}" for k in sorted(bad)}
    assert not unexplained, (unexplained, table)
    # every register word a CNP, FNP and the HRC use is among the compared items
    for kind, words in {"CNP": (1, 3, 4, 8, 9, 10, 11, 20, 22, 24, 25, 26, 27, 28, 29, 45, 46,
                                47), "FNP": (1, 3, 10, 11, 14, 15, 17, 44, 45, 46, 47),
                        "HRC": (4, 8, 9, 10, 11, 12, 32, 64)}.items():  # fmt: skip
        for w in words:
            assert have[f"{kind} word {w}"] > 0, (kind, w)
    for memory in ("CNP filter SRAM", "CNP threshold SRAM", "FNP weights", "HRC bank 0x1"):
        assert have[memory] > 0, memory


def test_our_mapper_places_every_np_as_brainchips_compiler(compared: dict[str, Any]) -> None:
    """placement_for(our mapping) is the placement read from BrainChip's binary (NP ids in
    its order, filter shares, stripes, FNP2), and np_state_for gives BrainChip's NP state
    from it: the whole NP state is ours except the layers' values."""
    placed = compared["placed"]
    unexplained = {k: v[:300] for k, v in placed.items() if k not in PLACEMENT_GAPS}
    assert not unexplained, unexplained
    fixed = [k for k in PLACEMENT_GAPS if k not in placed]
    assert not fixed, fixed


def test_known_gaps_are_still_gaps(compared: dict[str, Any]) -> None:
    """A gap that now matches everywhere is removed from KNOWN_GAPS."""
    fixed = [k for k in KNOWN_GAPS if k not in compared["bad"]]
    assert not fixed, fixed


@pytest.mark.parametrize(
    ("filters", "bits", "halves"),
    [(1, 4, 1), (8, 4, 1), (9, 4, 2), (17, 4, 3), (24, 4, 2), (36, 4, 4), (64, 4, 6),
     (256, 4, 22), (9, 2, 2), (16, 2, 1), (24, 2, 1), (25, 2, 2), (36, 2, 3), (50, 2, 3)],
)  # fmt: skip
def test_pointwise_halves_as_measured(filters: int, bits: int, halves: int) -> None:
    """SEPARABLE_MODE as akida 2.19.3 wrote it for a separable layer of `filters` in one
    NP (measured with the probes above and Minimal mappings)."""
    assert pointwise_halves(filters, bits) == halves
