"""AKD1000's NP layout: our description NP for NP against akida.AKD1000().mesh (the
oracle), the simulated chip's mesh, and the NP ids summary, report and summary --json
show for a mapped model against akida's mapping and BrainChip's program binary."""

from __future__ import annotations

import re
from typing import Any

import pytest
from akida_rt.firmware_sim import np_mesh
from akida_rt.firmware_sim.registers_file import Identity
from akida_rt.tools.report import fit_report, report_table

from akida_rt import AKD1000
from akida_rt.akd1000.program_binary import ProgramBinary
from akida_rt.cli.model_cmds import model_description
from akida_rt.errors import ProgramFormatError
from akida_rt.format import program as fmt
from akida_rt.mapping.hardware import NpId, NpType
from akida_rt.mapping.mapper import MapMode
from akida_rt.model import zoo
from akida_rt.model.model import Model

Ids = list[tuple[int, int, int]]


def _akida() -> Any:
    return pytest.importorskip("akida")


def _ident(i: Any) -> tuple[int, int, int]:
    return (i.col, i.row, i.id)


def test_the_description_is_akidas_mesh() -> None:
    akida = _akida()
    device = akida.AKD1000()
    mesh, spec = device.mesh, AKD1000()
    theirs = [(_ident(n.ident), sorted(str(t).rsplit(".", 1)[-1] for t in n.types))
              for n in mesh.nps]  # fmt: skip
    ours = [(_ident(n.ident), sorted(t.value for t in n.types)) for n in spec.nps]
    assert ours == theirs and len(ours) == 78
    assert spec.hrc is not None and _ident(spec.hrc) == _ident(mesh.hrc.ident)
    assert [str(t).rsplit(".", 1)[-1] for t in mesh.hrc.types] == [NpType.HRC.value]
    assert spec.dma_event is not None and _ident(spec.dma_event) == _ident(mesh.dma_event)
    assert spec.dma_conf is not None and _ident(spec.dma_conf) == _ident(mesh.dma_conf)
    nodes = {i[:2] for i, _ in theirs} | {_ident(mesh.dma_event)[:2], _ident(mesh.dma_conf)[:2]}
    assert spec.nodes == len(nodes) == 20
    assert spec.version == str(device.version)


def test_the_simulated_chip_has_the_described_mesh() -> None:
    """firmware_sim keeps its own copy of the layout (it is the chip): the same NPs."""
    spec = AKD1000()
    types = {_ident(n.ident): sorted(t.value for t in n.types) for n in spec.nps}
    for col in range(8):
        for row in range(8):
            for i in range(4):
                assert sorted(np_mesh.np_types(col, row, i)) == types.get((col, row, i), [])
    chip = Identity()
    assert spec.dma_event is not None and chip.dma_node == (spec.dma_event.col, spec.dma_event.row)
    fnp2 = {(n.ident.col, n.ident.row) for n in spec.nps if NpType.FNP2 in n.types}
    assert fnp2 == {chip.fnp2_node} and chip.fnp2_count == spec.count(NpType.FNP2)
    assert (chip.mesh_cols, chip.mesh_rows) == (
        max(c for c, _, _ in types),
        max(r for _, r, _ in types),
    )


def _akida_ids(mode: str) -> dict[str, Ids]:
    """{layer: NP ids in order} of the digits CNN as akida maps it on AKD1000."""
    akida = _akida()
    from tests.metatf_models import from_zoo

    src = from_zoo(zoo.digits_cnn())
    src.map(akida.AKD1000(), mode=getattr(akida.MapMode, mode))
    return {
        layer.name: [_ident(n.ident) for n in layer.mapping.nps]
        for layer in src.layers
        if layer.mapping and layer.mapping.nps
    }


def _parse_placement(text: str) -> dict[str, Ids]:
    """The NP placement block of a summary or report, read back into NP ids."""
    block = text.split("NP placement (col, row, NP ids):\n", 1)[1]
    out: dict[str, Ids] = {}
    layer = ""
    for line in block.splitlines():
        head = re.match(r"  (\w+) \((\w+)\) ", line)
        if head:
            layer = head.group(1)
            out[layer] = []
        elif not line.startswith("    "):
            continue
        for c, r, a, b in re.findall(r"\((\d+), (\d+), (\d+)(?:-(\d+))?\)", line):
            out[layer] += [(int(c), int(r), i) for i in range(int(a), int(b or a) + 1)]
    return out


@pytest.mark.parametrize("mode", ["AllNps", "Minimal"])
def test_summary_and_report_show_the_binarys_np_ids(mode: str) -> None:
    theirs = _akida_ids(mode)
    model = zoo.digits_cnn()
    model.map(AKD1000(), mode=MapMode(mode))
    (seq,) = model.sequences
    configured = ProgramBinary.from_bytes(seq.program).configured_nps()
    assert configured == {n for name, ids in theirs.items() if name != "conv_0" for n in ids}
    texts: list[str] = []
    model.summary(print_fn=texts.append)
    assert _parse_placement(texts[0]) == theirs
    report = fit_report(model, AKD1000(), mode=MapMode(mode))
    by_layer = {row["layer"]: [tuple(n) for n in row["np_ids"]] for row in report["layers"]}
    assert {k: v for k, v in by_layer.items() if v} == theirs
    assert _parse_placement(report_table(report)) == theirs
    (desc,) = model_description(model)["sequences"]
    shown = {p["layer"]: [tuple(n) for n in p["nps"]] for p in desc["placements"] if p["nps"]}
    assert shown == theirs


def test_a_stored_placement_must_be_the_binarys(tmp_path) -> None:
    _akida()
    model = zoo.digits_cnn()
    model.map(AKD1000())
    assert model.sequences[0].program  # the binary, made now: the file stores it
    path = tmp_path / "digits.akp"
    model.save(str(path))
    assert Model(str(path)).sequences[0].plan.placements[1].nps[0] == NpId(3, 1, 2)
    msg = fmt.unpack(path.read_bytes())
    used = {_ident(n) for p in msg.mapping.sequences[0].placements for n in p.nps}
    free = next(_ident(n.ident) for n in AKD1000().nps if NpType.CNP2 in n.types
                and _ident(n.ident) not in used)  # fmt: skip
    moved = msg.mapping.sequences[0].placements[2].nps[0]
    moved.col, moved.row, moved.id = free
    blob = fmt.pack_payload(msg.SerializeToString(), mapped=True)
    with pytest.raises(ProgramFormatError, match="NPs its program binary does not configure"):
        Model(blob)
    moved.col, moved.row, moved.id = 3, 1, 0  # the event DMA: no NP
    blob = fmt.pack_payload(msg.SerializeToString(), mapped=True)
    with pytest.raises(ProgramFormatError, match=r"AKD1000 has no CNP1 at \(3, 1, 0\)"):
        Model(blob)
