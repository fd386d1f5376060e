"""What the toolchain commands share: the [tools] extra check, quiet TensorFlow, Keras loading.

TensorFlow prints C++ and absl log lines while it loads and on first use; the CLI hides
them unless -v is given. A missing toolchain module becomes one line naming the extra.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from akida_rt.errors import ToolchainError

# Third-party modules of the [tools] extra; a missing one means the extra is not installed.
TOOLS_MODULES = frozenset({"tensorflow", "keras", "sklearn", "mlxtend", "PIL", "matplotlib"})
INSTALL_HINT = "install the toolchain: pip install 'akida-rt[tools]'"


def needs_tools(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a toolchain command; a missing [tools] module is a one-line ToolchainError."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in TOOLS_MODULES:
                raise
            raise ToolchainError(f"this command needs '{top}', which is not installed; "
                                 f"{INSTALL_HINT}") from None  # fmt: skip

    return run


def import_tensorflow(verbose: int = 0) -> None:
    """Import TensorFlow and Keras, silencing their C++/absl logs unless `verbose`."""
    if verbose:
        import keras

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # the C++ runtime writes to fd 2 before its log level applies
    try:
        import keras  # noqa: F401
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)


def load_keras(path: str) -> Any:
    """A Keras model from a .keras file, or a one-line ToolchainError naming the file."""
    file = Path(path)
    with open(file, "rb") as fh:
        head = fh.read(8)
    if head == b"AKIDARTP":
        raise ToolchainError(
            f"{path} is an akida program, not a Keras model; give the .keras file it was "
            "converted from (or use: akida summary / akida report on the program)"
        )
    if not zipfile.is_zipfile(file):
        raise ToolchainError(
            f"{path} is not a Keras model file (.keras, a zip archive); save one with "
            "model.save('model.keras')"
        )
    from akida_rt.tools.quantized_layers import load_model

    try:
        return load_model(path)
    except Exception as exc:  # Keras raises many types for a damaged archive
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ToolchainError(
            f"{path}: cannot load the Keras model ({reason}); re-save it with model.save()"
        ) from None
