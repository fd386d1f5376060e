"""After the README's commands, the venv's `akida` is akida_rt's command, not BrainChip's.

The [metatf] extra installs BrainChip's `akida` wheel, which brings its own `akida` script;
the Makefile re-installs ours last, and `akida-rt doctor` names a fix that works here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from akida_rt.cli.command_name import checkout, owner, reinstall_command

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BRAINCHIP_SCRIPT = (
    "#!/usr/bin/python3\nimport re\nimport sys\nfrom akida.cli import main\n"
    "if __name__ == '__main__':\n    sys.exit(main())\n"
)


def test_the_venvs_akida_runs_akida_rt() -> None:
    script = BIN / "akida"
    assert owner(script) == "akida_rt", script.read_text()[:300]
    out = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("akida_rt "), out


def test_the_makefile_installs_our_scripts_after_the_metatf_extra() -> None:
    out = subprocess.run(
        ["make", "-n", "-B", "scripts"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    pips = [ln for ln in out.splitlines() if " -m pip install " in ln]
    extras = next(i for i, ln in enumerate(pips) if "metatf" in ln)
    last = pips[-1]
    assert pips.index(last) > extras and "--force-reinstall" in last and "--no-deps" in last
    assert last.rstrip().endswith("-e ."), last


def test_the_readme_says_how_to_reach_the_command() -> None:
    text = (ROOT / "README.md").read_text()
    assert "source .venv/bin/activate" in text and ".venv/bin/akida" in text


def test_doctor_names_a_fix_that_works_in_this_checkout(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "akida").write_text(BRAINCHIP_SCRIPT)
    (fake / "akida").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ.get('PATH', '')}")
    out = subprocess.run(
        [sys.executable, "-m", "akida_rt", "doctor"], capture_output=True, text=True,
        env=env, timeout=60,
    ).stdout  # fmt: skip
    assert f"{fake / 'akida'} belongs to BrainChip's akida package" in out, out
    assert reinstall_command() in out
    assert checkout() == ROOT and f"-e {ROOT}" in reinstall_command()
    # The fix resolves here (pip's dry run builds the editable metadata, installs nothing).
    dry = subprocess.run(
        [*reinstall_command().split(), "--dry-run"], capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0 and "Would install akida-rt" in dry.stdout, dry.stderr[-2000:]
