"""Which `akida` command is on PATH: BrainChip's `akida` wheel installs one too.

With both packages in one environment the one installed last owns the `akida` script;
`akida-rt` and `python -m akida_rt` always reach ours.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse


def checkout() -> Path | None:
    """The source folder akida_rt is installed from in editable mode (a checkout), if any.

    Every installed akida-rt distribution is asked (a build leaves an akida_rt.egg-info in
    the checkout, which has no direct_url.json and may come first on sys.path)."""
    for dist in metadata.distributions(name="akida-rt"):
        try:
            info = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = urlparse(info.get("url", ""))
        if info.get("dir_info", {}).get("editable") and url.scheme == "file":
            return Path(unquote(url.path))
    return None


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
