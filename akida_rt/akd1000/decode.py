"""AKD1000 program binaries (or NP state) decoded back into BrainChip v1 layers.

`decode_program(binaries)` reads each sequence's program, plays its tracks into NP state
(np_state.py) and reassembles every layer from its NPs: type, shapes, kernel, stride,
padding, pooling, bits, weights, thresholds and act_steps in akida's own terms (akida's
variable shapes and values), plus the placement (which NPs hold which layer).
`decode_mesh(state, io)` does the same from NP state alone, for a simulated chip that
receives config-DMA packets. akida_rt.format.v1_layers turns the result into layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akida_rt.akd1000 import np_registers as regs
from akida_rt.akd1000.np_memories import NpMemories, decode_memories
from akida_rt.akd1000.np_state import MeshState, NpState, from_program
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.errors import ProgramFormatError

THRESHOLD_BITS = 20  # CNP and FNP thresholds are 20-bit two's complement
STEP_SCALE = 16  # act_step is held as act_step * 16


@dataclass
class V1Layer:
    """One decoded v1 layer, in akida's terms (`kind` is akida's layer type name)."""

    kind: str
    input_shape: tuple[int, int, int]
    filters: int = 0
    kernel: int = 1
    stride: int = 1
    padding: str = "same"
    padding_value: int = 0
    pool: str = "none"  # none, max, average (global)
    pool_size: int = 1
    pool_stride: int = 1
    weights_bits: int = 0
    input_bits: int = 0
    activation: bool = True
    act_bits: int = 0
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    nps: list[tuple[int, int, int]] = field(default_factory=list)
    sequence: int = 0  # the program (hardware sequence) whose NPs hold the layer


@dataclass
class IoInfo:
    """What the ProgramInfo (host side) knows and the NPs do not."""

    input_dims: tuple[int, int, int]
    input_bits: int = 8
    output_shift: tuple[int, ...] = ()
    output_scales: tuple[float, ...] = ()
    dense_input: bool = False


@dataclass
class DecodedProgram:
    """Layers (InputData or InputConvolutional first) and their NPs."""

    layers: list[V1Layer]
    learning: dict[str, Any] | None = None

    @property
    def placement(self) -> dict[int, list[tuple[int, int, int]]]:
        """Layer index -> NP idents (col, row, id; id -1 is the HRC), within the program
        of the layer's `sequence` (each program has the whole mesh)."""
        return {i: list(layer.nps) for i, layer in enumerate(self.layers) if layer.nps}

    @property
    def input_kind(self) -> str:
        """How inputs enter: "dense" (HRC DMA), "cnp" or "fnp" (event DMA)."""
        first = self.layers[0].kind if self.layers[0].nps else self.layers[1].kind
        return {"InputConvolutional": "dense", "FullyConnected": "fnp"}.get(first, "cnp")

    @property
    def output_kind(self) -> str:
        """The event format of the last layer: "cnp", "fnp" or "hrc"."""
        last = self.layers[-1].kind
        return {"InputConvolutional": "hrc", "FullyConnected": "fnp"}.get(last, "cnp")

    def np_counts(self, names: Sequence[str] = ()) -> dict[str, tuple[str, int]]:
        """Layer name (default layer_<index>) -> (NP type, NP count): HRC, CNP or FNP."""
        out = {}
        for i, layer in enumerate(self.layers):
            if layer.nps:
                kind = {"InputConvolutional": "HRC", "FullyConnected": "FNP"}.get(layer.kind, "CNP")
                out[names[i] if i < len(names) else f"layer_{i}"] = (kind, len(layer.nps))
        return out


def io_of(program: ProgramBinary) -> IoInfo:
    info = program.info
    dims = tuple(int(d) for d in info.input_dims or ())
    if len(dims) != 3:
        raise ProgramFormatError(f"program input dims {dims} are not 3 values")
    return IoInfo(dims, int(info.input_bits), tuple(info.output_shift or ()),  # type: ignore[arg-type]
                  tuple(info.output_scales or ()), info.input_type == 0)  # fmt: skip


