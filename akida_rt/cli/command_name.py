"""Which `akida` command is on PATH: BrainChip's `akida` wheel installs one too.

With both packages in one environment the one installed last owns the `akida` script;
`akida-rt` and `python -m akida_rt` always reach ours.
"""

from __future__ import annotations

from pathlib import Path

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
