"""Fuzzes akida_rt.native._kernels with random, truncated and mutated inputs; meant to run on a
build with AddressSanitizer and UBSan (tests/test_native_fuzz.py builds one).

    python tests/fuzz_native.py --sanitize --seconds 600 [--seed N]

(--sanitize builds akida_rt/csrc/ with -fsanitize=address,undefined into a temporary
folder and runs this script again on that build, with libasan preloaded; --kernels PATH
runs on a build already made.)

The decoders get random words, valid streams cut short and valid streams with flipped
bits and replaced bytes, in random chunks, from random states and offsets, and must
equal the numpy decoders (tests/native_reference.py) on every chunk; RAW files made of
such words (and of mutated headers) go through the reader in both error modes. AEDAT4
packets (LZ4 frames of every option, random blocks, mutated frames and flatbuffers) must
equal the numpy decoder (tests/aedat4_reference.py) where both decode, and files of them
go through the reader in both modes. Framing,
the engine's steps and the learning step get random arrays and out-of-range arguments.
A sanitizer finding aborts the process; the last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def build_sanitized(out_dir: Path) -> tuple[Path, dict[str, str]]:
    """akida_rt.native._kernels built with ASan and UBSan; the environment that runs it."""
    cc = (sysconfig.get_config_var("CC") or "gcc").split()[0]
    out = out_dir / ("_kernels" + sysconfig.get_config_var("EXT_SUFFIX"))
    sources = sorted(str(p) for p in (ROOT / "akida_rt" / "csrc").glob("*.c"))
    cmd = [cc, "-shared", "-fPIC", "-O1", "-g", "-std=c11", "-ffp-contract=off",
           "-fno-strict-aliasing", *SANITIZE, "-I", sysconfig.get_paths()["include"],
           "-I", np.get_include(), *sources, "-o", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    env = dict(os.environ, LD_PRELOAD=libasan, PYTHONPATH=str(ROOT),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")  # fmt: skip
    return out, env


def load_kernels(path: str) -> None:
    """Import the given build as akida_rt.native._kernels before akida_rt imports its own."""
    spec = importlib.util.spec_from_file_location("akida_rt.native._kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["akida_rt.native._kernels"] = module


class Recorder:
    """Stands for the reader: records what a decoder reports."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def bad(self, *args: object) -> None:
        self.calls.append(args)


