"""A bus that counts (and may record) every access per phase of the host protocol, so
the traffic of programming, batch set-up and inference can be compared with BrainChip's
Akida Engine for the same model, and can drive the timing and power models."""

from __future__ import annotations

from dataclasses import dataclass

from akida_rt.driver.bus import Bus


@dataclass
class PhaseCounts:
    reads: int = 0
    writes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def accesses(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class Access:
    """One access; `value` is the word moved by accesses of at most 4 bytes."""

    phase: str
    op: str  # "R" or "W"
    addr: int
    size: int
    value: int | None


class AccessLog(Bus):
    """Wraps `bus`; `phase` names the protocol step the next accesses belong to."""

    def __init__(self, bus: Bus, trace: bool = False) -> None:
        self.inner = bus
        self.url = getattr(bus, "url", "")
        self.phase = "identify"
        self.counts: dict[str, PhaseCounts] = {}
        self.trace: list[Access] | None = [] if trace else None

    def _note(self, op: str, addr: int, data: bytes) -> None:
        c = self.counts.setdefault(self.phase, PhaseCounts())
        if op == "R":
            c.reads += 1
            c.bytes_read += len(data)
        else:
            c.writes += 1
            c.bytes_written += len(data)
        if self.trace is not None:
            value = int.from_bytes(data, "little") if len(data) <= 4 else None
            self.trace.append(Access(self.phase, op, addr, len(data), value))

    def read32(self, addr: int) -> int:
        value = self.inner.read32(addr)
        self._note("R", addr, value.to_bytes(4, "little"))
        return value

    def write32(self, addr: int, value: int) -> None:
        self.inner.write32(addr, value)
        self._note("W", addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def read(self, addr: int, n: int) -> bytes:
        data = self.inner.read(addr, n) if n else b""
        self._note("R", addr, data)
        return data

    def write(self, addr: int, data: bytes) -> None:
        self.inner.write(addr, data)
        self._note("W", addr, bytes(data))

    def close(self) -> None:
        self.inner.close()
