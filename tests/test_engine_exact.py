"""The software backend is bit-exact with the int64 reference over randomized models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from akida_rt import (
    Conv2D,
    FullyConnected,
    InputConv2D,
    InputData,
    Model,
    Padding,
    Pooling,
    SeparableConv2D,
)
from akida_rt.engine.integer import F32_EXACT, accumulator_bound, compile_layer
from akida_rt.format.layer_params import weight_range
from akida_rt.model import zoo
from tests.reference import reference_forward


def _random_model(rng: np.random.Generator, extreme: bool) -> Model:
    """A random chain of every layer type; `extreme` saturates weights and inputs."""
    h = int(rng.integers(6, 14))
    wbits = [1, 2, 4, 8]
    model = Model(name="random")
    if rng.random() < 0.5:
        model.add(
            InputConv2D("in", (h, h + 1, int(rng.choice([1, 3]))), int(rng.integers(2, 9)),
                        int(rng.choice([1, 3, 5])), stride=int(rng.integers(1, 3)),
                        padding=Padding(rng.choice(["same", "valid"])),
                        padding_value=int(rng.choice([0, 128, 255])),
                        activation_bits=int(rng.choice([1, 2, 4])))
        )  # fmt: skip
    else:
        model.add(
            InputData(
                "in", (h, h + 1, int(rng.integers(1, 6))), input_bits=int(rng.choice([1, 2, 4, 8]))
            )
        )
    choices = [
        lambda i: Conv2D(f"c{i}", int(rng.integers(1, 12)), int(rng.choice([1, 3])),
                         pooling=Pooling(rng.choice(["none", "max"])), weight_bits=int(rng.choice(wbits)),
                         activation_bits=int(rng.choice([1, 2, 4])), stride=int(rng.choice([1, 1, 2])),
                         pool_size=int(rng.choice([1, 2, 3])), pool_stride=int(rng.choice([1, 2])),
                         pool_padding=Padding(rng.choice(["same", "valid"]))),
        lambda i: SeparableConv2D(f"s{i}", int(rng.integers(1, 12)), 3, weight_bits=int(rng.choice(wbits)),
                                  padding=Padding(rng.choice(["same", "valid"])),
                                  stride=int(rng.choice([1, 1, 2]))),
    ]  # fmt: skip
    for i in range(int(rng.integers(1, 3))):
        layer = choices[int(rng.integers(0, 2))](i)
        try:
            model.add(layer)
        except Exception:
            break
    if rng.random() < 0.3:
        model.add(Conv2D("gap", int(rng.integers(2, 8)), 3, pooling=Pooling.GlobalAvg))
    model.add(FullyConnected("fc", int(rng.integers(2, 12)), weight_bits=int(rng.choice(wbits)),
                             activation=bool(rng.random() < 0.5)))  # fmt: skip
    for layer in model.layers:
        if layer.kernel_shape() is None:
            continue
        lo, hi = weight_range(layer.weight_bits)
        for key, shape in (
            ("weights", layer.kernel_shape()),
            ("pointwise", layer.pointwise_shape()),
        ):
            if shape is None:
                continue
            w = (
                rng.choice([lo, hi], size=shape)
                if extreme
                else rng.integers(lo, hi + 1, size=shape)
            )
            layer.set_variable(key, w)
        n = layer.output_channels
        layer.set_variable("bias", rng.integers(-50, 50, n))
        if layer.activation:
            layer.act_shift = int(rng.integers(0, 12))
            layer.set_variable("act_scale", rng.integers(1, 64, n))
            layer.set_variable("act_offset", rng.integers(-(2**12), 2**10, n))
    model.validate()
    return model


def _inputs(model: Model, rng: np.random.Generator, extreme: bool, n: int = 3) -> np.ndarray:
    top = 2**model.input_bits - 1
    shape = (n, *model.input_shape)
    if extreme:
        return np.full(shape, top, np.uint8)
    return rng.integers(0, top + 1, shape, dtype=np.uint8)


@pytest.mark.parametrize("seed", range(40))
def test_random_models_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    extreme = seed % 4 == 0
    model = _random_model(rng, extreme)
    x = _inputs(model, rng, extreme)
    expected = reference_forward(model.layers, x)
    got = model.forward(x)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.int64), expected)


def test_large_accumulators_use_exact_float64_and_int64_paths() -> None:
    """8-bit weights, maximal inputs, a 7x7 kernel over 512 channels: |acc| > 2^24."""
    model = Model(name="big")
    model.add(InputData("in", (7, 7, 512), input_bits=4))
    conv = Conv2D("big", 8, 7, padding=Padding.Valid, weight_bits=8, activation=True)
    model.add(conv)
    model.add(FullyConnected("fc", 3, weight_bits=8, activation=False))
    rng = np.random.default_rng(7)
    conv.set_variable("weights", np.where(rng.random((7, 7, 512, 8)) < 0.9, 127, -127))
    conv.act_shift = 30
    conv.set_variable("act_scale", np.full(8, 2**30 + 12345))  # forces the int64 activation path
    conv.set_variable("act_offset", np.full(8, -(2**20)))
    model.get_layer("fc").set_variable("weights", rng.choice([-127, 127], (1, 1, 8, 3)))
    compiled = compile_layer(conv)
    assert accumulator_bound(conv)[0] >= F32_EXACT and compiled.dtype == np.float64
    assert compiled.act_int is not None
    x = np.full((2, 7, 7, 512), 15, np.uint8)
    x[1, ::2] = 0
    np.testing.assert_array_equal(
        model.forward(x).astype(np.int64), reference_forward(model.layers, x)
    )


@pytest.mark.parametrize("builder", [zoo.digits_cnn, zoo.ds_cnn_kws])
def test_reference_architectures_match(builder) -> None:
    model = builder(seed=3)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (4, *model.input_shape), dtype=np.uint8)
    np.testing.assert_array_equal(
        model.forward(x).astype(np.int64), reference_forward(model.layers, x)
    )


def test_statistics_count_events_and_synops(digits_model: Model) -> None:
    model = zoo.digits_cnn(seed=0)
    x = np.zeros((2, 32, 32, 1), np.uint8)
    x[:, 10, 10] = 200  # one event per frame
    model.forward(x)
    stats = model.statistics
    first = stats.layers["conv_0"]
    assert stats.frames == 2 and first.frames == 2
    assert first.input_events == 2
    assert first.synops == 2 * 3 * 3 * 16
    # Events out of one layer are the events into the next.
    names = [layer.name for layer in model.layers]
    for a, b in itertools.pairwise(names):
        assert stats.layers[a].output_events == stats.layers[b].input_events
    x2 = np.zeros((1, 32, 32, 1), np.uint8)
    model.reset_statistics()
    model.forward(x2)
    assert (
        model.statistics.layers["conv_1"].synops
        == model.statistics.layers["conv_0"].output_events * 9 * 32
    )


def test_a_big_batch_split_over_a_spare_core_equals_one_thread(monkeypatch) -> None:
    """Half of a big batch runs on the engine's helper thread when a core is idle: the
    outputs and the statistics (counted once per sample) are those of one thread."""
    import threading

    from akida_rt.engine import blas
    from akida_rt.engine import integer as engine_mod

    model = zoo.digits_cnn(seed=0)
    x = np.random.default_rng(1).integers(0, 256, (40, *model.input_shape), np.uint8)
    assert model.engine().macs_per_sample * len(x) >= blas.SPLIT_MACS
    ran_on: list[tuple[str, int]] = []
    run = engine_mod._run

    def recording(compiled, chunk):
        ran_on.append((threading.current_thread().name, len(chunk)))
        return run(compiled, chunk)

    monkeypatch.setattr(engine_mod, "_run", recording)
    results = {}
    for busy in (True, False):
        monkeypatch.setattr(blas, "no_idle_core", lambda busy=busy: busy)
        model.reset_statistics()
        results[busy] = model.forward(x), model.statistics.layers
    main = threading.current_thread().name
    chunk = model.engine().chunk  # samples a run, so that its buffers stay in cache
    busy_runs = -(-40 // chunk)
    assert {name for name, _ in ran_on[:busy_runs]} == {main}
    assert sum(size for _, size in ran_on[:busy_runs]) == 40
    split = ran_on[busy_runs:]
    (helper,) = {name for name, _ in split} - {main}
    assert helper.startswith("akida-engine")
    for thread in (helper, main):  # half each, in runs of at most `chunk` samples
        sizes = [size for name, size in split if name == thread]
        assert sum(sizes) == 20 and max(sizes) <= chunk
    assert np.array_equal(results[True][0], results[False][0])
    assert results[True][1] == results[False][1]
    assert all(stats.frames == 40 for stats in results[False][1].values())


def test_a_forked_child_splits_big_batches_on_its_own_helper(monkeypatch) -> None:
    """The engine's helper thread does not survive fork: a child that splits a batch after
    its parent did must get a new one, not wait forever on the parent's."""
    import multiprocessing

    from akida_rt.engine import blas

    monkeypatch.setattr(blas, "no_idle_core", lambda: False)
    model = zoo.digits_cnn(seed=0)
    x = np.random.default_rng(1).integers(0, 256, (40, *model.input_shape), np.uint8)
    expected = model.forward(x)  # the parent's helper thread runs half of it

    def child(queue) -> None:
        queue.put(model.forward(x))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    try:
        got = queue.get(timeout=60)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert np.array_equal(got, expected)


def test_the_potential_clip_runs_only_where_it_can_change_a_value() -> None:
    """Rule 2b's clip is skipped when the accumulator bound lies inside the potential_bits
    range (the digits CNN's 20 bits: the outputs are the int64 reference's, which has no
    clip), and kept, with its effect, when it does not (akida's saturation itself is
    checked by test_metatf_conformance's probes)."""
    model = zoo.digits_cnn(seed=0)
    layer = model.layers[1]
    layer.potential_bits = 20
    assert accumulator_bound(layer)[0] < 2**19 - 1 and not compile_layer(layer).saturates
    x = np.random.default_rng(2).integers(0, 256, (4, *model.input_shape), np.uint8)
    wide = model.forward(x)
    np.testing.assert_array_equal(wide.astype(np.int64), reference_forward(model.layers, x))
    layer.potential_bits = 8  # bound > 127: positions saturate, and the outputs change
    assert compile_layer(layer).saturates
    assert not np.array_equal(model.forward(x), wide)
