"""On-chip learning on an AKD1000 as BrainChip's Akida Engine drives it: the learning
layer's register track toggles learning, a labelled inference carries label + 1 in its
descriptor, and the FNP3's weights are read back with a config read and written with a
config write."""

from __future__ import annotations

import numpy as np
from akida_rt.driver.akd1000_inference import toggle_pipeline
from akida_rt.driver.akd1000_programmer import config_read, config_write, play_track
from akida_rt.driver.akd1000_state import ChipState

from akida_rt.akd1000.packets import PacketType, packet_header
from akida_rt.akd1000.program_info import LearningLayer
from akida_rt.errors import DeviceError, InputError

HEADER_WORDS = 2


def _learning_layer(state: ChipState, what: str) -> LearningLayer:
    if state.program is None:
        raise DeviceError(f"cannot {what}: the device has no program (program it first)")
    learn = state.program.info.learning_layer
    if learn is None:
        raise DeviceError(f"cannot {what}: the program has no learning layer (compile the "
                          "model with a learning rule before mapping it)")  # fmt: skip
    return learn


def toggle_learn(state: ChipState, enable: bool) -> None:
    """Play the learning (or inference) register track of the learning layer; the
    pipeline runs only while learning is off."""
    learn = _learning_layer(state, "toggle learning")
    assert state.program is not None
    track = learn.learning_registers if enable else learn.inference_registers
    if track is None:
        raise DeviceError("the program's learning layer has no register track for that mode")
    play_track(state, state.program, track, "learning registers" if enable else
               "inference registers")  # fmt: skip
    toggle_pipeline(state, not enable)
    state.learn_enabled = enable


def _weights_header(learn: LearningLayer, words: int) -> np.ndarray:
    if learn.np is None:
        raise DeviceError("the program's learning layer names no NP")
    return packet_header(learn.np.col, learn.np.row, learn.np.id, PacketType.FNP_WEIGHTS, words)


def learn_mem_words(state: ChipState) -> int:
    learn = _learning_layer(state, "size the learning memory")
    if learn.ram is not None and learn.ram.fnp2 is not None:
        return learn.ram.fnp2.track.words
    tracks = (learn.ram.tracks or ()) if learn.ram else ()
    if len(tracks) != 1:
        raise DeviceError("the learning layer's weights are not one track")
    return tracks[0].words


def learn_mem(state: ChipState) -> np.ndarray:
    """The learning FNP3's weights as the chip holds them: its packet header, then the
    SRAM words (the same layout as the program's weight track)."""
    learn = _learning_layer(state, "read the learning memory")
    if not state.learn_enabled:
        raise DeviceError("learning must be enabled to read the learning memory")
    if learn.ram is not None and learn.ram.fnp2 is not None:
        raise DeviceError("learning on an FNP2 (weights in DDR) is not an AKD1000 program")
    n = learn_mem_words(state) - HEADER_WORDS
    header = _weights_header(learn, n)
    data = config_read(state, header, n, "learning memory read")
    return np.concatenate([header, data]).astype(np.uint32)


def update_learn_mem(state: ChipState, words: np.ndarray) -> None:
    """Write weights read by learn_mem (header included) back into the FNP3's SRAM."""
    learn = _learning_layer(state, "write the learning memory")
    w = np.asarray(words, np.uint32)
    n = learn_mem_words(state)
    if w.shape != (n,):
        raise InputError(f"learning memory is {n} words, got an array of shape {w.shape}")
    if not np.array_equal(w[:HEADER_WORDS], _weights_header(learn, n - HEADER_WORDS)):
        raise InputError(
            "learning memory header does not match this program's learning NP: "
            "give the words learn_mem() returned for the same program"
        )
    config_write(state, w, "learning memory write")
