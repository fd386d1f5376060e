"""The fit report: how a converted program fits a device, per layer and per sequence.

Per layer: NP type and count, weight and input memory, SynOps per frame (measured on
sample inputs with the software backend, or the dense upper bound without samples).
Per sequence: its layers, backend and program bytes. Totals: NPs, program bytes, SynOps
and an estimated dynamic energy per frame. Pure numpy: no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from akida_rt.errors import MappingError
from akida_rt.format.layer_params import LayerType
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import Backend, MapMode, layer_need
from akida_rt.model.model import Model
from akida_rt.model.summary import placement_lines

# Estimates with the same defaults as the simulated AKD1000's power model.
PJ_PER_SYNOP = 5.5
PJ_PER_DMA_BYTE = 150.0


def measured_synops(model: Model, x: np.ndarray) -> dict[str, float]:
    """SynOps per frame of each layer, measured by the software backend on `x`."""
    model.reset_statistics()  # a model mapped on a DeviceSpec still runs in software
    model.forward(x)
    stats = model.statistics
    out = {name: s.synops / max(s.frames, 1) for name, s in stats.layers.items()}
    model.reset_statistics()
    return out


def _bound_synops(model: Model) -> dict[str, float]:
    """SynOps per frame if every input value were an event (the dense upper bound)."""
    out = {}
    for layer in model.layers:
        assert layer.input_shape is not None
        events = math.prod(layer.input_shape)
        extra = 0
        if layer.layer_type is LayerType.SeparableConv2D:
            oh, ow = layer.conv_output_hw()
            extra = oh * ow * layer.input_shape[2] * layer.filters
        out[layer.name] = float(events * layer.fan_out + extra)
    return out


def fit_report(
    model: Model,
    device: DeviceSpec,
    samples: np.ndarray | None = None,
    *,
    mode: MapMode = MapMode.AllNps,
) -> dict[str, Any]:
    """The fit report as plain data (see module docstring). Maps `model` onto `device`."""
    if samples is not None:
        synops, measured = measured_synops(model, samples), True
    else:
        synops, measured = _bound_synops(model), False
    model.map(device, mode=MapMode(mode))
    by_layer: dict[str, dict[str, Any]] = {}
    for seq in model.sequences:
        placements = {p.layer: p for p in seq.plan.placements}
        for name in seq.layer_names:
            layer = model.get_layer(name)
            need = layer_need(layer, device)
            p = placements.get(name)
            by_layer[name] = {
                "layer": name,
                "type": layer.type_name,
                "sequence": seq.name,
                "backend": seq.backend.value,
                "np_type": p.np_type if p else "-",
                "nps": len(p.nps) if p and p.np_type not in ("HRC", "none") else 0,
                "np_ids": [[n.col, n.row, n.id] for n in p.nps] if p else [],
                "weight_bytes": need.weight_bytes,
                "input_bytes": need.input_bytes,
                "synops_per_frame": synops.get(name, 0.0),
                "note": need.hw_reason,
            }
    sequences = [
        {
            "name": s.name,
            "backend": s.backend.value,
            "layers": s.layer_names,
            "nps": s.np_count,
            "passes": s.passes,
            "program_bytes": _program_bytes(s),
        }
        for s in model.sequences
    ]
    total_synops = float(sum(synops.values()))
    dma = _dma_bytes_per_frame(model, sequences)
    energy_uj = (total_synops * PJ_PER_SYNOP + dma * PJ_PER_DMA_BYTE) * 1e-6
    return {
        "model": model.name,
        "device": device.name,
        "mode": MapMode(mode).value,
        "synops": "measured" if measured else "upper bound (every input an event)",
        "frames": len(samples) if samples is not None else 0,
        "layers": [by_layer[layer.name] for layer in model.layers],
        "sequences": sequences,
        "totals": {
            "nps": sum(s["nps"] for s in sequences),
            "sequences": len(sequences),
            "program_bytes": sum(q["program_bytes"] for q in sequences),  # what the device loads
            "file_bytes": len(model.to_bytes()),  # the .akp program file (akida_rt's format)
            "synops_per_frame": total_synops,
            "dma_bytes_per_frame": dma,
            "energy_uj_per_frame": energy_uj,
        },
        "energy_model": f"{PJ_PER_SYNOP} pJ/SynOp + {PJ_PER_DMA_BYTE} pJ/DMA byte (dynamic only)",
    }


def _dma_bytes_per_frame(model: Model, sequences: list[dict[str, Any]]) -> int:
    """Input and output bytes per frame, plus reloads when several hardware sequences share the mesh."""
    layers = model.layers
    first, last = layers[0], layers[-1]
    assert first.input_shape is not None
    total = math.ceil(math.prod(first.input_shape) * first.input_bits / 8)
    out_bits = last.output_bits or 32
    total += math.ceil(math.prod(last.output_shape) * out_bits / 8)
    hw = [s for s in sequences if s["backend"] == Backend.Hardware.value]
    if len(hw) > 1:
        total += sum(s["program_bytes"] for s in hw)
    return total


def report_table(report: dict[str, Any]) -> str:
    """The fit report as text: one row per layer, sequence boundaries as separators."""
    header = ["layer", "type", "NP type", "NPs", "weights B", "input B", "SynOps/frame"]
    rows: list[list[str]] = []
    for seq in report["sequences"]:
        rows.append(
            [f"-- {seq['name']} ({seq['backend']}, {seq['program_bytes']:,} device program bytes)"]
        )
        for name in seq["layers"]:
            r = next(row for row in report["layers"] if row["layer"] == name)
            rows.append(
                [
                    r["layer"],
                    r["type"],
                    r["np_type"],
                    str(r["nps"]),
                    f"{r['weight_bytes']:,}",
                    f"{r['input_bytes']:,}",
                    f"{r['synops_per_frame']:,.0f}",
                ]
            )
    widths = [max(len(r[i]) for r in [header, *rows] if len(r) > 1) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [f"Fit report: {report['model']} on {report['device']} ({report['mode']})"]
    lines += [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [r[0] if len(r) == 1 else fmt.format(*r).rstrip() for r in rows]
    by_layer = {row["layer"]: row for row in report["layers"]}
    lines += placement_lines(
        [
            (
                seq["name"],
                [(n, by_layer[n]["np_type"], by_layer[n]["np_ids"]) for n in seq["layers"]],
            )
            for seq in report["sequences"]
        ]
    )
    t = report["totals"]
    lines += [
        "",
        f"sequences: {t['sequences']}  NPs: {t['nps']}  device program bytes: "
        f"{t['program_bytes']:,} (the sequences above)  .akp file bytes: {t['file_bytes']:,}",
        f"SynOps/frame: {t['synops_per_frame']:,.0f} ({report['synops']})",
        f"estimated energy/frame: {t['energy_uj_per_frame']:.3f} uJ ({report['energy_model']})",
    ]
    return "\n".join(lines)


def _program_bytes(seq: Any) -> int:
    """Bytes of the sequence's AKD1000 program binary; 0 on a mesh that runs none (a
    test mesh) or when akida_rt cannot compile the sequence (HwPr passes)."""
    try:
        return len(seq.program)
    except MappingError:
        return 0
