"""The v1 models made with BrainChip's own toolchain (tests/data/metatf/*.fbz.xz, built
by tests/make_metatf_fixtures.py): unpacked once per session, with sample inputs."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "metatf"
FIXTURES = sorted(p.name.removesuffix(".fbz.xz") for p in DATA.glob("*.fbz.xz"))


def unpack(name: str, folder: Path) -> Path:
    """The fixture `name` as a .fbz file in `folder` (unpacked once)."""
    out = folder / f"{name}.fbz"
    if not out.exists():
        out.write_bytes(lzma.decompress((DATA / f"{name}.fbz.xz").read_bytes()))
    return out


def inputs(model, n: int = 8, seed: int = 0) -> np.ndarray:
    """Random uint8 inputs in the range of the akida.Model's input layer."""
    first = model.layers[0]
    params = first.parameters
    kind = str(params.layer_type).rsplit(".", 1)[-1]
    bits = 8 if kind in ("InputConvolutional", "Quantizer") else int(params.input_bits)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**bits, (n, *model.input_shape)).astype(np.uint8)
