"""Packaging: the five folders install under one namespace; nothing as `driver`/`daemon`/`tools`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"akida_rt": "akida_rt", "driver": "akida_rt.driver", "daemon": "akida_rt.daemon",
           "firmware_sim": "akida_rt.firmware_sim", "tools": "akida_rt.tools"}  # fmt: skip


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_the_namespace() -> None:
    cfg = _config()
    listed = set(cfg["packages"])
    for folder, package in FOLDERS.items():
        assert cfg["package-dir"][package] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *rel.parts])
            assert name in listed, (
                f"{init.parent} is a package but {name} is not in pyproject packages"
            )
    assert all(p.startswith("akida_rt") for p in listed)


def test_mapped_subpackages_import_under_the_namespace() -> None:
    import akida_rt.daemon
    import akida_rt.driver
    import akida_rt.firmware_sim
    import akida_rt.tools

    for mod, folder in ((akida_rt.driver, "driver"), (akida_rt.daemon, "daemon"),
                        (akida_rt.firmware_sim, "firmware_sim"), (akida_rt.tools, "tools")):  # fmt: skip
        assert Path(mod.__file__).parent == ROOT / folder
