"""Image files as model inputs (Pillow): which files are images, a folder's images, and
one image read as a model's (H, W, C) uint8 input, resized and converted to gray or RGB.

Used by `akida run` (an image input), the toolchain's image folders and the stream's image
sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from akida_rt.errors import AkidaError, InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in `folder`, in name order."""
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def read_image(
    file: Path, shape: tuple[int, int, int], error: type[AkidaError] = InputError
) -> np.ndarray:
    """`file` as a (H, W, C) uint8 model input; `error` is raised, naming the file, when
    Pillow is missing or the file is not a readable image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise error(f"{file}: reading images needs Pillow (pip install pillow)") from None
    h, w, c = shape
    try:
        with Image.open(file) as img:
            arr = np.asarray(img.convert("L" if c == 1 else "RGB").resize((w, h)), np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise error(f"{file}: not a readable image: {exc}") from None
    return arr.reshape(h, w, c)
