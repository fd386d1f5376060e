"""The device object: an Akida device reached through a Bus and the command protocol.

It owns locking (one lock per device), retries (bulk transfers) and timeouts (every
command), caches which sequence is resident, counts loads and time, and runs mapped
models: each sequence over the whole batch, chain-loading the next one after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from akida_rt.driver import device_learning
from akida_rt.driver.bus import Bus
from akida_rt.driver.health import HealthNote
from akida_rt.driver.protocol import CommandChannel, Response

from akida_rt.engine.learning_rule import LearnedWeights
from akida_rt.errors import DeviceBusy, DeviceError, DeviceLost, DeviceResetError
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.hardware import DeviceSpec, spec_by_name
from akida_rt.mapping.mapper import Backend
from akida_rt.model import device_api
from akida_rt.model.sequence import Sequence as MappedSequence
from akida_rt.wire import device_protocol as dp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every wait, in seconds (simulated devices compute on the host CPU)."""

    command_s: float = 5.0  # identify, stats, power, set input, read outputs
    reset_s: float = 5.0
    load_s: float = 10.0  # plus load_per_mib_s per MiB of program
    load_per_mib_s: float = 5.0
    run_s: float = 10.0  # plus run_per_frame_s per frame
    run_per_frame_s: float = 2.0

    def scaled(self, factor: float) -> Timeouts:
        """Every bound times `factor` (e.g. shorter in tests, longer on a slow host)."""
        return Timeouts(*(getattr(self, f.name) * factor for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class Identity:
    """What IDENTIFY reports."""

    name: str
    version: str
    firmware: str
    serial: str
    nodes: int
    nps: int
    hrc: bool
    clock_hz: int
    mem_size: int
    np_input_bytes: int
    np_weight_bytes: int
    simulated: bool = False


@dataclass
class Counters:
    """Host-side counters of one device since it was opened."""

    loads: int = 0
    reloads_skipped: int = 0
    bytes_programmed: int = 0
    load_s: float = 0.0
    infer_s: float = 0.0
    frames: int = 0
    runs: int = 0
    synops: int = 0
    retries: int = 0
    resets: int = 0


@dataclass
class Soc:
    """System-on-chip settings (as in BrainChip's API: device.soc)."""

    power_measurement_enabled: bool = False


@dataclass
class DeviceStats:
    """READ_STATS from the device plus the host counters."""

    frames: int
    inference_clk: int
    program_clk: int
    synops: int
    dma_bytes: int
    loads: int
    energy_mj: float
    clock_hz: int
    host: Counters = field(default_factory=Counters)
    resident: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Device:
    """An Akida device (board or simulator) behind `bus`.

    Args:
        bus: the transport, already open.
        url: the device URL; `id` defaults to it.
        kind: "pcie", "usb" or "sim" (the transport; whether the chip is simulated is
            what it says in its identity, see `simulated`).
        timeouts: bounds on commands.
        retries: how often a timed-out bulk transfer is retried.
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
    ) -> None:
        self.bus = bus
        self.url = url or bus.url
        self.id = ident or self.url
        self.kind = kind
        self.timeouts = timeouts or Timeouts()
        self.retries = retries
        self.soc = Soc()
        self._window_frames = 0  # frames run since the last power_start
        self.counters = Counters()
        self._lock = threading.RLock()
        self._channel = CommandChannel(bus, self.url, retries)
        self._resident: str | None = None
        self._lost = False
        self._identity: Identity | None = None
        self._health = HealthNote(self.url)  # tells a device plugin about faults
        with self._guard():
            self._channel.wait_ready(self.timeouts.reset_s)
            self._identity = self._identify()

    # ------------------------------------------------------------ identity
    @property
    def identity(self) -> Identity:
        assert self._identity is not None
        return self._identity

    @property
    def simulated(self) -> bool:
        """True when the chip identifies itself as the firmware simulator, whatever the
        transport (a simulated board behind PCIe or USB is still simulated)."""
        return self.identity.simulated

    def now(self) -> float:
        """The clock calls are timed with (seconds): the host's monotonic clock on a board;
        on a chip that identifies as simulated, its modelled board time (REG_SIM_TIME), so
        fps and latency are what the board would show, not how fast this host simulates."""
        if not self.simulated:
            return time.perf_counter()
        lo = self._channel.read_reg(dp.REG_SIM_TIME_LO)
        hi = self._channel.read_reg(dp.REG_SIM_TIME_HI)
        return ((hi << 32) | lo) / 1e9

    @property
    def spec(self) -> DeviceSpec:
        """The NP mesh, from the description the device names."""
        return spec_by_name(self.identity.name)

    @property
    def version(self) -> str:
        return self.identity.version

    @property
    def serial(self) -> str:
        return self.identity.serial

    def describe(self) -> dict[str, Any]:
        """The fields `akida devices --json` lists."""
        ident = self.identity
        return {
            "id": self.id,
            "url": self.url,
            "kind": self.kind,
            "simulated": self.simulated,
            "version": ident.version,
            "name": ident.name,
            "serial": ident.serial,
            "nodes": ident.nodes,
            "nps": ident.nps,
            "firmware": ident.firmware,
        }

    def identify(self) -> Identity:
        """Ask the device who it is."""
        with self._guard():
            self._identity = self._identify()
            return self._identity

    def _identify(self) -> Identity:
        self._channel.check_boot()
        r = self._call(dp.Opcode.IDENTIFY, self.timeouts.command_s)
        f = dp.IDENTITY.unpack(r.payload[: dp.IDENTITY.size])
        name, version, firmware, serial = (dp.from_fixed(v) for v in f[:4])
        return Identity(
            name,
            version,
            firmware,
            serial,
            f[4],
            f[5],
            bool(f[6]),
            f[8],
            f[9],
            f[10],
            f[11],
            simulated=bool(f[7] & dp.IDENT_FLAG_SIMULATED),
        )

    # --------------------------------------------------------------- locks
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the device lock; translate losses and resets into device state."""
        with self._lock:
            if self._lost:
                raise DeviceLost(f"{self.url}: device was lost; rediscover it")
            try:
                if self._channel.boot_count != -1 and self._channel.check_boot():
                    log.warning("%s rebooted while idle; resident sequence dropped", self.url)
                    self._resident = None
                yield
            except DeviceLost:
                self._lost = True
                self._resident = None
                raise
            except DeviceResetError:
                self._resident = None
                self.counters.resets += 1
                raise

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
        """Hard reset (works even when the firmware hangs); the device is usable after."""
        with self._lock:
            if self._lost:
                raise DeviceLost(f"{self.url}: device was lost; rediscover it")
            self.bus.write32(dp.REG_RESET, dp.RESET_MAGIC)
            self._resident = None
            self.counters.resets += 1
            self._channel.wait_ready(self.timeouts.reset_s)
            self._channel.boot_count = -1
            self._identity = self._identify()
            log.info("%s reset", self.url)

    # ------------------------------------------------------------- commands
    def _call(self, opcode: dp.Opcode, timeout_s: float, **kw: int) -> Response:
        try:
            response = self._channel.call(opcode, timeout_s, **kw)
        except DeviceError as exc:  # timed out, failed, reset or gone: the board's fault
            if not isinstance(exc, DeviceBusy):
                self._health.fault(exc)
            raise
        self._health.ok()
        return response

    # The command layer for driver/device_learning.py (callers hold guard()).
    guard = _guard

    def command(self, opcode: dp.Opcode, **kw: int) -> Response:
        """One mailbox command; LEARN gets the RUN timeout for its frames."""
        t = self.timeouts
        frames = kw.get("arg0", 0) if opcode is dp.Opcode.LEARN else 0
        timeout = t.run_s + t.run_per_frame_s * frames if frames else t.command_s
        return self._call(opcode, timeout, **kw)

    def write_data(self, addr: int, data: bytes) -> None:
        self._write(addr, data)

    def read_data(self, addr: int, n: int) -> bytes:
        return self._read(addr, n)

    def mark_learning(self, digest: str) -> None:
        """The resident sequence `digest` starts learning: its weights in device memory
        are about to differ from the program's (no cached program matches it now)."""
        self._resident = device_learning.learned_token(digest)

    def adopt_learned(self, before: str, after: str) -> bool:
        """The resident sequence `before` learned in device memory and now equals the
        host's program of digest `after`: note that without sending it again. False (and
        nothing changes) when another sequence was loaded since."""
        with self._guard():
            if self._resident != device_learning.learned_token(before):
                return False
            self._resident = after
            return True

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

    def read_learned(self) -> LearnedWeights:
        """The learning layer's weights and plasticity in device memory."""
        return device_learning.read_learned(self)

    def write_learned(self, state: LearnedWeights) -> None:
        """Write the learning layer's weights and plasticity into device memory."""
        device_learning.write_learned(self, state)

    def _write(self, addr: int, data: bytes) -> None:
        self._channel.write(addr, data)

    def _read(self, addr: int, n: int) -> bytes:
        return self._channel.read(addr, n)

    @property
    def data_bytes(self) -> int:
        """Bytes of device memory for programs, inputs and outputs."""
        return self.identity.mem_size - (dp.DATA_BASE - dp.MEM_BASE)

    def load_sequence(self, program: bytes, digest: str | None = None) -> int:
        """Load a sequence program unless it is already resident; return program clocks.

        `digest` (hex SHA-256 of `program`) saves hashing when the caller has it.
        """
        digest = digest or hashlib.sha256(program).hexdigest()
        with self._guard():
            if self._resident == digest:
                self.counters.reloads_skipped += 1
                return 0
            if len(program) > self.data_bytes:
                raise DeviceError(
                    f"{self.url}: program of {len(program)} bytes exceeds device memory "
                    f"({self.data_bytes} bytes)"
                )
            start = self.now()
            self._resident = None
            self._write(dp.DATA_BASE, program)
            timeout = self.timeouts.load_s + self.timeouts.load_per_mib_s * len(program) / 2**20
            r = self._call(dp.Opcode.LOAD_SEQUENCE, timeout, addr0=dp.DATA_BASE, len0=len(program))
            self._resident = digest
            self.counters.loads += 1
            self.counters.bytes_programmed += len(program)
            self.counters.load_s += self.now() - start
            return r.value0

    @property
    def lost(self) -> bool:
        """True once the device vanished or was closed."""
        return self._lost

    @property
    def resident(self) -> str | None:
        """SHA-256 (hex) of the sequence program on the device, if known."""
        return self._resident

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, int]:
        """Run the resident sequence over `batch` (NHWC integers); (outputs, clocks).

        Outputs are float32 activations or float64 potentials, integer valued.
        """
        with self._guard():
            start = self.now()
            frames = batch.shape[0]
            if frames == 0:
                raise DeviceError(f"{self.url}: empty batch")
            fits_u8 = batch.dtype == np.uint8 or (
                batch.size and float(batch.min()) >= 0 and float(batch.max()) <= 255
            )
            dtype = dp.DType.UINT8 if fits_u8 else dp.DType.INT64
            x = batch.astype(np.uint8 if fits_u8 else "<i8", copy=False)
            in_frame = x[0].nbytes
            parts: list[np.ndarray] = []
            clk = 0
            step = self._chunk_frames(in_frame, frames)
            for i in range(0, frames, step):
                y, c = self._infer_chunk(x[i : i + step], dtype)
                parts.append(y)
                clk += c
            self.counters.frames += frames
            self.counters.runs += 1
            self.counters.infer_s += self.now() - start
            return (parts[0] if len(parts) == 1 else np.concatenate(parts)), clk

    def _chunk_frames(self, in_frame: int, frames: int) -> int:
        # Output frames are at most as large as 8 bytes per input byte plus a margin.
        per_frame = dp.align(in_frame) + dp.align(max(in_frame, 1) * 8 + 8192)
        return max(1, min(frames, self.data_bytes // per_frame))

    def _infer_chunk(self, x: np.ndarray, dtype: dp.DType) -> tuple[np.ndarray, int]:
        n = x.shape[0]
        data = x.tobytes()
        out_addr = dp.DATA_BASE + dp.align(len(data))
        out_cap = dp.MEM_BASE + self.identity.mem_size - out_addr
        self._write(dp.DATA_BASE, data)
        t = self.timeouts
        self._call(
            dp.Opcode.SET_INPUT, t.command_s, arg0=n, arg1=dtype, addr0=dp.DATA_BASE, len0=len(data)
        )
        run = self._call(
            dp.Opcode.RUN, t.run_s + t.run_per_frame_s * n, arg0=n, addr1=out_addr, len1=out_cap
        )
        desc = self._call(dp.Opcode.READ_OUTPUTS, t.command_s)
        addr, nbytes, frames, h, w, c, out_dtype = dp.OUTPUTS.unpack(
            desc.payload[: dp.OUTPUTS.size]
        )
        raw = self._read(addr, nbytes)
        if out_dtype == dp.DType.UINT8:
            y = np.frombuffer(raw, np.uint8).reshape(frames, h, w, c).astype(np.float32)
        else:
            y = np.frombuffer(raw, "<i8").reshape(frames, h, w, c).astype(np.float64)
        self.counters.synops += run.value1
        return y, run.value0

    # ------------------------------------------------------------ statistics
    def stats(self) -> DeviceStats:
        """Device counters since its last reset, with the host counters."""
        with self._guard():
            r = self._call(dp.Opcode.READ_STATS, self.timeouts.command_s)
            f = dp.STATS.unpack(r.payload[: dp.STATS.size])
            return DeviceStats(
                f[0], f[1], f[2], f[3], f[4], f[5], f[6] / 1e6, f[7],
                host=self._counters(), resident=self._resident,
            )  # fmt: skip

    def _counters(self) -> Counters:
        counters = Counters(**asdict(self.counters))
        counters.retries = self._channel.retried
        return counters

    def power_start(self) -> None:
        """Start a new power measurement window."""
        with self._guard():
            self._call(dp.Opcode.POWER_START, self.timeouts.command_s)
            self._window_frames = 0

    def power(self) -> dict[str, Any]:
        """Power of the current window: floor, avg/min/max/std (None if too short)."""
        with self._guard():
            r = self._call(dp.Opcode.POWER_READ, self.timeouts.command_s)
        floor, avg, mn, mx, std, samples, _chip_frames, energy_nj = dp.POWER.unpack(
            r.payload[: dp.POWER.size]
        )
        measured = samples >= 2 and not math.isnan(avg)
        return {
            "floor_mw": floor,
            "power_mw": {"avg": avg, "min": mn, "max": mx, "std": std} if measured else None,
            "samples": samples,
            # The frames run in the window: the chip counts a frame once per hardware
            # sequence it passes through; the host counts the calls' inputs.
            "frames": self._window_frames,
            "energy_mj": energy_nj / 1e6,
        }

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
            elapsed = 0.0  # host-visible time of the call: device steps + host steps
            synops_before = self.counters.synops
            for seq in sequences:
                if seq.backend is Backend.Software:
                    start = self.now()
                    engine = seq.engine()
                    y = engine.run(y)
                    if self.simulated:  # the modelled board's host runs it, not this one
                        kmacs = -(-engine.macs_per_sample * x.shape[0] // 1000)
                        self._channel.bus.write32(dp.REG_SIM_HOST_KMACS, min(kmacs, dp.ALL_ONES))
                    elapsed += self.now() - start
                    continue
                start = self.now()
                program_clk += self.load_sequence(seq.program, seq.program_hash)
                y, clk = self.infer(y)
                elapsed += self.now() - start
                inference_clk += clk
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
                # As a board measurement computes it: average power x wall time per frame.
                metrics["energy_mj_per_frame"] = (
                    p["power_mw"]["avg"] * elapsed / x.shape[0] if p["power_mw"] else None
                )
            return y, metrics

    def release(self, model: object) -> None:
        """A model was unmapped; its sequences may stay resident until replaced."""
        log.debug("%s: %s released", self.url, model)

    def close(self) -> None:
        with self._lock:
            self.bus.close()
            self._lost = True

    def __repr__(self) -> str:
        name = self._identity.name if self._identity else "?"
        return f"<Device {self.id} {name} kind={self.kind} simulated={self.simulated}>"


if TYPE_CHECKING:  # mypy checks that Device provides what the runtime uses from a device
    _satisfies: type[device_api.Device] = Device
