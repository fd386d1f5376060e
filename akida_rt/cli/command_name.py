"""Which `akida` command is on PATH: BrainChip's `akida` wheel installs one too.

With both packages in one environment the one installed last owns the `akida` script;
`akida-rt` and `python -m akida_rt` always reach ours.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


def checkout() -> Path | None:
    """The source folder akida_rt is installed from in editable mode (a checkout), if any."""
    try:
        text = metadata.distribution("akida-rt").read_text("direct_url.json")
        info = json.loads(text or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def reinstall_command() -> str:
    """The pip line that puts akida_rt's `akida` script back, for a checkout or a wheel."""
    pip = f"{sys.executable} -m pip install --force-reinstall --no-deps"
    source = checkout()
    if source is not None:
        return f"{pip} --no-build-isolation -e {source}"
    return f"{pip} akida-rt"


def fix_text() -> str:
    """The doctor's fix for a foreign `akida` on PATH."""
    return (
        "use `akida-rt` or `python -m akida_rt` (same commands), or make `akida` ours "
        f"again: {reinstall_command()}"
    )


FIX = fix_text()


def owner(script: Path) -> str:
    """'akida_rt', 'brainchip' or 'unknown': whose entry point the console script calls."""
    try:
        head = script.read_text(errors="replace")[:4096]
    except OSError:
        return "unknown"
    if "akida_rt.cli" in head:
        return "akida_rt"
    if "akida.cli" in head or "from akida " in head or "import akida\n" in head:
        return "brainchip"
    return "unknown"


def check_command(system: Any) -> list[Any]:
    """A doctor check: the `akida` on the system's PATH is akida_rt's."""
    from akida_rt.cli.doctor_cmds import INFO, OK, WARN, Check

    path = system.env.get("PATH")
    found = shutil.which("akida", path=path) if path else None
    if found is None:
        return [Check("command", INFO, "no `akida` on PATH; `python -m akida_rt` works", FIX)]
    who = owner(Path(found))
    if who == "akida_rt":
        return [Check("command", OK, f"{found} is akida_rt's")]
    what = "BrainChip's akida package" if who == "brainchip" else "another program"
    return [Check("command", WARN, f"{found} belongs to {what}, not akida_rt", FIX)]
