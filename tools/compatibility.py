"""The compatibility checker: Akida rules plus the mapping limits of a target device.

Runs before training (stage "float") and before conversion (stage "quantized"). Every
problem names the layer and the fix. Mapping is checked by building the Akida layers the
converter would emit and running the real mapper on them, which catches models that
convert but cannot be placed (too many NPs, oversized kernels, weights beyond the FNPs).
"""

from __future__ import annotations

from typing import Any

from akida_rt.tools.block_layers import Bits, build_layers, padding_of, pair
from akida_rt.tools.graph import Block, Graph, Issue

from akida_rt.errors import AkidaError
from akida_rt.format.layer_params import (
    ACTIVATION_BITS,
    WEIGHT_BITS,
    Padding,
    Pooling,
    same_padding,
    weight_range,
)
from akida_rt.format.layers import Layer
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend, layer_need, map_layers, pool_ends_sequence
from akida_rt.model.model import Model

# Fixes name the command a user runs (tools.post_training.quantize_model in Python).
QUANTIZE_FIX = "quantize the float model: akida quantize -m FLOAT.keras -o Q.keras"

F64_EXACT = 2**53


def _tiles_exactly(shape: tuple[int, ...] | None, stride: int, unknown: bool) -> bool:
    """True when a map of `shape` (H, W, C) splits into whole pooling windows, so that
    valid and same padding give the same max pooling; `unknown` when there is no shape."""
    return unknown if shape is None else all(int(d) % stride == 0 for d in shape[:2])


def _stride_rules(block: Block, index: int) -> list[Issue]:
    cfg, name = block.main.config, block.main.name
    issues: list[Issue] = []
    if block.main.kind == "dense":
        return issues
    sh, sw = pair(cfg.get("strides", 1))
    kh, kw = pair(cfg.get("kernel_size", 1))
    if sh != sw:
        issues.append(Issue(name, "stride", f"strides {sh}x{sw} differ", "use equal strides"))
    if kh != kw:
        issues.append(
            Issue(name, "kernel", f"kernel {kh}x{kw} is not square", "use a square kernel")
        )
    if max(sh, sw) > 1 and index > 0:
        issues.append(
            Issue(
                name,
                "stride",
                f"stride {sh} on a layer other than the first conv",
                f"replace stride-{sh} conv with stride-1 conv + 2×2 max-pool",
            )
        )
    if pair(cfg.get("dilation_rate", 1)) != (1, 1):
        issues.append(Issue(name, "dilation", "dilated convolution", "use dilation_rate=1"))
    if int(cfg.get("depth_multiplier", 1)) != 1:
        issues.append(Issue(name, "depth", "depth_multiplier above 1", "use depth_multiplier=1"))
    if int(cfg.get("groups", 1)) != 1:
        issues.append(Issue(name, "groups", "grouped convolution", "use groups=1"))
    return issues


def _block_rules(graph: Graph, block: Block, index: int, stage: str, default: Bits) -> list[Issue]:
    name, kind, cfg = block.main.name, block.main.kind, block.main.config
    last = index == len(graph.blocks) - 1
    issues = _stride_rules(block, index)
    if cfg.get("activation") not in (None, "linear"):
        issues.append(
            Issue(
                name,
                "order",
                f"activation '{cfg.get('activation')}' fused into the layer",
                "use activation=None and a separate batch-norm + ReLU after the layer",
            )
        )
    if index == 0 and kind == "conv" and graph.input_shape and graph.input_shape[-1] not in (1, 3):
        issues.append(
            Issue(
                name, "input", "the input convolution takes 1 or 3 channels", "use 1 or 3 channels"
            )
        )
    if kind == "dense" and block.pool is not None:
        issues.append(Issue(block.pool.name, "pooling", "pooling after a dense layer", "remove it"))
    in_shape = block.main.input_shape or ()
    if kind == "dense" and len(in_shape) > 1 and not block.flattened:
        issues.append(Issue(name, "order", "Dense on a 4-D tensor", "add Flatten() before it"))
    if kind != "dense" and block.flattened:
        issues.append(Issue(name, "order", "Flatten before a convolution", "remove the Flatten"))
    pool = block.pool
    if pool is not None and pool.kind == "maxpool":
        size, strides = pair(pool.config.get("pool_size", 2)), pool.config.get("strides")
        strides = pair(strides) if strides is not None else size
        pad = str(pool.config.get("padding", "valid")).lower()
        conv_pad = str(block.main.config.get("padding", "valid")).lower()
        if size != (2, 2) or strides != (2, 2):
            issues.append(
                Issue(
                    pool.name,
                    "pooling",
                    f"max-pool {size} stride {strides}",
                    f"use MaxPooling2D(pool_size=2, strides=2, padding='{conv_pad}')",
                )
            )
        elif pad != conv_pad and not _tiles_exactly(pool.input_shape, 2, unknown=True):
            issues.append(
                Issue(
                    pool.name,
                    "pooling",
                    f"max-pool padding {pad} after a {conv_pad}-padded convolution of an "
                    "odd-sized map (AKD1000 pools with the convolution's padding)",
                    f"use MaxPooling2D(pool_size=2, strides=2, padding='{conv_pad}')",
                )
            )
    if block.activation is None and not last:
        issues.append(
            Issue(name, "activation", "only the last layer may omit its activation", "add a ReLU")
        )
    issues += _stage_rules(block, index, stage, default)
    if index == 0 and graph.input_scaling and graph.input_scaling[1] != 0 and kind != "dense":
        shape = in_shape or graph.input_shape
        k = pair(cfg.get("kernel_size", 1))[0]
        s = pair(cfg.get("strides", 1))[0]
        pads = same_padding(int(shape[0]), k, s)[1:] + same_padding(int(shape[1]), k, s)[1:]
        if padding_of(cfg) is Padding.Same and any(pads):
            issues.append(
                Issue(
                    name,
                    "input-scaling",
                    "'same' padding with a non-zero input offset b: the chip pads raw 0, "
                    "the Keras model pads (0 - b) / a",
                    "use padding='valid' in the first layer, or rescale with offset 0",
                    "warning" if stage == "float" else "error",
                )
            )
    return issues


