"""Frame sources: numpy arrays and iterables, image files and folders (Pillow), video
files and cameras (OpenCV, `camera:N`), and event files framed by count or time window.

Each yields `SourceFrame`s: the frame as the source has it, its timestamp in us (the
video position, the event frame's end, else the capture time since the source opened)
and where it came from, for error messages.
"""

from __future__ import annotations

import dataclasses
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
from akida_rt.stream.live import is_fifo
from akida_rt.stream.readers import is_event_file, open_events, sniff

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


@dataclass(frozen=True)
class EventOptions:
    """How an event source becomes model inputs (the `akida stream` event options).

    events_per_frame / window_us: the window (default 3,000 events); stride_us or
    stride_events: windows start this often (overlapping when shorter than the window);
    sensor (W, H): the geometry when the source gives none, or instead of it; crop
    (x, y, W, H); representation, bins, tau_us, gain: see representations.Representation;
    denoise_us, refractory_us, hot_pixel_hz: the filters (0: off); realtime: pace frames
    by their event time (a file plays back as a camera would deliver it); live sources:
    stall_s, reconnect_s.
    """

    events_per_frame: int | None = None
    window_us: int | None = None
    stride_us: int | None = None
    stride_events: int | None = None
    sensor: tuple[int, int] | None = None
    crop: tuple[int, int, int, int] | None = None
    representation: str = "count"
    bins: int | None = None
    tau_us: float = 50_000.0
    gain: float = 1.0
    denoise_us: int = 0
    refractory_us: int = 0
    hot_pixel_hz: float = 0.0
    realtime: bool = False
    stall_s: float = 5.0
    reconnect_s: float = 0.0


