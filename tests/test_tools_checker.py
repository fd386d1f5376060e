"""The compatibility checker's rules, on hand-written layer descriptions (no TensorFlow)."""

from __future__ import annotations

from akida_rt.tools.block_layers import Bits
from akida_rt.tools.compatibility import check_graph, errors
from akida_rt.tools.graph import Graph, LayerInfo, group_blocks

from akida_rt import AKD1000


def conv(name: str, filters: int, shape: tuple[int, ...], **cfg: object) -> LayerInfo:
    config = {"filters": filters, "kernel_size": (3, 3), "strides": (1, 1), "padding": "same"}
    config.update(cfg)
    cls = "QuantizedConv2D" if "weight_bits" in cfg else "Conv2D"
    return LayerInfo(name, "conv", cls, config, shape, None)


def dense(name: str, units: int, shape: tuple[int, ...], **cfg: object) -> LayerInfo:
    cls = "QuantizedDense" if "weight_bits" in cfg else "Dense"
    return LayerInfo(name, "dense", cls, {"units": units, **cfg}, shape, None)


def bn(name: str) -> LayerInfo:
    return LayerInfo(name, "batchnorm", "BatchNormalization")


def relu(name: str, bits: int | None = None) -> LayerInfo:
    if bits is None:
        return LayerInfo(name, "relu", "ReLU", {"max_value": 6.0})
    return LayerInfo(name, "qrelu", "QuantizedReLU", {"bits": bits, "max_value": 6.0})


def pool(name: str, size: int = 2, strides: int = 2) -> LayerInfo:
    cfg = {"pool_size": (size, size), "strides": (strides, strides), "padding": "valid"}
    return LayerInfo(name, "maxpool", "MaxPooling2D", cfg)


def inp(shape: tuple[int, ...]) -> LayerInfo:
    return LayerInfo("input", "input", "InputLayer", {}, None, shape)


def flatten() -> LayerInfo:
    return LayerInfo("flatten", "flatten", "Flatten")


def digits_like(q: bool = False, **first: object) -> list[LayerInfo]:
    """The digits CNN as descriptions; `q` makes it quantized (4/4, first layer 8-bit)."""
    w = {"weight_bits": 4} if q else {}
    b = 4 if q else None
    return [
        inp((32, 32, 1)),
        conv(
            "conv_0", 16, (32, 32, 1), strides=(2, 2), **({"weight_bits": 8} if q else {}), **first
        ),
        bn("bn_0"),
        relu("relu_0", b),
        conv("conv_1", 32, (16, 16, 16), **w),
        bn("bn_1"),
        relu("relu_1", b),
        pool("pool_1"),
        conv("conv_2", 64, (8, 8, 32), **w),
        bn("bn_2"),
        relu("relu_2", b),
        # No pooling here: a max-pooled convolution feeding a FullyConnected layer runs in
        # software on Akida 1.0 (as BrainChip's mapper does), which the checker reports.
        flatten(),
        dense("dense_3", 10, (4096,), **w),
    ]


def issues_of(infos: list[LayerInfo], stage: str = "float", **kw: object) -> list:
    return check_graph(group_blocks(infos), stage=stage, **kw)  # type: ignore[arg-type]


def test_the_digits_cnn_passes_both_stages_and_maps() -> None:
    assert issues_of(digits_like(), "float", device=AKD1000()) == []
    assert issues_of(digits_like(q=True), "quantized", device=AKD1000()) == []


def test_stride_on_a_later_conv_names_the_layer_and_the_fix() -> None:
    infos = digits_like()
    infos[4] = conv("conv_1", 32, (16, 16, 16), strides=(2, 2))
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("conv_1", "stride")]
    assert found[0].fix == "replace stride-2 conv with stride-1 conv + 2×2 max-pool"


def test_pooling_must_be_2x2_stride_2() -> None:
    infos = digits_like()
    infos[7] = pool("pool_1", size=3, strides=2)
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("pool_1", "pooling")]
    assert "MaxPooling2D(pool_size=2, strides=2" in found[0].fix


def test_batchnorm_after_the_activation_is_an_order_error() -> None:
    infos = digits_like()
    infos[5], infos[6] = infos[6], infos[5]  # conv_1, relu_1, bn_1
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("bn_1", "order")]


def test_global_average_pooling_must_precede_the_activation() -> None:
    infos = digits_like()
    infos[11] = LayerInfo("gap", "gap", "GlobalAveragePooling2D")
    infos[12:13] = []  # no Flatten needed after global pooling
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("gap", "order")]
    assert "right after the convolution" in found[0].fix


def test_hidden_layer_without_activation_is_refused() -> None:
    infos = digits_like()
    del infos[3]  # relu_0
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("conv_0", "activation")]


def test_unsupported_layer_gets_a_specific_fix() -> None:
    infos = digits_like()
    infos[7] = LayerInfo("avg", "unsupported", "AveragePooling2D")
    found = errors(issues_of(infos))
    assert [(i.layer, i.rule) for i in found] == [("avg", "layer-type")]
    assert "MaxPooling2D" in found[0].fix


def test_dense_on_a_4d_tensor_needs_flatten() -> None:
    infos = digits_like()
    infos.remove(infos[12])
    infos[-1] = dense("dense_3", 10, (4, 4, 64))
    assert [(i.layer, i.rule) for i in errors(issues_of(infos))] == [("dense_3", "order")]


