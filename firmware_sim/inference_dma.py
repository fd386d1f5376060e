"""The event and HRC DMA units of the simulated AKD1000: one inference per descriptor.

Event DMA (sparse inputs): word 1 input address, word 2 input size in words, word 3
output address, word 4 learning class[25:16] (label + 1, 0 for none). HRC DMA (dense
8-bit images): word 1 input address, word 2 row bytes[15:0] | rows[31:16], word 3 next
row offset[15:0] | row bytes ext[31:16], word 7 output address, word 8 learning
class[25:16]. The unit reads the input, computes with the program the mesh holds
(mesh_program.py), writes the output header (word 0 bits 27:0 = event words) and the
events from +0x20, and returns the job id (word 0 bits 31:16) for DESC_STATUS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from akida_rt.firmware_sim.dma_engine import Completion
from akida_rt.firmware_sim.event_words import decode_input_events, encode_output_events
from akida_rt.firmware_sim.mesh_program import MeshProgram, ProgramError

if TYPE_CHECKING:
    from akida_rt.firmware_sim.akd1000_chip import Akd1000Chip

log = logging.getLogger(__name__)

HEADER_BYTES = 0x20
MAX_EVENT_WORDS = (1 << 24) - 1


class InferenceDma:
    """Runs the descriptors of one input DMA ("event" or "hrc") on `chip`."""

    def __init__(self, kind: str, chip: Akd1000Chip, header_enabled: Callable[[], bool]) -> None:
        self.kind = kind
        self.chip = chip
        self._header_enabled = header_enabled
        self.jobs = 0
        self.events_in = 0
        self.events_out = 0

    def run(self, desc: np.ndarray) -> Completion | None:
        """One input descriptor (the DMA engine's handler)."""
        w = [int(v) for v in desc]
        job_id = w[0] >> 16
        if self.kind == "hrc":
            in_addr, out_addr, label_field = w[1], w[7], w[8]
        else:
            in_addr, out_addr, label_field = w[1], w[3], w[4]
        learn_class = (label_field >> 16) & 0x3FF
        done = Completion(job_id=job_id, input_addr=in_addr, output_addr=out_addr)
        try:
            image = (
                ((w[2] >> 16), (w[2] & 0xFFFF) | ((w[3] >> 16) << 16))
                if self.kind == "hrc"
                else None
            )
            program = self.chip.mesh_program(image)
            x, in_words = self._input(program, w, in_addr)
            done.input_words = in_words
            words, clk = self._infer(program, x, learn_class)
        except ProgramError as exc:
            log.error("%s DMA: job %d: %s; no output events", self.kind, job_id, exc)
            words, clk = np.zeros(0, np.uint32), 0
        if not self._emit(out_addr, words):
            log.error(
                "%s DMA: job %d: output %#x+%d words is not in DDR; the engine stops",
                self.kind, job_id, out_addr, words.size,
            )  # fmt: skip
            return None
        done.output_words, done.clk = int(words.size), clk
        self.jobs += 1
        return done

    # ----------------------------------------------------------------- input
    def _input(self, program: MeshProgram, w: list[int], addr: int) -> tuple[np.ndarray, int]:
        want = "hrc" if program.input_kind == "dense" else "event"
        if want != self.kind:
            raise ProgramError(
                f"the program takes {'dense images (HRC DMA)' if want == 'hrc' else 'events (event DMA)'}, "
                f"the host used the {self.kind} DMA"
            )
        h, wd, c = program.input_shape
        if self.kind == "hrc":
            row_bytes = (w[2] & 0xFFFF) | ((w[3] >> 16) << 16)
            rows = w[2] >> 16
            stride = (w[3] & 0xFFFF) or row_bytes
            if row_bytes == 0 or rows == 0 or row_bytes % c or rows > h or row_bytes // c > wd:
                raise ProgramError(
                    f"HRC descriptor window {rows} rows x {row_bytes} bytes does not fit the "
                    f"program's {h}x{wd}x{c} input"
                )
            raw = self.chip.ddr_read(addr, stride * (rows - 1) + row_bytes)
            if raw is None:
                raise ProgramError(f"input image at {addr:#x} is not in DDR")
            img = np.zeros((h, wd, c), np.uint8)
            buf = np.frombuffer(raw, np.uint8)
            for r in range(rows):
                img[r, : row_bytes // c] = buf[r * stride : r * stride + row_bytes].reshape(-1, c)
            return img[None], (rows * row_bytes + 3) // 4
        count = w[2] & 0xFFFFFF
        raw = self.chip.ddr_read(addr, 4 * count)
        if raw is None:
            raise ProgramError(f"input events at {addr:#x}+{count} words are not in DDR")
        words = np.frombuffer(raw, "<u4")
        # FNP-format events carry the polarity bit (word 2 bit 31); CNP events never do.
        kind = "fnp" if words.size > 1 and (words[1::2] >> 31).any() else "cnp"
        x, used = decode_input_events(words, kind, (h, wd, c))
        self.events_in += used
        return x[None], count

    # --------------------------------------------------------------- compute
    def _infer(
        self, program: MeshProgram, x: np.ndarray, learn_class: int
    ) -> tuple[np.ndarray, int]:
        if learn_class and program.learning is not None:
            y, work = self.chip.learn_step(program, x, learn_class - 1)
        else:
            if learn_class:
                log.warning(
                    "%s DMA: labelled descriptor but the learning layer is not in learning "
                    "mode: inference only",
                    self.kind,
                )
            y, work = program.run(x)
        words = encode_output_events(y[0], program.output_kind, program.activation)
        if words.size > MAX_EVENT_WORDS:
            raise ProgramError(f"{words.size} output words exceed the header's 28-bit count")
        self.events_out += words.size // 2
        self.chip.account_inference(work)
        return words, work.clk

    def _emit(self, out_addr: int, words: np.ndarray) -> bool:
        body = words.astype("<u4").tobytes()
        if self._header_enabled():
            header = np.zeros(HEADER_BYTES // 4, "<u4")
            header[0] = words.size & 0x0FFFFFFF
            body = header.tobytes() + body
        return self.chip.ddr_write(out_addr, body)
