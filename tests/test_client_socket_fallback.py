"""The squatted user socket (issue 30, finding 11): another uid plants the user daemon's
folder or socket first; the client refuses it and falls back to the system daemon."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from akida_rt.client.client import Client
from akida_rt.wire import ipc
from tests.daemon_harness import Akidad, random_input, tiny_model

ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")


def _bind(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(1)
    return sock


@ROOT_ONLY
@pytest.mark.parametrize("squat", ["folder", "socket"])
def test_a_squatted_user_socket_sends_the_client_to_the_system_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squat: str
) -> None:
    runtime = tmp_path / "xdg"
    (runtime / "akida").mkdir(parents=True, mode=0o700)
    runtime.chmod(0o700)
    squatted = _bind(runtime / "akida" / "akida.sock")  # the attacker's, not a daemon
    os.chown(runtime / "akida" / ("akida.sock" if squat == "socket" else ""), 65534, 65534)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("AKIDA_SOCKET", raising=False)
    with Akidad(tmp_path) as system:  # stands in for the system daemon
        monkeypatch.setattr(ipc, "SYSTEM_SOCKET", str(system.socket))
        assert ipc.default_socket_path() == system.socket
        model = tiny_model(1)
        x = random_input(model, 2, 3)
        with Client(retry_s=0) as client:
            assert client.path == system.socket
            assert np.array_equal(client.load(model).forward(x), model.forward(x))
    squatted.close()


def test_our_own_user_socket_is_still_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "xdg"
    (runtime / "akida").mkdir(parents=True, mode=0o700)
    ours = _bind(runtime / "akida" / "akida.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("AKIDA_SOCKET", raising=False)
    assert ipc.default_socket_path() == runtime / "akida" / "akida.sock"
    ours.close()
