"""The boards a host offers to containers: stable ids, device nodes, the container's env.

Boards come from akida_rt.driver discovery, read without opening them (a container may
own one: the PCIe bus takes an exclusive lock on the node). Ids are stable across
restarts and renumbering: the PCI address for PCIe, the serial number for USB.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from akida_rt.driver.discovery import VISIBLE_ENV
from akida_rt.errors import AkidaError, DeviceBusy, PermissionDeniedError

log = logging.getLogger(__name__)

RESOURCE = "brainchip.com/akida"
__all__ = ["RESOURCE", "VISIBLE_ENV", "Board", "Node", "container_env", "identify", "scan"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Node:
    """A device node a container needs: where it is on the host and in the container."""

    host_path: str
    container_path: str
    permissions: str = "rw"


@dataclass(frozen=True)
class Board:
    """One board as a container gets it.

    Attributes:
        id: stable id, also a valid CDI device name ("pcie-0000-01-00.0", "usb-SN").
        kind: "pcie" or "usb".
        url: how this host reaches it (akida_rt device URL).
        container_url: the URL akida_rt inside the container opens.
        nodes: device nodes to pass in.
        problem: why its probe fails ("" when healthy).
    """

    id: str
    kind: str
    url: str
    container_url: str
    nodes: tuple[Node, ...] = field(default=())
    problem: str = ""

    @property
    def healthy(self) -> bool:
        return not self.problem

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "container_url": self.container_url,
            "nodes": [n.__dict__ for n in self.nodes],
            "healthy": self.healthy,
            "problem": self.problem,
        }


def safe_name(text: str) -> str:
    """`text` as a CDI device name / kubelet device id: [A-Za-z0-9_.-], alphanumeric ends."""
    return _UNSAFE.sub("-", text).strip("-_.") or "x"


def _pcie_board(url: str) -> Board | None:
    from akida_rt.driver import sysfs

    node = urlsplit(url).path
    fn = sysfs.function_of_node(node)
    if fn is None:
        return None
    problem = ""
    if fn.driver != sysfs.KERNEL_DRIVER:
        problem = f"PCI {fn.address} is bound to {fn.driver or 'no driver'}"
    elif not os.path.exists(node):
        problem = f"{node} is missing"
    name = Path(node).name
    return Board(
        id=safe_name(f"pcie-{fn.address.replace(':', '-')}"),
        kind="pcie",
        url=url,
        container_url=f"pcie:///dev/{name}",
        nodes=(Node(node, f"/dev/{name}"),),
        problem=problem,
    )


def _usb_boards() -> dict[str, Board]:
    from akida_rt.driver import usb

    boards = {}
    for found in usb.discover():
        nodes: tuple[Node, ...] = ()
        if found.bus is not None and found.address is not None:
            path = f"/dev/bus/usb/{found.bus:03d}/{found.address:03d}"
            nodes = (Node(path, path),)
        boards[found.url] = Board(
            id=safe_name(f"usb-{found.serial}"),
            kind="usb",
            url=found.url,
            container_url=found.url,
            nodes=nodes,
        )
    return boards


def scan() -> list[Board]:
    """Every board the driver's discovery finds now, in discovery order (no simulated
    fallback: a host without boards offers none)."""
    from akida_rt.driver import discovery

    boards: list[Board] = []
    usb_boards: dict[str, Board] | None = None
    for url in discovery.discover_urls():
        scheme = urlsplit(url).scheme
        try:
            if scheme == "pcie":
                board = _pcie_board(url)
            elif scheme == "usb":
                usb_boards = _usb_boards() if usb_boards is None else usb_boards
                board = usb_boards.get(url)
            else:  # serial consoles are not inference devices; sim:// lives in-process
                continue
        except AkidaError as exc:
            log.warning("%s: %s", url, exc)
            continue
        if board is not None and all(b.id != board.id for b in boards):
            boards.append(board)
    return boards


def identify(url: str) -> bool | None:
    """Whether the board at `url` is a simulated chip (its IDENTIFY answer), or None when
    another process owns it or this one may not open it (the plugin runs unprivileged:
    the container's device cgroup refuses the node; presence and driver binding still
    come from sysfs). Opens the board briefly, then closes it.

    Raises:
        AkidaError: the board does not answer (its probe fails).
    """
    from akida_rt.driver.bus import open_bus
    from akida_rt.driver.device import Device, Timeouts

    try:
        bus = open_bus(url)
    except (DeviceBusy, PermissionDeniedError):
        return None
    try:
        device = Device(bus, url=url, kind=urlsplit(url).scheme, timeouts=Timeouts().scaled(0.4))
        return bool(device.simulated)
    finally:
        bus.close()


def container_env(boards: list[Board]) -> dict[str, str]:
    """The environment that gives a container these boards (one variable, in order)."""
    return {VISIBLE_ENV: ",".join(b.container_url for b in boards)}


def board_env_name(board: Board) -> str:
    """`AKIDA_VISIBLE_DEVICES_<ID>`: the variable naming one board (for CDI, where each
    device sets its own and discovery merges them)."""
    return f"{VISIBLE_ENV}_" + re.sub(r"[^A-Z0-9]+", "_", board.id.upper()).strip("_")


def offered(boards: list[Board], simulated: bool) -> list[Board]:
    """`boards` less the simulated chips unless `simulated`; a board that does not answer
    stays in, marked unhealthy, and one owned by another process stays in as it is."""
    kept = []
    for board in boards:
        try:
            is_sim = identify(board.url)
        except AkidaError as exc:
            kept.append(Board(**{**board.__dict__, "problem": f"probe failed: {exc}"}))
            continue
        if is_sim and not simulated:
            log.info(
                "%s (%s) is a simulated chip: not offered without --simulated", board.id, board.url
            )
            continue
        kept.append(board)
    return kept
