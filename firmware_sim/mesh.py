"""The NP mesh of the simulated AKD1000: loads SequenceProgram bytes and executes them.

Loading checks the program against the mesh (device, NP ids and capabilities, per-NP
SRAM); execution runs the layers with akida_rt.engine.integer, the software backend's integer
engine, so outputs are bit-identical to it, and turns event counts into clock phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from akida_rt.firmware_sim.clock_model import ClockModel, Phase
from google.protobuf.message import DecodeError

from akida_rt.engine.integer import Engine
from akida_rt.errors import AkidaError, MeshError
from akida_rt.format import program as fmt
from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping import np_image
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType
from akida_rt.mapping.mapper import EXTERNAL_MEMORY_TYPES, FNP_WEIGHT_BYTES
from akida_rt.wire import device_protocol as dp


@dataclass
class LoadedSequence:
    """A sequence resident in NP memory."""

    layers: list[Layer]
    engine: Engine
    placements: dict[str, tuple[str, int, int]]  # layer -> (np_type, NP count, pass)
    pass_weights: list[int]  # weight bytes per pass
    nps: int
    program_bytes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = self.layers[0].input_shape
        assert shape is not None
        return shape

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return self.layers[-1].output_shape

    @property
    def output_activation(self) -> bool:
        return bool(self.layers[-1].activation)


@dataclass
class Work:
    """What one RUN cost: total clocks and SynOps, and the per-frame phases."""

    clk: int
    synops: int
    phases: list[Phase] = field(default_factory=list)


class NpMesh:
    """NPs with their SRAMs, holding at most one sequence."""

    def __init__(self, spec: DeviceSpec, clocks: ClockModel) -> None:
        self.spec = spec
        self.clocks = clocks
        self._nps = {np_.ident: np_.types for np_ in spec.nps}
        self.loaded: LoadedSequence | None = None

    def unload(self) -> None:
        self.loaded = None

    @property
    def loaded_nps(self) -> int:
        return self.loaded.nps if self.loaded else 0

    def require_loaded(self) -> LoadedSequence:
        if self.loaded is None:
            raise MeshError(dp.ErrorCode.NO_SEQUENCE, "no sequence loaded: LOAD_SEQUENCE first")
        return self.loaded

    # ------------------------------------------------------------------- loading
    def load(self, data: bytes) -> int:
        """Check and load SequenceProgram bytes; return the programming clocks."""
        self.loaded = None
        msg = pb.SequenceProgram()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"not a sequence program: {exc}") from None
        if msg.device != self.spec.name:
            raise MeshError(
                dp.ErrorCode.WRONG_DEVICE,
                f"program was mapped for '{msg.device}', this device is {self.spec.name}",
            )
        layers = self._decode_layers(msg)
        placements, pass_weights, nps = self._check_placements(msg, layers)
        try:
            engine = Engine(layers)
        except AkidaError as exc:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, str(exc)) from None
        self.loaded = LoadedSequence(layers, engine, placements, pass_weights, nps, len(data))
        return self.clocks.program_clk(len(data), nps)

    def _decode_layers(self, msg: pb.SequenceProgram) -> list[Layer]:
        if not msg.layers:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, "sequence program has no layers")
        self._fill_kernels(msg)
        try:
            layers = [fmt.decode_layer(m, i) for i, m in enumerate(msg.layers)]
            for i, layer in enumerate(layers):
                if i and (
                    layer.input_shape != layers[i - 1].output_shape
                    or layer.input_bits != layers[i - 1].output_bits
                ):
                    raise MeshError(
                        dp.ErrorCode.BAD_PROGRAM, f"layer '{layer.name}' does not chain"
                    )
                first = i == 0 and layer.layer_type in (LayerType.InputData, LayerType.InputConv2D)
                layer.validate(is_first=first, is_last=i == len(layers) - 1)
        except AkidaError as exc:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, str(exc)) from None
        return layers

    def _fill_kernels(self, msg: pb.SequenceProgram) -> None:
        """Put each placed layer's kernels back from the images of the NPs that hold them."""
        images: dict[str, list[pb.NpImage]] = {}
        for img in msg.images:
            images.setdefault(img.layer, []).append(img)
        placed = {p.layer: p for p in msg.placements}
        for m in msg.layers:
            p = placed.get(m.name)
            if p is None or not m.HasField("weights") or m.weights.data:
                continue
            ids = sorted((n.col, n.row, n.id) for n in p.nps)
            own = images.get(m.name, [])
            if sorted((i.np.col, i.np.row, i.np.id) for i in own) != ids:
                raise MeshError(
                    dp.ErrorCode.BAD_PROGRAM, f"'{m.name}': NP images do not match its NPs"
                )
            try:
                kernels = np_image.kernels_from_images(m, own)
            except ValueError as exc:
                raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{m.name}': {exc}") from None
            for key, arr in kernels.items():
                fmt.encode_tensor(arr, getattr(m, key))

    def _check_placements(
        self, msg: pb.SequenceProgram, layers: list[Layer]
    ) -> tuple[dict[str, tuple[str, int, int]], list[int], int]:
        by_layer = {p.layer: p for p in msg.placements}
        placements: dict[str, tuple[str, int, int]] = {}
        used: set[tuple[int, NpId]] = set()
        passes = max(1, msg.passes)
        pass_weights = [0] * passes
        for layer in layers:
            p = by_layer.get(layer.name)
            if layer.layer_type is LayerType.InputData:
                # Input data arrives by DMA: no NP, whether or not the mapper listed it.
                if p is not None and (p.nps or p.np_type not in ("", "none")):
                    raise MeshError(
                        dp.ErrorCode.BAD_PROGRAM, f"'{layer.name}': InputData takes no NP"
                    )
                continue
            if p is None:
                raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"layer '{layer.name}' has no NPs")
            if not 0 <= p.pass_index < passes:
                raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{layer.name}': bad pass index")
            ids = [NpId(n.col, n.row, n.id) for n in p.nps]
            self._check_nps(layer.name, p.np_type, ids, p.pass_index, used)
            self._check_sram(layer.name, p.np_type, len(ids), p.weight_bytes, p.input_bytes)
            placements[layer.name] = (p.np_type, len(ids), p.pass_index)
            pass_weights[p.pass_index] += p.weight_bytes
        nps = len({ident for _, ident in used if ident != self.spec.hrc})
        return placements, pass_weights, nps

    def _check_nps(
        self, layer: str, np_type: str, ids: list[NpId], pass_index: int, used: set
    ) -> None:
        if np_type == NpType.HRC.value:
            if self.spec.hrc is None or ids != [self.spec.hrc]:
                raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{layer}': no HRC at {ids}")
            used.add((pass_index, self.spec.hrc))
            return
        try:
            kind = NpType(np_type)
        except ValueError:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{layer}': NP type {np_type!r}") from None
        if not ids:
            raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{layer}' is placed on no NP")
        for ident in ids:
            if kind not in self._nps.get(ident, frozenset()):
                raise MeshError(
                    dp.ErrorCode.BAD_PROGRAM, f"'{layer}': NP {ident} is not a {kind.value}"
                )
            if (pass_index, ident) in used:
                raise MeshError(dp.ErrorCode.BAD_PROGRAM, f"'{layer}': NP {ident} used twice")
            used.add((pass_index, ident))

    def _check_sram(
        self, layer: str, np_type: str, count: int, weight_bytes: int, input_bytes: int
    ) -> None:
        if np_type == NpType.HRC.value:
            return
        fnp = np_type in (NpType.FNP2.value, NpType.FNP3.value)
        if np_type in {t.value for t in EXTERNAL_MEMORY_TYPES}:
            return  # an FNP2 streams its weights from external memory
        w_cap = FNP_WEIGHT_BYTES if fnp else self.spec.np_weight_bytes
        per_w = math.ceil(weight_bytes / count)
        per_in = math.ceil(input_bytes / count)
        if per_w > w_cap or (not fnp and per_in > self.spec.np_input_bytes):
            raise MeshError(
                dp.ErrorCode.SRAM_OVERFLOW,
                f"'{layer}' needs {per_w} weight / {per_in} input bytes per NP on {count} NP(s); "
                f"an NP holds {w_cap} / {self.spec.np_input_bytes}",
            )

    # ----------------------------------------------------------------- execution
    def run(self, x: np.ndarray, upto: int | None = None) -> tuple[np.ndarray, Work]:
        """Execute the loaded sequence on `frames` inputs: outputs and the work done.

        `upto` stops before that layer (learning runs all but the learning layer)."""
        seq = self.require_loaded()
        seq.engine.reset_stats()
        y = seq.engine.run(x, stop=upto)
        frames = x.shape[0]
        phases = [self.clocks.overhead_phase()]
        phases.append(self.clocks.dma_phase("input", x[0].size * x.dtype.itemsize))
        synops = 0
        for c, s in zip(seq.engine.compiled, seq.engine.stats(), strict=True):
            placement = seq.placements.get(c.layer.name)
            if placement is None:  # InputData: no NP
                continue
            np_type, count, _ = placement
            synops += s.synops
            phases.append(
                self.clocks.layer_phase(
                    c.layer.name,
                    np_type == NpType.HRC.value,
                    count,
                    s.input_events / frames,
                    s.synops / frames,
                )
            )
        for index, weights in enumerate(seq.pass_weights[1:], start=1):
            phases.append(self.clocks.pass_phase(f"pass_{index}", weights))
        out_bytes = int(np.prod(seq.output_shape)) * (1 if seq.output_activation else 8)
        phases.append(self.clocks.dma_phase("output", out_bytes))
        clk = math.ceil(sum(p.clk for p in phases) * frames)
        return y, Work(clk, synops, phases)
