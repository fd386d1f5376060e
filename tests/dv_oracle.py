"""dv-processing (iniVation's own AEDAT4 library) as the tests' oracle: its writer, in this
process, and its reader, in a child process.

    python -m tests.dv_oracle FILE.aedat4 OUT.npz   (what dv_batches runs)

The reader runs in a child because on some corrupt packets dv-processing never returns,
holding the GIL (measured: 64 bytes of 0xff inside an LZ4 packet hang
`getNextEventBatch`); a timeout costs the child, never the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from akida_rt.stream.events import EVENT_DTYPE, as_events, make_events

ROOT = Path(__file__).resolve().parents[1]
COMPRESSIONS = ("NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH")


def write_aedat4(
    path: str | os.PathLike[str],
    ev: np.ndarray,
    width: int,
    height: int,
    packet: int = 10_000,
    compression: str = "LZ4",
) -> None:
    """Time-ordered events as an AEDAT4 file, by dv-processing's writer: one packet per
    `packet` events, compressed as `compression` (one of COMPRESSIONS)."""
    import dv_processing as dv

    kind = getattr(dv.CompressionType, compression)
    config = dv.io.MonoCameraWriter.EventOnlyConfig("akida_rt", (width, height), kind)
    writer = dv.io.MonoCameraWriter(str(path), config)
    for start in range(0, len(ev), packet):
        store = dv.EventStore()
        for t, x, y, p in ev[start : start + packet][["t", "x", "y", "p"]].tolist():
            store.push_back(t, x, y, bool(p))
        writer.writeEvents(store)
    del writer  # flushes and closes the file


def dv_batches(path: str | os.PathLike[str], timeout_s: float = 60.0) -> list[np.ndarray]:
    """The events of each batch dv-processing's MonoCameraRecording reads from `path` (one
    per packet), as EVENT_DTYPE; RuntimeError with dv's message when it refuses the file,
    subprocess.TimeoutExpired when it hangs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "batches.npz"
        run = subprocess.run([sys.executable, "-m", "tests.dv_oracle", str(path), str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"dv-processing refused {path}: {run.stderr.strip()[-500:]}")
        with np.load(out) as saved:
            return [as_events(saved[f"b{i}"]) for i in range(len(saved.files))]


def dv_events(path: str | os.PathLike[str], timeout_s: float = 60.0) -> np.ndarray:
    """Every event dv-processing reads from `path`, as one EVENT_DTYPE array."""
    batches = dv_batches(path, timeout_s)
    return np.concatenate(batches) if batches else np.zeros(0, EVENT_DTYPE)


def main() -> int:
    import dv_processing as dv

    path, out = sys.argv[1:3]
    rec = dv.io.MonoCameraRecording(path)
    batches = {}
    while (store := rec.getNextEventBatch()) is not None:
        arr = store.numpy()
        batches[f"b{len(batches)}"] = make_events(
            arr["timestamp"], arr["x"], arr["y"], arr["polarity"]
        )
    np.savez(out, **batches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
