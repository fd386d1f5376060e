"""What a host keeps about one AKD1000 between calls: its bus and identity, scratch
allocations, the three DMA controllers, the program on the chip and the job pipeline."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from akida_rt.driver.akd1000_dma import DmaEngine
from akida_rt.driver.akd1000_memory import ScratchAllocator
from akida_rt.driver.bus import Bus

from akida_rt.akd1000 import registers as regs
from akida_rt.akd1000.descriptors import EVENT_DESC_WORDS, HRC_DESC_WORDS
from akida_rt.akd1000.memory_map import TOP_LEVEL_REG_BASE
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.akd1000.program_info import DeviceVersion, IoType

CONFIG_DESC_BYTES = 32
EVENT_DESC_BYTES = EVENT_DESC_WORDS * 4
HRC_DESC_BYTES = HRC_DESC_WORDS * 4  # 9 words, padded to 16 in the ring
MAX_PIPELINE = 16  # jobs in flight on a single-pass program


@dataclass(frozen=True)
class Job:
    job_id: int
    output_addr: int


@dataclass
class PipelineState:
    """Job ids and output slots in flight, as the engine tracks them: job ids count up
    from the DMA's last finished id; slots go round the batch's output buffers."""

    size: int = 0
    last_generated: int = 0
    last_fetched: int = 0
    index: int = 0
    jobs: deque[Job] = field(default_factory=deque)

    def reset(self, last_job_id: int, size: int) -> None:
        self.last_fetched = self.last_generated = last_job_id
        self.index, self.size = 0, size
        self.jobs.clear()

    @property
    def full(self) -> bool:
        return len(self.jobs) == self.size

    def reserve(self) -> tuple[int, int]:
        """(job id, slot index) of the next job; ids wrap at 16 bits as the register does."""
        self.last_generated = (self.last_generated + 1) & 0xFFFF
        self.index += 1
        if self.index >= self.size:
            self.index = 0
        return self.last_generated, self.index

    def pop(self) -> Job:
        job = self.jobs.popleft()
        self.last_fetched = job.job_id
        return job


@dataclass
class ChipState:
    """One AKD1000 as its host sees it."""

    bus: Bus
    top: int = TOP_LEVEL_REG_BASE
    desc: str = ""
    version: DeviceVersion | None = None
    mem: ScratchAllocator = field(default_factory=ScratchAllocator)
    program: ProgramBinary | None = None
    learn_enabled: bool = False
    clock_counter_enabled: bool = False
    pipeline: PipelineState = field(default_factory=PipelineState)
    inputs_base: int = 0
    outputs_base: int = 0
    timeout_s: float = 5.0  # completion budget of a config job and between two outputs
    config: DmaEngine = field(init=False)
    event: DmaEngine = field(init=False)
    hrc: DmaEngine = field(init=False)

    def __post_init__(self) -> None:
        t = self.timeout_s
        self.config = DmaEngine(self.bus, regs.CONFIG_DMA, CONFIG_DESC_BYTES, self.top, timeout_s=t)
        self.event = DmaEngine(self.bus, regs.EVENT_DMA, EVENT_DESC_BYTES, self.top, timeout_s=t)
        self.hrc = DmaEngine(self.bus, regs.HRC_DMA, HRC_DESC_BYTES, self.top, timeout_s=t)

    def reg(self, block: regs.Block, name: str) -> int:
        """Physical address of register `name` of `block`."""
        return self.top + block.base + block[name].offset

    @property
    def input_dense(self) -> bool:
        return self.program is not None and self.program.info.input_type is IoType.DENSE

    def input_dma(self) -> DmaEngine:
        """The HRC DMA for dense images, the event DMA for sparse inputs."""
        return self.hrc if self.input_dense else self.event

    def free(self, addr: int) -> int:
        """Free `addr` if it is allocated (non-zero); returns 0 to store in its place."""
        if addr:
            self.mem.free(addr)
        return 0
