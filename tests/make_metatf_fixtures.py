"""Regenerate tests/data/metatf/*.fbz: v1 models made the way BrainChip's users make them.

Runs in a separate venv with TensorFlow 2.19 and BrainChip's toolchain (cnn2snn 2.19.3,
quantizeml 1.2.5, akida-models 1.14.2), not in the project's venv; see tests/data/metatf/README.md.
"""

from __future__ import annotations

import lzma
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

OUT = Path(
    os.environ.get("METATF_FIXTURES_OUT", Path(__file__).resolve().parent / "data" / "metatf")
)


def _quantizeml_v1(model, shape, dtype="uint8", seed=0, samples=64, weight_bits=4, act_bits=4):
    """quantizeml's flow (cnn2snn's current one): quantize with calibration samples."""
    from quantizeml.models import QuantizationParams, quantize

    rng = np.random.default_rng(seed)
    qp = QuantizationParams(
        activation_bits=act_bits, input_weight_bits=8, weight_bits=weight_bits,
        per_tensor_activations=True, input_dtype=dtype,
    )  # fmt: skip
    hi = 255 if dtype == "uint8" else 127
    lo = 0 if dtype == "uint8" else -128
    x = rng.integers(lo, hi + 1, (samples, *shape)).astype("float32")
    return quantize(model, qparams=qp, samples=x, num_samples=samples, batch_size=16)


def _randomize(model, seed):
    """Random weights and batch-norm statistics so that every layer's potentials spread."""
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w, v in zip(layer.weights, layer.get_weights(), strict=True):
            name = w.name
            if "moving_variance" in name or "gamma" in name:
                v = rng.uniform(0.5, 1.5, v.shape)
            elif "moving_mean" in name or "beta" in name:
                v = rng.normal(0, 0.2, v.shape)
            elif isinstance(layer, keras.layers.BatchNormalization):
                pass
            new.append(np.asarray(v, dtype=np.float32))
        if new:
            layer.set_weights(new)
    return model


def _legacy_v1(model, shape, seed=0):
    """cnn2snn's legacy flow: cnn2snn.quantize (4-bit weights and activations, 8-bit
    input weights), then convert with the input scaling; no calibration data."""
    from cnn2snn import quantize

    return quantize(model, weight_quantization=4, activ_quantization=4, input_weight_quantization=8)


def _edge_learned(ak, shape, seed=0):
    """akida's edge-learning flow on a converted model: its classifier replaced by a
    1-bit FullyConnected layer, compiled with AkidaUnsupervised, then taught 40 samples."""
    import akida

    ak.pop_layer()
    ak.add(akida.FullyConnected(units=12, name="learner", weights_bits=1, activation=False))
    ak.compile(akida.AkidaUnsupervised(num_weights=24, num_classes=3, initial_plasticity=1.0,
                                       min_plasticity=0.1, plasticity_decay=0.25))  # fmt: skip
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (40, *shape)).astype("uint8")
    ak.fit(x, rng.integers(0, 3, 40))
    return ak


