"""Argument checks for the `akida` command line: numbers with ranges, files to read or write.

The range types run in argparse, which turns their ArgumentTypeError into a one-line usage
error (exit 2) naming the option. File checks run in the commands: a missing or unwritable
file is a failure (InputError, exit 1), like every other problem found once running.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from akida_rt.errors import InputError


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An int type accepting lo <= value <= hi (either bound may be open)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        _check_range(value, lo, hi)
        return value

    parse.__name__ = "int"
    return parse


def float_range(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> Callable[[str], float]:
    """A finite float type accepting lo <= value <= hi (lo < value with lo_open)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
        if lo_open and lo is not None and value <= lo:
            raise argparse.ArgumentTypeError(f"must be above {lo:g}, got {value:g}")
        _check_range(value, lo, hi)
        return value

    parse.__name__ = "float"
    return parse


def _check_range(value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"must be in {lo:g}..{hi:g}, got {value:g}")
    if lo is not None and value < lo:
        raise argparse.ArgumentTypeError(f"must be at least {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise argparse.ArgumentTypeError(f"must be at most {hi:g}, got {value:g}")


def input_file(text: str, what: str = "file") -> str:
    """`text` if it names an existing, readable, non-empty file; else an InputError (exit 1)."""
    path = Path(text)
    if path.is_dir():
        raise InputError(f"{text} is a directory; give a {what}")
    if not path.is_file():
        raise InputError(f"{text}: no such {what}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{text}: permission denied (check the file's mode)")
    if path.stat().st_size == 0:
        raise InputError(f"{text} is empty; give a {what}")
    return text


def output_file(text: str) -> str:
    """`text` if it can be written: its directory exists (it is never created) and is writable."""
    path = Path(text)
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{text} is a directory; give a file name to write")
    if not parent.is_dir():
        raise InputError(f"{text}: directory {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{text}: directory {parent} is not writable")
    return text


def load_labels(path: str, option: str = "--labels") -> Any:
    """A 1-D array of non-negative integer class labels from a .npy file.

    Raises:
        InputError: naming the option and file, and what a labels file must hold.
    """
    import numpy as np

    want = "a .npy file of one whole-number class per frame, e.g. np.save(f, np.array([3, 1]))"
    if not Path(path).is_file():
        raise InputError(f"{option} {path}: no such file; give {want}")
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise InputError(f"{option} {path}: not a readable .npy array; give {want}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise InputError(
            f"{option} {path}: holds {labels.dtype} values of shape {labels.shape}; give {want}"
        )
    return labels
