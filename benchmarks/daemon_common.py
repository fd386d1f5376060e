"""Shared by the daemon benchmarks: start a user-mode akidad in a temp dir, print tables."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def user_daemon(*args: str) -> Iterator[Path]:
    """Yield the socket path of a fresh `akidad --user` (stopped with SIGTERM after)."""
    with tempfile.TemporaryDirectory(prefix="akidad-bench-") as tmp:
        sock = Path(tmp) / "akida.sock"
        log = open(Path(tmp) / "akidad.log", "wb")  # noqa: SIM115 (outlives this block)
        proc = subprocess.Popen(
            [sys.executable, "-m", "akida_rt.daemon", "--user", "--socket", str(sock),
             "--state-dir", str(Path(tmp) / "state"), "--log-level", "WARNING", *args],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                with socket.socket(socket.AF_UNIX) as probe:
                    try:
                        probe.connect(str(sock))
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError((Path(tmp) / "akidad.log").read_text()) from None
                        time.sleep(0.05)
            yield sock
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}\n" + "-" * len(title))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
