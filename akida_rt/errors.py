"""The one exception tree of akida_rt.

Every error raised on purpose by akida_rt, its driver, daemon and tools derives from
AkidaError; messages say what failed, where, and how to fix it.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What kind of failure an error is, by name; akida_rt.wire.status maps each kind to
    the akidad wire `Status` of the same name and back (the tree imports no wire)."""

    BAD_FRAME = "BAD_FRAME"
    BAD_MESSAGE = "BAD_MESSAGE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    BAD_INPUT = "BAD_INPUT"
    BAD_PROGRAM = "BAD_PROGRAM"
    NO_SESSION = "NO_SESSION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NO_DEVICE = "NO_DEVICE"
    DEVICE_FAILED = "DEVICE_FAILED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    NOT_FOUND = "NOT_FOUND"
    MAPPING_FAILED = "MAPPING_FAILED"
    INTERNAL = "INTERNAL"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    PROTOCOL_MISMATCH = "PROTOCOL_MISMATCH"


class AkidaError(Exception):
    """Base of every error raised on purpose by akida_rt.

    `kind` says what failed (an ErrorKind); the daemon answers a request that fails with
    this error with the wire status of that kind (akida_rt.wire.status), by it alone.
    """

    kind: ErrorKind = ErrorKind.INTERNAL


class ProgramFormatError(AkidaError):
    """A program file or message is malformed: truncated, wrong magic, bad hash, bad field."""

    kind = ErrorKind.BAD_PROGRAM


class ModelError(AkidaError):
    """A model is inconsistent: layers that do not chain, bad parameters or weights."""

    kind = ErrorKind.BAD_PROGRAM


class InputError(AkidaError):
    """Inputs given to forward()/predict() have the wrong shape, dtype or range."""

    kind = ErrorKind.BAD_INPUT


class MappingError(AkidaError):
    """A model cannot be mapped onto a device as asked (for example with hw_only=True)."""

    kind = ErrorKind.MAPPING_FAILED


class DeviceError(AkidaError):
    """A device reported an error status for a command."""

    kind = ErrorKind.DEVICE_FAILED


class DeviceNotFound(DeviceError):
    """No device matches the requested id or URL."""

    kind = ErrorKind.NO_DEVICE


class DeviceBusy(DeviceError):
    """The device is owned by someone else (another process or the daemon)."""


class DeviceLost(DeviceError):
    """The device vanished (unplugged, node removed, simulator process died)."""


class TransportError(DeviceError):
    """A transport failed to move data to or from the device."""


class TransportTimeout(TransportError):
    """A command or transfer did not complete within its timeout."""


class DeviceCommandError(DeviceError):
    """The firmware finished a command with an error code (`code`, the int value of
    a device_protocol.ErrorCode)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class DeviceResetError(DeviceError):
    """The device rebooted (spontaneous or external reset): state on it was lost."""


class CommandTimeout(TransportTimeout):
    """A command was accepted but did not finish in time (firmware hung or overloaded)."""


class PermissionDeniedError(DeviceError):
    """The device node exists but this user may not open it."""


class CommandError(AkidaError):
    """The simulated firmware refuses a command with an error code (`code`).

    Raised and caught inside akida_rt.firmware_sim: the firmware answers it with an ERROR
    status, which the host driver raises as DeviceCommandError.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class MeshError(CommandError):
    """The simulated NP mesh cannot load or run a sequence (a command error of the mesh)."""


class DaemonError(AkidaError):
    """akidad refused a request, or could not be reached or started; `kind` says how the
    refusal is answered (BAD_INPUT unless said otherwise)."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.BAD_INPUT) -> None:
        super().__init__(message)
        self.kind = kind


class FrameError(DaemonError):
    """A byte stream lost its framing (a length over the limit, a frame that cannot be
    matched with its descriptors): the connection cannot go on."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.BAD_FRAME)


class FrameRefused(DaemonError):
    """A frame that decodes far enough to name its request (`req_id`, 0 when not even
    that) but cannot be served; the connection goes on."""

    def __init__(self, req_id: int, message: str, kind: ErrorKind = ErrorKind.BAD_INPUT) -> None:
        super().__init__(message, kind)
        self.req_id = req_id


class RemoteError(DaemonError):
    """The daemon answered a request with an error status (client side; built by
    akida_rt.wire.status.remote_error).

    Attributes:
        kind: the ErrorKind of the status (INTERNAL for a status this client does not know).
        status_name: the status's name, e.g. "BAD_INPUT" (its number when unknown).
    """

    def __init__(self, kind: ErrorKind, message: str, status_name: str | None = None) -> None:
        self.status_name = status_name or kind.name
        super().__init__(f"{self.status_name}: {message}", kind)


class LearningError(AkidaError):
    """Edge learning was misconfigured or its state could not be stored or restored."""

    kind = ErrorKind.BAD_INPUT


class ToolchainError(AkidaError):
    """The offline toolchain could not quantize, check or convert a model."""


class ConversionError(ToolchainError):
    """A Keras model cannot be converted; the message lists each layer and its fix."""


class StreamError(AkidaError):
    """A stream could not go on: its source, a frame or an event file is unusable."""

    kind = ErrorKind.BAD_INPUT


class EventFileError(StreamError):
    """An event file is truncated or corrupt, holds an unknown word, or runs backwards in
    time; `path` and `offset` (bytes into the file, or the event index for arrays) say where."""

    def __init__(self, path: str, offset: int, message: str) -> None:
        super().__init__(f"{path}: at {offset}: {message}")
        self.path, self.offset = path, offset


class SourceError(StreamError):
    """A frame source failed: an unreadable image or video, a camera that disappeared."""