def builders():
    import akida_models as am
    import tf_keras as keras

    def tiny_float(shape=(24, 24, 3)):
        """A float-input CNN: conv, max-pooled conv, separable, GAP, dense."""
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
        x = keras.layers.MaxPool2D(2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.SeparableConv2D(32, 3, padding="same", use_bias=False)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.Dense(10)(x)
        return keras.Model(inp, x, name="tiny_float")

    def wide_gap(shape=(30, 30, 3)):
        """A float-input CNN whose global average sums 225 positions: its potentials
        pass the signed 20-bit range, where akida saturates them."""
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(64, 3, strides=2, padding="same", use_bias=False)(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.SeparableConv2D(128, 3, padding="same", use_bias=False)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.Dense(10)(x)
        return keras.Model(inp, x, name="wide_gap")

    def spiking(shape=(24, 24, 3)):
        """A float-input CNN whose last hidden layer emits 1-bit spikes (ReLU1), the
        backbone of BrainChip's edge-learning flow."""
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.SeparableConv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU(1.0)(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(10)(x)
        return keras.Model(inp, x, name="spiking")

    return {
        "float_input_cnn": (lambda: tiny_float(), (24, 24, 3), "uint8"),
        "edge_learned_cnn": (lambda: spiking(), (24, 24, 3), "edge"),
        "wide_gap_cnn": (lambda: wide_gap(), (30, 30, 3), "uint8"),
        "legacy_float_input_cnn": (lambda: tiny_float(), (24, 24, 3), "legacy"),
        "ds_cnn_kws": (lambda: am.ds_cnn_kws(classes=12), (49, 10, 1), "uint8"),
        "gxnor_mnist": (lambda: am.gxnor_mnist(), (28, 28, 1), "uint8"),
        "akidanet_025_64": (
            lambda: am.akidanet_imagenet(input_shape=(64, 64, 3), alpha=0.25, classes=10),
            (64, 64, 3), "uint8"),
        "akidanet_05_224": (
            lambda: am.akidanet_imagenet(input_shape=(224, 224, 3), alpha=0.5, classes=10),
            (224, 224, 3), "uint8"),
        "akidanet_10_96": (
            lambda: am.akidanet_imagenet(input_shape=(96, 96, 3), alpha=1.0, classes=10),
            (96, 96, 3), "uint8"),
        "mobilenet_025_64": (
            lambda: am.mobilenet_imagenet(input_shape=(64, 64, 3), alpha=0.25, classes=10),
            (64, 64, 3), "uint8"),
        "vgg_utk_face": (lambda: am.vgg_utk_face(input_shape=(32, 32, 3)), (32, 32, 3), "uint8"),
        "yolo_025_64": (
            lambda: am.yolo_base(input_shape=(64, 64, 3), classes=2, nb_box=2, alpha=0.25),
            (64, 64, 3), "uint8"),
        "convtiny_dvs": (lambda: am.convtiny_dvs(input_shape=(32, 32, 2), classes=10),
                         (32, 32, 2), "uint8"),
    }  # fmt: skip


# Kept in the repository (~330 KB packed); mobilenet_025_64 (130 KB packed) and
# yolo_025_64 (3 MB) are built on request only and were measured once (README.md).
DEFAULT = ("float_input_cnn", "wide_gap_cnn", "edge_learned_cnn", "legacy_float_input_cnn", "ds_cnn_kws", "gxnor_mnist",
           "akidanet_025_64", "vgg_utk_face")  # fmt: skip


def main(names: list[str]) -> None:
    from cnn2snn import AkidaVersion, convert, set_akida_version

    OUT.mkdir(parents=True, exist_ok=True)
    todo = builders()
    for name in names or DEFAULT:
        make, shape, dtype = todo[name]
        with set_akida_version(AkidaVersion.v1):
            try:
                model = _randomize(make(), seed=len(name))
                if dtype == "legacy":
                    ak = convert(_legacy_v1(model, shape), input_scaling=(1.0, 0.0))
                elif dtype == "edge":
                    ak = _edge_learned(
                        convert(_quantizeml_v1(model, shape, "uint8", act_bits=1)), shape
                    )
                else:
                    ak = convert(_quantizeml_v1(model, shape, dtype))
            except Exception as exc:  # report and go on: one line per architecture
                print(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
        path = OUT / f"{name}.fbz"
        ak.save(str(path))
        packed = OUT / f"{name}.fbz.xz"  # random 4-bit weights: xz halves akida's int8 file
        packed.write_bytes(lzma.compress(path.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
        path.unlink()
        kinds = [str(layer.parameters.layer_type).rsplit(".", 1)[-1] for layer in ak.layers]
        print(f"{name}: {packed.stat().st_size} bytes packed, {len(kinds)} layers: {kinds}")


if __name__ == "__main__":
    main(sys.argv[1:])
