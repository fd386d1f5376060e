"""Inference on an AKD1000 as BrainChip's Akida Engine runs it: batch set-up with
descriptor rings, inputs into scratch, one descriptor per input (job id, output slot,
label), completion seen in the input DMA's DESC_STATUS job id, then the output header
and events read back and decoded into arrays.
"""

from __future__ import annotations

import time

import numpy as np
from akida_rt.driver.akd1000_memory import align_up
from akida_rt.driver.akd1000_programmer import reset_clock_counter, unprogram
from akida_rt.driver.akd1000_state import MAX_PIPELINE, ChipState, Job

from akida_rt.akd1000 import descriptors as d
from akida_rt.akd1000.memory_map import WORD
from akida_rt.akd1000.program_info import IoType, ProgramInfo
from akida_rt.errors import DeviceError, DeviceResetError, InputError, TransportTimeout

MIN_DESCRIPTORS = 2


def _size(dims: tuple[int, ...] | None) -> int:
    a, b, c = dims or (0, 0, 0)
    return a * b * c


def input_bytes(info: ProgramInfo) -> int:
    """Scratch bytes one input slot takes (an event per value for sparse inputs)."""
    n = _size(info.input_dims)
    per = (info.input_bits + 7) // 8 if info.input_type is IoType.DENSE else 2 * WORD
    return align_up(n * per, WORD)


def output_bytes(info: ProgramInfo) -> int:
    """Scratch bytes one output slot takes: header, then values or events."""
    n = _size(info.output_dims)
    per = (info.output_bits + 7) // 8 if info.output_type is IoType.DENSE else 2 * WORD
    return align_up(n * per + d.OUTPUT_HEADER_BYTES, WORD)


def toggle_pipeline(state: ChipState, enabled: bool) -> None:
    state.event.toggle_pipeline(enabled)
    state.hrc.toggle_pipeline(enabled)


def _program(state: ChipState, what: str) -> ProgramInfo:
    if state.program is None:
        raise DeviceError(f"cannot {what}: the device has no program (program it first)")
    return state.program.info


def set_batch_size(state: ChipState, requested: int, allocate_inputs: bool = True) -> int:
    """Size the input DMA's descriptor ring and the input and output slots for up to
    `requested` jobs in flight (at most 16); returns the effective batch size."""
    info = _program(state, "set the batch size")
    if state.pipeline.jobs:
        raise DeviceError("cannot set the batch size while jobs are in flight: fetch them first")
    if requested < 1:
        raise InputError(f"batch size must be at least 1, got {requested}")
    size = min(requested, MAX_PIPELINE)
    if size == state.pipeline.size:
        return size
    dma = state.input_dma()
    n_desc = max(size, MIN_DESCRIPTORS)
    dma.ring = state.free(dma.ring)
    dma.ring = state.mem.alloc(n_desc * dma.desc_bytes)
    dma.init_default(n_desc)
    reset_clock_counter(state)
    toggle_pipeline(state, not state.learn_enabled)
    state.pipeline.reset(dma.last_job_id(), size)
    state.outputs_base = state.free(state.outputs_base)
    state.outputs_base = state.mem.alloc(output_bytes(info) * size)
    state.inputs_base = state.free(state.inputs_base)
    if allocate_inputs:
        state.inputs_base = state.mem.alloc(input_bytes(info) * size)
    return size


def encode_input(info: ProgramInfo, x: np.ndarray) -> bytes:
    """The bytes the engine puts in scratch for one input: the image itself for the HRC,
    else CNP or FNP events (a dummy event when there is none)."""
    if info.input_type is IoType.DENSE:
        return np.ascontiguousarray(x).tobytes()
    if info.input_type is IoType.FNP_SPARSE:
        return d.fnp_input_events(x).astype("<u4").tobytes()
    return d.cnp_input_events(x).astype("<u4").tobytes()


