"""Randomized BrainChip Akida 1.0 (v1) models built with the `akida` package's layer API.

Random weights; thresholds and steps calibrated on each layer's potentials for a sample
batch, so every activation level occurs. Used by the conformance suite and vs_metatf.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from akida_rt.engine.integer import compile_layer, potentials

N_MODELS = 60


def _akida() -> Any:
    import akida

    return akida


def random_spec(seed: int) -> dict[str, Any]:
    """Hyper-parameters of model `seed`: every layer type, bit width, pooling, stride and
    padding occurs across the first N_MODELS seeds (seed % k picks the rarer features)."""
    rng = np.random.default_rng(seed)
    image = seed % 2 == 0
    h, w = int(rng.integers(9, 19)), int(rng.integers(9, 19))
    spec: dict[str, Any] = {"seed": seed, "image": image, "hidden": []}
    if image:
        k = int(rng.choice([3, 5, 7]))
        spec["input"] = dict(
            shape=(h, w, int(rng.choice([1, 3]))),
            kernel=k,
            filters=int(rng.integers(4, 17)),
            stride=int(rng.integers(1, 3)) if seed % 5 else 3,
            padding="valid" if seed % 6 == 4 else "same",
            padding_value=[0, 128, int(rng.integers(1, 256))][seed % 3],
            pool=seed % 4 == 2,
            weights_bits=[8, 4, 2, 1][(seed // 2) % 4],
            act_bits=[4, 2, 1][(seed // 2) % 3],
        )
    else:
        spec["input"] = dict(
            shape=(h, w, int(rng.integers(1, 9))), input_bits=[1, 2, 4][(seed // 2) % 3]
        )
    for i in range(int(rng.integers(1, 4))):
        sep = bool(rng.random() < 0.4)
        stride = 2 if rng.random() < 0.3 else 1
        pool = str(rng.choice(["none", "none", "max", "gap"])) if i else "none"
        spec["hidden"].append(
            dict(
                separable=sep,
                kernel=3 if stride == 2 or sep else int(rng.choice([1, 3, 5])),
                filters=int(rng.integers(4, 25)),
                stride=stride,
                padding="valid" if rng.random() < 0.2 else "same",
                pool=pool,
                pool_size=int(rng.choice([1, 2])),
                pool_stride=2 if rng.random() < 0.7 else 1,
                weights_bits=int(rng.choice([1, 2, 4])),
                act_bits=int(rng.choice([1, 2, 4])),
            )
        )
        if pool == "gap":
            break
    spec["dense"] = [int(rng.integers(8, 33))] if rng.random() < 0.4 else []
    spec["units"] = int(rng.integers(2, 12))
    spec["last_activation"] = seed % 7 == 3
    spec["dense_bits"] = int(rng.choice([1, 2, 4]))
    return spec


def build(spec: dict[str, Any]) -> Any:
    """The akida.Model of `spec` with random weights (thresholds set by calibrate)."""
    akida = _akida()
    pad = {"same": akida.Padding.Same, "valid": akida.Padding.Valid}
    m = akida.Model()
    inp = spec["input"]
    if spec["image"]:
        pool = dict(pool_size=(2, 2), pool_type=akida.PoolType.Max) if inp["pool"] else {}
        m.add(
            akida.InputConvolutional(
                input_shape=inp["shape"], kernel_size=(inp["kernel"],) * 2, filters=inp["filters"],
                name="input", kernel_stride=(inp["stride"],) * 2, padding=pad[inp["padding"]],
                padding_value=inp["padding_value"], weights_bits=inp["weights_bits"],
                act_bits=inp["act_bits"], **pool,
            )
        )  # fmt: skip
    else:
        m.add(akida.InputData(input_shape=inp["shape"], input_bits=inp["input_bits"], name="input"))
    for i, hid in enumerate(list(spec["hidden"])):
        pool: dict[str, Any] = {}
        if hid["pool"] == "max":
            stride = min(hid["pool_stride"], hid["pool_size"])
            pool = dict(pool_size=(hid["pool_size"],) * 2, pool_stride=(stride,) * 2,
                        pool_type=akida.PoolType.Max)  # fmt: skip
        elif hid["pool"] == "gap":
            pool = dict(pool_type=akida.PoolType.Average)
        cls = akida.SeparableConvolutional if hid["separable"] else akida.Convolutional
        try:
            m.add(
                cls(kernel_size=(hid["kernel"],) * 2, filters=hid["filters"], name=f"conv_{i}",
                    kernel_stride=(hid["stride"],) * 2, padding=pad[hid["padding"]],
                    weights_bits=hid["weights_bits"], act_bits=hid["act_bits"], **pool)
            )  # fmt: skip
        except RuntimeError:
            # akida refuses a layer whose output would be empty: the model ends before it.
            # Built again without it: the refused add leaves the akida.Model broken (mapping
            # it segfaulted akida 2.19.3, seeds 2 and 30).
            del spec["hidden"][i:]
            return build(spec)
    for j, units in enumerate(spec["dense"]):
        m.add(akida.FullyConnected(units=units, name=f"dense_{j}", weights_bits=4, act_bits=2))
    last = spec["last_activation"]
    m.add(
        akida.FullyConnected(units=spec["units"], name="classifier", weights_bits=spec["dense_bits"],
                             activation=last, act_bits=4)
    )  # fmt: skip
    random_weights(m, np.random.default_rng(spec["seed"] + 1000))
    return m


def random_weights(m: Any, rng: np.random.Generator, first_at_top: bool = False) -> None:
    """Uniform random weights in each layer's bit range; `first_at_top` sets each kernel's
    first weight to the top of the range (akida refuses an all-zero HRC kernel)."""
    for layer in m.layers:
        names = layer.get_variable_names()
        if "weights" not in names:
            continue
        bits = layer.parameters.weights_bits
        lo, hi = (0, 1) if bits == 1 else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
        for key in ("weights", "weights_pw"):
            if key in names:
                w = rng.integers(lo, hi + 1, size=layer.get_variable(key).shape).astype(np.int8)
                if first_at_top:
                    w.flat[0] = hi
                layer.set_variable(key, w)


def sample(model: Any, n: int, seed: int) -> np.ndarray:
    """Random uint8 inputs in the model's input range (sparse for event inputs)."""
    rng = np.random.default_rng(seed)
    shape = (n, *model.input_shape)
    bits = model.layers[0].input_bits
    x = rng.integers(0, 2**bits, size=shape)
    if bits < 8:
        x = np.where(rng.random(shape) < 0.5, x, 0)
    return x.astype(np.uint8)


