"""The config DMA unit of the simulated AKD1000: tracks of config packets into NP memories.

A write descriptor points at a track in DDR (word 1 address, word 2 size in words); the
unit parses it into packets (word 1: column[31:24], row[23:16], NP mask[11:8], HRC
enable[7:6], type id[3:0]; word 2: XL[31], length[29:16] (x16 when XL), start[15:0];
then the data) and stores each in the mesh. A read descriptor points at one 2-word packet
header; the unit writes the words it names, raw, at the output address (word 3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from akida_rt.firmware_sim.clock_model import ClockModel
from akida_rt.firmware_sim.dma_engine import Completion
from akida_rt.firmware_sim.np_mesh import MeshError, NpMesh

from akida_rt.akd1000 import packets
from akida_rt.akd1000.np_state import MeshState
from akida_rt.errors import AkidaError

log = logging.getLogger(__name__)

DIRECTION_WRITE = 1
HEADER_WORDS = packets.HEADER_WORDS


def _where(head: packets.ConfigPacket) -> str:
    target = "HRC" if head.hrc else f"node ({head.col}, {head.row}) mask {head.np_mask:#x}"
    return f"{target} type {head.type_id} start {head.start} length {head.words}"


class ConfigDma:
    """Runs config descriptors against DDR and the mesh.

    Args:
        mesh: the NP memories.
        read_ddr: (addr, n) -> bytes, or None outside DDR.
        write_ddr: (addr, data) -> False outside DDR.
        clocks: turns bytes moved into programming clocks.
    """

    def __init__(
        self,
        mesh: NpMesh,
        state: Callable[[], MeshState],
        read_ddr: Callable[[int, int], bytes | None],
        write_ddr: Callable[[int, bytes], bool],
        clocks: ClockModel,
    ) -> None:
        self.mesh = mesh
        self._state = state
        self._read = read_ddr
        self._write = write_ddr
        self.clocks = clocks
        self.bytes_in = 0
        self.tracks = 0
        self.bad_packets = 0

    def run(self, desc: np.ndarray) -> Completion | None:
        """One config descriptor (the DMA engine's handler)."""
        direction = (int(desc[0]) >> 28) & 0xF
        in_addr, size, out_addr = int(desc[1]), int(desc[2]) & 0xFFFF, int(desc[3])
        raw = self._read(in_addr, 4 * size)
        if raw is None or size == 0:
            log.error(
                "config DMA: descriptor input %#x+%d words is not in DDR; the engine stops",
                in_addr,
                size,
            )
            return None
        words = np.frombuffer(raw, "<u4").astype(np.uint32)
        if direction == DIRECTION_WRITE:
            return self._write_track(in_addr, words)
        return self._read_back(in_addr, words, out_addr)

    def _write_track(self, addr: int, words: np.ndarray) -> Completion:
        nps_before = len(self.mesh.nps)
        i = 0
        while i < words.size:
            if i + HEADER_WORDS > words.size:
                self._bad(addr, i, "the track ends inside a packet header")
                break
            head = packets.parse_header(int(words[i]), int(words[i + 1]))
            end = i + HEADER_WORDS + head.words
            if end > words.size:
                self._bad(addr, i, f"{_where(head)} runs {end - words.size} words past the track")
                break
            data = words[i + HEADER_WORDS : end]
            try:
                self.mesh.write(
                    head.col, head.row, head.np_mask, 2 * head.hrc, head.type_id, head.start, data
                )
                self._state().write(
                    head.col, head.row, head.np_mask, head.hrc, head.type_id, head.start, data
                )
            except (MeshError, AkidaError) as exc:
                self._bad(addr, i, str(exc))
            i = end
        self.bytes_in += 4 * words.size
        self.tracks += 1
        new_nps = len(self.mesh.nps) - nps_before
        clk = self.clocks.program_clk(4 * words.size, new_nps)
        return Completion(input_addr=addr, input_words=words.size, clk=clk)

    def _read_back(self, addr: int, header: np.ndarray, out_addr: int) -> Completion | None:
        if header.size < HEADER_WORDS:
            self._bad(addr, 0, "a read descriptor needs a 2-word packet header")
            return Completion(input_addr=addr)
        head = packets.parse_header(int(header[0]), int(header[1]))
        try:
            data = self.mesh.read(
                head.col, head.row, head.np_mask, 2 * head.hrc, head.type_id, head.start, head.words
            )
        except MeshError as exc:
            self._bad(addr, 0, f"read-back: {exc}")
            return Completion(input_addr=addr)
        if not self._write(out_addr, data.astype("<u4").tobytes()):
            log.error(
                "config DMA: read-back output %#x+%d words is not in DDR; the engine stops",
                out_addr,
                data.size,
            )
            return None
        clk = self.clocks.program_clk(4 * data.size, 0)
        return Completion(input_addr=addr, output_addr=out_addr, output_words=data.size, clk=clk)

    def _bad(self, addr: int, word: int, why: str) -> None:
        self.bad_packets += 1
        log.error("config DMA: track at %#x, word %d: %s; packet dropped", addr, word, why)
