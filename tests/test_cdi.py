"""`akida cdi generate`: the spec for the boards found, checked against our JSON schema of
the CDI specification (tests/cdi_schema.json), and the schema's own teeth."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from .conftest import run_akida

SCHEMA = json.loads((Path(__file__).parent / "cdi_schema.json").read_text())
Draft7Validator.check_schema(SCHEMA)
VALIDATOR = Draft7Validator(SCHEMA)
OFFICIAL = Path(__file__).parent / "cdi_official"  # the CDI project's own schema
OFFICIAL_VALIDATOR = Draft7Validator(
    json.loads((OFFICIAL / "schema.json").read_text()),
    registry=Registry().with_resource(
        "defs.json",
        Resource.from_contents(
            json.loads((OFFICIAL / "defs.json").read_text()), default_specification=DRAFT7
        ),
    ),
)


def errors(document: Any) -> list[str]:
    """What our schema and the official one find wrong (the official one is looser)."""
    found = [e.message for e in VALIDATOR.iter_errors(document)]
    return found + [f"official: {e.message}" for e in OFFICIAL_VALIDATOR.iter_errors(document)]


def sim_env(tmp_path: Path, boards: str = "pcie:1,usb:1") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AKIDA_VISIBLE_DEVICES"}
    return env | {"AKIDA_SIM_BOARDS": boards, "TMPDIR": str(tmp_path)}


def test_the_spec_written_for_the_boards_found_follows_the_cdi_schema(tmp_path: Path) -> None:
    out = tmp_path / "brainchip.com-akida.yaml"
    res = run_akida("cdi", "generate", "--simulated", "-o", str(out), "--json",
                    env=sim_env(tmp_path))  # fmt: skip
    assert res.returncode == 0, res.stderr
    spec = yaml.safe_load(out.read_text())  # a .yaml file: CDI runtimes read it as YAML
    assert errors(spec) == []
    names = [d["name"] for d in spec["devices"]]
    assert names == ["0", "pcie-0000-01-00.0", "1", "usb-SIMU0001", "all"]
    assert len(set(names)) == len(names)
    assert spec["kind"] == "brainchip.com/akida"
    by_name = {d["name"]: d["containerEdits"] for d in spec["devices"]}
    assert by_name["0"] == by_name["pcie-0000-01-00.0"]
    assert by_name["0"]["env"] == ["AKIDA_VISIBLE_DEVICES_PCIE_0000_01_00_0=pcie:///dev/akida0"]
    assert spec["cdiVersion"] == "0.5.0"  # podman 4.3 (CDI 0.5) refuses 0.6.0
    assert all("annotations" not in d for d in spec["devices"])  # 0.6.0 only
    (node,) = by_name["0"]["deviceNodes"]
    assert node["path"] == "/dev/akida0" and node["permissions"] == "rw"
    assert Path(node["hostPath"]).exists()
    assert len(by_name["all"]["deviceNodes"]) == 2
    assert json.loads(res.stdout) == {"path": str(out), "kind": spec["kind"], "devices": names}
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_printed_spec_and_the_simulated_flag(tmp_path: Path) -> None:
    res = run_akida("cdi", "generate", "--simulated", "--json", env=sim_env(tmp_path, "usb:2"))
    assert res.returncode == 0, res.stderr
    spec = json.loads(res.stdout)
    assert errors(spec) == []
    assert [d["name"] for d in spec["devices"]] == ["0", "usb-SIMU0001", "1", "usb-SIMU0002", "all"]
    res = run_akida("cdi", "generate", env=sim_env(tmp_path, "usb:2"))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "akida cdi: error: found 2 board(s), all simulated chips: add --simulated to include them"
    ]


def test_no_boards_no_spec(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AKIDA_SIM_BOARDS", "AKIDA_VISIBLE_DEVICES")
    }
    res = run_akida(
        "cdi",
        "generate",
        "-o",
        str(tmp_path / "x.yaml"),
        env=env | {"AKIDA_SYSROOT": str(tmp_path)},
    )
    assert res.returncode == 1
    assert (
        "no Akida board with a device node" in res.stderr
        and "sim://akd1000/0" in res.stderr
        and len(res.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "x.yaml").exists()


GOOD: dict[str, Any] = {
    "cdiVersion": "0.5.0",
    "kind": "brainchip.com/akida",
    "devices": [{"name": "0", "containerEdits": {
        "env": ["A=b"], "deviceNodes": [{"path": "/dev/akida0", "permissions": "rw"}]}}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("cdiVersion",), "six"),
        (("kind",), "akida"),  # no vendor prefix
        (("kind",), "brainchip.com/akida/x"),
        (("devices",), []),
        (("devices", 0, "name"), "-0"),
        (("devices", 0, "name"), "a:b"),
        (("devices", 0, "containerEdits", "env", 0), "NOEQUALS"),
        (("devices", 0, "containerEdits", "deviceNodes", 0, "path"), "dev/akida0"),
        (("devices", 0, "containerEdits", "deviceNodes", 0, "permissions"), "rx"),
        (("devices", 0, "containerEdits", "deviceNodes", 0, "surprise"), 1),
        (("devices", 0, "extra"), 1),
    ],
)
def test_the_schema_refuses_what_the_spec_forbids(where: tuple[Any, ...], value: Any) -> None:
    assert errors(GOOD) == []
    bad = copy.deepcopy(GOOD)
    target = bad
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    assert errors(bad), (where, value)


def test_the_schema_requires_kind_and_devices() -> None:
    for key in ("cdiVersion", "kind", "devices"):
        bad = {k: v for k, v in GOOD.items() if k != key}
        assert any(key in e for e in errors(bad))


def test_the_official_schema_has_teeth_too() -> None:
    bad = copy.deepcopy(GOOD)
    del bad["devices"][0]["containerEdits"]["deviceNodes"][0]["path"]
    assert [e.message for e in OFFICIAL_VALIDATOR.iter_errors(bad)] == [
        "'path' is a required property"
    ]
    assert not list(OFFICIAL_VALIDATOR.iter_errors(GOOD))
