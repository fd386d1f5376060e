"""Inference statistics: per-layer events and SynOps, frames, fps, and device metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from akida_rt.engine.integer import LayerStats


@dataclass
class Statistics:
    """What a model measured since it was mapped (or since reset)."""

    backend: str = "Software"  # what ran the last inference: "Hardware" or "Software"
    where: str = ""  # the device it ran on, or why a mapped model ran in software
    frames: int = 0
    # Host-visible time of the calls: wall clock on a board or in software; a simulated
    # board's modelled wall clock (what the board would show, as MetaTF prints it).
    elapsed_s: float = 0.0
    layers: dict[str, LayerStats] = field(default_factory=dict)
    # Device metrics, present after on-device inference.
    device_synops: int | None = None  # SynOps the device counted (no per-layer split)
    inference_clk: int | None = None
    program_clk: int | None = None
    clock_hz: int | None = None
    floor_power_mw: float | None = None
    power_mw: dict[str, float] | None = None  # avg, min, max, std
    energy_mj_per_frame: float | None = None

    @property
    def fps(self) -> float | None:
        """Host-visible frames per second: frames over the wall-clock time of the calls."""
        if self.frames == 0:
            return None
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else None

    @property
    def device_fps(self) -> float | None:
        """What the device's own count implies: frames x nominal clock / inference_clk."""
        if not self.frames or not self.inference_clk or not self.clock_hz:
            return None
        return self.frames * self.clock_hz / self.inference_clk

    @property
    def synops(self) -> int:
        """SynOps counted per layer on the host, or by the device on hardware."""
        if self.layers:
            return sum(s.synops for s in self.layers.values())
        return self.device_synops or 0

    @property
    def synops_per_frame(self) -> float:
        return self.synops / self.frames if self.frames else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "where": self.where,
            "inference_frames": self.frames,
            "fps": self.fps,
            "elapsed_s": self.elapsed_s,
            "device_fps": self.device_fps,
            "synops_per_frame": self.synops_per_frame,
            "layers": {k: v.as_dict() for k, v in self.layers.items()},
        }
        for key in (
            "inference_clk",
            "program_clk",
            "floor_power_mw",
            "power_mw",
            "energy_mj_per_frame",
        ):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def __str__(self) -> str:
        lines = []
        if self.floor_power_mw is not None:
            lines.append(f"Floor power (mW): {self.floor_power_mw:.2f}")
        fps = self.fps
        lines.append(f"Average framerate = {fps:.2f} fps" if fps else "Average framerate = n/a")
        if self.power_mw and "min" not in self.power_mw:  # an average from energy counters
            lines.append(
                f"Average power (mW) over the board's busy time: {self.power_mw['avg']:.2f}"
            )
        elif self.power_mw:
            p = self.power_mw
            lines.append(
                "Last inference power range (mW):  "
                f"Avg {p['avg']:.2f} / Min {p['min']:.2f} / Max {p['max']:.2f} / Std {p['std']:.2f}"
            )
        if self.energy_mj_per_frame is not None:
            lines.append(
                f"Last inference energy consumed (mJ/frame): {self.energy_mj_per_frame:.2f}"
            )
        where = f" ({self.where})" if self.where else ""
        lines.append(f"Backend: {self.backend}{where}; SynOps/frame: {self.synops_per_frame:,.0f}")
        if self.layers and self.frames:
            lines += [
                "",
                "Per layer (host engine):",
                "  layer                 SynOps/frame    ms/frame",
            ]
            for name, st in self.layers.items():
                per = max(st.frames, 1)
                lines.append(
                    f"  {name:<20}  {st.synops / per:>12,.0f}  {st.time_ns / per / 1e6:>10.4f}"
                )
        if self.inference_clk is not None:
            lines += [
                "",
                "Model metrics:",
                f"  inference_frames: {self.frames}",
                f"  inference_clk: {self.inference_clk}",
                f"  program_clk: {self.program_clk}",
            ]
            if self.device_fps and self.clock_hz:
                lines.append(f"  clock framerate (inference_clk at {self.clock_hz / 1e6:g} MHz): "
                             f"{self.device_fps:.2f} fps")  # fmt: skip
        return "\n".join(lines)
