"""Builds BrainChip's Akida Engine (from the installed akida wheel) and our bus bridge.

Compiled once into build/brainchip_engine/<hash of sources, flags and compiler>/ and
reused; a file lock keeps parallel test workers from building it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).with_name("bus_bridge.cpp")
CACHE = REPO / "build" / "brainchip_engine"
FLATBUFFERS_HEADER = Path("/usr/include/flatbuffers/flatbuffers.h")
# The engine's generated headers require exactly this flatbuffers release.
FLATBUFFERS_VERSION = "2.0.8"
JOBS = 2


class EngineUnavailable(Exception):
    """A tool the harness needs is missing; the message is the skip reason."""


def engine_source() -> Path:
    """The Akida Engine source tree shipped in the installed `akida` wheel."""
    spec = importlib.util.find_spec("akida")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailable(
            "BrainChip's akida wheel is not installed: pip install -e '.[metatf]'"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "engine"
    if not (root / "src").is_dir() or not (root / "api").is_dir():
        raise EngineUnavailable(f"the akida wheel has no engine source under {root}")
    return root


def akida_version() -> str:
    """The installed akida version; programs are only accepted by the same engine."""
    return importlib.metadata.version("akida")


def _check_tools() -> str:
    gxx = shutil.which("g++")
    if gxx is None:
        raise EngineUnavailable("g++ is not installed: apt-get install -y g++")
    if not FLATBUFFERS_HEADER.is_file():
        raise EngineUnavailable(
            f"flatbuffers {FLATBUFFERS_VERSION} headers are missing ({FLATBUFFERS_HEADER}): "
            "apt-get install -y libflatbuffers-dev (make test does it when root)"
        )
    base = FLATBUFFERS_HEADER.with_name("base.h").read_text(errors="replace")
    found = ".".join(
        _define(base, f"FLATBUFFERS_VERSION_{part}") for part in ("MAJOR", "MINOR", "REVISION")
    )
    if found != FLATBUFFERS_VERSION:
        raise EngineUnavailable(
            f"flatbuffers headers are {found}, the akida engine needs {FLATBUFFERS_VERSION}"
        )
    return gxx


def _define(text: str, name: str) -> str:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#define" and parts[1] == name:
            return parts[2]
    return "?"


def _flags(version: str) -> list[str]:
    return ["-std=c++17", "-O2", "-Iapi", "-Iinc", f'-DAKIDA_VERSION="{version}"']


def _key(gxx: str, flags: list[str], files: list[Path]) -> str:
    digest = hashlib.sha256()
    compiler = subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout
    digest.update(compiler.encode() + repr(flags).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def bridge_path() -> Path:
    """The bus-bridge executable, built now if the cache has none for these sources.

    The engine (about 45 s of compiling) and our bridge are cached apart, so editing
    the bridge relinks in seconds.

    Raises:
        EngineUnavailable: g++, the flatbuffers headers or the akida wheel are missing.
        RuntimeError: the compiler failed (a real error, not a reason to skip).
    """
    src = engine_source()
    gxx = _check_tools()
    flags = _flags(akida_version())
    sources = sorted(p for d in ("api", "inc", "src") for p in (src / d).rglob("*") if p.is_file())
    engine_key = _key(gxx, flags, sources)
    library = CACHE / f"engine-{engine_key}" / "libakida_engine.a"
    exe = CACHE / f"bridge-{engine_key}-{_key(gxx, flags, [SHIM])}" / "bus_bridge"
    if exe.is_file():
        return exe
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.is_file():
            log.info("building BrainChip's Akida Engine into %s", library.parent)
            _build(library.parent, lambda tmp: _library(src, gxx, flags, tmp))
        if not exe.is_file():
            _build(exe.parent, lambda tmp: _bridge(src, gxx, flags, library, tmp))
    return exe


def _run(cmd: list[str], cwd: Path | None, what: str) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-4000:]}")


def _build(out: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh temporary directory, then rename it to `out` (no half builds)."""
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _library(src: Path, gxx: str, flags: list[str], tmp: Path) -> None:
    units = sorted((src / "src").glob("*.cpp"))
    objs = [tmp / (cpp.stem + ".o") for cpp in units]

    def compile_one(unit: tuple[Path, Path]) -> None:
        _run(
            [gxx, *flags, "-c", str(unit[0]), "-o", str(unit[1])], src, f"compiling {unit[0].name}"
        )

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(compile_one, zip(units, objs, strict=True)))
    _run(["ar", "rcs", str(tmp / "libakida_engine.a"), *map(str, objs)], tmp, "ar")
    for obj in objs:
        obj.unlink()


def _bridge(src: Path, gxx: str, flags: list[str], library: Path, tmp: Path) -> None:
    exe = str(tmp / "bus_bridge")
    _run([gxx, *flags, str(SHIM), str(library), "-o", exe], src, "building the bus bridge")
