"""Runs BrainChip's Akida Engine against any chip object with read(addr, n)/write(addr, data).

The engine runs in a child process (bus_bridge.cpp); every access it makes comes here,
is answered by the chip object, and is counted per phase (program, batch, inference).
"""

from __future__ import annotations

import logging
import os
import select
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tests.brainchip_engine.build import EngineUnavailable, bridge_path

log = logging.getLogger(__name__)

__all__ = [
    "Access",
    "EngineError",
    "EngineRun",
    "EngineSession",
    "EngineUnavailable",
    "PhaseCounts",
    "ProgramSummary",
    "chain",
    "forward_mapped",
    "run_engine",
    "skip_reason",
]

# The engine identifies an AKD1000 from this text when IP_VERSION reads 0.
DEFAULT_DESC = "akida_rt bus bridge/NSoC_v2"
PHASES = {
    b"I": "identify",
    b"P": "program",
    b"B": "batch",
    b"F": "inference",
    b"T": "inference",
    b"L": "learning",
    b"M": "learning",
    b"U": "learning",
}


class ChipBus(Protocol):
    """What the harness needs of a chip: byte reads and writes at physical addresses."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class EngineError(RuntimeError):
    """BrainChip's engine panicked (its own message), or the bridge process failed."""


@dataclass
class PhaseCounts:
    """Accesses the engine made in one phase."""

    reads: int = 0
    writes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def accesses(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class Access:
    """One engine access; `value` is the 32-bit word for accesses of at most 4 bytes."""

    phase: str
    op: str  # "R" or "W"
    addr: int
    size: int
    value: int | None


@dataclass(frozen=True)
class ProgramSummary:
    """What the engine's ProgramInfo says about a program it accepted."""

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    input_dense: bool
    output_dense: bool
    activation: bool
    can_learn: bool
    input_signed: bool
    input_bits: int
    output_bits: int
    passes: int
    learn_mem_words: int


def skip_reason() -> str | None:
    """Why the engine cannot be built here (None when it can; builds it if needed)."""
    try:
        bridge_path()
    except EngineUnavailable as exc:
        return str(exc)
    return None


class EngineSession:
    """One BrainChip engine process driving `bus`; use as a context manager.

    Args:
        bus: the chip, answering read(addr, n) and write(addr, data).
        desc: the driver description the engine reads when IP_VERSION is 0.
        trace: keep every access in `self.trace`.
        timeout: seconds to wait for the engine between two messages.
    """

    def __init__(
        self, bus: ChipBus, desc: str = DEFAULT_DESC, trace: bool = False, timeout: float = 60
    ) -> None:
        self.bus = bus
        self.counts: dict[str, PhaseCounts] = {}
        self.trace: list[Access] | None = [] if trace else None
        self._timeout = timeout
        self._buf = bytearray()
        self._proc = subprocess.Popen(
            [str(bridge_path())], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        try:
            self.version = tuple(self._call(b"I", desc.encode()))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask the engine to quit; kill it if it does not."""
        if self._proc.poll() is None:
            try:
                os.write(self._to, b"Q" + struct.pack("<I", 0))
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()

    # -- the engine's API -------------------------------------------------------------
    def program(self, program: bytes) -> ProgramSummary:
        """HardwareDevice::program with a program binary."""
        raw = self._call(b"P", bytes(program))
        ints = struct.unpack_from("<6I", raw)
        flags = raw[24:32]
        passes, words = struct.unpack_from("<2I", raw, 32)
        return ProgramSummary(
            input_shape=(ints[0], ints[1], ints[2]),
            output_shape=(ints[3], ints[4], ints[5]),
            input_dense=bool(flags[0]),
            output_dense=bool(flags[1]),
            activation=bool(flags[2]),
            can_learn=bool(flags[3]),
            input_signed=bool(flags[4]),
            input_bits=flags[5],
            output_bits=flags[6],
            passes=passes,
            learn_mem_words=words,
        )

    def set_batch_size(self, n: int, allocate_inputs: bool = True) -> int:
        """HardwareDevice::set_batch_size; returns the effective batch size."""
        raw = self._call(b"B", struct.pack("<IB", n, allocate_inputs))
        return int(struct.unpack("<I", raw)[0])

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """HardwareDevice::forward on (N, h, w, c) uint8/int8 inputs; int32 outputs."""
        return _decode_outputs(self._call(b"F", _encode_inputs(inputs)))

    def fit(self, inputs: np.ndarray, labels: Sequence[int]) -> np.ndarray:
        """HardwareDevice::fit (learning must be enabled)."""
        labels = [int(x) for x in labels]
        tail = struct.pack(f"<I{len(labels)}i", len(labels), *labels)
        return _decode_outputs(self._call(b"T", _encode_inputs(inputs) + tail))

    def toggle_learn(self, enable: bool) -> None:
        """HardwareDevice::toggle_learn."""
        self._call(b"L", bytes([enable]))

    def learn_mem(self) -> np.ndarray:
        """HardwareDevice::learn_mem: the learning layer's weights read back (uint32)."""
        return np.frombuffer(self._call(b"M", b""), dtype="<u4").copy()

    def update_learn_mem(self, words: np.ndarray) -> None:
        """HardwareDevice::update_learn_mem."""
        self._call(b"U", np.asarray(words, dtype="<u4").tobytes())

    # -- the bridge protocol ----------------------------------------------------------
    def _call(self, op: bytes, payload: bytes) -> bytes:
        if self._proc.poll() is not None:
            raise EngineError(f"the engine process has exited ({self._proc.returncode})")
        phase = PHASES[op]
        counts = self.counts.setdefault(phase, PhaseCounts())
        try:
            self._send(op + struct.pack("<I", len(payload)) + payload)
            while True:
                kind = self._recv(1)
                if kind == b"R":
                    addr, n = struct.unpack("<II", self._recv(8))
                    data = bytes(self.bus.read(addr, n))
                    if len(data) != n:
                        raise EngineError(
                            f"bus read at {addr:#x} returned {len(data)} of {n} bytes"
                        )
                    counts.reads += 1
                    counts.bytes_read += n
                    self._note(phase, "R", addr, data)
                    self._send(data)
                elif kind == b"W":
                    addr, n = struct.unpack("<II", self._recv(8))
                    data = self._recv(n)
                    counts.writes += 1
                    counts.bytes_written += n
                    self._note(phase, "W", addr, data)
                    self.bus.write(addr, data)
                elif kind in (b"D", b"E"):
                    (n,) = struct.unpack("<I", self._recv(4))
                    body = self._recv(n)
                    if kind == b"E":
                        raise EngineError(body.decode(errors="replace"))
                    return body
                else:
                    raise EngineError(f"bus bridge sent an unknown frame {kind!r}")
        except EngineError:
            raise
        except BaseException:
            # The chip (or the pipe) failed mid-command: the engine waits for an answer
            # that will not come, so it cannot be reused.
            self._proc.kill()
            self._proc.wait()
            raise

    def _note(self, phase: str, op: str, addr: int, data: bytes) -> None:
        if self.trace is not None:
            value = int.from_bytes(data, "little") if len(data) <= 4 else None
            self.trace.append(Access(phase, op, addr, len(data), value))

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._to, view) :]

    def _recv(self, n: int) -> bytes:
        while len(self._buf) < n:
            ready, _, _ = select.select([self._from], [], [], self._timeout)
            if not ready:
                self._proc.kill()
                self._proc.wait()
                raise EngineError(f"the engine sent nothing for {self._timeout} s")
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                self._proc.wait()
                raise EngineError(f"the engine process died (exit {self._proc.returncode})")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def _encode_inputs(inputs: np.ndarray) -> bytes:
    x = np.asarray(inputs)
    if x.ndim != 4:
        raise ValueError(f"inputs must be (N, h, w, c), got shape {x.shape}")
    if x.dtype not in (np.uint8, np.int8):
        raise ValueError(f"inputs must be uint8 or int8, got {x.dtype}")
    n, h, w, c = x.shape
    head = struct.pack("<IBIII", n, int(x.dtype == np.int8), h, w, c)
    return head + np.ascontiguousarray(x).tobytes()


