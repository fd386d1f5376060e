"""Package data: the sample program, a digits CNN made by the toolchain (tools/make_demo_program.py).

`sample_program()` is its path inside the installed package; `akida sample` copies it out.
`dvs_digits_cnn.akp` beside it takes 34x34x1 event-count frames of digits
(tools/make_event_program.py).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_PROGRAM = "digits_cnn.akp"


def sample_program() -> Path:
    """The path of the shipped sample program (32x32x1 uint8 digits in, 10 classes out)."""
    return Path(__file__).with_name(SAMPLE_PROGRAM)


DVS_PROGRAM = "dvs_digits_cnn.akp"


def dvs_program() -> Path:
    """The shipped event-camera sample (34x34x1 event-count frames of digits, 10 classes)."""
    return Path(__file__).with_name(DVS_PROGRAM)