def enqueue(state: ChipState, x: np.ndarray, label: int | None = None) -> bool:
    """Queue one input; False (nothing done) when the pipeline is full."""
    info = _program(state, "run an inference")
    if state.pipeline.size == 0:
        raise DeviceError("set a batch size before enqueuing inputs")
    if label is not None and not state.learn_enabled:
        raise DeviceError("learning must be enabled to enqueue an input with a label")
    if state.pipeline.full:
        return False
    if state.inputs_base == 0:
        raise DeviceError("no scratch was allocated for inputs (set_batch_size allocate_inputs)")
    job_id, index = state.pipeline.reserve()
    data = encode_input(info, x)
    in_addr = state.inputs_base + input_bytes(info) * index
    state.bus.write(in_addr, data)
    dense = info.input_type is IoType.DENSE
    state.hrc.toggle(dense)
    state.event.toggle(not dense)
    out_addr = state.outputs_base + output_bytes(info) * index
    learn_class = 0 if label is None else label + 1
    if dense:
        desc = d.HrcDescriptor.for_image(job_id, in_addr, out_addr, info.input_dims,  # type: ignore[arg-type]
                                         info.dense_window_w, info.dense_window_h,
                                         learn_class).encode()  # fmt: skip
    else:
        desc = d.EventDescriptor(job_id, in_addr, len(data) // WORD, out_addr, learn_class).encode()
    state.pipeline.jobs.append(Job(job_id, out_addr))
    state.input_dma().enqueue(desc)
    return True


def fetch(state: ChipState) -> np.ndarray | None:
    """The next finished job's output, or None when it is not ready (or none is queued)."""
    info = _program(state, "fetch an output")
    if not state.pipeline.jobs:
        return None
    dma = state.input_dma()
    done = dma.last_job_id()
    if state.pipeline.last_fetched == done:
        return None
    if all(job.job_id != done for job in state.pipeline.jobs):
        # The DMA reports a job that was never queued: the chip rebooted (its job ids
        # started again) and dropped the ones in flight.
        in_flight = len(state.pipeline.jobs)
        unprogram(state)
        raise DeviceResetError(
            f"the AKD1000 reset itself (its input DMA reports job {done}, never queued; "
            f"{in_flight} jobs lost): its program is gone; program it again"
        )
    dma.clear_interrupts()
    job = state.pipeline.pop()
    return read_output(state, info, job.output_addr)


def read_output(state: ChipState, info: ProgramInfo, addr: int) -> np.ndarray:
    """Read and decode the header and events (or dense values) at `addr`."""
    n_words = d.decode_output_header(state.bus.read32(addr))
    room = (output_bytes(info) - d.OUTPUT_HEADER_BYTES) // WORD
    if n_words > room:
        raise DeviceError(
            f"the chip's output header at 0x{addr:08x} announces {n_words} words but the "
            f"output slot holds {room}: the device or its program is corrupt; reset it"
        )
    at = addr + d.OUTPUT_HEADER_BYTES
    dims = tuple(info.output_dims or (0, 0, 0))
    if info.output_type is IoType.DENSE:
        dtype = np.uint8 if info.output_bits < 8 else np.int8 if info.output_bits == 8 else "<i4"
        n = _size(dims) * np.dtype(dtype).itemsize
        return np.frombuffer(state.bus.read(at, n), dtype).astype(dtype).reshape(dims)
    words = np.frombuffer(state.bus.read(at, n_words * WORD), "<u4").reshape(-1, 2)
    return decode_events(info, words, dims)


def decode_events(info: ProgramInfo, words: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Output events as a dense (x, y, f) array: uint8 activations, or int32 potentials."""
    kind = info.output_type
    act = info.activation
    out = np.zeros(dims, np.uint8 if act else np.int32)
    if kind is IoType.FNP_SPARSE:
        f, v = d.decode_fnp_events(words, signed=not act)
        idx = (np.zeros_like(f), np.zeros_like(f), f)
        vals = (words[:, 1] & 0xFF) if act else v
    elif act:
        x, y, f, vals = d.decode_cnp_events(words)
        # the engine reads HRC activation events with x and y swapped
        idx = (y, x, f) if kind is IoType.HRC_SPARSE else (x, y, f)
    else:
        x, y, f, vals = d.decode_cnp_potentials(words, hrc=kind is IoType.HRC_SPARSE)
        idx = (x, y, f)
    for axis, coord in enumerate(idx):
        if coord.size and int(coord.max()) >= dims[axis]:
            raise DeviceError(
                f"the chip sent an output event at coordinate {int(coord.max())} of axis "
                f"{axis}, past the output shape {dims}: the device or its program is corrupt"
            )
    out[idx] = vals
    return out


def forward_loop(state: ChipState, inputs: np.ndarray,
                 labels: list[int] | None = None) -> list[np.ndarray]:  # fmt: skip
    """Run every input through the chip, keeping the pipeline full, outputs in order. When
    no output comes for `state.timeout_s`, the chip is unprogrammed (reset), as the engine
    does, and TransportTimeout raised."""
    info = _program(state, "run an inference")
    timeout = state.timeout_s
    dims = tuple(info.input_dims or ())
    results: list[np.ndarray] = []
    queued = 0
    last = time.monotonic()
    while len(results) < len(inputs):
        while queued < len(inputs):
            x = np.asarray(inputs[queued])
            if x.size != _size(dims):
                raise InputError(
                    f"input {queued} has {x.size} values but the program expects {dims}"
                )
            label = None
            if labels:
                label = int(labels[0] if len(labels) == 1 else labels[queued])
            if not enqueue(state, x.reshape(dims), label):
                break
            queued += 1
        while (out := fetch(state)) is not None:
            results.append(out)
            last = time.monotonic()
        if len(results) < len(inputs):
            if time.monotonic() - last > timeout:
                dma = state.input_dma()
                # A chip that rebooted lost its registers: its ring address reads back 0.
                rebooted = dma.read("CONT_ADDR") != dma.ring
                unprogram(state)
                if rebooted:
                    raise DeviceResetError(
                        f"the AKD1000 reset itself ({queued}/{len(inputs)} inputs queued, "
                        f"{len(results)} fetched): its program is gone; program it again"
                    )
                raise TransportTimeout(
                    f"AKD1000 produced no output for {timeout:g} s ({queued}/{len(inputs)} "
                    f"inputs queued, {len(results)} fetched); it was reset: program it again"
                )
            time.sleep(0)
    return results
