"""Per-run device figures from two snapshots of a device's counters (in-process or akidad).

Power and energy are the board's energy counter over the board's busy time of the run,
not lifetime totals and not one call's power window (too short to hold a sensor sample).
"""

from __future__ import annotations

import logging
from typing import Any

from akida_rt.engine.statistics import Statistics

log = logging.getLogger(__name__)
KEYS = ("frames", "inference_clk", "program_clk", "synops", "energy_mj", "load_s", "infer_s")


def from_device_stats(stats: Any) -> dict[str, Any]:
    """Counters of a driver DeviceStats (in-process)."""
    host = stats.host
    return {
        "frames": stats.frames, "inference_clk": stats.inference_clk,
        "program_clk": stats.program_clk, "synops": stats.synops,
        "energy_mj": stats.energy_mj, "load_s": host.load_s, "infer_s": host.infer_s,
        "clock_hz": stats.clock_hz,
    }  # fmt: skip


def from_daemon_device(device: dict[str, Any]) -> dict[str, Any]:
    """Counters of one device of akidad's `stats` answer (its `driver` summary)."""
    drv = device.get("driver") or {}
    return {
        "frames": drv.get("device_frames") or 0, "inference_clk": drv.get("inference_clk") or 0,
        "program_clk": drv.get("program_clk") or 0, "synops": drv.get("synops") or 0,
        "energy_mj": drv.get("energy_mj"), "load_s": drv.get("load_s") or 0.0,
        "infer_s": drv.get("infer_s") or 0.0, "clock_hz": drv.get("clock_hz") or 0,
    }  # fmt: skip


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the device did between two snapshots, with power and energy per frame.

    power_mw: energy over the board's busy time (loading and inferring); None when the
    device has no energy counter or did nothing. board_fps: frames over inferring time.
    """
    out: dict[str, Any] = {"clock_hz": after.get("clock_hz")}
    for key in KEYS:
        a, b = after.get(key), before.get(key)
        out[key] = None if a is None or b is None else a - b
    busy = (out["load_s"] or 0.0) + (out["infer_s"] or 0.0)
    energy, frames = out["energy_mj"], out["frames"]
    measured = energy is not None and energy > 0 and busy > 0
    out["board_s"] = busy
    out["power_mw"] = energy / busy if measured else None
    out["energy_mj_per_frame"] = energy / frames if measured and frames else None
    out["board_fps"] = frames / out["infer_s"] if frames and out["infer_s"] else None
    return out


def to_statistics(run: dict[str, Any], where: str) -> Statistics:
    """The run's figures as Statistics, as an in-process run prints them."""
    stats = Statistics(backend="Hardware", where=where)
    stats.frames = int(run["frames"] or 0)
    stats.elapsed_s = float(run["infer_s"] or 0.0)
    stats.inference_clk = int(run["inference_clk"] or 0)
    stats.program_clk = int(run["program_clk"] or 0)
    stats.device_synops = int(run["synops"] or 0)
    stats.clock_hz = run.get("clock_hz")
    if run["power_mw"] is not None:
        stats.power_mw = {"avg": run["power_mw"]}
        stats.energy_mj_per_frame = run["energy_mj_per_frame"]
    log.debug("run figures: %s", run)
    return stats
