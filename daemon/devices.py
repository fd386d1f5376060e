"""The device manager: finds devices through akida_rt.driver, falls back to simulated
AKD1000s when no board is present, keeps one mapped Model per program on each device,
and notices devices that vanish or appear.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from akida_rt.errors import AkidaError, DeviceError
from akida_rt.mapping.hardware import DeviceSpec
from akida_rt.mapping.mapper import MapMode
from akida_rt.model.device_api import Device
from akida_rt.model.model import Model

from .metrics import Meter

log = logging.getLogger(__name__)
FAULT_HOLD_S = 3.0  # a device that timed out or failed a command is unhealthy this long


class ProgramKey(NamedTuple):
    """A program and how it is mapped: the unit of residency and of batching. (A tuple:
    hashed and compared in C, several times per request.)"""

    content_hash: str
    map_mode: str = MapMode.AllNps.value
    hw_only: bool = False
    owner: int = -1  # the uid whose learned state the model holds; -1: shared, no learning


class DeviceSlot:
    """One device as the daemon holds it: its driver object, models and meter.

    Only the device's worker thread runs models on it; `models` is guarded by `lock`.
    """

    def __init__(
        self,
        ident: str,
        device: Device,
        kind: str,
        simulated: bool,
        prepare: Callable[[DeviceSlot, ProgramKey, Model], None] | None = None,
    ) -> None:
        self.id = ident
        self.prepare = prepare
        self.device = device
        self.kind = kind
        self.simulated = simulated
        self.state = "ready"
        self.meter = Meter()
        self.resident: ProgramKey | None = None
        self.models: dict[ProgramKey, Model] = {}
        self.lock = threading.Lock()
        self._fault: tuple[float, str] | None = None  # (monotonic time, why)

    def record_fault(self, why: str) -> None:
        """A command on this device timed out or failed on the device's side."""
        self._fault = (time.monotonic(), why)
        self.meter.errors += 1

    def health(self) -> tuple[str, str]:
        """("healthy", "") or ("unhealthy", why): lost, or a fault in the last
        FAULT_HOLD_S (each new fault extends it; recovery shows once they stop)."""
        if self.state != "ready":
            return "unhealthy", f"device {self.state}"
        fault = self._fault
        if fault is not None and time.monotonic() - fault[0] < FAULT_HOLD_S:
            return "unhealthy", fault[1]
        return "healthy", ""

    @property
    def spec(self) -> DeviceSpec:
        return self.device.spec

    def model_for(self, key: ProgramKey, program: bytes) -> Model:
        """The model of `key` mapped onto this device (built on first use)."""
        with self.lock:
            model = self.models.get(key)
        if model is None:
            model = Model(program)
            if self.prepare is not None:
                self.prepare(self, key, model)
            model.map(self.device, hw_only=key.hw_only, mode=MapMode(key.map_mode))
            with self.lock:
                model = self.models.setdefault(key, model)
        return model

    def release(self, key: ProgramKey) -> None:
        with self.lock:
            model = self.models.pop(key, None)
            if self.resident == key:
                self.resident = None
        if model is not None:
            try:
                model.map(None)
            except AkidaError as exc:  # a vanished device cannot release; nothing to free
                log.debug("release of %s on %s: %s", key.content_hash[:12], self.id, exc)

    def driver_stats(self) -> dict[str, Any]:
        if self.state != "ready":
            return {}
        try:
            return self.device.stats().as_dict()
        except AkidaError as exc:
            return {"error": str(exc)}

    def device_summary(self) -> dict[str, Any]:
        """Reloads, bytes programmed, time in each, power and energy per inference."""
        drv = self.driver_stats()
        host = drv.get("host") or {}
        frames = drv.get("frames") or 0
        clk, hz = drv.get("inference_clk") or 0, drv.get("clock_hz") or 0
        energy = drv.get("energy_mj") or 0.0
        busy = host.get("load_s", 0.0) + host.get("infer_s", 0.0)
        return {
            "reloads": host.get("loads", 0),
            "reloads_skipped": host.get("reloads_skipped", 0),
            "bytes_programmed": host.get("bytes_programmed", 0),
            "load_s": host.get("load_s", 0.0),
            "infer_s": host.get("infer_s", 0.0),
            "device_frames": frames,
            "inference_clk": clk,
            "program_clk": drv.get("program_clk") or 0,
            "clock_hz": hz,
            # host-visible: the device's time inferring (a simulated board's is modelled)
            "fps": frames / host["infer_s"] if host.get("infer_s") else None,
            # Energy over the board's busy time (loading and inferring), since power-on;
            # clients diff two snapshots for one run's figures (akida_rt.model.run_figures).
            "power_mw": energy / busy if energy and busy > 0 else None,
            "energy_per_inference_mj": energy / frames if energy and frames else None,
            "energy_mj": energy if drv.get("energy_mj") is not None else None,
            "synops": drv.get("synops") or 0,
            "resident": drv.get("resident"),
        }

    def describe(self) -> dict[str, Any]:
        health, problem = self.health()
        return {
            "id": self.id,
            "name": self.spec.name,
            "kind": self.kind,
            "simulated": self.simulated,
            "state": self.state,
            "health": health,
            "problem": problem,
            "device": self.device.describe(),
        }