def test_quantized_stage_refuses_float_layers_and_bad_bits() -> None:
    found = errors(issues_of(digits_like(q=False), "quantized"))
    assert {i.rule for i in found} == {"quantized"}
    assert {i.layer for i in found} >= {"conv_0", "relu_0", "dense_3"}
    infos = digits_like(q=True)
    infos[4] = conv("conv_1", 32, (16, 16, 16), weight_bits=3)
    infos[3] = relu("relu_0", 3)
    found = errors(issues_of(infos, "quantized"))
    assert sorted((i.layer, i.rule) for i in found) == [("conv_1", "bits"), ("relu_0", "bits")]


def test_input_offset_with_same_padding_on_the_first_layer() -> None:
    graph = group_blocks(digits_like(q=True))
    graph.input_scaling = (255.0, 128.0)
    found = check_graph(graph, stage="quantized")
    assert [(i.layer, i.rule, i.severity) for i in found] == [("conv_0", "input-scaling", "error")]
    graph.input_scaling = (255.0, 0.0)
    assert check_graph(graph, stage="quantized") == []


def test_a_dense_layer_beyond_the_fnp3s_maps_to_an_fnp2() -> None:
    """AKD1000's FNP3s cannot hold the dense weights; as in BrainChip's mapper (which
    places a 16384x4096 4-bit layer on one FNP2), an FNP2 streams them from external memory."""
    infos = [
        inp((16, 16, 1)),
        conv("conv_0", 64, (16, 16, 1)),
        bn("bn_0"),
        relu("relu_0"),
        flatten(),
        dense("big", 4096, (16384,)),
        bn("bn_1"),
        relu("relu_1"),
        dense("out", 10, (4096,)),
    ]
    assert issues_of(infos) == []  # no device: the layer rules are satisfied
    assert errors(issues_of(infos, device=AKD1000(), bits=Bits(weights=4))) == []


def test_mapping_reports_a_split_into_sequences() -> None:
    """Each layer fits alone but the chain needs more NPs than the mesh has."""
    # 192 filters: the most a 3x3 input convolution on 3 channels may have (Akida 1.0)
    infos = [inp((16, 16, 3)), conv("c0", 192, (16, 16, 3)), bn("b0"), relu("r0")]
    for i in range(1, 7):
        infos += [conv(f"c{i}", 256, (16, 16, 192 if i == 1 else 256)), bn(f"b{i}"), relu(f"r{i}")]
    soft = issues_of(infos, device=AKD1000())
    assert [(i.rule, i.severity) for i in soft] == [("mapping", "warning")]
    assert "sequences" in soft[0].message
    strict = issues_of(infos, device=AKD1000(), hw_only=True)
    assert [(i.rule, i.severity) for i in strict] == [("mapping", "error")]


def test_grouping_reads_the_rescaling_as_input_scaling() -> None:
    infos = digits_like()
    infos.insert(1, LayerInfo("rescale", "rescaling", "Rescaling", {"scale": 0.5, "offset": -1.0}))
    graph: Graph = group_blocks(infos)
    assert graph.input_scaling == (2.0, 2.0)  # train = raw * 0.5 - 1 = (raw - 2) / 2
    assert [b.main.name for b in graph.blocks] == ["conv_0", "conv_1", "conv_2", "dense_3"]
    assert graph.blocks[1].pool_after is not None and graph.blocks[3].flattened


def test_a_one_channel_conv_is_judged_by_the_mapper_that_places_it() -> None:
    """BrainChip's one-channel rule refuses 24 filters on one NP but AllNps places them on
    12 + 12, so the checker reports nothing; no split of 17 filters is allowed."""

    def model(filters: int) -> list[LayerInfo]:
        return [
            inp((16, 16, 3)),
            conv("c0", 1, (16, 16, 3)),
            bn("b0"),
            relu("r0"),
            conv("c1", filters, (16, 16, 1)),
            bn("b1"),
            relu("r1"),
        ]

    assert issues_of(model(24), device=AKD1000()) == []
    (issue,) = issues_of(model(17), device=AKD1000())
    assert (issue.layer, issue.rule) == ("c1", "mapping")
    assert "17 filters on one input channel" in issue.message


def test_a_pooled_conv_feeding_dense_is_named_with_the_real_reason() -> None:
    infos = digits_like()
    infos.insert(11, pool("pool_2"))  # conv_2 + max pool, then Flatten -> Dense
    issues = issues_of(infos, device=AKD1000())
    (first,) = [i for i in issues if i.rule == "mapping" and i.severity == "error"]
    assert (
        first.layer == "conv_2" and "max-pooled convolution cannot end a sequence" in first.message
    )
    assert "reduce the layer's size" not in first.fix and "pooling" in first.fix
    # BrainChip's mapper agrees on where the model splits (tests/test_metatf_mapping.py).


def test_hw_only_without_a_device_checks_the_akd1000() -> None:
    infos = digits_like()
    infos.insert(11, pool("pool_2"))
    assert [i for i in issues_of(infos, hw_only=True) if i.rule == "mapping"]
    assert not [i for i in issues_of(infos) if i.rule == "mapping"]  # no device: no mapping