def _stage_rules(block: Block, index: int, stage: str, default: Bits) -> list[Issue]:
    name, cfg = block.main.name, block.main.config
    issues = []
    quantized = block.main.cls.startswith("Quantized")
    act = block.activation
    if stage == "quantized":
        if not quantized:
            issues.append(Issue(name, "quantized", "weights are not quantized", QUANTIZE_FIX))
        elif int(cfg.get("weight_bits", 0)) not in WEIGHT_BITS:
            issues.append(
                Issue(name, "bits", f"weight bits {cfg.get('weight_bits')}", f"use {WEIGHT_BITS}")
            )
        if act is not None and act.kind != "qrelu":
            issues.append(Issue(act.name, "quantized", "float ReLU", QUANTIZE_FIX))
        if (
            act is not None
            and act.kind == "qrelu"
            and int(act.config.get("bits", 0)) not in ACTIVATION_BITS
        ):
            issues.append(
                Issue(
                    act.name,
                    "bits",
                    f"activation bits {act.config.get('bits')}",
                    f"use {ACTIVATION_BITS}",
                )
            )
    elif act is not None and act.kind == "relu" and act.config.get("max_value") is None:
        issues.append(
            Issue(
                act.name,
                "activation",
                "unbounded ReLU",
                "prefer ReLU(6.0); calibration clips at a percentile anyway",
                "warning",
            )
        )
    return issues


def worst_case_bound(layer: Layer) -> int:
    """|accumulator| bound with every weight at its largest magnitude."""
    lo, hi = weight_range(layer.weight_bits)
    w = max(abs(lo), abs(hi))
    x = 2**layer.input_bits - 1
    positions = 1
    if layer.pooling is Pooling.GlobalAvg:
        oh, ow = layer.conv_output_hw()
        positions = oh * ow
    if (pw := layer.pointwise_shape()) is not None:
        return layer.fan_in * w * x * pw[2] * w * positions
    return layer.fan_in * w * x * positions


