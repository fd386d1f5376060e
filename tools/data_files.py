"""Training and calibration data in the forms users have: a folder of images, .npy/.npz, a Keras
dataset, or one of the two packaged datasets.

- `digits`, `mnist`: the packaged datasets (`datasets.py`), nothing downloaded.
- `keras:NAME`: `keras.datasets.NAME` (mnist, fashion_mnist, cifar10, cifar100); Keras
  downloads it once into ~/.keras/datasets.
- `FILE.npy`: images only (N,H,W) or (N,H,W,C), values 0..255.
- `FILE.npz`: arrays `x` and `y`, or `x_train`/`y_train` with optional `x_test`/`y_test`.
- `DIR/`: images (png, jpg, bmp, gif, tif, webp, pgm, ppm); one subfolder per class gives labels
  (classes numbered in sorted folder order), images directly in DIR have none. Images are
  resized to the model's input (needs Pillow).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from akida_rt.tools import datasets

from akida_rt.errors import ToolchainError
from akida_rt.stream.image_files import IMAGE_SUFFIXES, folder_images, read_image

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")


@dataclass
class ImageData:
    """uint8 NHWC images, their labels when known, and a labelled test split when given."""

    source: str
    x: np.ndarray
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def load_data(spec: str, shape: tuple[int, int, int] | None = None) -> ImageData:
    """Images from `spec` (see the module docstring); a folder is resized to `shape`."""
    if spec in datasets.DATASETS:
        d = datasets.load(spec)
        return ImageData(spec, d.x_train, d.y_train, d.x_test, d.y_test)
    if spec.startswith("keras:"):
        return _keras_dataset(spec)
    path = Path(spec)
    if path.is_dir():
        return _folder(path, shape)
    if not path.is_file():
        raise ToolchainError(
            f"{spec}: no such data; give digits, mnist, keras:NAME, a .npy/.npz file or a "
            "folder of images"
        )
    if path.suffix == ".npy":
        return ImageData(spec, images(_npload(path), spec))
    if path.suffix == ".npz":
        return _npz(path)
    raise ToolchainError(f"{spec}: unknown data file type; give a .npy or .npz file or a folder")


def images(arr: np.ndarray, where: str) -> np.ndarray:
    """`arr` as uint8 NHWC images, or a ToolchainError saying what is wrong with it."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ToolchainError(
            f"{where}: expected images shaped (N,H,W) or (N,H,W,C), got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise ToolchainError(f"{where}: images must be numbers, got dtype {arr.dtype}")
    if arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255 or not np.all(np.mod(arr, 1) == 0):
            raise ToolchainError(f"{where}: image values must be integers in 0..255 (raw pixels)")
        arr = arr.astype(np.uint8)
    return arr


def labels(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    """Integer class labels, one per image."""
    y = np.asarray(arr).reshape(-1)
    if len(y) != n or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise ToolchainError(f"{where}: expected {n} non-negative integer labels, got {arr.shape}")
    return y.astype(np.int64)


def _npload(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ToolchainError(f"{path}: not a readable numpy file ({exc})") from None


def _npz(path: Path) -> ImageData:
    with _npload(path) as z:  # type: ignore[attr-defined]
        keys = set(z.files)
        xkey = "x" if "x" in keys else "x_train" if "x_train" in keys else None
        if xkey is None:
            raise ToolchainError(f"{path}: expected arrays 'x' (and 'y') or 'x_train'/'y_train'")
        x = images(z[xkey], f"{path}[{xkey}]")
        ykey = "y" if xkey == "x" else "y_train"
        y = labels(z[ykey], len(x), f"{path}[{ykey}]") if ykey in keys else None
        if {"x_test", "y_test"} <= keys:
            xt = images(z["x_test"], f"{path}[x_test]")
            return ImageData(str(path), x, y, xt, labels(z["y_test"], len(xt), f"{path}[y_test]"))
    return ImageData(str(path), x, y)


def _keras_dataset(spec: str) -> ImageData:
    name = spec.partition(":")[2]
    if name not in KERAS_DATASETS:
        raise ToolchainError(f"{spec}: unknown Keras dataset; known: {', '.join(KERAS_DATASETS)}")
    import keras

    (x, y), (xt, yt) = getattr(keras.datasets, name).load_data()
    return ImageData(spec, images(x, spec), labels(y, len(x), spec), images(xt, spec),
                     labels(yt, len(xt), spec))  # fmt: skip


def _folder(path: Path, shape: tuple[int, int, int] | None) -> ImageData:
    if shape is None:
        raise ToolchainError(f"{path}: a folder of images needs the model's input shape")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    groups = [(i, folder_images(c)) for i, c in enumerate(classes)] or [(-1, folder_images(path))]
    files = [(label, f) for label, fs in groups for f in fs]
    if not files:
        raise ToolchainError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    x = np.stack([read_image(f, shape, ToolchainError) for _, f in files])
    y = np.array([label for label, _ in files], np.int64) if classes else None
    return ImageData(str(path), x, y)


def check_shape(data: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    """A ToolchainError when images do not fit the model's input."""
    if tuple(data.shape[1:]) != tuple(shape):
        raise ToolchainError(
            f"{where}: images are {tuple(data.shape[1:])} but the model takes {tuple(shape)}; "
            "give data of the model's input size (or a folder of images, which is resized)"
        )
