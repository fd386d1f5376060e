"""AKD1000 program binaries of a mapped model, from BrainChip's compiler in a child process
(`python -m akida_rt.tools.akd1000_compile`, the [metatf] extra), cached on disk by content.

The core cannot import akida or akida_rt.tools (see .importlinter): the child reads our
program bytes on stdin and answers JSON. Its output is deterministic, so the answer is kept
under $XDG_CACHE_HOME/akida_rt/akd1000/ by the SHA-256 of what was asked: repeated maps
cost nothing. Until akida_rt compiles its own binaries, this is where they come from.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from akida_rt.akd1000.decode import decode_program
from akida_rt.errors import MappingError, ProgramFormatError
from akida_rt.format.layers import Layer, LayerType
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType
from akida_rt.mapping.mapper import Backend, Placement, SequencePlan

log = logging.getLogger(__name__)

AKD1000 = "AKD1000"
CACHE_VERSION = b"akd1000-compile-1"
MISSING_METATF = (
    "mapping onto an AKD1000 needs BrainChip's compiler (the akida package, missing here): "
    "pip install 'akida-rt[metatf]' (the software backend works without it)"
)


@dataclass(frozen=True)
class CompiledSequence:
    """One sequence as BrainChip's compiler split the model."""

    hardware: bool
    layers: list[str]
    binary: bytes | None


def needs_binaries(spec: DeviceSpec) -> bool:
    """True for a device whose hardware sequences run as AKD1000 program binaries."""
    return spec.name == AKD1000


def metatf_available() -> bool:
    return importlib.util.find_spec("akida") is not None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "akida_rt" / "akd1000"


def compile_program(program: bytes, mode: str, hw_only: bool) -> list[CompiledSequence]:
    """BrainChip's sequences of the (unmapped) program file bytes `program`.

    Raises:
        MappingError: akida is missing, or its compiler refuses the model (its reason).
    """
    key = hashlib.sha256(CACHE_VERSION + f"|{mode}|{int(hw_only)}|".encode() + program)
    path = cache_dir() / f"{key.hexdigest()}.json"
    text = _cached(path)
    if text is None:
        if not metatf_available():
            raise MappingError(MISSING_METATF)
        try:
            text = _run_child(program, mode, hw_only)
        except _Refused as exc:  # deterministic too: refused again without a child
            text = json.dumps({"error": str(exc)})
        _store(path, text)
    try:
        return _parse(text)
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        path.unlink(missing_ok=True)
        raise MappingError(f"BrainChip's compiler answered badly ({exc}); map again") from None


