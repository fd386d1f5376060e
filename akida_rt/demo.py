"""The main job of `make demo`: a model on the (simulated) AKD1000, end to end."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from akida_rt import AKD1000, Model, zoo


def _digits_batch(count: int = 16) -> np.ndarray:
    """Real 8x8 digit scans from scikit-learn, upscaled x4 to 32x32 uint8."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # the runtime alone: random frames
        return np.random.default_rng(0).integers(0, 256, (count, 32, 32, 1), dtype=np.uint8)
    images = load_digits().images[:count]  # values 0..16
    up = np.kron(images, np.ones((4, 4)))
    return np.clip(up * 16, 0, 255).astype(np.uint8)[..., None]


def main() -> int:
    print("== akida_rt demo: digits CNN on the AKD1000 description ==\n")
    model = zoo.digits_cnn(seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits_cnn.akp"
        model.save(path)
        loaded = Model(path)
        print(
            f"saved and reloaded {path.name}: {path.stat().st_size} bytes, identical={loaded.same_as(model)}"
        )
    loaded.map(AKD1000())
    loaded.summary()
    x = _digits_batch()
    out = loaded.forward(x)
    scores = loaded.predict(x)
    print(f"\nforward: {out.shape} {out.dtype}; predict: {scores.shape} {scores.dtype}")
    print("predicted classes (random weights):", scores.reshape(len(x), -1).argmax(axis=1).tolist())
    print(loaded.statistics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
