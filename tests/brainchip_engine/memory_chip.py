"""A memory-backed stand-in for an AKD1000: just enough chip for the engine to finish.

Memory semantics everywhere, plus three answers: a config DMA that is set running
reports completion (BUF_MON_STATUS bit 16), a status-clear bit that clears itself, and
an input DMA that completes each enqueued job with an empty output (no events).
It computes nothing; it proves the harness and records what the engine asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP = 0xFCC00000
CONFIG_DMA = TOP + 0x30000
EVENT_DMA = TOP + 0x20000
HRC_DMA = TOP + 0x28000
CTRL, DESC_CONT, CONT_ADDR, CONT_SIZE, DESC_STATUS = 0x0, 0x4, 0x8, 0xC, 0x10
BUF_MON_CTRL, BUF_MON_STATUS = 0x24, 0x28
RUN = 1 << 8
SOFT_RESET = 1 << 9
STATUS_CLEAR = 1 << 0
OB_DONE = 1 << 16  # "outbound buffer end" interrupt status
PAGE = 4096


@dataclass(frozen=True)
class ConfigJob:
    """One config-DMA descriptor the engine ran (addresses are chip addresses)."""

    direction: int  # 1: write into the NPs, 0: read back from them
    source: int
    words: int
    target: int
    data: bytes  # what the source held when the descriptor ran (scratch is reused)


@dataclass(frozen=True)
class InputJob:
    """One inference descriptor the engine enqueued on an input DMA."""

    dma: str  # "hrc" (dense images) or "event" (sparse)
    job_id: int
    source: int
    target: int
    label_field: int
    words: tuple[int, ...]


class MemoryChip:
    """Byte-addressed memory answering the engine's reads and writes."""

    def __init__(self, ip_version: int = 0) -> None:
        self.pages: dict[int, bytearray] = {}
        self.config_jobs: list[ConfigJob] = []
        self.input_jobs: list[InputJob] = []
        self._last_desc = {HRC_DMA: 0, EVENT_DMA: 0}
        self.write32(TOP, ip_version)

    # -- raw memory -------------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            page, off = divmod(addr, PAGE)
            take = min(n, PAGE - off)
            out += self.pages.get(page, bytes(PAGE))[off : off + take]
            addr, n = addr + take, n - take
        return bytes(out)

    def _store(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            page, off = divmod(addr + pos, PAGE)
            take = min(len(data) - pos, PAGE - off)
            self.pages.setdefault(page, bytearray(PAGE))[off : off + take] = data[pos : pos + take]
            pos += take

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write32(self, addr: int, value: int) -> None:
        self._store(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    # -- the chip's answers -----------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        self._store(addr, bytes(data))
        if len(data) != 4:
            return
        value = int.from_bytes(data, "little")
        for base in (CONFIG_DMA, HRC_DMA, EVENT_DMA):
            reg = addr - base
            if reg == BUF_MON_CTRL and value & STATUS_CLEAR:
                self.write32(base + BUF_MON_STATUS, 0)
                self.write32(addr, value & ~STATUS_CLEAR)
            elif reg == CTRL and value & SOFT_RESET and base in self._last_desc:
                self._last_desc[base] = 0
            elif base == CONFIG_DMA and reg == CTRL and value & RUN:
                self._run_config()
            elif base != CONFIG_DMA and reg == DESC_CONT:
                self._run_inputs(base)

    def _descriptor(self, base: int, index: int) -> tuple[int, ...]:
        unit = (self.read32(base + CONT_SIZE) & 0x1F) * 32
        raw = self.read(self.read32(base + CONT_ADDR) + index * unit, unit)
        return tuple(int.from_bytes(raw[i : i + 4], "little") for i in range(0, unit, 4))

    def _run_config(self) -> None:
        last = (self.read32(CONFIG_DMA + DESC_CONT) >> 16) & 0xFF
        w = self._descriptor(CONFIG_DMA, last)
        words = w[2] & 0xFFFF
        direction = w[0] >> 28
        data = self.read(w[1], words * 4) if direction == 1 else b""
        self.config_jobs.append(ConfigJob(direction, w[1], words, w[3], data))
        self.write32(
            CONFIG_DMA + BUF_MON_STATUS, self.read32(CONFIG_DMA + BUF_MON_STATUS) | OB_DONE
        )

    def _run_inputs(self, base: int) -> None:
        size = ((self.read32(base + CONT_SIZE) >> 16) & 0xFF) + 1
        last = (self.read32(base + DESC_CONT) >> 16) & 0xFF
        index = self._last_desc[base]
        while index != last:
            index = (index + 1) % size
            w = self._descriptor(base, index)
            hrc = base == HRC_DMA
            target, label = (w[7], w[8]) if hrc else (w[3], w[4])
            job = InputJob("hrc" if hrc else "event", w[0] >> 16, w[1], target, label, w)
            self.input_jobs.append(job)
            # An output header announcing zero event words, then the job id.
            self._store(target, bytes(32))
            status = self.read32(base + DESC_STATUS) & 0xFFFF
            self.write32(base + DESC_STATUS, status | (job.job_id << 16))
            self.write32(base + BUF_MON_STATUS, self.read32(base + BUF_MON_STATUS) | OB_DONE)
        self._last_desc[base] = index

    def packets(self, job: ConfigJob) -> list[tuple[int, int, int, int, int, int]]:
        """Split a config job's data into packets: (col, row, np_mask, type, start, length).

        Raises ValueError when the data does not parse into whole packets.
        """
        raw = job.data
        words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]
        out, pos = [], 0
        while pos < len(words):
            if pos + 2 > len(words):
                raise ValueError(f"packet header cut at word {pos} of {len(words)}")
            w1, w2 = words[pos], words[pos + 1]
            length = (w2 >> 16) & 0x3FFF
            out.append(
                (w1 >> 24, (w1 >> 16) & 0xFF, (w1 >> 8) & 0xF, w1 & 0xF, w2 & 0xFFFF, length)
            )
            pos += 2 + length
        if pos != len(words):
            raise ValueError(f"last packet runs {pos - len(words)} words past the track")
        return out