def calibrate(model: Any, x: np.ndarray, seed: int, spread: float | None = None) -> None:
    """Thresholds and act_steps from each layer's potentials on `x`, layer by layer;
    `spread` bounds a layer's largest act_step over its smallest (akida_rt's engine needs
    that on wide layers: the v1 rule's shift is per layer, its multiplier per channel).

    The potentials come from akida_rt's engine on the imported prefix: calibration only
    picks test parameters; the expected outputs are akida's own.
    """
    from akida_rt.tools.metatf import import_model

    rng = np.random.default_rng(seed)
    for i, layer in enumerate(model.layers):
        if "threshold" not in layer.get_variable_names():
            continue
        ours = import_model(model)
        feed = ours.layers[:i]
        y = x.astype(np.float32)
        for prev in feed:
            from akida_rt.engine.integer import Engine

            y = Engine([prev]).run(y)
        p, _ = potentials(compile_layer(ours.layers[i]), y)
        p = p.reshape(-1, p.shape[-1])
        n = p.shape[1]
        lo = np.percentile(p, rng.uniform(20, 60), axis=0)
        hi = np.percentile(p, 99, axis=0)
        levels = 2**layer.parameters.act_bits if layer.parameters.activation else 16
        step = np.maximum((hi - lo) / levels * rng.uniform(0.8, 1.25, size=n), 0.0625)
        if spread is not None:
            step = np.maximum(step, step.max() / spread)
        layer.set_variable("threshold", np.round(lo).astype(np.int32))
        layer.set_variable("act_step", step.astype(np.float32))


def random_model(seed: int, n: int = 8) -> tuple[Any, np.ndarray]:
    """(akida.Model, inputs) for conformance model `seed`."""
    model = build(random_spec(seed))
    x = sample(model, n, seed)
    calibrate(model, x, seed)
    return model, x


def from_zoo(model: Any, seed: int = 0) -> Any:
    """The v1 akida.Model with the architecture of an akida_rt zoo model (random weights,
    akida's default thresholds), built by the exporter."""
    from akida_rt.tools.metatf_export import export_model

    m = export_model(model, with_variables=False)
    random_weights(m, np.random.default_rng(seed), first_at_top=True)
    return m


def v1_zoo(model: Any, seed: int = 0, n: int = 4) -> tuple[Any, np.ndarray]:
    """(akida.Model, inputs): a zoo architecture in v1 form, random weights and thresholds
    calibrated on random inputs as the conformance models are."""
    m = from_zoo(model, seed)
    x = sample(m, n, seed)
    calibrate(m, x, seed, spread=16)
    return m, x


def akida_allocation(model: Any) -> dict[str, tuple[int, str]]:
    """{layer: (NP count, NP type)} of a mapped akida.Model (the HRC counts as 1 HRC)."""
    out = {}
    for seq in model.sequences:
        for p in seq.passes:
            for layer in p.layers:
                nps = layer.mapping.nps if layer.mapping else []
                types = {str(n.type).rsplit(".", 1)[-1] for n in nps}
                out[layer.name] = (len(nps), "/".join(sorted(types)))
    return out


def our_allocation(model: Any) -> dict[str, tuple[int, str]]:
    """The same for a mapped akida_rt Model."""
    return {
        p.layer: (len(p.nps), p.np_type)
        for s in model.sequences
        for p in s.plan.placements
        if p.np_type != "none"
    }
