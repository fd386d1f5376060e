"""Which `akida` command is on PATH: BrainChip's `akida` wheel installs one too.

With both packages in one environment the one installed last owns the `akida` script;
`akida-rt` and `python -m akida_rt` always reach ours.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

FIX = (
    "use `akida-rt` or `python -m akida_rt` (same commands), or make `akida` ours again: "
    "pip install --force-reinstall --no-deps akida-rt"
)


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