def driver_discover(
    simulated: int, urls: list[str] | None = None, timeout_scale: float = 1.0
) -> Sequence[Device]:
    """Devices from akida_rt.driver: `urls` when given, else boards first and `simulated`
    sim AKD1000s when none. Devices opened here wait `timeout_scale` times the default
    command timeouts (a device already opened keeps its own)."""
    from akida_rt.driver import discovery
    from akida_rt.driver.device import Timeouts

    timeouts = Timeouts().scaled(timeout_scale)
    if urls:
        found = []
        for url in urls:
            try:
                found.append(discovery.open_device(url, timeouts=timeouts))
            except AkidaError as exc:
                log.warning("cannot open %s: %s", url, exc)
        return found
    return list(discovery.devices(simulated=simulated, timeouts=timeouts))


class DeviceManager:
    """The set of usable devices, refreshed by `rescan()`.

    Args:
        simulated: simulated AKD1000s to offer when no board exists (0: none).
        urls: device URLs to open instead of discovering.
        discover: returns device objects given (simulated, urls).
    """

    def __init__(
        self,
        simulated: int,
        urls: list[str] | None = None,
        discover: Callable[..., Sequence[Device]] = driver_discover,
        timeout_scale: float = 1.0,
    ) -> None:
        self._discover = discover
        self.timeout_scale = timeout_scale
        self.simulated = simulated
        self.urls = list(urls or [])
        self.slots: dict[str, DeviceSlot] = {}
        # Called by a device's worker on each model it builds, before the model runs.
        self.prepare_model: Callable[[DeviceSlot, ProgramKey, Model], None] | None = None

    def rescan(self) -> tuple[list[DeviceSlot], list[DeviceSlot]]:
        """Discover again; returns (appeared, vanished). Runs in a worker thread, so the
        new set of slots replaces `slots` in one assignment (the loop iterates it)."""
        try:
            found = self._discover(self.simulated, self.urls, self.timeout_scale)
        except AkidaError as exc:
            log.warning("device discovery failed: %s", exc)
            return [], []
        seen = {device.id: device for device in found}
        appeared, vanished = [], []
        slots = dict(self.slots)
        for ident, device in seen.items():
            slot = slots.get(ident)
            if slot is None or slot.state != "ready":
                slot = DeviceSlot(ident, device, device.kind, device.simulated, self._prepare)
                slots[ident] = slot
                appeared.append(slot)
                log.info(
                    "device %s appeared (%s%s)",
                    ident,
                    slot.spec.name,
                    ", simulated" if device.simulated else "",
                )
        for ident, slot in list(slots.items()):
            if ident not in seen or slot.device.lost:
                self.mark_lost(slot, "no longer discovered")
                vanished.append(slot)
                del slots[ident]
        self.slots = slots
        return appeared, vanished

    def _prepare(self, slot: DeviceSlot, key: ProgramKey, model: Model) -> None:
        if self.prepare_model is not None:
            self.prepare_model(slot, key, model)

    def mark_lost(self, slot: DeviceSlot, why: str) -> None:
        if slot.state != "lost":
            log.warning("device %s lost: %s", slot.id, why)
        slot.state = "lost"

    def ready(self) -> list[DeviceSlot]:
        return [s for s in self.slots.values() if s.state == "ready"]

    def reset(self, slot: DeviceSlot) -> bool:
        """Reset a device after a timeout; False when it cannot be reset (then it is lost)."""
        try:
            slot.device.reset()
        except DeviceError as exc:
            self.mark_lost(slot, f"reset failed: {exc}")
            return False
        slot.resident = None
        return True