def mapping_issues(layers: list[Layer], spec: DeviceSpec, hw_only: bool = False) -> list[Issue]:
    """Problems of placing `layers` on `spec`, from the real mapper."""
    issues: list[Issue] = []
    model = Model(name="check")
    try:
        for layer in layers:
            model.add(layer)
    except AkidaError as exc:
        return [Issue(layer.name, "akida", str(exc), "fix the layer's hyper-parameters")]
    try:
        plans = map_layers(layers, spec, hw_only=False)
    except AkidaError as exc:  # defensive: the mapper names the layer itself
        return [Issue("model", "mapping", str(exc), "reduce the model")]
    # A layer the mapper's search placed on NPs runs there, even where the minimal NP
    # count would not (one-channel Conv2D splits); the others get their reason.
    on_nps = {name for p in plans if p.backend is Backend.Hardware for name in p.layers}
    for layer in layers:
        if layer.has_weights and worst_case_bound(layer) >= F64_EXACT:
            issues.append(
                Issue(
                    layer.name,
                    "accumulator",
                    "accumulators may exceed 2^53",
                    "reduce fan-in or bits",
                )
            )
        if layer.name in on_nps:
            continue
        need = layer_need(layer, spec)
        have = spec.count(need.np_type) if need.np_type is not None else 0
        kind = need.np_type.value if need.np_type is not None else "HRC"
        if need.hw_ok and kind != "HRC" and need.count > have:
            need.hw_reason = f"needs {need.count} {kind}, the device has {have}"
        if not need.hw_ok:
            issues.append(
                Issue(
                    layer.name,
                    "mapping",
                    f"cannot run on {spec.name}: {need.hw_reason}",
                    f"make it {need.rule.limit}"
                    if need.rule
                    else _mapping_fix(layer, need.hw_reason, spec),
                )
            )
    hw = [p for p in plans if p.backend is Backend.Hardware]
    by_name = {layer.name: i for i, layer in enumerate(layers)}
    for plan in plans:
        if plan.backend is Backend.Software and not issues:
            issues.append(_software_issue(plan.layers, layers, by_name, spec))
    if len(hw) > 1:
        issues.append(
            Issue(
                hw[1].layers[0],
                "mapping",
                f"the model splits into {len(hw)} hardware sequences on {spec.name} (programs "
                "reload for every frame)",
                "fewer filters or smaller maps before this layer; or MapMode.HwPr",
                "error" if hw_only else "warning",
            )
        )
    return issues


def _software_issue(
    names: list[str], layers: list[Layer], by_name: dict[str, int], spec: DeviceSpec
) -> Issue:
    """Why a run of layers the mapper put in software is there, with its real fix."""
    for name in reversed(names):
        i = by_name.get(name, 0)
        following = layer_need(layers[i + 1], spec) if i + 1 < len(layers) else None
        if pool_ends_sequence(layers[i], following):
            before = [n for n in names if by_name.get(n, 0) < i]
            cascade = (
                f" (and so {', '.join(before)} before it, a max pool feeding it)" if before else ""
            )
            return Issue(
                name,
                "mapping",
                "runs in software: a max-pooled convolution cannot end a sequence (it is the "
                f"last layer or feeds a FullyConnected layer){cascade}",
                "move the max pooling to an earlier convolution, or add a convolution without "
                "pooling before the FullyConnected layer",
            )
    return Issue(names[0], "mapping", "runs in software", "reduce the layer's size")


def _mapping_fix(layer: Layer, reason: str, spec: DeviceSpec) -> str:
    if "kernel" in reason:
        return f"use a kernel of at most {spec.max_kernel}x{spec.max_kernel}"
    if "HRC" in reason:
        return "use a device with an HRC, or an InputData first layer"
    if layer.layer_type.value == "FullyConnected":
        return "fewer units or inputs (pool or shrink the layer before it), or fewer weight bits"
    return "fewer filters, a smaller input map (pool earlier) or fewer weight bits"


def check_graph(
    graph: Graph,
    *,
    stage: str = "quantized",
    device: DeviceSpec | None = None,
    bits: Bits | None = None,
    hw_only: bool = False,
) -> list[Issue]:
    """Every problem of a grouped model: order, layer rules, bit widths, mapping limits.
    hw_only without a device checks the default device, the AKD1000."""
    default = bits or Bits()
    if device is None and hw_only:
        from akida_rt.mapping.hardware import AKD1000

        device = AKD1000()
    issues = list(graph.issues)
    if not graph.blocks:
        return [*issues, Issue("model", "empty", "no conv/dense layer", "add layers")]
    for i, block in enumerate(graph.blocks):
        issues += _block_rules(graph, block, i, stage, default)
    if device is not None and not any(i.severity == "error" for i in issues):
        try:
            layers = build_layers(graph, default)
        except (AkidaError, KeyError, ValueError, IndexError) as exc:
            return [*issues, Issue("model", "akida", str(exc), "fix the layer hyper-parameters")]
        issues += mapping_issues(layers, device, hw_only)
    return issues


def check_model(
    model: Any,
    *,
    stage: str = "quantized",
    device: DeviceSpec | None = None,
    bits: Bits | None = None,
    hw_only: bool = False,
) -> list[Issue]:
    """Check a Keras model (see check_graph); stage is "float" or "quantized"; hw_only
    without a device checks the AKD1000."""
    from akida_rt.tools.graph import describe_keras, group_blocks

    infos, topology = describe_keras(model)
    graph = group_blocks(infos)
    graph.issues = topology + graph.issues
    return check_graph(graph, stage=stage, device=device, bits=bits, hw_only=hw_only)


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]