def _decode_outputs(raw: bytes) -> np.ndarray:
    (count,) = struct.unpack_from("<I", raw)
    pos, outs = 4, []
    for _ in range(count):
        h, w, c = struct.unpack_from("<3I", raw, pos)
        pos += 12
        outs.append(np.frombuffer(raw, dtype="<i4", count=h * w * c, offset=pos).reshape(h, w, c))
        pos += 4 * h * w * c
    return np.stack(outs) if outs else np.zeros((0, 0, 0, 0), np.int32)


@dataclass
class EngineRun:
    """Outputs of the last sequence, the program summaries and the access counts."""

    outputs: np.ndarray
    programs: list[ProgramSummary]
    counts: dict[str, PhaseCounts]
    trace: list[Access] | None = field(default=None)


def run_engine(
    bus: ChipBus,
    programs: Sequence[bytes],
    inputs: np.ndarray,
    batch_size: int = 16,
    trace: bool = False,
    **session: Any,
) -> EngineRun:
    """Program each sequence in turn and forward the previous one's outputs through it.

    Several programs are chain-loaded as the engine's users do on AKD1000 (no
    multipass): outputs of sequence i (activations, unsigned) feed sequence i + 1.
    """
    with EngineSession(bus, trace=trace, **session) as engine:
        summaries, x = [], np.asarray(inputs)
        for blob in programs:
            summary = engine.program(blob)
            summaries.append(summary)
            engine.set_batch_size(batch_size)
            x = engine.forward(x if x.dtype in (np.uint8, np.int8) else x.astype(np.uint8))
        return EngineRun(x, summaries, engine.counts, engine.trace)


