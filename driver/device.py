"""The device object: an AKD1000 reached through a Bus and the real host protocol
(driver/akd1000_host.py, the way BrainChip's Akida Engine drives the chip).

It owns locking (one lock per device) and timeouts, caches which program binary is
resident, counts loads and time, and runs mapped models: each hardware sequence is its own
program binary, run over the whole batch before the next is chain-loaded (AKD1000 has no
multipass). Board time, power, synaptic operations and modelled clocks exist only on the
simulated chip: they come from its simulator-only register block
(akida_rt.akd1000.sim_block), read only when the chip identifies as simulated.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from akida_rt.driver import device_learning
from akida_rt.driver.akd1000_host import Akd1000Host
from akida_rt.driver.bus import Bus
from akida_rt.driver.device_reports import DeviceReports
from akida_rt.driver.device_types import (
    Counters,
    DeviceStats,
    Identity,
    RetryingBus,
    Soc,
    Timeouts,
    chip_inputs,
)
from akida_rt.driver.health import HealthNote

from akida_rt.akd1000 import sim_block as sb
from akida_rt.akd1000.memory_map import TOP_LEVEL_REG_BASE
from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.errors import (
    DeviceBusy,
    DeviceError,
    DeviceLost,
    DeviceResetError,
    InputError,
)
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.mapper import Backend
from akida_rt.model import device_api
from akida_rt.model.sequence import Sequence as MappedSequence

log = logging.getLogger(__name__)
__all__ = ["Counters", "Device", "DeviceStats", "Identity", "Soc", "Timeouts"]

MAX_BATCH = 16  # jobs in flight on the chip at once


class Device(DeviceReports):
    """An AKD1000 (board or simulated chip) behind `bus`.

    Args:
        bus: the transport, already open.
        url: the device URL; `id` defaults to it.
        kind: "pcie", "usb" or "sim" (the transport; whether the chip is simulated is
            what the chip says about itself, see `simulated`).
        timeouts: bounds on waits.
        retries: how often a timed-out DDR transfer is retried.
        desc: the driver's description of the board ("NSoC_v2" for an AKD1000 behind
            akida_dw_edma); empty: read from the SoC's CHIP_INFO register.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        url: str = "",
        kind: str = "sim",
        timeouts: Timeouts | None = None,
        retries: int = 1,
        ident: str | None = None,
        desc: str = "",
    ) -> None:
        self.bus = bus
        self.url = url or bus.url
        self.id = ident or self.url
        self.kind = kind
        self.timeouts = timeouts or Timeouts()
        self.retries = retries
        self.soc = Soc()
        self._window_frames = 0
        self.counters = Counters()
        self._lock = threading.RLock()
        self._resident: str | None = None
        self._lost = False
        self._identity: Identity | None = None
        self._desc = desc or str(getattr(bus, "desc", "") or "")
        self.learning_sequence: MappedSequence | None = None
        self._retrying = RetryingBus(bus, retries)
        self._health = HealthNote(self.url)  # tells a device plugin about faults
        self._depth = 0  # nesting of _guard in this thread (the lock is re-entrant)
        self.resident_program: bytes | None = None  # the binary on the chip, as loaded
        self.learned_binary: bytes | None = None  # the same, with the weights it learned
        self._clock_started = False
        self._infer_clk = self._program_clk = 0
        self._window_energy_nj = 0  # board energy when the power window started
        self.learned_samples = 0  # labelled samples the resident learning program learned
        self.host = self._open_host()
        with self._guard():
            self._identity = self._identify()
            self._restart_chip_counts()

    def _open_host(self) -> Akd1000Host:
        try:
            return Akd1000Host(self._retrying, desc=self._desc, timeout_s=self.timeouts.run_s)
        except DeviceLost:
            self._lost = True
            raise

    # --------------------------------------------------------------- locks
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the device lock; translate losses and failures into device state."""
        with self._lock:
            if self._lost:
                raise DeviceLost(f"{self.url}: device was lost; rediscover it")
            self._depth += 1
            try:
                yield
            except DeviceError as exc:  # timed out, failed, reset or gone: the board's fault
                if self._depth == 1:  # once, where the call came in
                    if not isinstance(exc, DeviceBusy):
                        self._health.fault(exc)
                    self._failed(exc)
                raise
            except InputError:
                self._resident = None
                raise
            finally:
                self._depth -= 1
            if self._depth == 0:
                self._health.ok()

    def _failed(self, exc: DeviceError) -> None:
        """Device state after `exc`: lost, rebooted, or holding no known program."""
        self._resident = None  # whatever the chip holds now, it is no known program
        if isinstance(exc, DeviceLost):
            self._lost = True
        elif isinstance(exc, DeviceResetError):
            self.counters.resets += 1

    guard = _guard

    @contextmanager
    def claim(self, timeout_s: float = 0.0) -> Iterator[Device]:
        """Exclusive use of the device within this process; DeviceBusy if taken."""
        got = self._lock.acquire(timeout=timeout_s) if timeout_s > 0 else self._lock.acquire(False)
        if not got:
            raise DeviceBusy(f"{self.url}: device is busy (another user holds it)")
        try:
            yield self
        finally:
            self._lock.release()

    def reset(self) -> None:
        """Core and mesh resets (the program is dropped); the device is usable after."""
        with self._lock:
            if self._lost:
                raise DeviceLost(f"{self.url}: device was lost; rediscover it")
            try:
                self.host.unprogram()
                self.host = self._open_host()
            except DeviceLost:
                self._lost = True
                raise
            self._resident = None
            self.counters.resets += 1
            self._identity = self._identify()
            self._restart_chip_counts()
            log.info("%s reset", self.url)

    # ------------------------------------------------------------- programs
    def mark_learning(self, digest: str) -> None:
        """The resident sequence `digest` starts learning: its weights on the chip are
        about to differ from the program's (no cached program matches it now)."""
        self._resident = device_learning.learned_token(digest)

    def adopt_learned(self, before: str, after: str) -> bool:
        """The resident sequence `before` learned on the chip and now equals the host's
        program of digest `after`: note that without sending it again. False (and nothing
        changes) when another sequence was loaded since."""
        with self._guard():
            if self._resident != device_learning.learned_token(before):
                return False
            self._resident = after
            return True

    def load_sequence(self, program: bytes, digest: str | None = None) -> int:
        """Program the chip with an AKD1000 program binary unless it is already resident;
        return the programming clocks (modelled on the simulated chip, the config DMA's
        counter on a board)."""
        digest = digest or hashlib.sha256(program).hexdigest()
        with self._guard():
            if self._resident == digest:
                self.counters.reloads_skipped += 1
                return 0
            start = self.now()
            before = self._sim(sb.SIM_PROGRAM_CLK) if self.simulated else 0
            self._resident = self.resident_program = self.learned_binary = None
            self.learned_samples = 0
            self.host.program(bytes(program), f"{self.url} program")
            self._resident, self.resident_program = digest, bytes(program)
            clk = (
                (self._sim(sb.SIM_PROGRAM_CLK) - before) & 0xFFFFFFFF
                if self.simulated
                else self.host.read_config_clock_counter()
            )
            self._program_clk += clk
            self.counters.loads += 1
            self.counters.bytes_programmed += len(program)
            self.counters.load_s += self.now() - start
            return clk

    @property
    def lost(self) -> bool:
        """True once the device vanished or was closed."""
        return self._lost

    @property
    def resident(self) -> str | None:
        """SHA-256 (hex) of the program binary on the chip, if known."""
        return self._resident

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, int]:
        """Run the resident program over `batch` (NHWC integers); (outputs, clocks).

        Outputs are float32 activations or float64 potentials, integer valued.
        """
        with self._guard():
            x = chip_inputs(batch, self.url)
            start = self.now()
            before = self._sim(sb.SIM_INFERENCE_CLK) if self.simulated else 0
            synops = self._sim(sb.SIM_SYNOPS) if self.simulated else 0
            if self.simulated:  # the host runtime's own cost per call, on the modelled board
                self.bus.write32(TOP_LEVEL_REG_BASE + sb.SIM_BASE + sb.SIM_HOST_REQUEST, 1)
            elif not self._clock_started:
                self.host.toggle_clock_counter(True)
                self._clock_started = True
            self.host.set_batch_size(min(len(x), MAX_BATCH))
            y = self.host.forward(x)
            if self.simulated:
                clk = (self._sim(sb.SIM_INFERENCE_CLK) - before) & 0xFFFFFFFF
                self.counters.synops += (self._sim(sb.SIM_SYNOPS) - synops) & 0xFFFFFFFF
            else:
                clk = self.host.read_clock_counter()
            self._infer_clk += clk
            self.counters.frames += len(x)
            self.counters.runs += 1
            self.counters.infer_s += self.now() - start
            out = y.astype(np.float32 if y.dtype == np.uint8 else np.float64)
            return out.reshape(len(x), *out.shape[1:]), clk

    # ---------------------------------------------------------------- models
    def run_sequences(
        self, sequences: Sequence[MappedSequence], x: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Run a mapped model's sequences over batch `x`: (final outputs, metrics).

        Each hardware sequence processes the whole batch before the next one is loaded;
        software sequences run on the host engine. Metric keys are Statistics fields.
        """
        with self._guard():
            power = self.soc.power_measurement_enabled
            if power:
                self.power_start()
            self._window_frames += x.shape[0]
            y: np.ndarray = x
            inference_clk = program_clk = 0
            elapsed = 0.0
            synops_before = self.counters.synops
            for seq in sequences:
                start = self.now()
                if seq.backend is Backend.Software:
                    engine = seq.engine()
                    y = engine.run(y)
                    if self.simulated:  # the modelled board's host runs it, not this one
                        kmacs = -(-engine.macs_per_sample * x.shape[0] // 1000)
                        self.bus.write32(TOP_LEVEL_REG_BASE + sb.SIM_BASE + sb.SIM_HOST_KMACS,
                                         min(kmacs, 0xFFFFFFFF))  # fmt: skip
                else:
                    program_clk += self.load_sequence(seq.program, seq.program_hash)
                    y, clk = self.infer(y)
                    inference_clk += clk
                elapsed += self.now() - start
            metrics: dict[str, Any] = {
                "inference_clk": inference_clk,
                "program_clk": program_clk,
                "device_synops": self.counters.synops - synops_before,
                "clock_hz": self.identity.clock_hz,
                "elapsed_s": elapsed,
            }
            if power:
                p = self.power()
                metrics["floor_power_mw"] = p["floor_mw"]
                metrics["power_mw"] = p["power_mw"]
                metrics["energy_mj_per_frame"] = (
                    p["power_mw"]["avg"] * elapsed / x.shape[0] if p["power_mw"] else None
                )
            return y, metrics

    # ---------------------------------------------------------- edge learning
    def learn(
        self,
        sequences: Sequence[MappedSequence],
        x: np.ndarray,
        labels: np.ndarray,
        config: pb.LearningConfig,
    ) -> tuple[np.ndarray, LearnedWeights]:
        """Learn `x` on the chip (docs/semantics.md, section 8): (potentials, state read back)."""
        return device_learning.learn(self, sequences, x, labels, config)

    def learned_program(self) -> bytes | None:
        """The resident program binary with the weights the chip learned since it was
        loaded (its learning track as read back), or None when nothing was learned."""
        return self.learned_binary

    def read_learned(self) -> LearnedWeights:
        """The learning layer's weights and plasticity in the chip's FNP3 memory."""
        return device_learning.read_learned(self)

    def write_learned(self, state: LearnedWeights) -> None:
        """Write the learning layer's weights and plasticity into the chip's FNP3 memory."""
        device_learning.write_learned(self, state)

    def release(self, model: object) -> None:
        """A model was unmapped; its program may stay resident until replaced."""
        log.debug("%s: %s released", self.url, model)

    def close(self) -> None:
        with self._lock:
            self.bus.close()
            self._lost = True

    def __repr__(self) -> str:
        name = self._identity.name if self._identity else "?"
        return f"<Device {self.id} {name} kind={self.kind} simulated={self._identity and self._identity.simulated}>"


if TYPE_CHECKING:  # mypy checks that Device provides what the runtime uses from a device
    _satisfies: type[device_api.Device] = Device
