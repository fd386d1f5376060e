"""The one exception tree of akida_rt.

Every error raised on purpose by akida_rt, its driver, daemon and tools derives from
AkidaError; messages say what failed, where, and how to fix it.
"""

from __future__ import annotations


class AkidaError(Exception):
    """Base of every error raised on purpose by akida_rt."""


class ProgramFormatError(AkidaError):
    """A program file or message is malformed: truncated, wrong magic, bad hash, bad field."""


class ModelError(AkidaError):
    """A model is inconsistent: layers that do not chain, bad parameters or weights."""


class InputError(AkidaError):
    """Inputs given to forward()/predict() have the wrong shape, dtype or range."""


class MappingError(AkidaError):
    """A model cannot be mapped onto a device as asked (for example with hw_only=True)."""


class DeviceError(AkidaError):
    """A device reported an error status for a command."""


class DeviceNotFound(DeviceError):
    """No device matches the requested id or URL."""


class DeviceBusy(DeviceError):
    """The device is owned by someone else (another process or the daemon)."""


class DeviceLost(DeviceError):
    """The device vanished (unplugged, node removed, simulator process died)."""


class TransportError(DeviceError):
    """A transport failed to move data to or from the device."""


class TransportTimeout(TransportError):
    """A command or transfer did not complete within its timeout."""


class PermissionDeniedError(DeviceError):
    """The device node exists but this user may not open it."""


class DaemonError(AkidaError):
    """The runtime daemon refused a request or could not be reached."""


class StatusError(AkidaError):
    """An error the daemon answers with a wire status; `status` is the `Status` name
    (akida_rt/proto/daemon.proto), e.g. "BAD_INPUT"."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class LearningError(AkidaError):
    """Edge learning was misconfigured or its state could not be stored or restored."""


class ToolchainError(AkidaError):
    """The offline toolchain could not quantize, check or convert a model."""
