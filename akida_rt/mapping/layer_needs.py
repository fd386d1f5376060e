"""What one layer asks of an AKD1000 mesh: its NP type, NP count, weight and input bytes,
or why it cannot run on hardware (the rules BrainChip's mapper applies per layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akida_rt.format import v1_rules
from akida_rt.format.layers import Layer, LayerType, Padding, Pooling
from akida_rt.mapping import hw_constraints, np_memory
from akida_rt.mapping.hardware import DeviceSpec, NpType

FNP_WEIGHT_BYTES = 262_144  # bound on an FNP's local weights (the simulator's SRAM check)
# An FNP3 keeps a FullyConnected layer's weights on chip when they fit an NP's weight
# SRAM (np_memory.fc_weight_bytes; BrainChip's mapper: 1024x48 4-bit and 1024x128 2-bit
# fit, 1024x63 4-bit does not). Larger layers go to an FNP2, which streams its weights
# from external memory.
EXTERNAL_MEMORY_TYPES = frozenset({NpType.FNP2})
# Most filters a CNP takes: akida.MapConstraints(akida.AKD1000()).cnp_max_filters_default.
# Minimal maps at this bound; AllNps and HwPr search a lower one (_search_max_filters).
CNP_MAX_FILTERS = 504


@dataclass
class LayerNeed:
    """What one layer asks of the mesh."""

    layer: Layer
    np_type: NpType | None  # None: no NP (InputData)
    count: int
    weight_bytes: int
    input_bytes: int
    hw_reason: str = ""  # non-empty: why the layer cannot run on this device
    rule: hw_constraints.Violation | None = None  # the published Akida 1.0 rule it breaks
    split: int = 1  # NPs the input map needs (each filter group is split this many ways)
    groups: int = 1  # filter groups: those the weights need, or more under max_filters

    @property
    def external_bytes(self) -> int:
        """Weight bytes kept in external memory (an FNP2 streams them)."""
        return self.weight_bytes if self.np_type in EXTERNAL_MEMORY_TYPES else 0

    @property
    def hw_ok(self) -> bool:
        return not self.hw_reason


def layer_need(layer: Layer, spec: DeviceSpec, max_filters: int = CNP_MAX_FILTERS) -> LayerNeed:
    """Resources one layer needs on `spec` with at most `max_filters` filters per CNP (the
    default gives its minimal NP count); a layer breaking a published Akida 1.0 hardware
    constraint cannot run there (`rule` names it)."""
    need = _resources(layer, spec, max_filters)
    if (broken := hw_constraints.check_layer(layer)) is not None:
        need.rule, need.hw_reason = broken, str(broken)
    return need


def _resources(layer: Layer, spec: DeviceSpec, max_filters: int) -> LayerNeed:
    t = layer.layer_type
    assert layer.input_shape is not None
    h, w, c = layer.input_shape
    input_bytes = math.ceil(h * w * c * layer.input_bits / 8)
    if t is LayerType.InputData:
        return LayerNeed(layer, None, 0, 0, 0)
    ks = layer.kernel_shape() or (1, 1, 1, 1)
    weight_bytes = math.ceil(ks[0] * ks[1] * ks[2] * ks[3] * layer.weight_bits / 8)
    if (pw := layer.pointwise_shape()) is not None:
        weight_bytes += math.ceil(pw[2] * pw[3] * layer.weight_bits / 8)
    need = LayerNeed(layer, None, 1, weight_bytes, input_bytes)
    if layer.kernel_size > spec.max_kernel:
        need.hw_reason = f"kernel {layer.kernel_size}x{layer.kernel_size} exceeds {spec.max_kernel}x{spec.max_kernel}"
    elif t in (LayerType.Conv2D, LayerType.SeparableConv2D):
        need.hw_reason = _cnp_reason(layer)
        out_w = layer.conv_output_hw()[1] if layer.pooling is Pooling.GlobalAvg else 3
        if not need.hw_reason and out_w < 3:
            need.hw_reason = (
                f"global average pooling over {out_w} column(s) (the convolution's output "
                "needs at least 3)"
            )
    if t is LayerType.InputConv2D:
        need.np_type = NpType.HRC
        if spec.hrc is None:
            need.hw_reason = f"{spec.name} has no HRC for input convolutions"
        elif why := v1_rules.hrc_step_violation(layer):
            need.hw_reason = why
        elif layer.pooling is Pooling.GlobalAvg:
            # akida 2.19.3 runs it in software, whatever the shape, kernel or next layer
            need.hw_reason = (
                "global average pooling on an input convolution (akida runs it in software)"
            )
        return need
    if t is LayerType.FullyConnected:
        on_chip = np_memory.fc_weight_bytes(layer) <= spec.np_weight_bytes
        need.np_type = NpType.FNP3 if on_chip else NpType.FNP2
        if layer.weight_bits > 4:
            need.hw_reason = f"{layer.weight_bits}-bit weights (FNPs take 1 to 4 bits)"
        return need
    # Pooled or not, convolutions run on any CNP (BrainChip places pooled layers on CNP1):
    # tiles of the input map times groups of filters (np_memory.py).
    need.np_type = NpType.CNP1
    tiles = np_memory.tiling(layer, spec.np_input_bytes)
    groups = np_memory.filter_groups(layer, spec.np_weight_bytes)
    if groups is None:
        need.hw_reason = need.hw_reason or (
            f"one filter's weights ({np_memory.weight_bytes(layer, 1):,} bytes) exceed an "
            f"NP's {spec.np_weight_bytes:,}"
        )
    elif tiles is None:
        need.hw_reason = need.hw_reason or "no tiling of the input fits an NP's input memory"
    elif layer.pooling is Pooling.GlobalAvg and tiles.tiles > 1:
        # akida 2.19.3: a 32x32x96 4-bit input (48 KiB, 2 tiles) runs in software, 32x32x84
        # (42 KiB, one tile) maps; separable layers and stride 2 alike.
        need.hw_reason = need.hw_reason or (
            f"global average pooling over an input map cut in {tiles.tiles} tiles (it must "
            "fit one NP's input memory)"
        )
    need.split = tiles.tiles if tiles else 1
    need.groups = max(groups or 1, -(-layer.filters // max_filters))
    need.count = need.split * need.groups
    if not need.hw_reason and not np_memory.one_channel_split_ok(layer, need.groups):
        split = np_memory.filter_split(layer.filters, need.groups)
        need.hw_reason = (
            f"{layer.filters} filters on one input channel split {split} over NPs (above "
            f"{np_memory.ONE_CHANNEL_ANY_SPLIT}, each NP needs an even number of "
            f"{np_memory.FILTER_BLOCK}-filter blocks)"
        )
    return need


def _cnp_reason(layer: Layer) -> str:
    """Why a Conv2D/SeparableConv2D cannot run on a CNP ('' when it can)."""
    k = layer.kernel_size
    if not (layer.stride == 1 or (layer.stride == 2 and k == 3)):
        return f"stride {layer.stride} with a {k}x{k} kernel (NPs take 1, or 2 with 3x3)"
    if layer.padding is not Padding.Same:
        return "valid padding (NPs pad 'same' only)"
    if layer.weight_bits > 4:
        return f"{layer.weight_bits}-bit weights (CNPs take 1, 2 or 4 bits)"
    if layer.pooling is Pooling.Max and layer.pool_size > 2:
        return f"{layer.pool_size}x{layer.pool_size} max pooling (NPs pool 1x1 or 2x2)"
    return ""