def event_frames(
    path: Any,
    shape: tuple[int, int, int],
    *,
    events_per_frame: int | None = None,
    window_us: int | None = None,
    sensor: tuple[int, int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
    on_error: OnError = OnError.RAISE,
    options: EventOptions | None = None,
) -> Iterator[SourceFrame]:
    """Frames of an event file (a path) or of an opened EventReader (a live source), by
    event count (default 3,000) or time window, shaped to the model input `shape`."""
    opts = options or EventOptions()
    opts = dataclasses.replace(
        opts,
        events_per_frame=events_per_frame or opts.events_per_frame,
        window_us=window_us or opts.window_us,
        sensor=sensor or opts.sensor,
        crop=crop or opts.crop,
    )
    if opts.events_per_frame is None and opts.window_us is None:
        opts = dataclasses.replace(opts, events_per_frame=3000)  # reference 003's framing
    reader = (
        open_events(path, on_error=on_error, sensor=opts.sensor)
        if isinstance(path, str | os.PathLike)
        else path
    )
    try:
        size = opts.sensor or (reader.sensor.width, reader.sensor.height)
        if min(size) < 1:
            raise SourceError(f"{reader.path}: the recording does not say its sensor size; "
                              "pass --sensor W,H (sensor=(W, H))")  # fmt: skip
        yield from _paced(_frames_of(reader, shape, size, opts), opts.realtime, str(reader.path))
    finally:
        reader.close()


def _filters(opts: EventOptions, size: tuple[int, int]) -> list[Any]:
    from akida_rt.stream.filters import DenoiseFilter, HotPixelFilter, RefractoryFilter

    out: list[Any] = []
    if opts.hot_pixel_hz:
        out.append(HotPixelFilter(size, opts.hot_pixel_hz))
    if opts.refractory_us:
        out.append(RefractoryFilter(size, opts.refractory_us))
    if opts.denoise_us:
        out.append(DenoiseFilter(size, opts.denoise_us))
    return out


def _frames_of(
    reader: Any, shape: tuple[int, int, int], size: tuple[int, int], opts: EventOptions
) -> Iterator[tuple[np.ndarray, int]]:
    from akida_rt.stream.representations import Kind, Representation, WindowFramer, Windows

    filters = _filters(opts, size)

    def filtered() -> Iterator[np.ndarray]:
        for chunk in reader.chunks():
            for f in filters:
                chunk = f(chunk)
            if len(chunk):
                yield chunk
        for f in filters:
            if hasattr(f, "flush") and len(rest := f.flush()):
                yield rest

    kind = Kind(opts.representation)
    plain = kind is Kind.COUNT and not opts.stride_us and not opts.stride_events and opts.gain == 1
    if plain and shape[2] in (1, 2):
        framer = EventFramer(Framing(shape, size, opts.events_per_frame, opts.window_us, opts.crop))
        for chunk in filtered():
            frames, ends = framer.push(chunk)
            yield from zip(frames, ends.tolist(), strict=True)
        frames, ends = framer.flush()
        yield from zip(frames, ends.tolist(), strict=True)
        return
    c = shape[2]
    split = c == 2 if kind in (Kind.COUNT, Kind.DECAY, Kind.SURFACE) else False
    bins = opts.bins or (c if kind in (Kind.VOXEL, Kind.HISTOGRAM) else 1)
    if kind is Kind.HISTOGRAM and opts.bins and c == 2 * opts.bins:
        split = True
    rep = Representation(kind, split=split, bins=bins, tau_us=opts.tau_us, gain=opts.gain)
    windows = Windows(opts.window_us, opts.stride_us, opts.events_per_frame, opts.stride_events)
    wf = WindowFramer(shape, size, rep, windows, opts.crop)
    for chunk in filtered():
        yield from wf.push(chunk)
    yield from wf.flush()


def _paced(
    frames: Iterator[tuple[np.ndarray, int]], realtime: bool, name: str
) -> Iterator[SourceFrame]:
    """SourceFrames, each held until its end time has passed since the first (realtime)."""
    start_wall = first_t = None
    for k, (frame, t_us) in enumerate(frames):
        if realtime:
            if first_t is None:
                start_wall, first_t = time.monotonic(), t_us
            assert start_wall is not None
            wait = start_wall + (t_us - first_t) / 1e6 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        yield SourceFrame(frame, t_us, f"{name} frame {k}")


def open_live(source: str, opts: EventOptions, on_error: OnError) -> Any:
    """The EventReader of a live source: tcp://HOST:PORT[?format=evt3] (a RAW stream),
    dv://HOST:PORT (dv-processing's network stream), inivation:[SERIAL] (a USB camera),
    `-` (RAW on stdin) or a FIFO."""
    from urllib.parse import parse_qs, urlsplit

    from akida_rt.stream import live

    fmt = ""
    if source.startswith("inivation:"):
        return live.DvCameraStream(source.removeprefix("inivation:"), on_error=on_error,
                                   stall_s=opts.stall_s, reconnect_s=opts.reconnect_s,
                                   sensor=opts.sensor)  # fmt: skip
    if source.startswith(("tcp://", "dv://")):
        url = urlsplit(source)
        if not url.hostname or not url.port:
            raise SourceError(f"{source}: give a host and a port, e.g. tcp://127.0.0.1:4000")
        query = parse_qs(url.query)
        fmt = {"evt2": "EVT2", "evt21": "EVT2.1", "evt3": "EVT3"}.get(
            query.get("format", [""])[0].lower(), ""
        )
        if url.scheme == "dv":
            return live.DvNetworkStream(url.hostname, url.port, on_error=on_error, stall_s=opts.stall_s,
                                        reconnect_s=opts.reconnect_s, sensor=opts.sensor)  # fmt: skip
        connect = live.tcp_connector(url.hostname, url.port)
        name = source
    elif source == "-":
        connect, name = live.stdin_connector(), "stdin"
    else:
        connect, name = live.fifo_connector(source), source
    try:
        return live.RawStream(name, connect, on_error=on_error, fmt=fmt, sensor=opts.sensor,
                              stall_s=opts.stall_s, reconnect_s=opts.reconnect_s)  # fmt: skip
    except OSError as exc:
        raise SourceError(f"{name}: cannot connect: {exc.strerror or exc}") from None


def open_source(
    source: Any,
    shape: tuple[int, int, int],
    *,
    events_per_frame: int | None = None,
    window_us: int | None = None,
    on_error: OnError | str = OnError.RAISE,
    options: EventOptions | None = None,
) -> Iterator[SourceFrame]:
    """Frames from `source`: an array or iterable of frames, `camera:N`, an image file or
    folder, a video file, an event file (AEDAT4, RAW, DAT, .npy, CSV, .bin; by content),
    or a live event source (tcp://, dv://, inivation:[SERIAL], `-`, a FIFO)."""
    policy = OnError(on_error)
    opts = options or EventOptions()
    if not isinstance(source, str | os.PathLike):
        return array_frames(source)
    text = str(source)
    if m := CAMERA.fullmatch(text):
        return camera_frames(int(m[1]))
    if text.startswith(("tcp://", "dv://", "inivation:")) or text == "-" or is_fifo(text):
        reader = open_live(text, opts, policy)
        return event_frames(reader, shape, events_per_frame=events_per_frame,
                            window_us=window_us, on_error=policy, options=opts)  # fmt: skip
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return image_frames(path, policy)
    if is_event_file(path) or sniff(str(path)) in ("AEDAT4", "RAW", "DAT", "NPY"):
        if sniff(str(path)) == "NPY" and _is_frame_array(path):
            arr = np.load(path, mmap_mode="r")
            if arr.ndim < 3:
                raise SourceError(f"{path}: a .npy of frames needs shape (N, H, W[, C]); this "
                                  f"one is {arr.dtype} {arr.shape} (events need fields t, x, y, p)")  # fmt: skip
            return array_frames(arr, path.name)
        return event_frames(path, shape, events_per_frame=events_per_frame, window_us=window_us,
                            on_error=policy, options=opts)  # fmt: skip
    return video_frames(path, policy)


def _is_frame_array(path: Path) -> bool:
    """Whether a .npy holds frames (a plain array) rather than events (a structured one)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False  # the event reader says what is wrong
    return arr.dtype.names is None
