"""The main job of `make demo`: a model on the (simulated) AKD1000, end to end."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from akida_rt import AKD1000, Model

# Produced by the toolchain (tools/make_demo_program.py regenerates it).
PROGRAM = Path(__file__).resolve().parent.parent / "data" / "digits_cnn.akp"


def _digits_test() -> tuple[np.ndarray, np.ndarray] | None:
    """The real digits test split: load_digits x4 nearest to 32x32 uint8, 75/25, seed 0."""
    try:
        from akida_rt.tools.datasets import load_digits_32

        data = load_digits_32()
    except ImportError:  # the runtime alone, without scikit-learn
        return None
    return data.x_test, data.y_test


def _digits_batch(count: int = 16) -> np.ndarray:
    """The first test digits, or random frames without scikit-learn."""
    test = _digits_test()
    if test is None:
        return np.random.default_rng(0).integers(0, 256, (count, 32, 32, 1), dtype=np.uint8)
    return test[0][:count]


def main() -> int:
    print("== akida_rt demo: digits CNN on the AKD1000 description ==\n")
    model = Model(PROGRAM)
    print(f"program {PROGRAM.name} (trained, quantized and converted by akida_rt.tools)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits_cnn.akp"
        model.save(path)
        loaded = Model(path)
        print(
            f"saved and reloaded {path.name}: {path.stat().st_size} bytes, identical={loaded.same_as(model)}"
        )
    loaded.map(AKD1000())
    loaded.summary()
    x = _digits_batch()
    out = loaded.forward(x)
    scores = loaded.predict(x)
    print(f"\nforward: {out.shape} {out.dtype}; predict: {scores.shape} {scores.dtype}")
    print("predicted classes:", scores.reshape(len(x), -1).argmax(axis=1).tolist())
    test = _digits_test()
    if test is not None:
        xt, yt = test
        acc = float(np.mean(loaded.predict(xt).reshape(len(xt), -1).argmax(axis=1) == yt))
        print(f"accuracy on the {len(yt)} real test digits: {acc:.4f}")
    print(loaded.statistics)
    _on_device(loaded, x, out)
    _through_daemon(PROGRAM, x, out)
    _edge_learning(model)
    _plots(loaded)
    return 0


def _plots(model: Model, folder: Path | None = None) -> list[Path]:
    """The NP mesh of the mapping and power over a run, as PNGs; prints where they are."""
    import os
    import subprocess
    import sys

    from akida_rt.errors import AkidaError

    folder = folder or Path(os.environ.get("AKIDA_DEMO_PLOTS", "build/demo")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    mesh, power = folder / "mesh.png", folder / "power.png"
    try:
        from akida_rt.plots import mesh as draw_mesh

        model.map(AKD1000())
        draw_mesh(model, AKD1000(), str(mesh))
        run = subprocess.run(
            [sys.executable, "-m", "akida_rt", "run", "-m", str(PROGRAM), "--frames", "64",
             "--batch", "4", "--no-daemon", "--plot", str(power)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if run.returncode != 0:
            raise AkidaError(run.stderr.strip().splitlines()[-1])
    except AkidaError as exc:  # matplotlib missing: the error names the extra to install
        print(f"\n(plots skipped: {exc})")
        return []
    print("\n== plots ==")
    print(f"NP mesh of the mapping (each layer's NPs coloured): {mesh}")
    print(f"power over a 64-frame run on the simulated AKD1000:  {power}")
    return [mesh, power]


def _edge_learning(model: Model, shots: int = 5) -> None:
    """Teach the simulated chip digits 5-9 from `shots` images each: the program's head is
    replaced by a fresh learnable 1-bit layer (its last convolution becomes the spike
    generator), which learns on the device; accuracy on the test images of 5-9."""
    import akida_rt

    try:
        from akida_rt.tools.datasets import load_digits_32
    except ImportError:
        return
    from akida_rt.tools.edge_learning import add_learning_head

    try:
        data = load_digits_32()
    except ImportError:
        print("\n(edge learning skipped: scikit-learn is not installed)")
        return
    print(f"\n== edge learning: digits 5-9 from {shots} shots each, on the device ==")
    edge = add_learning_head(model, 5, data.x_train[:256], neurons_per_class=shots)
    edge.map(akida_rt.devices(daemon=False)[0])
    test = data.y_test >= 5
    xt, yt = data.x_test[test], data.y_test[test] - 5
    before = float(np.mean(edge.predict_classes(xt) == yt))
    idx = np.concatenate([np.flatnonzero(data.y_train == c)[:shots] for c in range(5, 10)])
    edge.fit(data.x_train[idx], data.y_train[idx] - 5)
    after = float(np.mean(edge.predict_classes(xt) == yt))
    cfg = edge.learning
    assert cfg is not None
    print(f"learning head: {edge.layers[-1].filters} neurons, num_weights "
          f"{cfg.num_weights} (3/4 of the median spike count); {cfg.samples} "
          f"samples learned on {edge.statistics.where or 'the device'}")  # fmt: skip
    print(f"accuracy on the {len(yt)} test images of digits 5-9: before {before:.3f}, "
          f"after {after:.3f}")  # fmt: skip
    print("(the sample program's backbone saw all ten digits in training;")
    print(" benchmarks/edge_learning.py trains one on 0-4 only for the few-shot protocol)")


def _on_device(model: Model, x: np.ndarray, software_out: np.ndarray) -> None:
    """The same model on the first device akida_rt.devices() finds (the simulated AKD1000)."""
    import akida_rt

    device = akida_rt.devices(daemon=False)[0]
    kind = "simulated" if device.simulated else device.kind
    print(f"\n== on device {device.id} ({kind} {device.spec.name}) ==")
    device.soc.power_measurement_enabled = True
    model.map(device)
    sizes = [len(b) for b in model.binaries() if b is not None]
    print(f"program binaries compiled by akida_rt: {sizes} bytes, for the NP placement "
          "below")  # fmt: skip
    model.summary()
    batch = np.concatenate([x] * 8)  # long enough for the power sensor to sample
    on_device = model.forward(batch)[: len(x)]
    print(f"outputs identical to the software backend: {np.array_equal(on_device, software_out)}")
    print(model.statistics)
    host = getattr(device, "host", None)  # the driver's AKD1000 host (in-process devices)
    if host is not None:
        phases = ", ".join(f"{k} {v.accesses}" for k, v in host.counts.items())
        print(f"host accesses over the bus (AKD1000 host protocol) per phase: {phases}")
    if device.simulated:
        print(
            "Modelled, not measured (docs/clock-and-power-model.md): fps and mJ/frame are what "
            "an AKD1000 PCIe board's host would see (link, per-request and per-frame host costs, "
            "NPs at 179 MHz), power follows SynOps over a 912-915 mW floor; inference_clk is the "
            "device's own count; outputs are exact. Fidelity vs public boards: "
            "benchmarks/fidelity.py (within 2x)."
        )
    model.map(None)


def _through_daemon(program: Path, x: np.ndarray, software_out: np.ndarray) -> None:
    """Start a user-mode akidad, list its devices and run the model through it, then stop it."""
    import signal
    import subprocess

    from akida_rt.client.client import Client

    print("\n== through akidad (user mode) ==")
    with tempfile.TemporaryDirectory(prefix="akidad-demo-") as tmp:
        sock = Path(tmp) / "akida.sock"
        cmd = [sys.executable, "-m", "akida_rt.daemon", "--user", "--socket", str(sock),
               "--state-dir", str(Path(tmp) / "state"), "--log-level", "WARNING"]  # fmt: skip
        daemon = subprocess.Popen(cmd)
        try:
            with Client(sock, name="demo", retry_s=30) as client:
                for d in client.devices():
                    print(
                        f"device {d['id']}: {d['name']}{' (simulated)' if d['simulated'] else ''}"
                    )
                remote = client.load(program)
                y = remote.forward(x)
                print(f"{remote.name} on {remote.last_device}: outputs identical to the software "
                      f"backend: {np.array_equal(y, software_out)}")  # fmt: skip
            _streams(program, sock)
        finally:
            daemon.send_signal(signal.SIGTERM)
            print(f"akidad stopped (exit code {daemon.wait(30)})")


def _streams(program: Path, sock: Path) -> None:
    """The digits test set, then a synthetic DVS recording of test digits, streamed
    through the running akidad (akida_rt.demo.stream)."""
    from akida_rt.demo.stream import stream_digits, stream_dvs

    test = _digits_test()
    if test is None:
        print("\n(streaming the digits test set needs scikit-learn: streaming random frames)")
        stream_digits(program, sock, _digits_batch(64), None)
        return
    xt, yt = test
    stream_digits(program, sock, xt, yt)
    # the event model (tools/make_event_program.py) was trained on event-count frames
    from akida_rt.errors import AkidaError

    try:
        stream_dvs(program.with_name("dvs_digits_cnn.akp"), sock, xt[:8, :, :, 0], yt[:8])
    except AkidaError as exc:  # a program not in v1 form has no AKD1000 binary
        print(f"(DVS stream not run: {exc}; regenerate it with tools/make_event_program.py)")


if __name__ == "__main__":
    sys.exit(main())
