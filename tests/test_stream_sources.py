"""Frame sources and preprocessing: arrays, sample images (scikit-image), folders, video
files written with OpenCV's VideoWriter, cameras, event files; and what breaks them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from akida_rt.data import sample_program
from akida_rt.errors import SourceError, StreamError
from akida_rt.stream.events import make_events
from akida_rt.stream.evt3 import write_evt3
from akida_rt.stream.preprocess import Preprocess, Resize
from akida_rt.stream.sources import camera_frames, open_source, video_frames

cv2 = pytest.importorskip("cv2")
PIL = pytest.importorskip("PIL.Image")
skdata = pytest.importorskip("skimage.data")


def write_video(path, frames: int = 12, size=(64, 48), fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for k in range(frames):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, : 4 + 4 * k] = (0, 0, 255)  # a red bar that grows (BGR)
        writer.write(img)
    writer.release()


def test_preprocess_resize_gray_and_scale():
    rgb = skdata.astronaut()  # 512x512x3 uint8 from scikit-image
    gray = Preprocess((32, 32, 1))(rgb)
    assert gray.shape == (32, 32, 1) and gray.dtype == np.uint8
    expect = cv2.resize(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA
    )
    assert np.abs(gray[:, :, 0].astype(int) - expect).max() <= 1
    assert Preprocess((16, 16, 3))(skdata.camera()).shape == (16, 16, 3)  # gray to 3 channels
    assert Preprocess((4, 4, 1))(np.ones((4, 4), np.float32)).max() == 255  # floats in 0..1
    assert Preprocess((4, 4, 1), bits=4)(np.full((4, 4), 200, np.uint8)).max() == 15
    wide = Preprocess((10, 10, 1), resize=Resize.CROP)(
        np.tile(np.arange(40, dtype=np.uint8), (10, 1))
    )
    assert wide[0, 0, 0] >= 15  # the centre 10x10 of 40x10, not squeezed
    with pytest.raises(StreamError, match="is not the model's 32x32"):
        Preprocess((32, 32, 1), resize=Resize.NONE)(np.zeros((8, 8), np.uint8))
    with pytest.raises(StreamError, match="not an image"):
        Preprocess((32, 32, 1))(np.zeros((2, 2, 2, 2)))


def test_images_and_folders(tmp_path):
    for name, img in (("a_coins.png", skdata.coins()), ("b_cat.jpg", skdata.chelsea())):
        PIL.fromarray(img).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(open_source(tmp_path, (32, 32, 1)))
    assert [f.where.rsplit("/", 1)[-1] for f in frames] == ["a_coins.png", "b_cat.jpg"]
    assert np.array_equal(frames[0].data, skdata.coins())
    assert frames[1].data.shape == skdata.chelsea().shape
    single = list(open_source(tmp_path / "a_coins.png", (32, 32, 1)))
    assert len(single) == 1


def test_a_broken_image_in_a_folder(tmp_path):
    PIL.fromarray(skdata.coins()).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    PIL.fromarray(skdata.camera()).save(tmp_path / "c.png")
    with pytest.raises(SourceError, match=r"b.png: frame 1: cannot read the image"):
        list(open_source(tmp_path, (8, 8, 1)))
    kept = list(open_source(tmp_path, (8, 8, 1), on_error="skip"))
    assert [f.where[-5:] for f in kept] == ["a.png", "c.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty: no image files"):
        list(open_source(tmp_path / "empty", (8, 8, 1)))
    with pytest.raises(SourceError, match="nothing: no such file or folder"):
        open_source(tmp_path / "nothing", (8, 8, 1))


def test_video_file(tmp_path):
    path = tmp_path / "bar.avi"
    write_video(path)
    frames = list(open_source(path, (32, 32, 3)))
    assert len(frames) == 12
    assert [f.t_us for f in frames[:3]] == [0, 100_000, 200_000]  # position in the video
    red = frames[5].data[:, :, 0] > 128  # RGB now
    assert red[:, : 4 + 4 * 5 - 2].all() and not red[:, 4 + 4 * 5 + 2 :].any()


def test_unreadable_and_truncated_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(SourceError, match=r"junk.mp4: OpenCV cannot read this video"):
        list(video_frames(junk))
    with pytest.raises(SourceError, match=r"missing.mp4: no such video file"):
        list(video_frames(tmp_path / "missing.mp4"))
    path = tmp_path / "cut.avi"
    write_video(path, frames=30)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut.avi: frame \d+: the video ends at frame \d+ of 30"):
        list(video_frames(path))
    assert 0 < len(list(video_frames(path, on_error="skip"))) < 30


def test_a_camera_that_is_missing_or_disappears(tmp_path):
    with pytest.raises(SourceError, match=r"camera:99: no /dev/video99 \(no such camera"):
        list(open_source("camera:99", (8, 8, 1)))
    # The real OpenCV capture of a short clip runs dry the way an unplugged camera does.
    path = tmp_path / "clip.avi"
    write_video(path, frames=3)
    frames = camera_frames(0, capture=cv2.VideoCapture(str(path)))
    got = [next(frames) for _ in range(3)]
    assert len(got) == 3
    with pytest.raises(SourceError, match=r"camera:0: frame 3: the camera stopped delivering"):
        next(frames)


def test_event_file_source(tmp_path):
    t = np.arange(7000) * 10
    ev = make_events(t, t % 34, (t // 34) % 34, t % 2)
    write_evt3(tmp_path / "e.raw", ev, 34, 34)
    frames = list(open_source(tmp_path / "e.raw", (34, 34, 2), events_per_frame=3000))
    assert [f.t_us for f in frames] == [29_990, 59_990]
    assert all(f.data.sum() == 3000 and f.data.shape == (34, 34, 2) for f in frames)
    windows = list(open_source(tmp_path / "e.raw", (17, 17, 1), window_us=10_000))
    assert len(windows) == 7 and windows[0].data.sum() == 1000
    np.save(tmp_path / "frames.npy", np.zeros((3, 8, 8), np.uint8))  # a .npy of frames
    assert len(list(open_source(tmp_path / "frames.npy", (8, 8, 1)))) == 3


def test_a_missing_camera_is_one_line_without_opencv_warnings() -> None:
    from tests.conftest import run_akida

    out = run_akida("stream", "-m", str(sample_program()), "--source", "camera:0")
    if Path("/dev/video0").exists():
        pytest.skip("this machine has a /dev/video0")
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "akida stream: error: camera:0: no /dev/video0 (no such camera; `ls /dev/video*` "
        "lists the cameras there are)"
    ]
