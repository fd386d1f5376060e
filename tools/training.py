"""Training and evaluation helpers shared by the CLI, the benchmark and the demo script.

Models take raw uint8 images as float32 (their Rescaling layer scales them). Progress is
reported through an optional callback, so tqdm stays in the command-line layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from akida_rt.model.model import Model


@dataclass
class Agreement:
    """How closely a converted program reproduces the quantized Keras model."""

    argmax: float  # fraction of samples with the same argmax
    max_abs_diff: float  # max |predict() - keras output|
    samples: int


class _Progress(keras.callbacks.Callback):
    def __init__(self, report: Callable[[int], None]) -> None:
        super().__init__()
        self.report = report

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.report(1)


def compile_classifier(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Adam + sparse cross-entropy on logits + accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def shift_augment(x: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Random translations by up to `max_shift` pixels (zero fill), per image."""
    out = np.zeros_like(x)
    n, h, w = x.shape[:3]
    shifts = rng.integers(-max_shift, max_shift + 1, (n, 2)).tolist()
    for i, (dy, dx) in enumerate(shifts):
        ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
        yd, xd = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
        out[i, yd, xd] = x[i, ys, xs]
    return out


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    augment: int = 0,
    progress: Callable[[int], None] | None = None,
) -> keras.Model:
    """Train a classifier (cosine-decayed Adam); `augment` > 0 shifts images randomly per epoch.

    The same `seed` gives the same weights on a rerun: seeds are set and TensorFlow's op
    determinism is enabled (for the rest of the process).
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(seed)
    steps = epochs * -(-len(x) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02)
    compile_classifier(model, schedule)  # type: ignore[arg-type]
    callbacks = [_Progress(progress)] if progress is not None else []
    for _ in range(epochs):
        xe = shift_augment(x, rng, augment) if augment else x
        model.fit(
            xe.astype(np.float32),
            y,
            epochs=1,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    return model


def keras_outputs(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The Keras model's float outputs on raw images (inference mode).

    The model is called directly rather than through `predict()`, which traces a new
    graph function for every model and warns about retracing when many are evaluated.
    """
    x = x.astype(np.float32)
    parts = [
        np.asarray(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(outputs.reshape(len(y), -1).argmax(axis=1) == y))


def program_outputs(program: Model, x: np.ndarray) -> np.ndarray:
    """predict() of a converted program, flattened to (N, classes)."""
    return program.predict(x).reshape(len(x), -1)


def agreement(keras_out: np.ndarray, program_out: np.ndarray) -> Agreement:
    """Argmax agreement and max |difference| between Keras outputs and predict()."""
    k = keras_out.reshape(len(keras_out), -1)
    p = program_out.reshape(len(program_out), -1)
    return Agreement(
        float(np.mean(k.argmax(axis=1) == p.argmax(axis=1))),
        float(np.abs(k.astype(np.float64) - p).max(initial=0.0)),
        len(k),
    )