class Host(Protocol):
    """What chain() needs of a host: BrainChip's engine (EngineSession) or our driver's."""

    counts: Any

    def program(self, program: bytes) -> Any: ...

    def set_batch_size(self, n: int, allocate_inputs: bool = True) -> int: ...

    def forward(self, inputs: np.ndarray) -> np.ndarray: ...


def chain(model: Any, inputs: np.ndarray, host: Host, batch_size: int = 16) -> np.ndarray:
    """An akida model mapped on akida.AKD1000(): its hardware sequences on `host` (each
    program chain-loaded in turn), its software ones (layers the chip cannot hold) on
    akida_rt's integer engine, as a host does with a split model."""
    from akida_rt.tools.metatf import import_model

    from akida_rt.engine.integer import Engine

    ours, x = None, np.asarray(inputs)
    for seq in model.sequences:
        if str(seq.backend).endswith("Hardware"):
            host.program(seq.program)
            host.set_batch_size(batch_size)
            x = np.asarray(host.forward(x.astype(np.uint8))).reshape(
                len(x), *map(int, seq.passes[-1].layers[-1].output_dims)
            )
        else:
            ours = ours or import_model(model)
            by_name = {layer.name: layer for layer in ours.layers}
            names = [layer.name for p in seq.passes for layer in p.layers]
            x = Engine([by_name[n] for n in names]).run(x.astype(np.float32))
    return x


def forward_mapped(
    model: Any, inputs: np.ndarray, bus: ChipBus, batch_size: int = 16, **session: Any
) -> EngineRun:
    """chain() with BrainChip's engine driving `bus`."""
    with EngineSession(bus, **session) as engine:
        x = chain(model, inputs, engine, batch_size)
        return EngineRun(x, [], engine.counts, engine.trace)


def save_trace(path: Path, trace: Sequence[Access]) -> None:
    """Write a trace as text lines: phase, R/W, address, size, value."""
    lines = [
        f"{a.phase} {a.op} {a.addr:#010x} {a.size}" + ("" if a.value is None else f" {a.value:#x}")
        for a in trace
    ]
    path.write_text("\n".join(lines) + "\n")
