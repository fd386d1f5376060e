"""BrainChip's published Akida 1.0 hardware constraints: the mapper and the checker refuse
each broken rule, naming the rule and the limit."""

from __future__ import annotations

import pytest

from akida_rt import AKD1000, Model
from akida_rt.errors import MappingError
from akida_rt.format.layer_kinds import Conv2D, FullyConnected, InputConv2D, SeparableConv2D
from akida_rt.format.layer_params import Padding, Pooling
from akida_rt.mapping.mapper import layer_need
from akida_rt.model import zoo

CASES = [  # (layers, the rule's words, the limit's words)
    ([InputConv2D("c", (28, 4, 1), 8, 3)], "input width is 4", "5 to 256"),
    ([InputConv2D("c", (28, 300, 1), 8, 3)], "input width is 300", "5 to 256"),
    ([InputConv2D("c", (28, 28, 3), 193, 3)], "on 3 channel(s) is 193", "at most 192"),
    ([InputConv2D("c", (28, 28, 1), 97, 7)], "on 1 channel(s) is 97", "at most 96"),
    ([InputConv2D("c", (28, 28, 1), 8, 3), Conv2D("k", 8, 3, stride=3)], "Conv2D stride is 3",
     "1, 2"),
    ([InputConv2D("c", (28, 28, 1), 8, 3), SeparableConv2D("s", 8, 1)],
     "SeparableConv2D kernel size is 1x1", "3x3, 5x5, 7x7"),
    ([InputConv2D("c", (28, 28, 1), 8, 3), Conv2D("k", 8, 3, padding=Padding.Valid)],
     "Conv2D padding is valid", "same"),
    ([InputConv2D("c", (28, 28, 1), 8, 3), Conv2D("k", 8, 3, pooling=Pooling.Max, pool_size=3)],
     "max pooling size is 3x3", "1x1 or 2x2"),
    ([InputConv2D("c", (80, 80, 1), 8, 3), Conv2D("k", 8, 3, pooling=Pooling.GlobalAvg)],
     "global average pooling width is 80", "1 to 32"),
    ([InputConv2D("c", (128, 128, 3), 8, 3), FullyConnected("d", 10)],
     "FullyConnected input size W x H x C is 131,072", "at most 57,334"),
]  # fmt: skip


@pytest.mark.parametrize(("layers", "rule", "limit"), CASES)
def test_mapper_refuses_each_published_rule_by_name(layers, rule, limit) -> None:
    model = Model(name="m")
    for layer in layers:
        model.add(layer)
    zoo.randomize(model)
    need = layer_need(model.layers[-1], AKD1000())
    assert need.rule is not None and rule in need.hw_reason and limit in need.hw_reason
    assert "Akida 1.0 hardware constraints" in need.hw_reason
    with pytest.raises(MappingError, match=r"Akida 1\.0") as info:
        model.map(AKD1000(), hw_only=True)
    assert rule in str(info.value) and limit in str(info.value)


def test_layers_at_the_limits_map() -> None:
    model = Model(name="edge")
    model.add(InputConv2D("c", (32, 256, 3), 192, 3, stride=2, pooling=Pooling.Max))
    model.add(Conv2D("k", 16, 1, stride=2))
    model.add(SeparableConv2D("s", 16, 3, pooling=Pooling.GlobalAvg))
    model.add(FullyConnected("d", 10))
    assert all(layer_need(layer, AKD1000()).rule is None for layer in model.layers)
