"""Text tables for Model.summary(), in the layout of the Akida user guide."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq
from typing import Any, Protocol

from akida_rt.format.layer_params import SHORT_NAMES
from akida_rt.format.layers import Layer
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
    lines += placement_lines(
        [
            (s.name, [(p.layer, p.np_type, _ids(p.nps)) for p in s.plan.placements])
            for s in sequences
        ]
    )
    return "\n".join(line.rstrip() for line in lines)


def _ids(nps: Iterable[Any]) -> list[tuple[int, int, int]]:
    return [(n.col, n.row, n.id) for n in nps]


def np_ranges(nps: Iterable[tuple[int, int, int]]) -> str:
    """NP ids in the order given, runs of one node's NPs joined: (3, 1, 2-3) (1, 3, 1)."""
    return " ".join(_runs(nps))


def _runs(nps: Iterable[tuple[int, int, int]]) -> list[str]:
    runs: list[list[int]] = []
    for col, row, ident in nps:
        if runs and runs[-1][:2] == [col, row] and runs[-1][-1] == ident - 1:
            runs[-1].append(ident)
        else:
            runs.append([col, row, ident])
    return [f"({c}, {r}, {ids[0]}{f'-{ids[-1]}' if len(ids) > 1 else ''})" for c, r, *ids in runs]


def placement_lines(
    sequences: Seq[tuple[str, Seq[tuple[str, str, Seq[tuple[int, int, int]]]]]],
    width: int = 96,
) -> list[str]:
    """The NP ids of each layer on NPs, per sequence given as (name, [(layer, NP type,
    [(col, row, id)])]); nothing when no layer is on an NP."""
    placed = [(name, [p for p in ps if p[2]]) for name, ps in sequences]
    placed = [(name, ps) for name, ps in placed if ps]
    if not placed:
        return []
    lines = ["", "NP placement (col, row, NP ids):"]
    for name, ps in placed:
        lines.append(f" {name}")
        w = max(len(f"{layer} ({np_type})") for layer, np_type, _ in ps)
        for layer, np_type, nps in ps:
            line = f"  {f'{layer} ({np_type})':<{w}} "
            for run in _runs(nps):
                if len(line) + 1 + len(run) > width and line.strip():
                    lines.append(line)
                    line = " " * (w + 3)
                line += " " + run
            lines.append(line)
    return lines


def _layer_row(layer: Layer, nps: str) -> list[str]:
    ks = layer.kernel_shape()
    return [
        f"{layer.name} ({SHORT_NAMES[layer.layer_type]})",
        _shape(layer.output_shape),
        str(ks) if ks is not None else "",
        nps,
    ]
