"""`akida top` while a run goes through akidad: this interval's power (not lifetime
totals), a power sparkline, "idle" when the board does nothing, and `q` quits."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from akida_rt.data import sample_program
from tests.conftest import run_akida
from tests.daemon_harness import Akidad, daemon_env

PROGRAM = str(sample_program())


def test_top_shows_interval_power_and_a_sparkline(tmp_path) -> None:
    with Akidad(tmp_path) as daemon:
        env = daemon_env(AKIDA_SOCKET=str(daemon.socket))
        idle = run_akida("top", "--json", "--count", "2", "--interval", "0.2", env=env)
        last = json.loads(idle.stdout.splitlines()[-1])
        assert last["interval"]["sim://akd1000/0"]["power_mw"] is None  # idle: nothing ran
        run = subprocess.Popen(
            [sys.executable, "-m", "akida_rt", "run", "-m", PROGRAM, "--daemon",
             "--duration", "4", "--batch", "4"], env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1.5)
            top = run_akida("top", "--json", "--count", "4", "--interval", "0.4", env=env)
            text = run_akida("top", "--count", "2", "--interval", "0.4", env=env).stdout
        finally:
            run.wait(timeout=60)
    lines = [json.loads(ln)["interval"]["sim://akd1000/0"] for ln in top.stdout.splitlines()]
    busy = [ln["power_mw"] for ln in lines[1:] if ln["power_mw"] is not None]
    assert busy and all(850 < mw < 1500 for mw in busy), busy  # the ~0.9 W board
    assert lines[-1]["spark"] and set(lines[-1]["spark"]) <= set("▁▂▃▄▅▆▇█ ")
    assert "power history" in text


def test_q_quits_top_on_a_terminal(tmp_path) -> None:
    with Akidad(tmp_path) as daemon:
        env = daemon_env(AKIDA_SOCKET=str(daemon.socket))
        pid, fd = pty.fork()
        if pid == 0:  # the child: akida top on the pty
            os.execvpe(sys.executable, [sys.executable, "-m", "akida_rt", "top"], env)
        out = b""
        deadline = time.monotonic() + 30
        while b"q: quit" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 65536)
        os.write(fd, b"q")
        for _ in range(50):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"top ignored q: {out[-500:]!r}")
        os.close(fd)
    assert b"q: quit" in out and os.waitstatus_to_exitcode(status) == 0
