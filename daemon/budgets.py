"""Memory budgets per uid and in total: partial-frame bytes, unsent answers, queued inputs
and mapped memfds, kept as counters any thread may charge (docs/daemon.md, "Limits")."""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any


class Kind(enum.Enum):
    """What a budget counts, and the settings that bound it (per uid, in total)."""

    READ = ("partial frames", "max_read_buffer_per_uid", "max_read_buffer_total")
    WRITE = ("unsent answers", "max_write_buffer_per_uid", "max_write_buffer_total")
    QUEUED = ("queued inputs", "max_queued_bytes_per_uid", "max_queued_bytes_total")
    MEMFD = ("mapped memfds", "max_memfd_bytes_per_uid", "max_memfd_bytes_total")

    @property
    def what(self) -> str:
        return self.value[0]


class Budgets:
    """Bytes held per uid and in total, by kind; limits read from the live config (SIGHUP
    changes them). Thread-safe: device workers charge answers and settle jobs."""

    def __init__(self, config: Callable[[], Any]) -> None:
        self.config = config  # the live config (a reload replaces it)
        self._lock = threading.Lock()
        self.by_uid: dict[Kind, Counter[int]] = {k: Counter() for k in Kind}
        self.total: dict[Kind, int] = dict.fromkeys(Kind, 0)

    def limits(self, kind: Kind) -> tuple[int, int]:
        config = self.config()
        return getattr(config, kind.value[1]), getattr(config, kind.value[2])

    def add(self, kind: Kind, uid: int, n: int) -> None:
        with self._lock:
            self.by_uid[kind][uid] += n
            self.total[kind] += n

    def sub(self, kind: Kind, uid: int, n: int) -> None:
        if n:
            with self._lock:
                left = self.by_uid[kind][uid] - n
                if left > 0:
                    self.by_uid[kind][uid] = left
                else:
                    del self.by_uid[kind][uid]
                self.total[kind] -= n

    def used(self, kind: Kind, uid: int) -> int:
        return self.by_uid[kind].get(uid, 0)

    def over(self, kind: Kind, uid: int, n: int = 0) -> str:
        """Why `uid` may not hold `n` more bytes of `kind` ("" when it may): past its own
        budget, or past the total one."""
        per_uid, total = self.limits(kind)
        with self._lock:
            mine, everyone = self.by_uid[kind].get(uid, 0) + n, self.total[kind] + n
        if mine > per_uid:
            return (f"uid {uid} would hold {mine} bytes of {kind.what} "
                    f"({kind.value[1]}={per_uid})")  # fmt: skip
        if everyone > total:
            return f"akidad would hold {everyone} bytes of {kind.what} ({kind.value[2]}={total})"
        return ""

    def holders(self, kind: Kind) -> int:
        with self._lock:
            return len(self.by_uid[kind])

    def biggest_uid(self, kind: Kind) -> int | None:
        """The uid holding the most of `kind` (the one that makes room when the total is
        full), or None when no one holds any."""
        with self._lock:
            top = self.by_uid[kind].most_common(1)
        return top[0][0] if top else None

    def snapshot(self) -> dict[str, Any]:
        """For stats: totals and the top holders of each kind."""
        with self._lock:
            return {
                k.name.lower(): {"total": self.total[k], "top": self.by_uid[k].most_common(3)}
                for k in Kind
            }
