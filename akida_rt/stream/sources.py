"""Frame sources: numpy arrays and iterables, image files and folders (Pillow), video
files and cameras (OpenCV, `camera:N`), and event files framed by count or time window.

Each yields `SourceFrame`s: the frame as the source has it, its timestamp in us (the
video position, the event frame's end, else the capture time since the source opened)
and where it came from, for error messages.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.errors import SourceError
from akida_rt.stream.events import OnError
from akida_rt.stream.framing import EventFramer, Framing
from akida_rt.stream.image_files import IMAGE_SUFFIXES, folder_images
from akida_rt.stream.readers import is_event_file, open_events

log = logging.getLogger(__name__)
CAMERA = re.compile(r"camera:(\d+)")


@dataclass(frozen=True)
class SourceFrame:
    data: np.ndarray
    t_us: int
    where: str


class Clock:
    """Microseconds since the source opened (the timestamp of frames that carry none)."""

    def __init__(self) -> None:
        self.start = time.monotonic_ns()

    def __call__(self) -> int:
        return (time.monotonic_ns() - self.start) // 1000


def array_frames(frames: np.ndarray | Iterable[Any], name: str = "array") -> Iterator[SourceFrame]:
    """Frames of an (N, H, W[, C]) array, or of any iterable of frames."""
    clock = Clock()
    for k, frame in enumerate(frames):
        yield SourceFrame(np.asarray(frame), clock(), f"{name} frame {k}")


def image_files(path: str | os.PathLike[str]) -> list[Path]:
    """An image file, or a folder's image files in name order."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    if p.is_dir():
        files = folder_images(p)
        if not files:
            raise SourceError(f"{p}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    return [p]


def image_frames(
    path: str | os.PathLike[str], on_error: OnError = OnError.RAISE
) -> Iterator[SourceFrame]:
    """Each image of a file or folder (Pillow), as uint8 gray, RGB or RGBA."""
    try:
        from PIL import Image
    except ImportError:
        raise SourceError("reading images needs Pillow: pip install 'akida-rt[stream]'") from None
    clock = Clock()
    for k, file in enumerate(image_files(path)):
        try:
            with Image.open(file) as img:
                usable = img if img.mode in ("L", "RGB", "RGBA") else img.convert("RGB")
                data = np.asarray(usable)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            if on_error is OnError.RAISE:
                raise SourceError(f"{file}: frame {k}: cannot read the image: {exc}") from None
            log.warning("%s: frame %d: cannot read the image (skipped): %s", file, k, exc)
            continue
        yield SourceFrame(data, clock(), str(file))


def _cv2() -> Any:
    # OpenCV's own warnings (a missing camera, a backend it tried) would precede our one
    # line naming the problem; the caller reports what went wrong.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    try:
        import cv2
    except ImportError:
        raise SourceError(
            "videos and cameras need OpenCV: pip install 'akida-rt[stream]'"
        ) from None
    return cv2


def video_frames(
    path: str | os.PathLike[str], on_error: OnError = OnError.RAISE, capture: Any = None
) -> Iterator[SourceFrame]:
    """The frames of a video file (RGB), timestamped by their position in the video."""
    cv2 = _cv2()
    name = str(path)
    if capture is None:
        if not os.path.isfile(name):
            raise SourceError(f"{name}: no such video file")
        capture = cv2.VideoCapture(name)
    try:
        if not capture.isOpened():
            raise SourceError(f"{name}: OpenCV cannot read this video (unknown or corrupt format)")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        k = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                if total > 0 and k < total:
                    what = f"{name}: frame {k}: the video ends at frame {k} of {total} (truncated?)"
                    if on_error is OnError.RAISE:
                        raise SourceError(what)
                    log.warning("%s (stopping)", what)
                elif k == 0:
                    raise SourceError(f"{name}: frame 0: OpenCV decodes no frame of this video")
                return
            t_us = int(capture.get(cv2.CAP_PROP_POS_MSEC) * 1000)
            yield SourceFrame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), t_us, f"{name} frame {k}")
            k += 1
    finally:
        capture.release()


def camera_frames(index: int, capture: Any = None) -> Iterator[SourceFrame]:
    """Frames of V4L2 camera `index` (`camera:N`, /dev/videoN) as it captures them. A
    camera that stops delivering (unplugged) ends the stream with SourceError."""
    name = f"camera:{index}"
    if capture is None and not Path(f"/dev/video{index}").exists():
        raise SourceError(f"{name}: no /dev/video{index} (no such camera; `ls /dev/video*` "
                          "lists the cameras there are)")  # fmt: skip
    cv2 = _cv2()
    if capture is None:
        capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
    try:
        if not capture.isOpened():
            raise SourceError(f"{name}: cannot open /dev/video{index} (no such camera, or no "
                              "permission: join the 'video' group)")  # fmt: skip
        clock = Clock()
        k = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                raise SourceError(f"{name}: frame {k}: the camera stopped delivering frames "
                                  "(disconnected?)")  # fmt: skip
            yield SourceFrame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), clock(), f"{name} frame {k}")
            k += 1
    finally:
        capture.release()


def event_frames(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    *,
    events_per_frame: int | None = None,
    window_us: int | None = None,
    sensor: tuple[int, int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    on_error: OnError = OnError.RAISE,
) -> Iterator[SourceFrame]:
    """Frames of an event file, by event count (default 3,000) or time window, shaped to
    the model input `shape` (C=1: polarities merged, C=2: split)."""
    if events_per_frame is None and window_us is None:
        events_per_frame = 3000  # reference 003's MNIST-DVS framing
    reader = open_events(path, on_error=on_error)
    try:
        size = sensor or (reader.sensor.width, reader.sensor.height)
        framer = EventFramer(Framing(shape, size, events_per_frame, window_us, crop))
        k = 0
        for chunk in reader.chunks():
            frames, ends = framer.push(chunk)
            for frame, t_us in zip(frames, ends.tolist(), strict=True):
                yield SourceFrame(frame, t_us, f"{path} frame {k}")
                k += 1
        frames, ends = framer.flush()
        for frame, t_us in zip(frames, ends.tolist(), strict=True):
            yield SourceFrame(frame, t_us, f"{path} frame {k}")
            k += 1
    finally:
        reader.close()


def open_source(
    source: Any,
    shape: tuple[int, int, int],
    *,
    events_per_frame: int | None = None,
    window_us: int | None = None,
    on_error: OnError | str = OnError.RAISE,
) -> Iterator[SourceFrame]:
    """Frames from `source`: an array or iterable of frames, `camera:N`, an image file or
    folder, a video file, or an event file (.aedat4, .raw, .npy of events)."""
    policy = OnError(on_error)
    if not isinstance(source, str | os.PathLike):
        return array_frames(source)
    text = str(source)
    if m := CAMERA.fullmatch(text):
        return camera_frames(int(m[1]))
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return image_frames(path, policy)
    if is_event_file(path):
        if path.suffix.lower() == ".npy" and _is_frame_array(path):
            return array_frames(np.load(path, mmap_mode="r"), path.name)
        return event_frames(path, shape, events_per_frame=events_per_frame, window_us=window_us,
                            on_error=policy)  # fmt: skip
    return video_frames(path, policy)


def _is_frame_array(path: Path) -> bool:
    """Whether a .npy holds frames (a plain array) rather than events (a structured one)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False  # the event reader says what is wrong
    return arr.dtype.names is None
