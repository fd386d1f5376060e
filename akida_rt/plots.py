"""PNG pictures for the CLI (matplotlib, the [plot] extra) and a text sparkline for `top`.

`mesh` draws the NP mesh with each layer's NPs coloured; `power` draws power over a run
with its inference windows. matplotlib is optional: the runtime needs it only for --plot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from akida_rt.errors import InputError

log = logging.getLogger(__name__)
SPARKS = "▁▂▃▄▅▆▇█"
NP_GAP = 0.12  # white space between NPs (each NP is its own coloured square)
NODE_PITCH = 2.4  # a node's 2x2 NPs and the space to the next node


def _pyplot(option: str) -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise InputError(
            f"{option} draws with matplotlib, which is not installed: "
            "pip install 'akida-rt[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_png(option: str, path: str) -> str:
    """`path` if it names a .png file whose directory exists."""
    file = Path(path)
    if file.suffix.lower() != ".png":
        raise InputError(f"{option} {path}: plots are PNG files; name it something.png")
    if file.is_dir():
        raise InputError(f"{option} {path} is a directory; give a file name to write")
    if not file.parent.is_dir():
        raise InputError(
            f"{option} {path}: directory {file.parent} does not exist (create it first)"
        )
    _pyplot(option)
    return path


def mesh(model: Any, spec: Any, path: str) -> int:
    """Draw each hardware sequence's NP placement on the device's mesh, NP for NP as the
    description lists it (its DMA NPs dark, the HRC left out); returns the number of
    coloured NPs."""
    plt = _pyplot("--plot")
    hw = [s for s in model.sequences if s.backend.value == "Hardware"]
    if not hw:
        raise InputError("--plot: no sequence runs on the NP mesh (map onto a device first)")
    idents = [n.ident for n in spec.nps]
    dmas = [d for d in (spec.dma_event, spec.dma_conf) if d is not None]
    slots = idents + dmas
    kinds = {n.ident: _kind_label({t.value for t in n.types}) for n in spec.nps}
    cols = max(i.col for i in slots)
    rows = max(i.row for i in slots)
    fig, axes = plt.subplots(1, len(hw), figsize=(4.5 * len(hw) + 2, 5), squeeze=False)
    cmap = plt.get_cmap("tab20")
    layer_names = [p.layer for s in hw for p in s.plan.placements if p.np_type != "HRC"]
    colours = {name: cmap(i % 20) for i, name in enumerate(dict.fromkeys(layer_names))}
    coloured = 0
    for ax, seq in zip(axes[0], hw, strict=True):
        owner = {n: p.layer for p in seq.plan.placements if p.np_type != "HRC" for n in p.nps}
        if stray := sorted(set(owner) - set(idents)):
            log.warning("%s places NPs %s that %s does not have", seq.name,
                        ", ".join(map(str, stray)), spec.name)  # fmt: skip
        for i in slots:
            x = (i.col - 1) * NODE_PITCH + i.id % 2 + NP_GAP / 2
            y = (rows - i.row) * NODE_PITCH + (1 - i.id // 2) + NP_GAP / 2
            layer = owner.get(i)
            colour = colours[layer] if layer else (0.93, 0.93, 0.93)
            label = kinds.get(i, "")
            if i in dmas:
                colour = (0.55, 0.55, 0.55)
                label = "E" if i == spec.dma_event else "C"
            ax.text(x + 0.44, y + 0.44, label, ha="center", va="center", fontsize=5,
                    color=(0.2, 0.2, 0.2))  # fmt: skip
            coloured += layer is not None
            ax.add_patch(plt.Rectangle((x, y), 1 - NP_GAP, 1 - NP_GAP, color=colour, lw=0))
        ax.set_xlim(-0.2, cols * NODE_PITCH)
        ax.set_ylim(-0.2, rows * NODE_PITCH)
        ax.set_aspect("equal")
        ax.set_xticks(
            [(c - 1) * NODE_PITCH + 1 for c in range(1, cols + 1)],
            [f"col {c}" for c in range(1, cols + 1)],
        )
        ax.set_yticks(
            [(rows - r) * NODE_PITCH + 1 for r in range(1, rows + 1)],
            [f"row {r}" for r in range(1, rows + 1)],
        )
        ax.set_title(f"{seq.name}: {seq.plan.np_count} NPs", fontsize=9)
    handles = [plt.Line2D([], [], marker="s", ls="", ms=5, color=c, label=n)
               for n, c in colours.items()]  # fmt: skip
    if dmas:
        handles.append(plt.Line2D([], [], marker="s", ls="", ms=5, color=(0.55, 0.55, 0.55),
                                  label="DMA (E event, C config)"))  # fmt: skip
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(f"{model.name} on {spec.name}: {coloured} of {len(idents)} NPs used")
    fig.subplots_adjust(right=0.8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log.info("wrote %s (%d coloured NPs)", path, coloured)
    return coloured


def _kind_label(types: set[str]) -> str:
    """What an NP that is not a CNP2 (the common kind) is, in two characters."""
    for name, label in (("CNP2", ""), ("FNP3", "F3"), ("FNP2", "F2")):
        if name in types:
            return label
    return "C1"


def power(times_s: Sequence[float], power_mw: Sequence[float], windows: Sequence[tuple[float, float]],
          path: str, title: str) -> None:  # fmt: skip
    """Power over a run (mW against board time) with each inference window shaded."""
    plt = _pyplot("--plot")
    fig, ax = plt.subplots(figsize=(9, 4))
    for start, end in windows:
        ax.axvspan(start, end, color=(0.8, 0.9, 1.0), lw=0)
    ax.step(times_s, power_mw, where="post", color="tab:red", lw=1.2, label="power (mW)")
    ax.set_xlabel("board time (s)")
    ax.set_ylabel("mW")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sparkline(values: Sequence[float | None]) -> str:
    """A text sparkline of `values` (None: a gap); scaled between their min and max."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = hi - lo or 1.0
    return "".join(
        " " if v is None else SPARKS[min(7, int((v - lo) / span * 7.999))] for v in values
    )
