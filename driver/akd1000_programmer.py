"""Programming an AKD1000 as BrainChip's Akida Engine does: identification, core and
mesh resets, every track of a program binary through the config DMA via scratch memory,
FNP2 weights in DDR, EPG writes, and the interrupt controller.

The host never touches an NP register: the whole mesh is configured by config-DMA
packets that the chip reads from DDR.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from akida_rt.driver.akd1000_state import ChipState

from akida_rt.akd1000 import registers as regs
from akida_rt.akd1000.descriptors import ConfigDescriptor
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.akd1000.program_info import NSOC_V2, DeviceVersion, IoType, Record, Track
from akida_rt.errors import DeviceError

log = logging.getLogger(__name__)

RESET_WAIT_S = 0.001  # the engine waits 1 ms around each reset (20-40 cycles needed)
CONFIG_DESCRIPTORS = 2  # ring length for single-pass programs
NSOC_V1 = DeviceVersion(0xBC, 0, 0, 1)


def soc_desc(state: ChipState) -> str:
    """The chip's description as the engine's bare-metal driver builds it from the SoC's
    CHIP_INFO register ('Embedded/NSoC_v2' on an AKD1000)."""
    word = state.bus.read32(regs.CHIP_INFO_ADDR)
    return f"Embedded/NSoC_v{regs.CHIP_INFO.get(word, 'CHIP_VERSION')}"


def identify(state: ChipState) -> DeviceVersion | None:
    """The chip's hardware version from IP_VERSION or, when that reads 0 (AKD1000), from
    the driver's description ('NSoC_v2'); with no description given, from the SoC's
    CHIP_INFO register, as the engine's bare-metal driver does."""
    ip = regs.TOP["IP_VERSION"]
    word = state.bus.read32(state.reg(regs.TOP, "IP_VERSION"))
    if not word and not state.desc:
        state.desc = soc_desc(state)
    if word:
        f = ip.decode(word)
        version = DeviceVersion(f["VENDOR_ID"], f["PROD_ID"], f["MAJOR_REV"], f["MINOR_REV"])
    elif "NSoC_v2" in state.desc:
        version = NSOC_V2
    elif "NSoC_v1" in state.desc:
        version = NSOC_V1
    else:
        version = None
    if version == NSOC_V1:
        raise DeviceError("NSoC_v1 is not supported by akida 2.19.3 programs: use an AKD1000")
    state.version = version
    return version


def _general_control_pulse(state: ChipState, **fields: int) -> None:
    addr = state.reg(regs.TOP, "GENERAL_CONTROL")
    gc = regs.TOP["GENERAL_CONTROL"]
    word = state.bus.read32(addr)
    state.bus.write32(addr, gc.set(word, **fields))
    time.sleep(RESET_WAIT_S)
    state.bus.write32(addr, gc.set(word, **dict.fromkeys(fields, 0)))
    time.sleep(RESET_WAIT_S)


def core_reset(state: ChipState) -> None:
    """Reset the Akida core and its DMAs (and the SCC): NPs off, DMAs back to defaults."""
    _general_control_pulse(state, AK_CORE_RST=1, SCC_CORE_RESET=1)


def reset_nps(state: ChipState) -> None:
    """Reset the logic and configuration of every NP."""
    time.sleep(RESET_WAIT_S)  # an NP may still be configuring its SRAM
    _general_control_pulse(state, AK_LOGIC_RST=1, AK_MESH_RST=1)


def reset_clock_counter(state: ChipState) -> None:
    for dma in (state.event, state.hrc):
        dma.toggle_timer(state.clock_counter_enabled)


def unprogram(state: ChipState) -> None:
    """Forget the program, free scratch, reset core and mesh."""
    state.outputs_base = state.free(state.outputs_base)
    state.inputs_base = state.free(state.inputs_base)
    for dma in (state.hrc, state.event, state.config):
        dma.ring = state.free(dma.ring)
    state.program = None
    state.learn_enabled = False
    core_reset(state)
    reset_nps(state)
    reset_clock_counter(state)
    state.pipeline.reset(0, 0)
    state.mem.reset()


def _set_multipass(state: ChipState, enabled: bool) -> None:
    addr = state.reg(regs.TOP, "GENERAL_CONTROL")
    word = state.bus.read32(addr)
    state.bus.write32(addr, regs.TOP["GENERAL_CONTROL"].set(word, PR_MESH_RST_END=int(enabled)))


