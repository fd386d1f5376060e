"""Edge learning on the chip through the host protocol: the learning layer's register
track, labelled inferences (label + 1 in the descriptor), and the learning FNP3's memory
read back and written (its SRAM layout: per neuron 4 header words, then one bit per input).

Written against Akd1000Host only, like the rest of driver/device.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from akida_rt.driver.device_types import chip_inputs

from akida_rt.engine.learning_rule import LearnedWeights, plasticity_of, swaps_of
from akida_rt.errors import LearningError
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.mapper import Backend
from akida_rt.model.sequence import Sequence as MappedSequence

if TYPE_CHECKING:
    from akida_rt.driver.device import Device

HEADER_WORDS = 2  # the config packet header learn_mem returns first
NEURON_HEADER_WORDS = 4  # threshold, class/act_step, num_weights, plasticity (thswap)


def learned_token(digest: str) -> str:
    """The residency mark of program `digest` once its weights learned on the chip."""
    return f"{digest}+learned"


def learn(
    dev: Device,
    sequences: Sequence[MappedSequence],
    x: np.ndarray,
    labels: np.ndarray,
    cfg: pb.LearningConfig,
) -> tuple[np.ndarray, LearnedWeights]:
    """Run every sequence but the last, then learn `x` with the last one's learning layer.

    Returns the (N, U) int64 potentials of each labelled inference and the state read
    back from the chip. The learned weights stay on the chip: the caller applies the
    state to its layer and tells the device which program it now holds
    (Device.adopt_learned). Until then the resident program matches no program.
    """
    last = sequences[-1]
    if last.backend is Backend.Software:
        raise LearningError(
            f"{dev.url}: the learning layer '{last.layers[-1].name}' is not mapped onto the device"
        )
    with dev.guard():
        y: np.ndarray = x
        for seq in sequences[:-1]:
            if seq.backend is Backend.Software:
                y = seq.engine().run(y)
            else:
                dev.load_sequence(seq.program, seq.program_hash)
                y, _ = dev.infer(y)
        if dev.resident != learned_token(last.program_hash):
            dev.load_sequence(last.program, last.program_hash)
        samples = cfg.samples  # what the program (the host's copy of the chip's) learned
        dev.mark_learning(last.program_hash)
        dev.learning_sequence = last
        xs = chip_inputs(y, dev.url)
        host = dev.host
        host.set_batch_size(1)
        host.toggle_learn(True)
        try:
            pots = [host.fit(xs[i : i + 1], [int(labels[i])]) for i in range(len(xs))]
            words = host.learn_mem()
            state = _state(dev, last, words, samples + len(xs))
            dev.learned_binary = learned_binary(dev, words)
            dev.learned_samples = state.samples
        finally:
            host.toggle_learn(False)
        dev.counters.frames += len(xs)
        out = np.concatenate([p.reshape(1, -1) for p in pots]).astype(np.int64)
        return out, state


def learned_binary(dev: Device, words: np.ndarray) -> bytes | None:
    """The resident program binary with its learning weight track replaced by `words`
    (learn_mem's layout is the track's): what the chip now holds, to reload it later."""
    program = dev.resident_program
    info = dev.host.info
    if program is None or info is None or info.learning_layer is None:
        return None
    ram = info.learning_layer.ram
    tracks = (ram.tracks or ()) if ram is not None else ()
    if len(tracks) != 1 or tracks[0].words != words.size:
        return None
    at = 4 + int.from_bytes(program[:4], "little")  # the program data follows the info
    start = at + tracks[0].offset
    return program[:start] + words.astype("<u4").tobytes() + program[start + 4 * words.size :]


def _per_neuron(words: int, units: int) -> int:
    if units <= 0 or (words - HEADER_WORDS) % units:
        raise LearningError(f"learning memory of {words} words does not hold {units} neurons")
    return (words - HEADER_WORDS) // units


def _state(dev: Device, seq: MappedSequence, words: np.ndarray, samples: int) -> LearnedWeights:
    layer = seq.layers[-1]
    k, u = layer.fan_in, layer.filters
    per = _per_neuron(words.size, u)
    body = words[HEADER_WORDS:].reshape(u, per).astype(np.uint64)
    bits = np.zeros((k, u), np.uint8)
    i = input_order(layer.input_shape, k)
    for j in range(u):
        w = body[j, NEURON_HEADER_WORDS + i // 32]
        bits[:, j] = ((w >> (i % 32).astype(np.uint64)) & 1).astype(np.uint8)
    nw = max(int(body[0, 2]), 1) if u else 1  # every neuron's word 2: num_weights
    plasticity = plasticity_of((body[:, 3] & 0xFFFF).astype(np.int64), nw)
    return LearnedWeights(bits, plasticity, samples)


def input_order(shape: tuple[int, ...] | None, k: int) -> np.ndarray:
    """The FNP3 input bit of each of the layer's K inputs: akida_rt flattens (h, w, c),
    the chip (c, w, h)."""
    if shape is None or int(np.prod(shape)) != k:
        return np.arange(k)
    h, w, c = shape
    return np.arange(k).reshape(c, w, h).transpose(2, 1, 0).reshape(-1)


def read_learned(dev: Device) -> LearnedWeights:
    """The learning layer's weights and plasticity, read from the chip."""
    with dev.guard():
        seq = _resident_sequence(dev)
        dev.host.toggle_learn(True)
        try:
            words = dev.host.learn_mem()
        finally:
            dev.host.toggle_learn(False)
        return _state(dev, seq, words, dev.learned_samples)


def write_learned(dev: Device, state: LearnedWeights) -> None:
    """Write weights and plasticity into the chip's learning memory."""
    with dev.guard():
        host = dev.host
        host.toggle_learn(True)
        try:
            words = host.learn_mem().astype(np.uint64)
            k, u = state.weights.shape
            per = _per_neuron(words.size, u)
            body = words[HEADER_WORDS:].reshape(u, per)
            body[:, NEURON_HEADER_WORDS:] = 0
            seq = _resident_sequence(dev)
            order = input_order(seq.layers[-1].input_shape, k)
            for j in range(u):
                on = order[np.flatnonzero(state.weights[:, j])]
                np.bitwise_or.at(body[j], NEURON_HEADER_WORDS + on // 32,
                                 np.left_shift(np.uint64(1), (on % 32).astype(np.uint64)))  # fmt: skip
            nw = max(int(body[0, 2]), 1) if u else 1
            thswap = swaps_of(state.plasticity, nw).astype(np.uint64)
            body[:, 3] = (body[:, 3] & 0xFFFF0000) | (thswap & 0xFFFF)
            words[HEADER_WORDS:] = body.reshape(-1)
            host.update_learn_mem(words.astype(np.uint32))
            dev.learned_binary = learned_binary(dev, words.astype(np.uint32))
        finally:
            host.toggle_learn(False)
        dev.learned_samples = state.samples


def _resident_sequence(dev: Device) -> MappedSequence:
    seq = getattr(dev, "learning_sequence", None)
    if seq is None:
        raise LearningError(f"{dev.url}: no learning program is on the chip")
    return seq