def _cached(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _store(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home still maps, just without the cache
        log.warning("cannot cache AKD1000 programs in %s: %s", path.parent, exc)


def _run_child(program: bytes, mode: str, hw_only: bool) -> str:
    cmd = [sys.executable, "-m", "akida_rt.tools.akd1000_compile", "--mode", mode]
    if hw_only:
        cmd.append("--hw-only")
    log.info("compiling AKD1000 programs with BrainChip's compiler (%s)", mode)
    proc = subprocess.run(cmd, input=program, capture_output=True, timeout=600)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise _Refused(f"cannot compile the model for AKD1000: {reason}")
    return proc.stdout.decode()


class _Refused(MappingError):
    """BrainChip's compiler refused the model (an answer worth caching)."""


def _parse(text: str) -> list[CompiledSequence]:
    answer = json.loads(text)
    if "error" in answer:
        raise MappingError(str(answer["error"]))
    out = []
    for s in answer["sequences"]:
        binary = base64.b64decode(s["binary"]) if s["binary"] is not None else None
        out.append(CompiledSequence(bool(s["hardware"]), [str(n) for n in s["layers"]], binary))
    return out


def _no_input_data(names: list[str], layers: dict[str, Layer]) -> list[str]:
    return [n for n in names if n in layers and layers[n].layer_type is not LayerType.InputData]


def _split(
    seqs: list[tuple[bool, list[str]]], layers: dict[str, Layer]
) -> list[tuple[bool, list[str]]]:
    return [(h, _no_input_data(n, layers)) for h, n in seqs if _no_input_data(n, layers)]


def _show(seqs: list[tuple[bool, list[str]]]) -> str:
    return "; ".join(f"{'HW' if h else 'SW'} {n[0]}..{n[-1]}" for h, n in seqs)


def follow_split(
    plans: list[SequencePlan], compiled: list[CompiledSequence], layers: list[Layer]
) -> list[SequencePlan]:
    """`plans`, or plans with BrainChip's split when its compiler split the model otherwise
    (it decides where learning layers and the HRC run, for one): the binaries are what the
    chip runs. MappingError when its sequences do not cover the layers in order."""
    by_name = {layer.name: layer for layer in layers}
    ours = _split([(p.backend is Backend.Hardware, p.layers) for p in plans], by_name)
    theirs = _split([(c.hardware, c.layers) for c in compiled], by_name)
    if ours == theirs:
        return plans
    if [n for _, names in theirs for n in names] != [n for _, names in ours for n in names]:
        raise MappingError(
            f"BrainChip's compiler splits the model as [{_show(theirs)}], which does not cover "
            f"its layers as akida_rt's plan [{_show(ours)}] does: report the model"
        )
    log.warning("BrainChip's compiler splits the model as [%s] (akida_rt planned [%s]): "
                "running its split", _show(theirs), _show(ours))  # fmt: skip
    placed = {pl.layer: pl for p in plans for pl in p.placements}
    inputs = [n for n in by_name if by_name[n].layer_type is LayerType.InputData]
    out: list[SequencePlan] = []
    for i, (hardware, names) in enumerate(theirs):
        plan = SequencePlan(Backend.Hardware if hardware else Backend.Software,
                            (inputs if i == 0 else []) + names)  # fmt: skip
        if hardware:
            plan.placements = [placed.get(n) or _unplaced(by_name[n]) for n in plan.layers]
        out.append(plan)
    return out


def _unplaced(layer: Layer) -> Placement:
    """A placement for a layer akida_rt planned in software; its NPs come from the binary."""
    kind = {
        LayerType.InputData: "none",
        LayerType.InputConv2D: NpType.HRC.value,
        LayerType.FullyConnected: NpType.FNP3.value,
    }.get(layer.layer_type, NpType.CNP1.value)
    return Placement(layer.name, kind, [], 0, 0)


def binaries_of(plans: list[SequencePlan], compiled: list[CompiledSequence]) -> list[bytes | None]:
    """The binary of each of `plans` (None for software sequences), plans and compiled
    sequences matched in order of their hardware sequences."""
    hw = iter([c.binary for c in compiled if c.hardware])
    out: list[bytes | None] = []
    for plan in plans:
        if plan.backend is Backend.Hardware:
            binary = next(hw, None)
            if binary is None:
                raise MappingError("BrainChip's compiler gave no program for a hardware sequence")
            out.append(binary)
        else:
            out.append(None)
    return out


def placements_from_binaries(
    plans: list[SequencePlan], binaries: list[bytes | None], layers: list[Layer], spec: DeviceSpec
) -> None:
    """Replace each hardware plan's NP placement with the one its program binary holds."""
    by_name = {layer.name: layer for layer in layers}
    for plan, binary in zip(plans, binaries, strict=True):
        if binary is None:
            continue
        try:
            decoded = [v for v in decode_program([binary]).layers if v.kind != "InputData"]
        except ProgramFormatError as exc:
            raise MappingError(f"sequence {plan.name}: its AKD1000 program: {exc}") from None
        names = _no_input_data(plan.layers, by_name)
        if len(decoded) != len(names):
            log.warning("%s: %d layers decoded for %d planned; placement kept", plan.name,
                        len(decoded), len(names))  # fmt: skip
            continue
        old = {p.layer: p for p in plan.placements}
        for name, v1 in zip(names, decoded, strict=True):
            p = old.get(name)
            if p is None:
                continue
            nps = [NpId(c, r, n) for c, r, n in v1.nps]
            if nps and nps[0].id < 0:
                nps = [spec.hrc] if spec.hrc is not None else []
                np_type = NpType.HRC.value
            else:
                np_type = _np_type(p.np_type, nps, spec, v1.kind)
            p.nps, p.np_type = nps, np_type


def _np_type(planned: str, nps: list[NpId], spec: DeviceSpec, kind: str) -> str:
    types = {np_.ident: set(np_.types) for np_ in spec.nps}
    have = set.intersection(*(types.get(n, set()) for n in nps)) if nps else set()
    try:
        want = NpType(planned)
    except ValueError:
        want = None
    if want in have:
        return planned
    family = "FNP" if kind == "FullyConnected" else "CNP"
    for t in (NpType.CNP1, NpType.CNP2, NpType.FNP3, NpType.FNP2):
        if t in have and t.value.startswith(family):
            return t.value
    return planned


def map_binaries(
    program: bytes,
    plans: list[SequencePlan],
    layers: list[Layer],
    spec: DeviceSpec,
    mode: str,
    hw_only: bool,
) -> tuple[list[SequencePlan], list[bytes | None]]:
    """(plans, the program binary of each: None for software sequences) for the unmapped
    program file bytes `program`: `plans` themselves unless BrainChip's compiler split the
    model otherwise (follow_split); the placement is taken from the binaries."""
    compiled = compile_program(program, mode, hw_only)
    plans = follow_split(plans, compiled, layers)
    binaries = binaries_of(plans, compiled)
    placements_from_binaries(plans, binaries, layers, spec)
    return plans, binaries
