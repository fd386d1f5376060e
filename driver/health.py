"""Health notes: the driver in a container tells the host's device plugin that its board
timed out or reported an error, and that it answers again.

The plugin's Allocate mounts one folder per board into the container under
`$AKIDA_HEALTH_DIR`, named `note_name(url)` after the URL the container opens. When that
folder exists, the driver writes `state` there on each change (and at most once a second
while faults go on): `{"healthy": false, "problem": ..., "at": unix time}` or
`{"healthy": true, ...}`. Without the variable or the folder it does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
HEALTH_ENV = "AKIDA_HEALTH_DIR"
STATE_FILE = "state"
REFRESH_S = 1.0  # a fault repeated sooner is not written again
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def note_name(url: str) -> str:
    """The folder name of the board at `url` under $AKIDA_HEALTH_DIR."""
    return _UNSAFE.sub("-", url).strip("-.") or "board"


def write_state(folder: Path, healthy: bool, problem: str = "") -> None:
    """Write `folder/state` atomically."""
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=folder)
    with os.fdopen(fd, "w") as out:
        json.dump({"healthy": healthy, "problem": problem, "at": time.time()}, out)
    os.replace(tmp, folder / STATE_FILE)


def read_state(folder: Path) -> dict[str, object] | None:
    """The note in `folder`, or None when there is none (or it is unreadable)."""
    try:
        note = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


class HealthNote:
    """The notes of one open device (its driver calls fault() and ok())."""

    def __init__(self, url: str) -> None:
        root = os.environ.get(HEALTH_ENV, "")
        folder = Path(root) / note_name(url) if root else None
        self.folder = folder if folder is not None and folder.is_dir() else None
        self._faulty = False
        self._written = 0.0

    def fault(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.folder is None or (self._faulty and now - self._written < REFRESH_S):
            return
        self._write(False, f"{type(exc).__name__}: {exc}")
        self._faulty, self._written = True, now

    def ok(self) -> None:
        if self.folder is not None and self._faulty:
            self._write(True)
            self._faulty = False

    def _write(self, healthy: bool, problem: str = "") -> None:
        assert self.folder is not None
        try:
            write_state(self.folder, healthy, problem)
        except OSError as exc:  # a read-only or vanished mount must not break a command
            log.debug("health note in %s: %s", self.folder, exc)
