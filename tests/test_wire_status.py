"""The error kinds of akida_rt.errors and the wire statuses of daemon.proto name the same
failures: each kind maps to the status of its name and back."""

from __future__ import annotations

import pytest

from akida_rt.errors import DaemonError, ErrorKind, InputError, RemoteError
from akida_rt.wire.proto import daemon_pb2 as dpb
from akida_rt.wire.status import kind_of, remote_error, status_of


def test_every_status_but_ok_is_a_kind() -> None:
    names = set(dpb.Status.keys()) - {"OK"}
    assert names == {kind.name for kind in ErrorKind}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_kind_round_trip(kind: ErrorKind) -> None:
    status = status_of(kind)
    assert dpb.Status.Name(status) == kind.name and kind_of(status) is kind


def test_errors_answer_with_their_kind() -> None:
    assert status_of(InputError("x")) == dpb.BAD_INPUT
    assert status_of(DaemonError("x", ErrorKind.NO_DEVICE)) == dpb.NO_DEVICE
    assert status_of(ValueError("x")) == dpb.INTERNAL


def test_remote_error_names_unknown_statuses() -> None:
    known = remote_error(dpb.NOT_FOUND, "no state")
    assert (known.kind, known.status_name, str(known)) == (
        ErrorKind.NOT_FOUND,
        "NOT_FOUND",
        "NOT_FOUND: no state",
    )
    unknown = remote_error(99, "from a newer daemon")
    assert isinstance(unknown, RemoteError)
    assert (unknown.kind, unknown.status_name) == (ErrorKind.INTERNAL, "99")
