"""Streaming: frames and DVS events fed to a model, through akidad or in-process.

Event files (AEDAT4, Prophesee EVT2/EVT3 RAW, .npy) are read in chunks and framed by
event count or time window; frames come from arrays, images, videos and cameras.
OpenCV, Pillow and dv-processing are the `[stream]` extra, imported only when used.
"""

from __future__ import annotations

from akida_rt.stream.events import EVENT_DTYPE, OnError, SensorInfo, as_events, make_events
from akida_rt.stream.framing import EventFramer, Framing, Polarity, frames_from_events
from akida_rt.stream.readers import open_events, read_events
from akida_rt.stream.synthetic import SaccadeCamera, saccade_events, saccade_recording

__all__ = [
    "EVENT_DTYPE",
    "EventFramer",
    "Framing",
    "OnError",
    "Polarity",
    "SaccadeCamera",
    "SensorInfo",
    "as_events",
    "frames_from_events",
    "make_events",
    "open_events",
    "read_events",
    "saccade_events",
    "saccade_recording",
]
