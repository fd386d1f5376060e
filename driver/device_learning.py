"""Edge-learning commands of the device object: learn on the chip, read and write the
learned state in device memory (LEARN_CONFIG, LEARN, READ_LEARNED, WRITE_LEARNED).

Written against the command protocol only, like the rest of driver/device.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.errors import LearningError
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.mapper import Backend
from akida_rt.model.sequence import Sequence as MappedSequence
from akida_rt.wire import device_protocol as dp

if TYPE_CHECKING:
    from akida_rt.driver.device import Device


def learn(
    dev: Device,
    sequences: Sequence[MappedSequence],
    x: np.ndarray,
    labels: np.ndarray,
    cfg: pb.LearningConfig,
) -> tuple[np.ndarray, LearnedWeights]:
    """Run every sequence but the last, then learn `x` on the chip with the last one.

    Returns the (N, U) int64 potentials before each sample was learned and the state read
    back from device memory. The learned weights stay in device memory: the caller applies
    the state to its layer and tells the device which program it now holds
    (Device.adopt_learned), so the next run or fit sends nothing again. Until then (or if
    learning fails) the resident program matches no program, and the next run reloads.
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
        dev.load_sequence(last.program, last.program_hash)
        dev.mark_learning(last.program_hash)
        layer = last.layers[-1]
        k, u = layer.fan_in, layer.filters
        _configure(dev, cfg, k, u)
        pots = [_learn_chunk(dev, y[i : i + step], labels[i : i + step], u)
                for i, step in _chunks(dev, y)]  # fmt: skip
        return np.concatenate(pots), read_learned(dev)


def learned_token(digest: str) -> str:
    """The residency mark of sequence `digest` once its weights learned in device memory."""
    return f"{digest}+learned"


def _configure(dev: Device, cfg: pb.LearningConfig, k: int, u: int) -> None:
    from akida_rt.learning.edge import params_of, plasticity_of

    p = params_of(cfg)
    header = dp.LEARN_HEADER.pack(
        k, u, p.num_weights, p.num_classes, p.initial_plasticity, p.min_plasticity,
        p.plasticity_decay, p.learning_competition, p.seed, cfg.samples,
    )  # fmt: skip
    data = header + plasticity_of(cfg, u).astype("<f4").tobytes()
    dev.write_data(dp.DATA_BASE, data)
    dev.command(dp.Opcode.LEARN_CONFIG, addr0=dp.DATA_BASE, len0=len(data))


def _chunks(dev: Device, y: np.ndarray) -> list[tuple[int, int]]:
    frame = y[0].nbytes if y.dtype == np.uint8 else y[0].size * 8
    step = max(1, min(y.shape[0], dev.data_bytes // (2 * dp.align(frame) + 65536)))
    return [(i, step) for i in range(0, y.shape[0], step)]


def _learn_chunk(dev: Device, y: np.ndarray, labels: np.ndarray, units: int) -> np.ndarray:
    n = y.shape[0]
    fits_u8 = y.dtype == np.uint8 or (float(y.min()) >= 0 and float(y.max()) <= 255)
    data = y.astype(np.uint8 if fits_u8 else "<i8").tobytes()
    dtype = dp.DType.UINT8 if fits_u8 else dp.DType.INT64
    lab_addr = dp.DATA_BASE + dp.align(len(data))
    out_addr = lab_addr + dp.align(8 * n)
    dev.write_data(dp.DATA_BASE, data)
    dev.write_data(lab_addr, labels.astype("<i8").tobytes())
    dev.command(dp.Opcode.SET_INPUT, arg0=n, arg1=dtype, addr0=dp.DATA_BASE, len0=len(data))
    dev.command(
        dp.Opcode.LEARN, arg0=n, addr0=lab_addr, len0=8 * n,
        addr1=out_addr, len1=8 * n * units,
    )  # fmt: skip
    raw = dev.read_data(out_addr, 8 * n * units)
    return np.frombuffer(raw, "<i8").reshape(n, units).copy()


def read_learned(dev: Device) -> LearnedWeights:
    """The learning layer's weights and plasticity, read from device memory."""
    with dev.guard():
        r = dev.command(dp.Opcode.READ_LEARNED)
        addr, nbytes, samples, k, u = dp.LEARNED.unpack(r.payload[: dp.LEARNED.size])
        raw = dev.read_data(addr, nbytes)
    plasticity = np.frombuffer(raw, "<f4", u).copy()
    bits = np.unpackbits(np.frombuffer(raw, np.uint8, offset=4 * u), count=k * u)
    return LearnedWeights(bits.reshape(k, u).copy(), plasticity, int(samples))


def write_learned(dev: Device, state: LearnedWeights) -> None:
    """Write weights and plasticity into the device's learning memory."""
    packed = np.packbits(state.weights.reshape(-1).astype(bool)).tobytes()
    data = state.plasticity.astype("<f4").tobytes() + packed
    with dev.guard():
        dev.write_data(dp.DATA_BASE, data)
        dev.command(dp.Opcode.WRITE_LEARNED, addr0=dp.DATA_BASE, len0=len(data))
