"""`akida import` from a saved .fbz, the `akida-rt` / `python -m akida_rt` entry points, and
the doctor check for BrainChip's `akida` script taking over ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from akida_rt import Model
from akida_rt.cli import command_name
from akida_rt.cli import doctor_cmds as doc

BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "akida_rt", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_import_writes_a_program_that_matches_akida(tmp_path: Path) -> None:
    pytest.importorskip("akida")
    from tests.metatf_models import random_model

    theirs, x = random_model(4)
    fbz, akp = tmp_path / "m.fbz", tmp_path / "m.akp"
    theirs.save(str(fbz))
    out = _run("import", str(fbz), "-o", str(akp), "--map", "AKD1000", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["mapped"] == "AKD1000" and info["nps"] > 0
    np.testing.assert_array_equal(Model(akp).forward(x), theirs.forward(x))


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fbz"
    bad.write_bytes(b"\0" * 10)
    for path, needle in ((bad, "not a readable MetaTF model"), (tmp_path / "no.fbz", "no such")):
        out = _run("import", str(path), "-o", str(tmp_path / "o.akp"))
        assert out.returncode == 1
        assert needle in out.stderr or "pip install 'akida-rt[metatf]'" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_akida_rt_console_script_is_ours() -> None:
    script = BIN / "akida-rt"
    assert script.exists() and command_name.owner(script) == "akida_rt"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "import" in out.stdout


def _system(tmp_path: Path, script: str) -> doc.System:
    (tmp_path / "akida").write_text(script)
    (tmp_path / "akida").chmod(0o755)
    return doc.System(sysroot=tmp_path, env={"PATH": str(tmp_path)})


def test_doctor_names_brainchips_akida_script_and_the_fix(tmp_path: Path) -> None:
    theirs = "#!/usr/bin/python\nimport sys\nfrom akida.cli import main\nsys.exit(main())\n"
    (check,) = doc.check_command(_system(tmp_path, theirs))
    assert check.status == doc.WARN and "BrainChip" in check.detail
    assert check.fix is not None and "akida-rt" in check.fix
    ours = "#!/usr/bin/python\nimport sys\nfrom akida_rt.cli.main import main\nsys.exit(main())\n"
    (check,) = doc.check_command(_system(tmp_path, ours))
    assert check.status == doc.OK


def test_import_of_a_float_input_model_and_a_refusal(tmp_path: Path) -> None:
    """cnn2snn's float-input model (its Quantizer) imports through the CLI and runs as
    akida; an Akida 2.0 file is refused in one line naming its first v2 layer."""
    akida = pytest.importorskip("akida")
    from tests.metatf_fixtures import inputs, unpack

    fbz = unpack("float_input_cnn", tmp_path)
    akp = tmp_path / "f.akp"
    out = _run("import", str(fbz), "-o", str(akp))
    assert out.returncode == 0, out.stderr
    theirs = akida.Model(str(fbz))
    x = inputs(theirs, n=4)
    np.testing.assert_array_equal(Model(akp).forward(x), theirs.forward(x))
    v2 = akida.Model()
    v2.add(akida.InputConv2D(input_shape=(8, 8, 3), filters=4, kernel_size=3, name="in_v2"))
    v2.save(str(tmp_path / "v2.fbz"))
    out = _run("import", str(tmp_path / "v2.fbz"), "-o", str(tmp_path / "v2.akp"))
    assert out.returncode == 1
    assert "layer 'in_v2' (InputConv2D) is an Akida 2.0 layer" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
