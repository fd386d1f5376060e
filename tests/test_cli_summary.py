"""`akida summary`: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import shutil
import sys

from akida_rt.model import zoo
from tests.conftest import run_akida


def test_summary_json_maps_onto_akd1000(ds_cnn_program: str) -> None:
    out = run_akida("summary", "-m", ds_cnn_program, "--map", "AKD1000", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["input_shape"] == [49, 10, 1] and data["output_shape"] == [1, 1, 33]
    (seq,) = data["sequences"]
    assert seq["backend"] == "Hardware" and seq["nps"] == 65 and seq["program_bytes"] > 0
    assert [layer["name"] for layer in data["layers"]][-1] == "dense_5"


def test_summary_table(ds_cnn_program: str) -> None:
    out = run_akida("summary", "-m", ds_cnn_program)
    assert out.returncode == 0 and "separable_4 (Sep.Conv.)" in out.stdout


def test_errors_are_one_line_without_traceback(tmp_path) -> None:
    big = tmp_path / "akidanet.akp"
    zoo.akidanet(alpha=0.5, size=64, classes=10).save(big)
    bad = tmp_path / "bad.akp"
    bad.write_bytes(b"AKIDARTP" + b"\0" * 10)
    for args, needle in (
        (["summary", "-m", str(bad)], "truncated"),
        (["summary", "-m", str(tmp_path / "missing.akp")], "no such program file"),
        (["summary", "-m", str(big), "--map", "TwoNodesIP", "--hw-only"], "available"),
    ):
        out = run_akida(*args)
        assert out.returncode == 1
        assert needle in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_console_script_is_installed() -> None:
    assert shutil.which("akida", path=str(__import__("pathlib").Path(sys.executable).parent))


def test_sample_dvs_copies_the_event_camera_program(tmp_path, monkeypatch) -> None:
    from akida_rt.cli.main import main as akida
    from akida_rt.data import dvs_program
    from akida_rt.model.model import Model

    monkeypatch.chdir(tmp_path)
    assert akida(["sample", "--dvs"]) == 0
    copied = tmp_path / "dvs_digits_cnn.akp"
    assert copied.read_bytes() == dvs_program().read_bytes()
    assert Model(str(copied)).input_shape == (34, 34, 1)
