"""Draws docs/architecture-packages.png: akida_rt's packages in their layers and the
imports between them, as the source has them (module-level solid, lazy dashed), less
the arrows other arrows imply (a transitive reduction).

    .venv/bin/python docs/architecture_picture.py   # needs matplotlib

The imports come from the scan of tests/test_import_circles.py; every package may import
akida_rt.errors, so those arrows are left out.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.test_import_circles import MODULES, _imports  # noqa: E402

# (package, x, y, colour): rows from the entry points down to the model format.
BOXES = [
    ("cli", 1.0, 6, "#f4cccc"), ("demo", 2.6, 6, "#f4cccc"), ("tools", 4.2, 6, "#fce5cd"),
    ("daemon", 6.0, 6, "#d9ead3"), ("k8s", 7.8, 6, "#d9ead3"),
    ("stream", 1.8, 5, "#f4cccc"), ("client", 3.4, 5, "#cfe2f3"), ("driver", 7.0, 5, "#d9ead3"),
    ("model", 3.4, 4, "#fff2cc"), ("firmware_sim", 7.0, 4, "#ead1dc"),
    ("learning", 2.6, 3, "#fff2cc"), ("mapping", 4.4, 3, "#fff2cc"),
    ("engine", 3.4, 2, "#fff2cc"), ("wire", 6.0, 2, "#cfe2f3"), ("akd1000", 7.8, 2, "#ead1dc"),
    ("format", 3.4, 1, "#fff2cc"),
    ("errors", 4.6, 0, "#eeeeee"),
]  # fmt: skip
PLACE = {name: (x, y) for name, x, y, _ in BOXES}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PLACE else ""


def arrows() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(module-level, lazy-only) imports between packages."""
    top: dict[str, set[str]] = defaultdict(set)
    lazy: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        source = package_of(name)
        for target, into in ((t, top) for t in _imports(name, lazy=False)):
            into[source].add(package_of(target))
        for target in _imports(name, lazy=True):
            lazy[source].add(package_of(target))
    solid = {(a, b) for a, bs in top.items() for b in bs}
    dashed = {(a, b) for a, bs in lazy.items() for b in bs} - solid
    keep = {(a, b) for a, b in solid | dashed if a and b and a != b and b != "errors"}
    solid, dashed = solid & keep, dashed & keep
    # A module-level arrow is implied only by module-level ones; a lazy one by any.
    solid = {(a, b) for a, b in solid if not _reaches(solid - {(a, b)}, a, b)}
    dashed = {(a, b) for a, b in dashed if not _reaches(solid | dashed - {(a, b)}, a, b)}
    return solid, dashed


def _reaches(edges: set[tuple[str, str]], start: str, goal: str) -> bool:
    """Whether `goal` is reachable from `start` (an arrow implied by others is not drawn)."""
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for a, b in edges:
            if a == here and b not in seen:
                if b == goal:
                    return True
                seen.add(b)
                todo.append(b)
    return False


def main() -> None:
    solid, dashed = arrows()
    fig, ax = plt.subplots(figsize=(10, 7.5))
    for name, x, y, colour in BOXES:
        ax.add_patch(FancyBboxPatch((x - 0.62, y - 0.22), 1.24, 0.44, boxstyle="round,pad=0.04",
                                    facecolor=colour, edgecolor="#444444"))  # fmt: skip
        ax.text(x, y, name, ha="center", va="center", fontsize=11, family="monospace")
    for edges, style in ((solid, "-"), (dashed, "--")):
        for a, b in sorted(edges):
            (x0, y0), (x1, y1) = PLACE[a], PLACE[b]
            ax.add_patch(FancyArrowPatch((x0, y0 - 0.26 if y0 > y1 else y0), (x1, y1 + 0.26),
                                         arrowstyle="-|>", mutation_scale=10, linestyle=style,
                                         color="#555555", linewidth=0.8,
                                         connectionstyle="arc3,rad=0.08"))  # fmt: skip
    ax.text(0.2, -0.6, "solid: imported when the module loads; dashed: only inside a function "
            "(lazy); an arrow implied by others is not drawn.\nEvery package may import errors "
            "(arrows left out).", fontsize=9)  # fmt: skip
    ax.set_xlim(0, 8.8)
    ax.set_ylim(-0.9, 6.6)
    ax.axis("off")
    ax.set_title("akida_rt packages and their imports (arrows point down the layers)")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "architecture-packages.png", dpi=110)


if __name__ == "__main__":
    main()
