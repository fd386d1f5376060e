"""The firmware command loop of the simulated AKD1000: one mailbox command at a time.

Reads a Command from the mailbox, executes it on the NP mesh, and writes a Response
(with an error message as payload on failure). Layouts: akida_rt.wire.device_protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from akida_rt.firmware_sim.clock_model import ClockModel
from akida_rt.firmware_sim.learning_unit import LearningUnit
from akida_rt.firmware_sim.mesh import NpMesh, Work
from akida_rt.firmware_sim.power_model import PowerModel, PowerSampler

from akida_rt.errors import CommandError
from akida_rt.wire import device_protocol as dp

if TYPE_CHECKING:
    from akida_rt.firmware_sim.chip import SimChip

log = logging.getLogger(__name__)


@dataclass
class _Input:
    addr: int
    frames: int
    dtype: dp.DType


@dataclass
class _Output:
    addr: int
    nbytes: int
    frames: int
    shape: tuple[int, int, int]
    dtype: dp.DType


class Firmware:
    """Executes mailbox commands against the chip's memory and NP mesh."""

    def __init__(self, chip: SimChip) -> None:
        self.chip = chip
        self.clocks = ClockModel()
        self.power = PowerSampler(
            PowerModel.for_serial(chip.serial), self.clocks.effective_clock_hz
        )
        self.mesh = NpMesh(chip.spec, self.clocks)
        self.learning = LearningUnit(self)
        self.dma_bytes = 0
        self.reboot()

    def reboot(self) -> None:
        """Power-on state: nothing loaded, counters cleared."""
        self.mesh.unload()
        self.learning.clear()
        self.total_inference_clk = 0
        self.total_program_clk = 0
        self.frames = 0
        self.synops = 0
        self.loads = 0
        self.dma_bytes = 0
        self._input: _Input | None = None
        self._output: _Output | None = None
        self.power.restart()

    # ------------------------------------------------------------------ dispatch
    def execute(self, tag: int) -> tuple[dp.Status, dp.ErrorCode]:
        """Run the command in the mailbox; write its response; return (status, error)."""
        raw = self.chip.mem_read(dp.MAILBOX_CMD, dp.COMMAND.size)
        opcode, cmd_tag, arg0, arg1, addr0, len0, addr1, len1 = dp.COMMAND.unpack(raw)
        payload, v0, v1 = b"", 0, 0
        status, error = dp.Status.DONE, dp.ErrorCode.OK
        try:
            if cmd_tag != tag:
                raise CommandError(
                    dp.ErrorCode.BAD_COMMAND, f"mailbox tag {cmd_tag} != doorbell {tag}"
                )
            handler = self._handlers().get(opcode)
            if handler is None:
                raise CommandError(dp.ErrorCode.BAD_COMMAND, f"unknown opcode {opcode}")
            payload, v0, v1 = handler(arg0, arg1, addr0, len0, addr1, len1)
        except CommandError as exc:  # MeshError included
            status, error, payload = (
                dp.Status.ERROR,
                dp.ErrorCode(exc.code),
                str(exc).encode()[:3800],
            )
        except Exception as exc:  # firmware must answer, whatever happened
            log.exception("firmware internal error")
            status, error = dp.Status.ERROR, dp.ErrorCode.INTERNAL
            payload = f"internal firmware error: {exc}".encode()[:3800]
        header = dp.RESPONSE.pack(tag, status, error, len(payload), v0, v1)
        self.chip.mem_write(dp.MAILBOX_RSP, header + payload)
        return status, error

    def _handlers(self) -> dict[int, Callable[..., tuple[bytes, int, int]]]:
        return {
            dp.Opcode.IDENTIFY: self._identify,
            dp.Opcode.RESET: self._reset,
            dp.Opcode.LOAD_SEQUENCE: self._load,
            dp.Opcode.SET_INPUT: self._set_input,
            dp.Opcode.RUN: self._run,
            dp.Opcode.READ_OUTPUTS: self._read_outputs,
            dp.Opcode.READ_STATS: self._read_stats,
            dp.Opcode.POWER_START: self._power_start,
            dp.Opcode.POWER_READ: self._power_read,
            dp.Opcode.LEARN_CONFIG: lambda _a0, _a1, addr, n, *_: self.learning.configure(addr, n),
            dp.Opcode.LEARN: lambda f, _a1, la, ln, oa, oc: self.learning.learn(f, la, ln, oa, oc),
            dp.Opcode.READ_LEARNED: lambda *_: self.learning.read(),
            dp.Opcode.WRITE_LEARNED: lambda _a0, _a1, addr, n, *_: self.learning.write(addr, n),
        }

    # ------------------------------------------------------------------ commands
    def _identify(self, *_: int) -> tuple[bytes, int, int]:
        spec = self.chip.spec
        payload = dp.IDENTITY.pack(
            dp.fixed_str(spec.name),
            dp.fixed_str(spec.version),
            dp.fixed_str(dp.FIRMWARE_VERSION),
            dp.fixed_str(self.chip.serial),
            spec.nodes,
            len(spec.nps),
            1 if spec.hrc is not None else 0,
            dp.IDENT_FLAG_SIMULATED,
            spec.clock_hz,
            self.chip.mem_size,
            spec.np_input_bytes,
            spec.np_weight_bytes,
        )
        return payload, 0, 0

    def _reset(self, *_: int) -> tuple[bytes, int, int]:
        self.reboot()
        return b"", 0, 0

    def _load(self, _a0: int, _a1: int, addr: int, length: int, *_: int) -> tuple[bytes, int, int]:
        data = self._fetch(addr, length)
        self._input = self._output = None
        self.learning.clear()
        clk = self.mesh.load(data)
        self.chip.spend(self.clocks.seconds(clk))
        self.total_program_clk += clk
        self.loads += 1
        return b"", clk, self.mesh.loaded_nps

    def _set_input(
        self, frames: int, dtype: int, addr: int, length: int, *_: int
    ) -> tuple[bytes, int, int]:
        seq = self.mesh.require_loaded()
        if dtype not in dp.DTYPE_SIZES:
            raise CommandError(dp.ErrorCode.SHAPE_MISMATCH, f"unknown input dtype {dtype}")
        expected = frames * int(np.prod(seq.input_shape)) * dp.DTYPE_SIZES[dp.DType(dtype)]
        if frames < 1 or length != expected:
            raise CommandError(
                dp.ErrorCode.SHAPE_MISMATCH,
                f"input of {length} bytes for {frames} frame(s) of {seq.input_shape}; "
                f"expected {expected}",
            )
        self._span(addr, length)
        self._input = _Input(addr, frames, dp.DType(dtype))
        return b"", 0, 0

    def _run(
        self, frames: int, _a1: int, _a0: int, _l0: int, out_addr: int, out_cap: int
    ) -> tuple[bytes, int, int]:
        seq = self.mesh.require_loaded()
        x = self.input_frames(frames)
        out_dtype = dp.DType.UINT8 if seq.output_activation else dp.DType.INT64
        out_bytes = frames * int(np.prod(seq.output_shape)) * dp.DTYPE_SIZES[out_dtype]
        if out_bytes > out_cap:
            raise CommandError(
                dp.ErrorCode.NO_SPACE, f"outputs need {out_bytes} bytes, buffer has {out_cap}"
            )
        self._span(out_addr, out_bytes)
        y, work = self.mesh.run(x)
        out = y.astype(np.uint8) if out_dtype is dp.DType.UINT8 else y.astype("<i8")
        self.chip.mem_write(out_addr, out.tobytes())
        self._output = _Output(out_addr, out_bytes, frames, seq.output_shape, out_dtype)
        self.count_work(work, frames)
        return b"", work.clk, work.synops

    def input_frames(self, frames: int) -> np.ndarray:
        """The `frames` frames SET_INPUT staged (NO_INPUT / SHAPE_MISMATCH otherwise)."""
        seq = self.mesh.require_loaded()
        inp = self._input
        if inp is None:
            raise CommandError(dp.ErrorCode.NO_INPUT, "RUN before SET_INPUT")
        if frames != inp.frames:
            raise CommandError(
                dp.ErrorCode.SHAPE_MISMATCH, f"RUN of {frames} frame(s), input holds {inp.frames}"
            )
        np_dtype = np.uint8 if inp.dtype is dp.DType.UINT8 else np.dtype("<i8")
        raw = self._fetch(
            inp.addr, frames * int(np.prod(seq.input_shape)) * np.dtype(np_dtype).itemsize
        )
        return np.frombuffer(raw, dtype=np_dtype).reshape(frames, *seq.input_shape)

    def count_work(self, work: Work, frames: int) -> None:
        """Clocks, frames, SynOps, power and host-visible time of a RUN or LEARN.

        The request pays the host's per-request cost (idle board), then each frame its NP
        phases and the host's per-frame DMA handshake (docs/clock-and-power-model.md)."""
        self.total_inference_clk += work.clk
        self.frames += frames
        self.synops += work.synops
        link = self.chip.link
        self.chip.spend(link.request_s)
        self.power.record(work.phases, frames, gap_s=link.frame_s)
        self.chip.spend(frames * link.frame_s + self.clocks.seconds(work.clk), powered=False)

    def _read_outputs(self, *_: int) -> tuple[bytes, int, int]:
        out = self._output
        if out is None:
            raise CommandError(dp.ErrorCode.NO_INPUT, "no outputs: RUN first")
        h, w, c = out.shape
        return dp.OUTPUTS.pack(out.addr, out.nbytes, out.frames, h, w, c, out.dtype), 0, 0

    def _read_stats(self, *_: int) -> tuple[bytes, int, int]:
        payload = dp.STATS.pack(
            self.frames,
            self.total_inference_clk,
            self.total_program_clk,
            self.synops,
            self.dma_bytes,
            self.loads,
            round(self.power.total_energy_nj),
            self.chip.spec.clock_hz,
        )
        return payload, 0, 0

    def _power_start(self, *_: int) -> tuple[bytes, int, int]:
        self.power.restart()
        return b"", 0, 0

    def _power_read(self, *_: int) -> tuple[bytes, int, int]:
        r = self.power.read()
        payload = dp.POWER.pack(
            r.floor_mw, r.avg_mw, r.min_mw, r.max_mw, r.std_mw, r.samples, r.frames, r.energy_nj
        )
        return payload, 0, 0

    # ------------------------------------------------------------------- helpers
    def _span(self, addr: int, length: int) -> None:
        lo, hi = dp.DATA_BASE, dp.MEM_BASE + self.chip.mem_size
        if length < 0 or addr < lo or addr + length > hi:
            raise CommandError(
                dp.ErrorCode.BAD_ADDRESS,
                f"buffer {addr:#x}+{length} is outside the data region {lo:#x}..{hi:#x}",
            )

    def _fetch(self, addr: int, length: int) -> bytes:
        self._span(addr, length)
        return self.chip.mem_read(addr, length)

    span, fetch = _span, _fetch  # for the learning unit
