"""What akidad keeps for the tenants of its tenant directory, freed when their allocation
is gone: a tenant uid that its share's folder no longer names is retired for good.

Each Allocate writes a fresh uid into its share's `tenant` file, so the uid it replaces
can never connect again, and its learned state (`<state>/users/<uid>`) could never be
read again except by root: it is deleted once the tenant's last client has gone. A uid
is retired when its folder names another uid, or the folder is removed; not when the
file is missing or untrusted for a while (nothing else is known then). The last uid of
each folder is kept in `<state>/tenants.json`, so an allocation replaced while akidad was
down is retired at its first scan; no other uid's state is ever touched (a host user, a
TLS tenant). Scheduling state goes with a tenant's last client (scheduler.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from akida_rt.format.program import atomic_write

from .store import StateStore

log = logging.getLogger(__name__)
LEDGER = "tenants.json"


class TenantLedger:
    """The uid each tenant folder named last, and the uids retired but not freed yet.

    Args:
        store: the state store (the ledger is a file in its folder).
        connected: whether a uid has a client connected (its state is freed after).
    """

    def __init__(self, store: StateStore, connected: Callable[[int], bool]) -> None:
        self.store = store
        self.connected = connected
        self.path = store.root / LEDGER
        self.folders: dict[str, int] = {}  # folder name -> the uid it named last
        self.retiring: set[int] = set()  # named by no folder now; freed at their last client
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            folders = {str(k): int(v) for k, v in data["folders"].items()}
            retiring = {int(u) for u in data["retiring"]}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: unreadable (%s: %s); starting a new one", self.path,
                        type(exc).__name__, exc)  # fmt: skip
            return
        self.folders, self.retiring = folders, retiring

    def _save(self) -> None:
        data = {"folders": self.folders, "retiring": sorted(self.retiring)}
        try:
            atomic_write(self.path, json.dumps(data, sort_keys=True).encode(), 0o600)
        except OSError as exc:
            log.warning("%s: %s; retired tenants are freed only while akidad runs", self.path,
                        exc.strerror)  # fmt: skip

    def _note(self, folder: str, uid: int | None) -> bool:
        """`folder` names `uid` now (None: the folder is gone); retire what it named."""
        old = self.folders.pop(folder, None) if uid is None else self.folders.get(folder)
        if old == uid:
            return False
        if uid is not None:
            self.folders[folder] = uid
        if old is not None and old not in self.folders.values():
            log.info("tenant uid %d retired (share %s has a new allocation, or is gone)",
                     old, folder)  # fmt: skip
            self.retiring.add(old)
        return True

    def admitted(self, folder: str, uid: int) -> None:
        """A client came in through a tenant folder's socket as `uid`."""
        if self._note(folder, uid):
            self._save()
            self.free()

    def observe(self, seen: dict[str, int | None]) -> list[int]:
        """After a scan of the tenant directory (each folder's name and the uid its tenant
        file names, None when it names none): retire the uids replaced or whose folder is
        gone, and free those with no client; returns the uids freed."""
        changed = False
        for folder in sorted(set(self.folders) - set(seen)):
            changed |= self._note(folder, None)
        for folder, uid in sorted(seen.items()):
            if uid is not None:  # a missing or untrusted file: nothing known, nothing retired
                changed |= self._note(folder, uid)
        if changed:
            self._save()
        return self.free()

    def client_left(self, uid: int) -> None:
        if uid in self.retiring and not self.connected(uid):
            self.free()

    def free(self) -> list[int]:
        """Delete the state of retired uids with no client left."""
        freed = []
        for uid in sorted(u for u in self.retiring if not self.connected(u)):
            try:
                keys = self.store.drop_uid(uid)
            except OSError as exc:
                log.warning("freeing the state of tenant uid %d: %s", uid, exc)
                continue
            self.retiring.discard(uid)
            freed.append(uid)
            log.info("tenant uid %d freed: %d learned-state key(s) deleted", uid, keys)
        if freed:
            self._save()
        return freed
