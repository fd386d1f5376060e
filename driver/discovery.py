"""Device discovery: boards found by per-transport discoverers, else simulated AKD1000s.

A discoverer is a function returning device URLs; transports register theirs in
DISCOVERERS ("module:function", imported lazily) or with register_discoverer(). The
simulator's discoverer is one of them, named like the others and imported only when
discovery runs: this module never imports the simulator. Device objects are opened once
per URL and reused, so every caller shares their lock and residency cache; whether a
device is simulated is what it reports in its identity.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from akida_rt.driver.bus import open_bus
from akida_rt.driver.device import Device

from akida_rt.errors import AkidaError, DeviceNotFound

log = logging.getLogger(__name__)

# "module:function" -> list of URLs; e.g. "akida_rt.driver.pcie:discover_urls". The sim
# rack's comes first: it plugs the boards $AKIDA_SIM_BOARDS asks for in behind the
# pcie and usb seams (and does nothing without it), where the next two find them.
DISCOVERERS: list[str | Callable[[], list[str]]] = [
    "akida_rt.driver.sim_rack:discover_urls",
    "akida_rt.driver.pcie:discover_urls",
    "akida_rt.driver.usb:discover_urls",
]
SIM_URL = "sim://akd1000/{index}"
#: Set by the Kubernetes device plugin (or CDI) in a container: the comma-separated URLs
#: of the boards that container owns. When set, discovery lists exactly these (no other
#: board, no simulated fallback). `AKIDA_VISIBLE_DEVICES_<BOARD>` variables (one per
#: board, as CDI specs set them: several CDI devices cannot append to one variable) add
#: their URLs after it, in the order of their names.
VISIBLE_ENV = "AKIDA_VISIBLE_DEVICES"

_open: dict[str, Device] = {}
_open_lock = threading.Lock()


def register_discoverer(discoverer: str | Callable[[], list[str]]) -> None:
    """Add a discoverer ("module:function" or a callable returning URLs)."""
    if discoverer not in DISCOVERERS:
        DISCOVERERS.append(discoverer)


def _resolve(discoverer: str | Callable[[], list[str]]) -> Callable[[], list[str]] | None:
    if callable(discoverer):
        return discoverer
    module, _, func = discoverer.partition(":")
    try:
        fn: Callable[[], list[str]] = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        log.debug("discoverer %s unavailable: %s", discoverer, exc)
        return None
    return fn


def visible_urls() -> list[str] | None:
    """The URLs `$AKIDA_VISIBLE_DEVICES` and `$AKIDA_VISIBLE_DEVICES_*` name (duplicates
    dropped), or None when none of them is set to anything."""
    names = [VISIBLE_ENV, *sorted(k for k in os.environ if k.startswith(f"{VISIBLE_ENV}_"))]
    urls: list[str] = []
    for name in names:
        for url in os.environ.get(name, "").split(","):
            if url.strip() and url.strip() not in urls:
                urls.append(url.strip())
    return urls or None


def discover_urls() -> list[str]:
    """URLs of every board the registered discoverers find (no simulators), or exactly the
    boards `$AKIDA_VISIBLE_DEVICES` names."""
    urls: list[str] = []
    for entry in list(DISCOVERERS):  # also when visible: discoverers attach simulated boards
        fn = _resolve(entry)
        if fn is None:
            continue
        try:
            urls += [u for u in fn() if u not in urls]
        except AkidaError as exc:
            log.warning("discovery by %s failed: %s", entry, exc)
    visible = visible_urls()
    return urls if visible is None else visible


def kind_of(url: str) -> str:
    """ "pcie", "usb", "serial" or "sim" from a URL's scheme."""
    return urlsplit(url).scheme or "sim"


def open_device(url: str, **kwargs: object) -> Device:
    """The Device at `url`, opened on first use and shared afterwards."""
    with _open_lock:
        device = _open.get(url)
        if device is not None and not device.lost:
            return device
        device = Device(open_bus(url), url=url, kind=kind_of(url), **kwargs)  # type: ignore[arg-type]
        _open[url] = device
        return device


def devices(simulated: int = 1, **kwargs: Any) -> list[Device]:
    """Every device the driver discovers; `simulated` simulated AKD1000s when none.

    `kwargs` (e.g. `timeouts`) go to devices opened by this call.
    """
    found: list[Device] = []
    visible = visible_urls()
    for url in discover_urls():
        try:
            found.append(open_device(url, **kwargs))
        except AkidaError as exc:
            if visible is not None:  # a board the container was given must not be swapped
                raise DeviceNotFound(f"{VISIBLE_ENV}: cannot open {url}: {exc}") from exc
            log.warning("cannot open %s: %s", url, exc)
    if not found and visible is None:
        found = [open_device(SIM_URL.format(index=i), **kwargs) for i in range(simulated)]
    return found


def find_device(ident: str) -> Device:
    """A device by id, URL or position in devices(); URLs not listed are opened directly."""
    listed = devices()
    for device in listed:
        if ident in (device.id, device.url):
            return device
    if ident.isdigit() and int(ident) < len(listed):
        return listed[int(ident)]
    if "://" in ident:
        return open_device(ident)
    raise DeviceNotFound(
        f"no device '{ident}'; available: {', '.join(d.id for d in listed) or 'none'}"
    )