def words_for(rng: np.random.Generator, fmt: str) -> np.ndarray:
    """Random, truncated or mutated word streams."""
    from akida_rt.stream.events import make_events
    from akida_rt.stream.evt2 import encode_evt2
    from akida_rt.stream.evt3 import encode_evt3

    dtype = np.uint16 if fmt == "EVT3" else np.uint32
    how = rng.integers(0, 3)
    n = int(rng.integers(0, 3000))
    if how == 0:
        return rng.integers(0, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    t = np.sort(rng.integers(0, int(rng.choice([100, 1 << 20, 1 << 40])), n))
    ev = make_events(t, rng.integers(0, 2048, n), rng.integers(0, 2048, n), rng.integers(0, 2, n))
    words = encode_evt3(ev) if fmt == "EVT3" else encode_evt2(ev)
    if how == 1:
        return words[: int(rng.integers(0, len(words) + 1))]
    raw = bytearray(words.tobytes())
    for _ in range(int(rng.integers(1, 20))):
        if raw:
            i = int(rng.integers(0, len(raw)))
            raw[i] = (
                raw[i] ^ (1 << int(rng.integers(0, 8)))
                if rng.random() < 0.5
                else int(rng.integers(0, 256))
            )
    return np.frombuffer(bytes(raw), dtype)


def fuzz_decoders(rng: np.random.Generator) -> int:
    from akida_rt.native import _kernels
    from akida_rt.stream.events import EVENT_DTYPE
    from akida_rt.stream.evt2 import Evt2Decoder
    from akida_rt.stream.evt3 import Evt3Decoder
    from tests import native_reference as ref

    fmt = "EVT3" if rng.random() < 0.5 else "EVT2"
    words = words_for(rng, fmt)
    ours_cls, ref_cls = (
        (Evt3Decoder, ref.NumpyEvt3Decoder)
        if fmt == "EVT3"
        else (Evt2Decoder, ref.NumpyEvt2Decoder)
    )
    a_rep, b_rep = Recorder(), Recorder()
    ours, theirs = ours_cls(a_rep), ref_cls(b_rep)  # type: ignore[arg-type]
    offset = int(rng.integers(0, 1 << 40))
    cases = 0
    for part in np.array_split(words, int(rng.integers(1, 6))):
        # as the reader does: the events of a clean part at once, else with their offsets
        w, h = (int(v) for v in rng.integers(0, 3000, 2))
        last = int(rng.choice([-(1 << 63), int(rng.integers(-(1 << 63), 1 << 63, dtype=np.int64))]))
        with np.errstate(all="ignore"):
            eb, ob = theirs(part, offset)
            ea = ours.clean(part, offset, w, h, last)
            if ea is None:
                ea, oa = ours(part, offset)
            else:  # what the reader then skips checking must hold
                oa, t = ob, np.concatenate([[last], eb["t"]])
                inside = not (w and h) or bool(np.all((eb["x"] < w) & (eb["y"] < h)))
                if not (inside and np.all(t[1:] >= t[:-1])):
                    raise AssertionError(f"{fmt}: a part called clean is not")
        if not (np.array_equal(ea, eb) and np.array_equal(oa, ob)):
            bad = Path(tempfile.gettempdir()) / f"fuzz_native_{fmt}.bin"
            bad.write_bytes(part.tobytes())
            raise AssertionError(f"{fmt} decoder differs from numpy on the words in {bad}")
        offset += part.nbytes
        cases += 1
    if a_rep.calls != b_rep.calls:
        raise AssertionError(f"{fmt} decoder reports differ: {a_rep.calls} {b_rep.calls}")
    # any state, any offset: no crash, no sanitizer finding
    kernel, size = (_kernels.evt3_decode, 6) if fmt == "EVT3" else (_kernels.evt2_decode, 1)
    state = rng.integers(-(1 << 63), 1 << 63, size, dtype=np.int64)
    with contextlib.suppress(ValueError):
        kernel(
            words,
            state,
            EVENT_DTYPE,
            int(rng.integers(0, 1 << 62)),
            1,
            1,
            0,
            bool(rng.random() < 0.5),
        )
    return cases + 1


def fuzz_files(rng: np.random.Generator, tmp: Path) -> int:
    from akida_rt.errors import AkidaError
    from akida_rt.stream.prophesee import raw_header
    from akida_rt.stream.readers import open_events

    fmt = "EVT3" if rng.random() < 0.5 else "EVT2"
    header = bytearray(raw_header(int(rng.integers(0, 2000)), int(rng.integers(0, 2000)), fmt))
    if rng.random() < 0.2:
        header[int(rng.integers(0, len(header)))] = int(rng.integers(0, 256))
    data = bytes(header) + words_for(rng, fmt).tobytes()
    data = data[: len(data) - int(rng.integers(0, 3))]  # a cut word, sometimes
    path = tmp / "f.raw"
    path.write_bytes(data)
    for mode in ("skip", "raise"):
        try:
            with open_events(path, chunk_events=int(rng.integers(1, 5000)), on_error=mode) as r:
                for _ in r.chunks():
                    pass
        except AkidaError:
            pass
    return 2


def lz4_frame_for(rng: np.random.Generator, packet: bytes) -> bytes:
    """The packet as an LZ4 frame of random options, or a valid frame header followed by
    random blocks (the block decoder's checks), or the packet itself (uncompressed)."""
    import lz4.frame

    linked = bool(rng.random() < 0.5)
    if rng.random() < 0.2:  # random sequences inside well-formed blocks
        head = lz4.frame.compress(b"", block_linked=linked, store_size=False)[:-4]
        blocks = [rng.bytes(int(rng.integers(1, 300))) for _ in range(int(rng.integers(1, 4)))]
        body = b"".join(len(b).to_bytes(4, "little") + b for b in blocks)
        return head + body + bytes(4)
    return lz4.frame.compress(
        packet, block_size=int(rng.choice([4, 5])), block_linked=linked,
        content_checksum=bool(rng.random() < 0.3), block_checksum=bool(rng.random() < 0.3),
        store_size=bool(rng.random() < 0.5), compression_level=int(rng.choice([0, 9])),
    )  # fmt: skip


def mutate(rng: np.random.Generator, data: bytes, most: int = 20) -> bytes:
    raw = bytearray(data)
    for _ in range(int(rng.integers(0, most))):
        if raw:
            i = int(rng.integers(0, len(raw)))
            raw[i] = (
                raw[i] ^ (1 << int(rng.integers(0, 8)))
                if rng.random() < 0.5
                else int(rng.integers(0, 256))
            )
    if rng.random() < 0.2:
        raw = raw[: int(rng.integers(0, len(raw) + 1))]
    return bytes(raw)


def fuzz_aedat4(rng: np.random.Generator, tmp: Path) -> int:
    """AEDAT4 packets (events of any bytes, headers and frames mutated) through the kernels
    and the numpy decoder, equal where both decode; files of them through the reader."""
    from akida_rt.errors import AkidaError
    from akida_rt.native import _kernels
    from akida_rt.stream.events import EVENT_DTYPE
    from akida_rt.stream.readers import open_events
    from tests import aedat4_reference as ref

    packed, files = [], []
    for _ in range(int(rng.integers(1, 5))):
        n = int(rng.integers(0, 1500))
        raw = rng.bytes(16 * n) if rng.random() < 0.3 else ref.dv_bytes(
            np.sort(np.frombuffer(rng.bytes(16 * n), EVENT_DTYPE), order="t"))  # fmt: skip
        packet = (
            mutate(rng, ref.event_packet(raw), 3) if rng.random() < 0.3 else ref.event_packet(raw)
        )
        lz4 = bool(rng.random() < 0.8)
        data = mutate(rng, lz4_frame_for(rng, packet) if lz4 else packet)
        try:
            want = ref.numpy_packet_events(data, lz4)
        except Exception:
            want = None
        try:
            got = ref.kernel_packet_events(data, lz4)
        except ValueError:
            got = None
        if got is not None and want is not None and got.tobytes() != want.tobytes():
            bad = Path(tempfile.gettempdir()) / "fuzz_native_aedat4.bin"
            bad.write_bytes(data)
            raise AssertionError(f"AEDAT4 packet decodes differently from numpy: {bad}")
        packed.append(data)
        files.append(lz4)
    # any offsets: refused or in range
    src, out = (
        np.frombuffer(rng.bytes(int(rng.integers(0, 400))), np.uint8),
        np.empty(8, EVENT_DTYPE),
    )
    args = [int(v) for v in rng.integers(-20, 40, 3)]
    with contextlib.suppress(ValueError):
        _kernels.aedat4_events(src, args[0], args[1], out, args[2] % 12, int(rng.integers(-9, 9)))
    with contextlib.suppress(ValueError):
        lo, hi, at = (int(v) for v in rng.integers(-4, 420, 3))
        blob = np.frombuffer(b"".join(packed)[:400], np.uint8)
        _kernels.aedat4_walk(blob, lo, hi, int(rng.integers(-1, 2)), int(rng.integers(0, 3)),
                             ref._SCRATCH, out, at % 12, int(rng.integers(-9, 9)))  # fmt: skip
    path = tmp / "f.aedat4"
    ids = [int(rng.choice([0, 0, 0, 1])) for _ in packed]  # some of another stream
    path.write_bytes(ref.aedat4_file(packed, 64, 48, 1 if files[0] else 0, ids))
    for mode in ("skip", "raise"):
        try:
            with open_events(path, chunk_events=int(rng.integers(1, 3000)), on_error=mode) as r:
                for _ in r.chunks():
                    pass
        except AkidaError:
            pass
    return len(packed) + 2


def fuzz_framing(rng: np.random.Generator) -> int:
    from akida_rt.native import _kernels
    from akida_rt.stream.events import EVENT_DTYPE

    n = int(rng.integers(0, 2000))
    ev = np.frombuffer(rng.bytes(16 * n), EVENT_DTYPE)
    held = np.frombuffer(rng.bytes(16 * int(rng.integers(0, 50))), EVENT_DTYPE)
    sw, sh = int(rng.integers(0, 70)), int(rng.integers(0, 70))
    pixels = int(rng.integers(0, 5000))
    table = rng.integers(-10, pixels + 10, (sw + 1) * (sh + 1)).astype(np.int32)
    total = len(held) + n
    bounds = np.sort(rng.integers(0, total + 1, int(rng.integers(1, 30))))
    if rng.random() < 0.1:
        bounds[-1] += int(rng.integers(-3, 3))
    with contextlib.suppress(ValueError):
        _kernels.frame_counts(held, ev, bounds, table, sw, sh, bool(rng.random() < 0.5), pixels)
    return 1


def fuzz_engine(rng: np.random.Generator) -> int:
    from akida_rt.native import _kernels

    dtype = np.float32 if rng.random() < 0.5 else np.float64
    shape = tuple(int(v) for v in rng.integers(0, 9, 4))
    acc = rng.normal(0, 100, shape).astype(dtype)
    r = int(rng.integers(0, 12))
    with contextlib.suppress(ValueError):
        _kernels.activate(
            acc, rng.normal(0, 1, r), rng.normal(0, 1, r), float(rng.integers(-2, 300))
        )
    args = [int(v) for v in rng.integers(-1, 8, 6)]
    with contextlib.suppress(ValueError):
        _kernels.max_pool(np.ascontiguousarray(acc), *args)
    with contextlib.suppress(ValueError):
        _kernels.im2col(np.ascontiguousarray(acc), *args, float(rng.integers(0, 256)))
    _kernels.count_nonzero(acc)
    return 4


def fuzz_learning(rng: np.random.Generator) -> int:
    from akida_rt.native import _kernels

    k, u, n = (int(v) for v in rng.integers(0, 40, 3))
    classes = int(rng.integers(0, 5))
    weights = rng.integers(0, 3, (k, u), dtype=np.uint8)
    swaps = rng.integers(-2, 60, u).astype(np.int32)
    spikes = rng.integers(0, 2, (n, k), dtype=np.uint8)
    labels = rng.integers(-2, 6, n)
    params = (int(rng.integers(-1, 50)), classes, *(int(v) for v in rng.integers(-1, 50, 3)))
    with contextlib.suppress(ValueError):
        _kernels.learn(weights, swaps, spikes, labels, np.empty((n, u), np.int64), params)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--kernels", help="the (sanitized) _kernels build to run on")
    group.add_argument("--sanitize", action="store_true", help="build with ASan + UBSan first")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sanitize:
        with tempfile.TemporaryDirectory() as tmp:
            built, env = build_sanitized(Path(tmp))
            cmd = [sys.executable, __file__, "--kernels", str(built),
                   "--seconds", str(args.seconds), "--seed", str(args.seed)]  # fmt: skip
            return subprocess.run(cmd, env=env).returncode
    sys.path.insert(0, str(ROOT))
    load_kernels(args.kernels)
    import akida_rt.native._kernels as loaded

    assert loaded.__file__ == args.kernels, loaded.__file__
    logging.disable(logging.WARNING)  # the readers' skipping notes
    rng = np.random.default_rng(args.seed)
    counts = dict.fromkeys(("decoders", "files", "aedat4", "framing", "engine", "learning"), 0)
    with tempfile.TemporaryDirectory() as tmp:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            counts["decoders"] += fuzz_decoders(rng)
            counts["files"] += fuzz_files(rng, Path(tmp))
            counts["aedat4"] += fuzz_aedat4(rng, Path(tmp))
            counts["framing"] += fuzz_framing(rng)
            counts["engine"] += fuzz_engine(rng)
            counts["learning"] += fuzz_learning(rng)
    print(json.dumps({"cases": sum(counts.values()), **counts, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
