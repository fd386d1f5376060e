"""The CLI's pictures: `summary --map --plot` (the NP mesh), `run --plot` (power), top's
sparkline. PNGs are read back as pixels: the coloured NPs counted in the image must be
the mapping's NPs, and the power plot must be a real image of the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from akida_rt import AKD1000, Model
from akida_rt.data import sample_program
from tests.conftest import run_akida

PROGRAM = str(sample_program())
image = pytest.importorskip("matplotlib.image")
ndimage = pytest.importorskip("scipy.ndimage")


def coloured_squares(png: Path, min_area: int = 300) -> int:
    """Connected regions of saturated colour at least `min_area` pixels (NP squares; the
    legend's markers and text are smaller, grey NPs and black text are unsaturated)."""
    rgb = image.imread(png)[..., :3]
    mask = rgb.max(-1) - rgb.min(-1) > 0.08
    labels, _ = ndimage.label(mask)
    areas = np.bincount(labels.ravel())[1:]
    return int((areas >= min_area).sum())


def test_the_mesh_plot_colours_every_mapped_np(tmp_path) -> None:
    out = tmp_path / "mesh.png"
    text = run_akida("summary", "-m", PROGRAM, "--map", "AKD1000", "--plot", str(out))
    assert text.returncode == 0, text.stderr
    model = Model(PROGRAM)
    model.map(AKD1000())
    mapped = sum(s.plan.np_count for s in model.sequences if s.backend.value == "Hardware")
    assert mapped > 10 and f"wrote {out}: {mapped} NPs" in text.stdout
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert coloured_squares(out) == mapped


def np_squares(png: Path) -> int:
    """Every NP square drawn, used or not (non-white, square, filled)."""
    rgb = image.imread(png)[..., :3]
    labels, _ = ndimage.label(rgb.min(-1) < 0.97)
    count = 0
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        filled = (labels[box] == index).sum()
        count += h * w >= 300 and abs(h - w) <= 2 and filled >= 0.8 * h * w
    return count


def test_the_mesh_plot_draws_akidas_mesh(tmp_path) -> None:
    """Every NP akida.AKD1000().mesh lists, plus its two DMAs, is a square of the plot."""
    akida = pytest.importorskip("akida")
    out = tmp_path / "mesh.png"
    assert (
        run_akida("summary", "-m", PROGRAM, "--map", "AKD1000", "--plot", str(out)).returncode == 0
    )
    assert np_squares(out) == len(akida.AKD1000().mesh.nps) + 2


def test_plot_needs_a_mapping_and_a_png_name(tmp_path) -> None:
    bad = run_akida("summary", "-m", PROGRAM, "--plot", str(tmp_path / "m.png"))
    assert bad.returncode == 1 and "--map AKD1000" in bad.stderr and not bad.stdout
    bad = run_akida("summary", "-m", PROGRAM, "--map", "AKD1000", "--plot", str(tmp_path / "m.jpg"))
    assert bad.returncode == 1 and ".png" in bad.stderr and not bad.stdout
    assert not list(tmp_path.iterdir())


def test_sparkline_follows_the_values() -> None:
    from akida_rt.plots import sparkline

    assert sparkline([1.0, 2.0, 3.0, None, 3.0]) == "▁▄█ █"
    assert sparkline([]) == "" and len(sparkline([5.0] * 4)) == 4


def test_run_plots_power_over_the_run(tmp_path) -> None:
    out = tmp_path / "power.png"
    text = run_akida("run", "-m", PROGRAM, "--frames", "24", "--batch", "4", "--no-daemon",
                     "--plot", str(out))  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert f"wrote {out}: power over" in text.stdout and "6 call(s)" in text.stdout
    rgb = image.imread(out)[..., :3]
    red = (rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.35) & (rgb[..., 2] < 0.35)  # the power line
    shade = (rgb[..., 2] > 0.95) & (rgb[..., 0] < 0.85) & (rgb[..., 0] > 0.75)  # inference
    assert red.sum() > 100 and shade.sum() > 10_000 and out.stat().st_size > 10_000


def test_the_demo_ends_by_printing_where_its_plots_are(tmp_path, capsys) -> None:
    import akida_rt.demo.run as demo

    paths = demo._plots(Model(PROGRAM), tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert [p.name for p in paths] == ["mesh.png", "power.png"]
    assert out[-2].endswith(str(paths[0])) and out[-1].endswith(str(paths[1]))
    assert all(p.stat().st_size > 10_000 for p in paths)
    main_source = Path(demo.__file__).read_text()
    body = main_source.split("def main()")[1].split("\ndef ")[0]
    assert body.strip().splitlines()[-2].strip() == "_plots(loaded)"  # the demo's last step