def init_config_dma(state: ChipState) -> None:
    """The config DMA for a single-pass program: a 2-descriptor ring, no replay, no
    output header, its clock counter on."""
    cfg = state.config
    cfg.soft_reset()
    cfg.configure_ring(CONFIG_DESCRIPTORS)
    cfg.mask_interrupts(False)
    cfg.write("REPLAY_BUF_CTRL", 0)
    cfg.write("REPLAY_BURST_VAL", 0)
    cfg.write("DESC_START_DELAYS", 0)
    cfg.output_header(False)
    cfg.toggle_timer(True)


def config_write(state: ChipState, words: np.ndarray, what: str) -> None:
    """Stream `words` (whole packets) into the mesh: copy them to scratch, one config
    descriptor, run it to completion, free the scratch."""
    data = np.asarray(words, "<u4").tobytes()
    addr = state.mem.alloc(len(data))
    state.bus.write(addr, data)
    state.config.enqueue(ConfigDescriptor(True, addr, len(data) // 4).encode())
    state.config.run_to_completion(what)
    state.mem.free(addr)


def config_read(state: ChipState, header: np.ndarray, words: int, what: str) -> np.ndarray:
    """The `words` words a config read packet `header` asks the mesh for."""
    inp = state.mem.alloc(8)
    out = state.mem.alloc(words * 4)
    desc = ConfigDescriptor(False, inp, 2, out).encode()
    state.bus.write(inp, np.asarray(header, "<u4").tobytes())
    state.config.enqueue(desc)
    state.config.run_to_completion(what)
    data = np.frombuffer(state.bus.read(out, words * 4), "<u4").copy()
    state.mem.free(out)
    state.mem.free(inp)
    return data


def play_track(state: ChipState, program: ProgramBinary, track: Track, what: str) -> None:
    config_write(state, program.track_words(track), what)


def play_record(state: ChipState, program: ProgramBinary, record: Record, what: str) -> None:
    for i, track in enumerate(record.tracks or ()):
        play_track(state, program, track, f"{what} track {i}")
    if record.fnp2 is not None:
        # FNP2 weights stay in DDR; the FNP2 reads them from the address in its register
        data = program.track_words(record.fnp2.track).tobytes()
        addr = state.mem.alloc(len(data))
        state.bus.write(addr, data)
        state.bus.write32(state.reg(regs.TOP, regs.fnp2_ddr_conf(record.fnp2.np.id).name), addr)


def play_epg(state: ChipState, program: ProgramBinary) -> None:
    for offset, value in program.info.epg_writes or ():
        state.bus.write32(state.top + regs.EPG_BASE + offset, value)


def enable_interrupts(state: ChipState, dense_inputs: bool) -> None:
    """Mask every source but the input DMA's (the SCC/HRC for images, else the AEDMA)."""
    mask = regs.INTERRUPTS["SOURCE_MASK"].set(
        0xFFFFFFFF, **{("SCC_HRC" if dense_inputs else "AEDMA"): 0}
    )
    state.bus.write32(state.reg(regs.INTERRUPTS, "SOURCE_MASK"), mask)
    state.bus.write32(
        state.reg(regs.INTERRUPTS, "GENERAL_CONTROL"),
        regs.INTERRUPTS["GENERAL_CONTROL"].set(GLB_INT_EN=1),
    )


def program(state: ChipState, prog: ProgramBinary) -> None:
    """Put `prog` on the chip (any previous program is unprogrammed first)."""
    dv = prog.info.device_version
    if dv != state.version:
        mine = state.version.name if state.version else "an unidentified device"
        raise DeviceError(
            f"program made for {dv.name if dv else 'no device'} but this device is {mine}: "
            "re-map the model for this device"
        )
    passes = prog.info.passes or ()
    if len(passes) != 1:
        raise DeviceError(
            f"program has {len(passes)} passes: AKD1000 runs single-pass programs only "
            "(a model too big for the chip maps into several sequences, chain-loaded)"
        )
    unprogram(state)
    state.config.ring = state.mem.alloc(CONFIG_DESCRIPTORS * state.config.desc_bytes)
    _set_multipass(state, False)
    init_config_dma(state)
    for i, record in enumerate(passes[0].records or ()):
        play_record(state, prog, record, f"record {i}")
    learn = prog.info.learning_layer
    if learn is not None:
        regs_track = learn.learning_registers if state.learn_enabled else learn.inference_registers
        if regs_track is not None:
            play_track(state, prog, regs_track, "learning layer registers")
        if learn.ram is not None:
            play_record(state, prog, learn.ram, "learning layer weights")
    play_epg(state, prog)
    enable_interrupts(state, prog.info.input_type is IoType.DENSE)
    state.program = prog
    log.debug("programmed %d tracks, scratch high water %d bytes",
              len(prog.info.tracks()), state.mem.high_water)  # fmt: skip
