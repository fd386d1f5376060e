"""`akida devices` and `akida run`: subprocesses of the CLI, plus the busy path in-process."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from akida_rt.cli.main import main
from tests.conftest import run_akida


def test_devices_lists_the_simulator() -> None:
    out = run_akida("devices", "--json")
    assert out.returncode == 0, out.stderr
    (dev,) = json.loads(out.stdout)
    assert dev["kind"] == "sim" and dev["simulated"] is True
    assert (dev["nodes"], dev["nps"]) == (20, 78)
    assert {"id", "url", "version", "firmware"} <= set(dev)
    table = run_akida("devices")
    assert table.returncode == 0 and "sim://akd1000/0" in table.stdout and "AKD1000" in table.stdout


def test_run_with_random_input_prints_summary_and_metrics(ds_cnn_program: str) -> None:
    out = run_akida("run", "-m", ds_cnn_program)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "No input provided, using random data." in text
    assert "HW/conv_0-dense_5 (Hardware)" in text and "mW average over" in text
    for key in ("Frames: 1 in 1 call(s)", "inference_clk ", "program_clk "):
        assert key in text
    assert "1000.00 fps" not in text


def test_run_json_with_npy_input(ds_cnn_program: str, tmp_path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (60, 49, 10, 1), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    out = run_akida("run", "-m", ds_cnn_program, "-i", str(tmp_path / "x.npy"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    stats = data["statistics"]
    assert stats["inference_frames"] == 60 and stats["inference_clk"] > 0
    assert stats["device_fps"] == pytest.approx(60 * 300e6 / stats["inference_clk"])
    # fps is host-visible (the simulated board's modelled wall clock): below the clock figure
    assert (
        stats["fps"] == pytest.approx(60 / stats["elapsed_s"])
        and stats["fps"] < stats["device_fps"]
    )
    run = data["device_run"]  # this run's device counters: power over the board's busy time
    assert run["frames"] == 60 and run["inference_clk"] == stats["inference_clk"]
    assert 900 < run["power_mw"] < 1500 and run["energy_mj_per_frame"] > 0
    assert run["energy_mj_per_frame"] == pytest.approx(run["power_mw"] * run["board_s"] / 60)
    assert data["device"]["simulated"] is True and data["model"]["sequences"][0]["nps"] == 65


def test_run_with_an_image(ds_cnn_program: str, tmp_path) -> None:
    pil = pytest.importorskip("PIL.Image")
    pil.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)).save(
        tmp_path / "img.png"
    )
    out = run_akida("run", "-m", ds_cnn_program, "-i", str(tmp_path / "img.png"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["statistics"]["inference_frames"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "missing.akp"], "no such program file"),
        (["-i", "missing.npy"], "no such input file"),
        (["-i", "BAD_SHAPE"], "does not match the model input"),
        (["--device", "nope"], "no device 'nope'"),
    ],
)
def test_run_errors_are_one_line(ds_cnn_program: str, tmp_path, args, message) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((2, 8, 8, 1), np.uint8))
    args = [str(tmp_path / "bad.npy") if a == "BAD_SHAPE" else a for a in args]
    if "-m" not in args:
        args = ["-m", ds_cnn_program, *args]
    out = run_akida("run", *args)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr


def test_run_bad_program_and_busy_device(ds_cnn_program: str, tmp_path, capsys) -> None:
    (tmp_path / "bad.akp").write_bytes(b"AKIDARTP" + b"\0" * 10)
    assert main(["run", "-m", str(tmp_path / "bad.akp")]) == 1
    assert "truncated" in capsys.readouterr().err
    from akida_rt.driver.discovery import devices

    device = devices()[0]
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with device.claim():
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        assert main(["run", "-m", ds_cnn_program]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "busy" in err[0]
    finally:
        done.set()
        holder.join(timeout=10)


def test_too_many_simulated_boards_are_refused_by_name() -> None:
    from akida_rt.driver.sim_rack import parse_config

    from akida_rt.errors import AkidaError
    from tests.daemon_harness import daemon_env

    with pytest.raises(AkidaError, match=r"pcie:500 asks for 500 boards; give 1\.\.16"):
        parse_config("pcie:500")
    with pytest.raises(AkidaError, match="usb:0"):
        parse_config("usb:0")
    assert parse_config("pcie:2,usb") == {"pcie": 2, "usb": 1}
    out = run_akida("devices", env=daemon_env(AKIDA_SIM_BOARDS="pcie:500"))
    assert "AKIDA_SIM_BOARDS: pcie:500 asks for 500 boards" in out.stderr
    assert "pcie://" not in out.stdout
