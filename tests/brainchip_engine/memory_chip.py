"""A memory-backed stand-in for an AKD1000: just enough chip for the engine to finish.

Memory semantics everywhere, plus four answers: a config DMA that is set running
reports completion (BUF_MON_STATUS bit 16), keeps the packets it wrote per NP and
answers config reads from them, a status-clear bit clears itself, and an input DMA
completes each enqueued job with an empty output (no events).
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
class Packet:
    """A config-DMA packet header: where its words go and how many there are."""

    key: tuple[int, int, int, int, int]  # col, row, NP mask, HRC enable, type id
    start: int
    length: int

    @property
    def kind(self) -> int:
        """Type id: 8 registers, 0 filter SRAM, 4 threshold SRAM, 6 FNP weights."""
        return self.key[4]


@dataclass(frozen=True)
class InputJob:
    """One inference descriptor the engine enqueued on an input DMA."""

    dma: str  # "hrc" (dense images) or "event" (sparse)
    job_id: int
    source: int
    target: int
    label_field: int
    words: tuple[int, ...]
    data: bytes  # the input as the chip read it (input slots are reused)


class MemoryChip:
    """Byte-addressed memory answering the engine's reads and writes."""

    def __init__(self, ip_version: int = 0) -> None:
        self.pages: dict[int, bytearray] = {}
        self.config_jobs: list[ConfigJob] = []
        self.input_jobs: list[InputJob] = []
        self._last_desc = {HRC_DMA: 0, EVENT_DMA: 0, CONFIG_DMA: 0}
        # (col, row, np mask, hrc enable, type) -> words written there by config packets
        self.np_memory: dict[tuple[int, int, int, int, int], dict[int, int]] = {}
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
            elif reg == CTRL and value & SOFT_RESET:
                self.write32(addr, value & ~SOFT_RESET)  # self-clearing
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
        job = ConfigJob(w[0] >> 28, w[1], words, w[3], self.read(w[1], words * 4))
        self.config_jobs.append(job)
        for header, payload in self._split(job.data):
            where = self.np_memory.setdefault(header.key, {})
            if job.direction == 1:
                where.update(enumerate(payload, start=header.start))
            else:  # a read: the raw words, no header, at the descriptor's target
                got = [where.get(header.start + i, 0) for i in range(header.length)]
                self._store(job.target, b"".join(v.to_bytes(4, "little") for v in got))
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
            # HRC: row bytes x rows (word 2); event DMA: 32-bit words (word 2, 23:0).
            size = (w[2] & 0xFFFF) * (w[2] >> 16) if hrc else (w[2] & 0xFFFFFF) * 4
            data = self.read(w[1], size)
            job = InputJob("hrc" if hrc else "event", w[0] >> 16, w[1], target, label, w, data)
            self.input_jobs.append(job)
            # An output header announcing zero event words, then the job id.
            self._store(target, bytes(32))
            status = self.read32(base + DESC_STATUS) & 0xFFFF
            self.write32(base + DESC_STATUS, status | (job.job_id << 16))
            self.write32(base + BUF_MON_STATUS, self.read32(base + BUF_MON_STATUS) | OB_DONE)
        self._last_desc[base] = index

    @staticmethod
    def _split(raw: bytes) -> list[tuple[Packet, list[int]]]:
        """A config job's packets with their data words (a read carries a header only).

        Raises ValueError when a written track does not parse into whole packets.
        """
        words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]
        out, pos = [], 0
        while pos < len(words):
            if pos + 2 > len(words):
                raise ValueError(f"packet header cut at word {pos} of {len(words)}")
            w1, w2 = words[pos], words[pos + 1]
            length = ((w2 >> 16) & 0x3FFF) * (16 if w2 >> 31 else 1)
            key = (w1 >> 24, (w1 >> 16) & 0xFF, (w1 >> 8) & 0xF, (w1 >> 6) & 0x3, w1 & 0xF)
            out.append((Packet(key, w2 & 0xFFFF, length), words[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        if len(words) > 2 and pos != len(words):
            raise ValueError(f"last packet runs {pos - len(words)} words past the track")
        return out

    def packets(self, job: ConfigJob) -> list[Packet]:
        """The packets of a config job, in order."""
        return [header for header, _ in self._split(job.data)]
