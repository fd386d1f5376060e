"""The akidad wire `Status` of each error kind and back: the one mapping between the
exception tree (akida_rt.errors.ErrorKind) and daemon.proto's `Status` enum."""

from __future__ import annotations

from akida_rt.errors import AkidaError, ErrorKind, RemoteError
from akida_rt.wire.proto import daemon_pb2 as dpb

_TO_STATUS: dict[ErrorKind, int] = {kind: dpb.Status.Value(kind.name) for kind in ErrorKind}
_TO_KIND: dict[int, ErrorKind] = {status: kind for kind, status in _TO_STATUS.items()}


def status_of(what: BaseException | ErrorKind) -> int:
    """The wire status a request failing with `what` (an error or a kind) is answered
    with: INTERNAL for anything that is not an AkidaError."""
    if isinstance(what, ErrorKind):
        return _TO_STATUS[what]
    return _TO_STATUS[what.kind] if isinstance(what, AkidaError) else dpb.INTERNAL


def kind_of(status: int) -> ErrorKind:
    """The error kind of a wire status (INTERNAL for OK or a status this side does not know)."""
    return _TO_KIND.get(status, ErrorKind.INTERNAL)


def remote_error(status: int, message: str) -> RemoteError:
    """The client-side error of a daemon's error answer with `status` and `message`."""
    known = status in _TO_KIND
    name = dpb.Status.Name(status) if known else str(status)  # type: ignore[arg-type]
    return RemoteError(kind_of(status), message, name)
