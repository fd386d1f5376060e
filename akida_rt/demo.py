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
    _on_device(loaded, x, out)
    return 0


def _on_device(model: Model, x: np.ndarray, software_out: np.ndarray) -> None:
    """The same model on the first device akida_rt.devices() finds (the simulated AKD1000)."""
    import akida_rt

    device = akida_rt.devices()[0]
    kind = "simulated" if device.simulated else device.kind
    print(f"\n== on device {device.id} ({kind} {device.spec.name}) ==")
    device.soc.power_measurement_enabled = True
    model.map(device)
    batch = np.concatenate([x] * 8)  # long enough for the power sensor to sample
    on_device = model.forward(batch)[: len(x)]
    print(f"outputs identical to the software backend: {np.array_equal(on_device, software_out)}")
    print(model.statistics)
    model.map(None)


if __name__ == "__main__":
    sys.exit(main())
