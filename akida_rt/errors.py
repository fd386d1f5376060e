"""The one exception tree of akida_rt.

Every error raised on purpose by akida_rt, its driver, daemon and tools derives from
AkidaError; messages say what failed, where, and how to fix it.
"""

from __future__ import annotations

from akida_rt.wire.proto import daemon_pb2 as wire


class AkidaError(Exception):
    """Base of every error raised on purpose by akida_rt.

    `status` is the akidad wire `Status` (akida_rt/wire/proto/daemon.proto) a request that
    fails with this error is answered with; the daemon maps errors to statuses by it alone.
    """

    status: int = wire.INTERNAL


class ProgramFormatError(AkidaError):
    """A program file or message is malformed: truncated, wrong magic, bad hash, bad field."""

    status = wire.BAD_PROGRAM


class ModelError(AkidaError):
    """A model is inconsistent: layers that do not chain, bad parameters or weights."""

    status = wire.BAD_PROGRAM


class InputError(AkidaError):
    """Inputs given to forward()/predict() have the wrong shape, dtype or range."""

    status = wire.BAD_INPUT


class MappingError(AkidaError):
    """A model cannot be mapped onto a device as asked (for example with hw_only=True)."""

    status = wire.MAPPING_FAILED


class DeviceError(AkidaError):
    """A device reported an error status for a command."""

    status = wire.DEVICE_FAILED


class DeviceNotFound(DeviceError):
    """No device matches the requested id or URL."""

    status = wire.NO_DEVICE


class DeviceBusy(DeviceError):
    """The device is owned by someone else (another process or the daemon)."""


class DeviceLost(DeviceError):
    """The device vanished (unplugged, node removed, simulator process died)."""


class TransportError(DeviceError):
    """A transport failed to move data to or from the device."""


class TransportTimeout(TransportError):
    """A command or transfer did not complete within its timeout."""


class DeviceResetError(DeviceError):
    """The device rebooted (spontaneous or external reset): state on it was lost."""


class PermissionDeniedError(DeviceError):
    """The device node exists but this user may not open it."""


class DaemonError(AkidaError):
    """akidad refused a request, or could not be reached or started; `status` is the wire
    status the refusal is answered with (BAD_INPUT unless said otherwise)."""

    def __init__(self, message: str, status: int = wire.BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


class FrameError(DaemonError):
    """A byte stream lost its framing (a length over the limit, a frame that cannot be
    matched with its descriptors): the connection cannot go on."""

    def __init__(self, message: str) -> None:
        super().__init__(message, wire.BAD_FRAME)


class FrameRefused(DaemonError):
    """A frame that decodes far enough to name its request (`req_id`, 0 when not even
    that) but cannot be served; the connection goes on."""

    def __init__(self, req_id: int, message: str, status: int = wire.BAD_INPUT) -> None:
        super().__init__(message, status)
        self.req_id = req_id


class RemoteError(DaemonError):
    """The daemon answered a request with an error status (client side).

    Attributes:
        status: the `Status` enum value.
        status_name: its name, e.g. "BAD_INPUT".
    """

    def __init__(self, status: int, message: str) -> None:
        known = status in wire.Status.values()
        self.status_name = wire.Status.Name(status) if known else str(status)  # type: ignore[arg-type]
        super().__init__(f"{self.status_name}: {message}", status)


class LearningError(AkidaError):
    """Edge learning was misconfigured or its state could not be stored or restored."""

    status = wire.BAD_INPUT


class ToolchainError(AkidaError):
    """The offline toolchain could not quantize, check or convert a model."""


class ConversionError(ToolchainError):
    """A Keras model cannot be converted; the message lists each layer and its fix."""


class StreamError(AkidaError):
    """A stream could not go on: its source, a frame or an event file is unusable."""

    status = wire.BAD_INPUT


class EventFileError(StreamError):
    """An event file is truncated or corrupt, holds an unknown word, or runs backwards in
    time; `path` and `offset` (bytes into the file, or the event index for arrays) say where."""

    def __init__(self, path: str, offset: int, message: str) -> None:
        super().__init__(f"{path}: at {offset}: {message}")
        self.path, self.offset = path, offset


class SourceError(StreamError):
    """A frame source failed: an unreadable image or video, a camera that disappeared."""