def decode_program(binaries: Sequence[bytes]) -> DecodedProgram:
    """The v1 layers of a model mapped as `binaries` (one program per hardware sequence,
    in order; the layers of each follow those of the one before)."""
    layers: list[V1Layer] = []
    learning = None
    for i, binary in enumerate(binaries):
        program = ProgramBinary.from_bytes(binary, f"sequence {i}")
        part = decode_mesh(from_program(program), io_of(program))
        for layer in part.layers:
            layer.sequence = i
        layers += part.layers if not layers else part.layers[1:]
        learning = part.learning or learning
    return DecodedProgram(layers, learning)


def decode_mesh(state: MeshState, io: IoInfo) -> DecodedProgram:
    """The layers NP state holds. The result starts with the program's input layer:
    InputConvolutional when the HRC is programmed, else an InputData of io.input_dims."""
    hrc = state.hrc
    layers: list[V1Layer] = []
    if hrc is not None and hrc.hrc_banks:
        layers.append(_hrc_layer(hrc, io))
    else:
        layers.append(V1Layer("InputData", io.input_dims, input_bits=io.input_bits))
    groups: dict[int, list[NpState]] = {}
    for s in state.nps.values():
        if not s.is_hrc and s.registers.any():
            groups.setdefault(regs.CNP["LAYER"].get(s.registers), []).append(s)
    learning = None
    for index in sorted(groups):
        nps = groups[index]
        shape = output_shape(layers[-1])
        is_last = index == max(groups)
        if regs.KIND.get(nps[0].registers) == regs.CNP_KIND:
            layers.append(_cnp_layer(nps, shape, io if is_last else None))
        else:
            layer, learning = _fnp_layer(nps, shape, io if is_last else None)
            layers.append(layer)
    return DecodedProgram(layers, learning)


def output_shape(layer: V1Layer) -> tuple[int, int, int]:
    x, y, _c = layer.input_shape
    if layer.kind == "InputData":
        return layer.input_shape
    if layer.kind == "FullyConnected":
        return (1, 1, layer.filters)
    if layer.pool == "average":
        return (1, 1, layer.filters)
    sx, sy = _conv_out(x, layer), _conv_out(y, layer)
    if layer.pool == "max":
        sx, sy = _pool_out(sx, layer), _pool_out(sy, layer)
    return (sx, sy, layer.filters)


