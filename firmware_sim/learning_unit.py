"""The simulated chip's edge-learning unit: the learning layer's state in device memory.

LEARN_CONFIG puts the loaded sequence's last layer (a 1-bit FullyConnected on an FNP3)
into learning mode and writes its plasticity and weights to LEARN_BASE; LEARN runs the
sequence up to that layer and applies akida_rt.engine.learning_rule there, so the weights in
device memory change and the host reads them back (READ_LEARNED) or writes them
(WRITE_LEARNED). docs/device-protocol.md has the layouts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from akida_rt.engine.integer import compile_layer
from akida_rt.engine.learning_rule import RuleParams, learn
from akida_rt.errors import CommandError
from akida_rt.format.layers import Layer, LayerType
from akida_rt.mapping.hardware import NpType
from akida_rt.wire import device_protocol as dp

if TYPE_CHECKING:
    from akida_rt.firmware_sim.firmware import Firmware
    from akida_rt.firmware_sim.mesh import LoadedSequence


class LearningUnit:
    """Learning state of the resident sequence (cleared by every load and reset)."""

    def __init__(self, firmware: Firmware) -> None:
        self.fw = firmware
        self.params: RuleParams | None = None
        self.samples = 0
        self.shape = (0, 0)  # (K, U)

    def clear(self) -> None:
        self.params, self.samples, self.shape = None, 0, (0, 0)

    # ------------------------------------------------------------------ commands
    def configure(self, addr: int, length: int) -> tuple[bytes, int, int]:
        seq = self.fw.mesh.require_loaded()
        layer = _learning_layer(seq)
        if length < dp.LEARN_HEADER.size:
            raise CommandError(dp.ErrorCode.BAD_ADDRESS, f"learn config of {length} bytes")
        raw = self.fw.fetch(addr, length)
        k, u, nw, nc, p0, pmin, decay, comp, seed, samples = dp.LEARN_HEADER.unpack_from(raw)
        if (k, u) != (layer.fan_in, layer.filters):
            raise CommandError(
                dp.ErrorCode.SHAPE_MISMATCH,
                f"learn config for {k}x{u}, layer '{layer.name}' is {layer.fan_in}x{layer.filters}",
            )
        if length != dp.LEARN_HEADER.size + 4 * u or not 1 <= nw <= k or (nc and u % nc):
            raise CommandError(dp.ErrorCode.BAD_PROGRAM, "learn config: bad sizes or counts")
        if dp.learned_bytes(k, u) > dp.LEARN_BYTES:
            raise CommandError(
                dp.ErrorCode.NO_SPACE,
                f"learned state of {dp.learned_bytes(k, u)} bytes exceeds {dp.LEARN_BYTES}",
            )
        plasticity = np.frombuffer(raw, "<f4", u, dp.LEARN_HEADER.size).copy()
        weights = layer.get_variable("weights").reshape(k, u).astype(np.uint8)
        self.params = RuleParams(nw, nc, p0, pmin, decay, comp, seed)
        self.samples, self.shape = samples, (k, u)
        self._store(weights, plasticity)
        return b"", 0, 0

    def learn(
        self, frames: int, lab_addr: int, lab_len: int, out_addr: int, out_cap: int
    ) -> tuple[bytes, int, int]:
        params = self._require()
        seq = self.fw.mesh.require_loaded()
        x = self.fw.input_frames(frames)
        k, u = self.shape
        if lab_len != 8 * frames:
            raise CommandError(dp.ErrorCode.SHAPE_MISMATCH, f"{lab_len} label bytes for {frames}")
        labels = np.frombuffer(self.fw.fetch(lab_addr, lab_len), "<i8")
        if params.num_classes and (labels.min() < 0 or labels.max() >= params.num_classes):
            raise CommandError(dp.ErrorCode.SHAPE_MISMATCH, "label outside the learned classes")
        if out_cap < 8 * frames * u:
            raise CommandError(dp.ErrorCode.NO_SPACE, f"potentials need {8 * frames * u} bytes")
        self.fw.span(out_addr, 8 * frames * u)
        spikes, work = self.fw.mesh.run(x, upto=len(seq.layers) - 1)
        weights, plasticity = self._load()
        pots = learn(params, weights, plasticity, spikes.reshape(frames, k), labels, self.samples)
        self.samples += frames
        self._store(weights, plasticity)
        self._set_engine_weights(seq, weights)
        self.fw.chip.mem_write(out_addr, pots.astype("<i8").tobytes())
        self.fw.count_work(work, frames)
        return b"", work.clk, work.synops

    def read(self) -> tuple[bytes, int, int]:
        self._require()
        k, u = self.shape
        payload = dp.LEARNED.pack(dp.LEARN_BASE, dp.learned_bytes(k, u), self.samples, k, u)
        return payload, 0, 0

    def write(self, addr: int, length: int) -> tuple[bytes, int, int]:
        self._require()
        k, u = self.shape
        if length != dp.learned_bytes(k, u):
            raise CommandError(
                dp.ErrorCode.SHAPE_MISMATCH,
                f"learned state of {length} bytes; {k}x{u} takes {dp.learned_bytes(k, u)}",
            )
        self.fw.chip.mem_write(dp.LEARN_BASE, self.fw.fetch(addr, length))
        weights, _ = self._load()
        self._set_engine_weights(self.fw.mesh.require_loaded(), weights)
        return b"", 0, 0

    # ------------------------------------------------------------------- helpers
    def _require(self) -> RuleParams:
        if self.params is None:
            raise CommandError(dp.ErrorCode.NOT_LEARNING, "no learning layer: LEARN_CONFIG first")
        return self.params

    def _store(self, weights: np.ndarray, plasticity: np.ndarray) -> None:
        packed = np.packbits(weights.reshape(-1).astype(bool)).tobytes()
        self.fw.chip.mem_write(dp.LEARN_BASE, plasticity.astype("<f4").tobytes() + packed)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        k, u = self.shape
        raw = self.fw.chip.mem_read(dp.LEARN_BASE, dp.learned_bytes(k, u))
        plasticity = np.frombuffer(raw, "<f4", u).copy()
        bits = np.unpackbits(np.frombuffer(raw, np.uint8, offset=4 * u), count=k * u)
        return bits.reshape(k, u).copy(), plasticity

    def _set_engine_weights(self, seq: LoadedSequence, weights: np.ndarray) -> None:
        """The NP computes with the weights in device memory from now on."""
        layer = seq.layers[-1]
        layer.set_variable("weights", weights.reshape(1, 1, *self.shape))
        seq.engine.compiled[-1] = compile_layer(layer)


def _learning_layer(seq: LoadedSequence) -> Layer:
    layer = seq.layers[-1]
    placement = seq.placements.get(layer.name)
    ok = (
        layer.layer_type is LayerType.FullyConnected
        and layer.weight_bits == 1
        and layer.input_bits == 1
        and not layer.activation
    )
    if not ok:
        raise CommandError(
            dp.ErrorCode.NOT_LEARNING,
            f"'{layer.name}' cannot learn: a 1-bit FullyConnected layer on 1-bit inputs learns",
        )
    if placement is None or placement[0] != NpType.FNP3.value:
        where = placement[0] if placement else "no NP"
        raise CommandError(
            dp.ErrorCode.NOT_LEARNING, f"'{layer.name}' is on {where}; learning runs on an FNP3"
        )
    return layer
