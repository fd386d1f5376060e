"""The mapping a program file stores: decoded, and checked against the layers and the
device it names, before a loaded model uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.errors import DeviceNotFound, ProgramFormatError
from akida_rt.format.layers import Layer, LayerType
from akida_rt.format.proto import program_pb2 as pb
from akida_rt.mapping.hardware import DeviceSpec, NpId, NpType, spec_by_name
from akida_rt.mapping.mapper import Backend, MapMode, Placement, SequencePlan

NO_NP = "none"  # the np_type of a placement that takes no NP (InputData)


@dataclass
class StoredMapping:
    """A mapping as a program file stores it: device, mode and the sequence plans."""

    spec: DeviceSpec
    mode: MapMode
    hw_only: bool
    plans: list[SequencePlan]
    binaries: list[bytes | None] | None = None  # AKD1000 program binaries, when stored


def decode_mapping(msg: pb.Mapping, layers: list[Layer]) -> StoredMapping:
    """The stored mapping of `layers` (already decoded); ProgramFormatError unless its
    sequences cover the layers once each, in order, on NPs the device has."""
    try:
        spec = spec_by_name(msg.device)
    except DeviceNotFound as exc:
        raise ProgramFormatError(f"mapping: {exc}") from None
    try:
        mode = MapMode(msg.mode)
    except ValueError:
        raise ProgramFormatError(
            f"mapping: unknown mode {msg.mode[:64]!r}; known: {[m.value for m in MapMode]}"
        ) from None
    by_name = {layer.name: layer for layer in layers}
    plans = [_decode_sequence(s, i, by_name, spec) for i, s in enumerate(msg.sequences)]
    if [n for p in plans for n in p.layers] != list(by_name):
        raise ProgramFormatError("mapping does not cover the layers in order, each once")
    if msg.hw_only and len(plans) != 1:
        raise ProgramFormatError(f"mapping: hw_only with {len(plans)} sequences")
    return StoredMapping(spec, mode, msg.hw_only, plans, _binaries(msg, plans, spec))


def _binaries(
    msg: pb.Mapping, plans: list[SequencePlan], spec: DeviceSpec
) -> list[bytes | None] | None:
    """The stored program binaries, each checked (container, engine and device versions),
    or None when the mapping stores none; all hardware sequences have one or none does."""
    stored = [bool(s.binary) for s in msg.sequences]
    if not any(stored):
        return None
    out: list[bytes | None] = []
    for i, (s, plan) in enumerate(zip(msg.sequences, plans, strict=True)):
        where = f"mapping sequence {i}"
        if plan.backend is not Backend.Hardware:
            if s.binary:
                raise ProgramFormatError(f"{where}: a software sequence has no program binary")
            out.append(None)
            continue
        if not s.binary:
            raise ProgramFormatError(f"{where}: no program binary (the others have one)")
        if spec.name != "AKD1000":
            raise ProgramFormatError(f"{where}: a program binary for {spec.name}, not AKD1000")
        binary = ProgramBinary.from_bytes(bytes(s.binary), where)
        _check_binary_nps(binary, plan, where)
        out.append(bytes(s.binary))
    return out


def _check_binary_nps(binary: ProgramBinary, plan: SequencePlan, where: str) -> None:
    """The NPs the placements name are those the program binary configures."""
    configured = binary.configured_nps()
    placed = {
        (n.col, n.row, n.id)
        for p in plan.placements
        if p.np_type != NpType.HRC.value
        for n in p.nps
    }
    if configured != placed:
        extra = ", ".join(str(NpId(*n)) for n in sorted(placed - configured)[:3])
        missing = ", ".join(str(NpId(*n)) for n in sorted(configured - placed)[:3])
        raise ProgramFormatError(
            f"{where}: the placements name NPs its program binary does not configure "
            f"({extra or 'none'}) or leave out NPs it does ({missing or 'none'}): re-map the model"
        )


def _decode_sequence(
    s: pb.Sequence, index: int, by_name: dict[str, Layer], spec: DeviceSpec
) -> SequencePlan:
    where = f"mapping sequence {index}"
    if s.backend not in (pb.HARDWARE, pb.SOFTWARE):
        raise ProgramFormatError(f"{where}: unknown backend code {s.backend}")
    if not s.layers:
        raise ProgramFormatError(f"{where}: no layers")
    for name in s.layers:
        if name not in by_name:
            raise ProgramFormatError(f"{where}: unknown layer {name[:64]!r}")
    hardware = s.backend == pb.HARDWARE
    most = len(s.layers) if hardware else 1  # a pass holds at least one layer
    if not 1 <= s.passes <= most:
        raise ProgramFormatError(f"{where}: {s.passes} passes, expected 1..{most}")
    plan = SequencePlan(Backend.Hardware if hardware else Backend.Software, list(s.layers))
    plan.passes = s.passes
    if not hardware:
        if s.placements:
            raise ProgramFormatError(f"{where}: a software sequence has no placements")
        return plan
    if sorted(p.layer for p in s.placements) != sorted(s.layers):
        raise ProgramFormatError(f"{where}: placements do not name each of its layers once")
    used: set[tuple[int, NpId]] = set()
    for p in s.placements:
        layer = by_name[p.layer]
        plan.placements.append(
            _decode_placement(p, f"{where} layer {p.layer[:64]!r}", layer, spec, s.passes, used)
        )
    return plan


def _decode_placement(
    p: pb.LayerPlacement,
    where: str,
    layer: Layer,
    spec: DeviceSpec,
    passes: int,
    used: set[tuple[int, NpId]],
) -> Placement:
    """A stored placement, checked against the NPs `spec` has (with a program binary, the
    placement is the binary's: AKD1000() lists the NP ids its programs use)."""
    if not 0 <= p.pass_index < passes:
        raise ProgramFormatError(f"{where}: pass_index {p.pass_index} outside 0..{passes - 1}")
    if p.weight_bytes < 0 or p.input_bytes < 0:
        raise ProgramFormatError(
            f"{where}: negative byte count ({p.weight_bytes} weight, {p.input_bytes} input)"
        )
    nps = [NpId(n.col, n.row, n.id) for n in p.nps]
    input_conv = layer.layer_type is LayerType.InputConv2D
    if layer.layer_type is LayerType.InputData:
        if p.np_type != NO_NP or nps:
            raise ProgramFormatError(f"{where}: InputData takes no NP")
    elif input_conv or p.np_type == NpType.HRC.value:
        if not input_conv or p.np_type != NpType.HRC.value or nps != [spec.hrc]:
            raise ProgramFormatError(
                f"{where}: an InputConv2D, and only it, runs on the HRC {spec.hrc} of {spec.name}"
            )
    else:
        types = {np_.ident: np_.types for np_ in spec.nps}
        try:
            np_type = NpType(p.np_type)
        except ValueError:
            raise ProgramFormatError(f"{where}: unknown NP type {p.np_type[:16]!r}") from None
        if not nps:
            raise ProgramFormatError(f"{where}: no NPs")
        for ident in nps:
            if np_type not in types.get(ident, ()):
                raise ProgramFormatError(f"{where}: {spec.name} has no {np_type.value} at {ident}")
            if (p.pass_index, ident) in used:
                raise ProgramFormatError(
                    f"{where}: NP {ident} is already used in pass {p.pass_index}"
                )
            used.add((p.pass_index, ident))
    return Placement(p.layer, p.np_type, nps, p.weight_bytes, p.input_bytes, p.pass_index)
