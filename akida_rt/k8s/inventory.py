"""The device plugin's view of the boards: which are offered and whether each is healthy,
refreshed every `interval_s` by a thread, with a version that waiters watch.

A board once offered stays listed: when it vanishes or fails its probe it turns
Unhealthy (kubelet stops giving it out) and Healthy again when it returns. The probe is
read-only (sysfs, USB enumeration, the node) so it never disturbs the container that owns
the board; IDENTIFY runs once when a board appears, to tell simulated chips apart. A
`health` source (akidad's view of its boards: requests that time out or fail) can turn a
present board Unhealthy too, and Healthy again when it reports the board well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from akida_rt.errors import AkidaError
from akida_rt.k8s import boards as board_scan
from akida_rt.k8s.boards import Board

log = logging.getLogger(__name__)
HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"
REPROBE_S = 10.0  # a board that failed IDENTIFY is asked again this often


@dataclass(frozen=True)
class Listed:
    """A board as ListAndWatch shows it."""

    board: Board
    health: str


class Inventory:
    """Offered boards and their health.

    Args:
        simulated: offer boards that identify as simulated chips.
        interval_s: time between scans (health changes show within about twice this).
        scan: returns the boards present now (akida_rt.k8s.boards.scan by default).
        identify: True/False for simulated, None when busy; raises AkidaError on no answer.
        health: board URL or id -> problem ("" when well) from whoever runs the boards
            (akidad) or the driver's notes; a board it does not name keeps its own health. Raises AkidaError when that
            source does not answer (every board is then Unhealthy: pods cannot use them).
        on_change: called with (board id, new health) when a listed board's health changes.
    """

    def __init__(
        self,
        simulated: bool = False,
        interval_s: float = 0.5,
        scan: Callable[[], list[Board]] = board_scan.scan,
        identify: Callable[[str], bool | None] = board_scan.identify,
        health: Callable[[], dict[str, str]] | None = None,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.simulated = simulated
        self.interval_s = interval_s
        self._scan, self._identify = scan, identify
        self._health, self._on_change = health, on_change
        self._listed: dict[str, Listed] = {}
        self._seen: dict[str, bool] = {}  # id -> offered (False: a simulated chip we skip)
        self._present: set[str] = set()
        self._probe: dict[str, tuple[str, float]] = {}  # id -> (problem, when to re-probe)
        self.version = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="akida-inventory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # a scan bug must not stop health reporting for good
                log.exception("board scan failed")

    def _offer(self, board: Board) -> tuple[bool, str]:
        """Whether to offer a board that just appeared, and its probe problem if any."""
        try:
            simulated = self._identify(board.url)
        except AkidaError as exc:
            return True, f"probe failed: {exc}"
        if simulated and not self.simulated:
            log.info("%s (%s) is a simulated chip: not offered without --simulated",
                     board.id, board.url)  # fmt: skip
            return False, ""
        if simulated is None:
            log.info("%s is in use by another process; offered without identifying it", board.id)
        return True, ""

    def refresh(self) -> None:
        """Scan once and publish any change (only the inventory thread calls it, after
        start; IDENTIFY runs outside the lock so waiters are never held up by a board)."""
        found = {b.id: b for b in self._scan()}
        reported = self._reported()
        now = time.monotonic()
        listed = dict(self._listed)
        for ident, board in found.items():
            failed = self._probe.get(ident)
            # appeared, came back, or failed IDENTIFY a while ago: identify it (again)
            if ident not in self._present or (failed and now >= failed[1]):
                offer, probe_problem = self._offer(board)
                self._seen[ident] = offer
                self._probe.pop(ident, None)
                if probe_problem:
                    self._probe[ident] = (probe_problem, now + REPROBE_S)
            if self._seen.get(ident):
                problem = (
                    board.problem
                    or self._probe.get(ident, ("", 0.0))[0]
                    or (
                        reported
                        if isinstance(reported, str)
                        else reported.get(board.url) or reported.get(ident, "")
                    )
                )
                health = UNHEALTHY if problem else HEALTHY
                if listed.get(ident) != Listed(board, health):
                    level = logging.WARNING if problem else logging.INFO
                    log.log(level, "%s (%s): %s%s", ident, board.url, health,
                            f" ({problem})" if problem else "")  # fmt: skip
                    self._changed(ident, listed.get(ident), health)
                    listed[ident] = Listed(board, health)
        for ident, old in list(listed.items()):
            if ident not in found and old.health == HEALTHY:
                log.warning("%s (%s): Unhealthy (vanished)", ident, old.board.url)
                self._changed(ident, old, UNHEALTHY)
                listed[ident] = Listed(old.board, UNHEALTHY)
        self._present = set(found)
        with self._cond:
            if listed != self._listed:
                self._listed = listed
                self.version += 1
                self._cond.notify_all()

    def _reported(self) -> dict[str, str] | str:
        """The health source's view (URL -> problem), or one problem for every board."""
        if self._health is None:
            return {}
        try:
            return self._health()
        except AkidaError as exc:
            return f"health source does not answer: {exc}"

    def _changed(self, ident: str, old: Listed | None, health: str) -> None:
        if self._on_change is not None and old is not None and old.health != health:
            self._on_change(ident, health)

    def snapshot(self) -> tuple[int, list[Listed]]:
        with self._cond:
            return self.version, list(self._listed.values())

    def wait_change(self, version: int, timeout_s: float) -> int:
        """Block until the version differs from `version`, stop, or `timeout_s`."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.version != version or self._stop.is_set(), timeout=timeout_s
            )
            return self.version

    def board(self, ident: str) -> Listed | None:
        with self._cond:
            return self._listed.get(ident)
