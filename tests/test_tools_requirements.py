"""Every third-party module the toolchain imports comes with `akida-rt[tools]`.

Reads the imports of tools/, the toolchain CLI and image_files.py (without running them) and finds, through
the installed distributions' metadata, that each is provided by a runtime or [tools]
requirement (directly or through their own requirements), so the extra cannot miss one.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from tests.test_wheel_install import closure

ROOT = Path(__file__).resolve().parents[1]
# tools/, the toolchain CLI, and the runtime modules the toolchain reads its data with
TOOLCHAIN = [*sorted((ROOT / "tools").glob("*.py")),
             *(ROOT / "akida_rt" / "cli" / n for n in ("tool_cmds.py", "toolchain.py", "args.py")),
             ROOT / "akida_rt" / "stream" / "image_files.py"]  # fmt: skip


def third_party_imports(files: list[Path]) -> dict[str, Path]:
    """Top-level module -> the first file importing it, for modules outside stdlib/akida_rt."""
    found: dict[str, Path] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("akida_rt", "__future__"):
                    found.setdefault(top, file)
    return found


def _names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~ ;\[]", r)[0] for r in requirements]


def test_the_scan_finds_the_toolchain_imports() -> None:
    found = third_party_imports(TOOLCHAIN)
    assert {"keras", "tensorflow", "numpy", "sklearn", "mlxtend", "tqdm", "PIL"} <= set(found)


def test_tools_extra_provides_every_toolchain_import() -> None:
    """Runtime + [tools] requirements; a module named after another extra (tools/metatf.py
    for [metatf]) may also use that extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    base = set(closure(_names([*project["dependencies"], *extras["tools"]])))
    by_module = metadata.packages_distributions()
    missing = []
    for module, file in sorted(third_party_imports(TOOLCHAIN).items()):
        provided = base | set(closure(_names(extras.get(file.stem, []))))
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in by_module.get(module, [])}
        if not dists & provided:
            missing.append(f"{module} (imported by {file.name}; from {sorted(dists) or 'nothing'})")
    assert not missing, "not provided by the runtime or [tools] requirements: " + ", ".join(missing)