def _conv_out(n: int, layer: V1Layer) -> int:
    if layer.padding == "same":
        return -(-n // layer.stride)
    return (n - layer.kernel) // layer.stride + 1


def _pool_out(n: int, layer: V1Layer) -> int:
    if layer.padding == "same":
        return -(-n // layer.pool_stride)
    return (n - layer.pool_size) // layer.pool_stride + 1


def _smallest_bits(w: np.ndarray, choices: Sequence[int]) -> int:
    """HRC and 1x1 1-bit/2-bit kernels do not record their weight bits: the narrowest
    width that holds the weights (see docs/program-binary.md)."""
    lo, hi = int(w.min(initial=0)), int(w.max(initial=0))
    for b in choices:
        top = 1 if b == 1 else 2 ** (b - 1) - 1
        bottom = 0 if b == 1 else -top
        if bottom <= lo and hi <= top:
            return b
    return choices[-1]


def _threshold_values(m: NpMemories) -> dict[str, np.ndarray]:
    return {
        "threshold": m.values["threshold"].astype(np.int32),
        "act_step": (m.values["act_step16"] / STEP_SCALE).astype(np.float32),
    }


def _hrc_layer(s: NpState, io: IoInfo) -> V1Layer:
    r = regs.read(regs.HRC, s.registers)
    shape = io.input_dims
    k, nf = r["KERNEL"], r["FILTERS"]
    m = decode_memories(s, shape)
    w = m.values["weights"]
    pool = "max" if r["POOL"] else "none"
    variables = {"weights": w, **_threshold_values(m)}
    act = not outputs_potentials(r["ACT_BITS"], variables["threshold"])
    if not act:
        variables = {"weights": w}
    return V1Layer(
        "InputConvolutional", shape, nf, k, r["STRIDE_X"],
        "valid" if r["VALID"] else "same", r["PADDING_VALUE"], pool,
        2 if pool == "max" else 1, 2 if pool == "max" else 1,
        _smallest_bits(w, (1, 2, 4, 8)), io.input_bits, act, r["ACT_BITS"] if act else 0,
        variables, [s.ident],
    )  # fmt: skip


def _cnp_layer(
    all_nps: list[NpState], shape: tuple[int, int, int], io: IoInfo | None = None
) -> V1Layer:
    """A CNP layer: its filters spread over NPs (FIRST_FILTER, NP_FILTERS); on wide inputs
    several NPs hold the same filters for stripes of the input (INPUT_X is the stripe's),
    so one NP per FIRST_FILTER is read and the shape comes from the layer before."""
    by_first: dict[int, NpState] = {}
    for s in all_nps:
        by_first.setdefault(regs.CNP["FIRST_FILTER"].get(s.registers), s)
    nps = [by_first[f] for f in sorted(by_first)]
    r = regs.read(regs.CNP, nps[0].registers)
    x, y, c = shape
    k, sep = r["KERNEL"], bool(r["SEPARABLE"])
    counts = [regs.CNP["NP_FILTERS"].get(s.registers) for s in nps]
    nf = sum(counts)
    mems = [decode_memories(s, (x, y, c)) for s in nps]
    if sep:
        wb = r["PW_WEIGHT_BITS"]
    elif r["CONV_WEIGHTS_4BIT"]:
        wb = 4
    else:
        wb = 1 if regs.CNP["FILTERS_1BIT"].get(nps[0].registers) else 2
    for s, m in zip(nps, mems, strict=True):
        if sep and "weights_pw" not in m.values:
            raise ProgramFormatError(f"separable NP {s.ident} has no pointwise weights")
    variables = {
        key: np.concatenate([_threshold_values(m)[key] for m in mems])
        for key in ("threshold", "act_step")
    }
    if sep:
        variables["weights"] = mems[0].values["weights_dw"]
        variables["weights_pw"] = np.concatenate([m.values["weights_pw"] for m in mems], axis=3)
    else:
        variables["weights"] = np.concatenate([m.values["weights"] for m in mems], axis=3)
        if k == 1 and wb == 2:
            wb = _smallest_bits(variables["weights"], (1, 2))
    pool, size, stride = "none", 1, 1
    if r["GLOBAL_AVG"]:
        pool = "average"
    elif r["POOL_SIZE"] > 1:
        pool, size, stride = "max", r["POOL_SIZE"], r["POOL_STRIDE"]
    kind = "SeparableConvolutional" if sep else "Convolutional"
    # ACTIVATION clear: the NP sends its potentials (thresholds at -2^19, ACT_BITS the
    # layer's act_bits, unused); the threshold is the program's output_shift, and the
    # act_step stays on the chip (act_step x 16 in the threshold SRAM)
    act = bool(r["ACTIVATION"])
    if not act:
        step = variables["act_step"]
        variables = {k: v for k, v in variables.items() if k != "threshold"}
        host = _output_registers(io, nf)
        variables.update(host)
        variables["act_step"] = step
        if host and io is not None:
            variables["act_step"] = host_steps(io.output_scales, step)
    return V1Layer(
        kind, (x, y, c), nf, k, r["STRIDE"], "same", 0, pool, size, stride, wb,
        r["INPUT_BITS"], act, r["ACT_BITS"], variables,
        [s.ident for s in all_nps],
    )  # fmt: skip


def _output_registers(io: IoInfo | None, units: int) -> dict[str, np.ndarray]:
    """A last layer without activation: its threshold and act_step are the program's
    output_shift and 1 / output_scales (none when `io` is not the program's)."""
    if io is None or len(io.output_shift) != units:
        return {}
    scales = np.asarray(io.output_scales, np.float64)
    return {
        "threshold": np.asarray(io.output_shift, np.int32),
        "act_step": (1.0 / scales).astype(np.float32),
    }


def host_steps(scales: Sequence[float], chip: np.ndarray, ulps: int = 4) -> np.ndarray:
    """The act_steps of a CNP layer sending potentials: the program holds two copies, the
    host's output_scales (1 / act_step) and the NPs' act_step x 16, floored (`chip`: that
    / 16). Each is the float32 within `ulps` of 1 / scale giving both back, else chip's."""
    out = np.asarray(chip, np.float32).copy()
    for i, (scale, c) in enumerate(zip(np.asarray(scales, np.float32), out.copy(), strict=True)):
        h = np.float32(1.0 / np.float64(scale))
        cands = [h]
        for direction in (np.float32(np.inf), np.float32(-np.inf)):
            v = h
            for _ in range(ulps):
                v = np.nextafter(v, direction)
                cands.append(v)
        for v in cands:
            same_scale = np.float32(1.0 / np.float64(v)) == scale
            if same_scale and np.floor(np.float64(v) * STEP_SCALE) == np.float64(c) * STEP_SCALE:
                out[i] = v
                break
    return out


def outputs_potentials(act_bits: int, thresholds: np.ndarray) -> bool:
    """Whether the HRC's activation settings are the program's "emit potentials": 1-bit
    activations with every threshold at -2^19 (a CNP has an ACTIVATION bit instead; an
    HRC without activation never ends a hardware sequence in akida 2.19.3)."""
    low = -(1 << (THRESHOLD_BITS - 1))
    return act_bits == 1 and thresholds.size > 0 and bool(np.all(thresholds == low))


def _fnp_layer(
    nps: list[NpState], shape: tuple[int, int, int], io: IoInfo | None
) -> tuple[V1Layer, dict[str, Any] | None]:
    r = regs.read(regs.FNP, nps[0].registers)
    x, y, c = shape
    wb = 4 if r["WEIGHTS_4BIT"] else 2 if r["WEIGHTS_MULTIBIT"] else 1
    act = bool(r["ACTIVATION"])
    learning = None
    mems = [decode_memories(s, shape) for s in nps]

    def joined(name: str) -> np.ndarray:
        return np.concatenate([m.values[name] for m in mems])

    variables = {"weights": np.concatenate([m.values["weights"] for m in mems], axis=3)}
    units = variables["weights"].shape[3]
    if joined("num_weights").any():  # a learning FNP3: class + 1, num_weights, thswap
        learning = {
            "num_weights": int(joined("num_weights")[0]),
            "classes": [int(v) - 1 for v in joined("class_plus1")],
        }
        variables["threshold_learning"] = joined("threshold_learning").astype(np.int32)
        variables["thswap"] = joined("thswap").astype(np.int32)
    if act:
        variables["threshold"] = joined("threshold").astype(np.int32)
        variables["act_step"] = (joined("act_step16") / STEP_SCALE).astype(np.float32)
    else:
        variables.update(_output_registers(io, units))
    layer = V1Layer(
        "FullyConnected", (x, y, c), units, weights_bits=wb, input_bits=r["INPUT_BITS"],
        activation=act, act_bits=r["ACT_BITS"], variables=variables,
        nps=[s.ident for s in nps],
    )  # fmt: skip
    return layer, learning


def mesh_memories(state: MeshState, io: IoInfo) -> dict[tuple[int, int, int], NpMemories]:
    """The memory values of every programmed NP of `state`, by ident (each NP's layer input
    shape from decode_mesh)."""
    out = {}
    for layer in decode_mesh(state, io).layers:
        for ident in layer.nps:
            out[ident] = decode_memories(state.nps[ident], layer.input_shape)
    return out
