"""Host preprocessing to a model's input, declared once per stream: resize, grayscale or
colour, uint8 scaling, the input's bit range."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from akida_rt.errors import StreamError

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as OpenCV and Pillow use


class Resize(enum.Enum):
    STRETCH = "stretch"  # to the input size, whatever the aspect ratio
    CROP = "crop"  # the largest centred crop of the input's aspect ratio, then resized
    NONE = "none"  # frames must already have the input size


@dataclass(frozen=True)
class Preprocess:
    """What every frame of a stream goes through before it is sent.

    Args:
        shape: the model's input (H, W, C).
        resize: how a frame of another size is brought to (H, W).
        bits: the model's input bits; values above 2**bits - 1 are clipped.
    """

    shape: tuple[int, int, int]
    resize: Resize = Resize.STRETCH
    bits: int = 8

    def __call__(self, frame: Any) -> np.ndarray:
        """`frame` (H x W, H x W x 1/3/4; uint8, bool, uint16 or float in 0..1 or 0..255)
        as a uint8 (H, W, C) array of the model's input."""
        x = np.asarray(frame)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[2] not in (1, 2, 3, 4) or 0 in x.shape:
            raise StreamError(f"a frame of shape {x.shape} is not an image (H, W[, C])")
        x = _to_uint8(x)
        x = self._channels(x)
        h, w, _ = self.shape
        if x.shape[:2] != (h, w):
            x = self._resize(x, h, w)
        if self.bits < 8:
            np.minimum(x, (1 << self.bits) - 1, out=x)
        return x

    def _channels(self, x: np.ndarray) -> np.ndarray:
        want, have = self.shape[2], x.shape[2]
        if have == want:
            return x
        if want == 1 and have in (3, 4):
            return (x[:, :, :3] @ LUMA + 0.5).astype(np.uint8)[:, :, None]
        if want == 3 and have == 1:
            return np.repeat(x, 3, axis=2)
        if want == 3 and have == 4:
            return np.ascontiguousarray(x[:, :, :3])
        raise StreamError(f"frames have {have} channels and the model takes {want}")

    def _resize(self, x: np.ndarray, h: int, w: int) -> np.ndarray:
        if self.resize is Resize.NONE:
            raise StreamError(f"a frame of {x.shape[1]}x{x.shape[0]} is not the model's {w}x{h}")
        if self.resize is Resize.CROP:
            fh, fw = x.shape[:2]
            scale = min(fh / h, fw / w)
            ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
            top, left = (fh - ch) // 2, (fw - cw) // 2
            x = x[top : top + ch, left : left + cw]
        try:
            import cv2
        except ImportError:  # nearest neighbour without OpenCV
            rows = (np.arange(h) * x.shape[0]) // h
            cols = (np.arange(w) * x.shape[1]) // w
            return np.ascontiguousarray(x[rows][:, cols])
        shrink = x.shape[0] >= h and x.shape[1] >= w
        out = cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return out.reshape(h, w, x.shape[2])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    if np.issubdtype(x.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(x, initial=0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(x) * scale + 0.5, 0, 255).astype(np.uint8)
    if x.dtype == np.uint16:
        return (x >> 8).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        return np.clip(x, 0, 255).astype(np.uint8)
    raise StreamError(f"frames of dtype {x.dtype} cannot be scaled to uint8")
