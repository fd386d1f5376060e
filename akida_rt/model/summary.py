"""Text tables for Model.summary(), in the layout of the Akida user guide."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any, Protocol

from akida_rt.format.layers import SHORT_NAMES, Layer
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend
from akida_rt.model.sequence import Sequence


class Summarized(Protocol):
    """What a summary shows of a Model (akida_rt.model.model.Model)."""

    @property
    def layers(self) -> list[Layer]: ...

    @property
    def sequences(self) -> list[Sequence]: ...

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def output_shape(self) -> tuple[int, int, int]: ...

    @property
    def device(self) -> Any: ...


def _shape(s: Seq[int] | None) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]" if s is not None else "N/A"


def _table(rows: list[list[str]], header: list[str], title_rule: str = "=") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    total = len(fmt.format(*header))
    out = ["_" * total, fmt.format(*header), title_rule * total]
    for r in rows:
        out.append(fmt.format(*r))
    out.append("_" * total)
    return out


def summary_text(model: Summarized) -> str:
    """The summary of a Model (mapped or not) as text."""
    layers = model.layers
    sequences = model.sequences
    np_total = sum(s.np_count for s in sequences)
    lines = ["Model Summary"]
    lines += _table(
        [
            [
                _shape(model.input_shape),
                _shape(model.output_shape),
                str(len(sequences)),
                str(len(layers)),
                str(np_total),
            ]
        ],
        ["Input shape", "Output shape", "Sequences", "Layers", "NPs"],
    )
    lines.append("")
    by_name = {layer.name: layer for layer in layers}
    header = ["Layer (type)", "Output shape", "Kernel shape", "NPs"]
    rows: list[list[str]] = []
    markers: list[tuple[int, str]] = []
    on_spec = isinstance(model.device, DeviceSpec)  # a description: the host runs it all
    for seq in sequences:
        size = f" - size: {len(seq.program)} bytes" if seq.program else ""
        backend = seq.backend.value
        if on_spec and seq.backend is Backend.Hardware:
            backend = "Hardware plan, runs in Software: no device"
        markers.append((len(rows), f" {seq.name} ({backend}){size} "))
        for name in seq.layer_names:
            layer = by_name[name]
            nps = seq.nps_of(name)
            rows.append(_layer_row(layer, nps))
            if (pw := layer.pointwise_shape()) is not None:
                rows.append(["", "", str(pw), ""])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    total = len(fmt.format(*header))
    lines += ["_" * total, fmt.format(*header)]
    marks = dict(markers)
    for i, row in enumerate(rows):
        if i in marks:
            lines += ["", marks[i].center(total, "="), ""]
        lines.append(fmt.format(*row))
        if not (i + 1 < len(rows) and rows[i + 1][0] == ""):
            lines.append("_" * total)
    return "\n".join(line.rstrip() for line in lines)


def _layer_row(layer: Layer, nps: str) -> list[str]:
    ks = layer.kernel_shape()
    return [
        f"{layer.name} ({SHORT_NAMES[layer.layer_type]})",
        _shape(layer.output_shape),
        str(ks) if ks is not None else "",
        nps,
    ]
