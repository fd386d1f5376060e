"""Bad arguments to every `akida` subcommand: one line naming what is wrong, never a traceback.

Each case runs the CLI's `main()` in-process (TensorFlow loads once per worker): exit code
2 for a wrong command line, 1 for a failure once running; stderr is exactly one line and
names the option or file. Any exception escaping `main()` fails the case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from akida_rt.cli.main import main
from akida_rt.data import sample_program

# Placeholders replaced by files of the `files` fixture.
M, E, T, D, P, F, Q, Z = "MISSING", "EMPTY", "TEXT", "DIR", "PROGRAM", "FLOAT", "QUANT", "BADZIP"
N8, NF, NX, NI, ED, TN = "NPY8", "NPYFLOAT", "NPYTEXT", "NPYIMAGES", "EMPTYDIR", "NPZNOX"
NODIR = "/nonexistent/dir/out.akp"
PIPE, ZERO, STRS, LAB3 = "FIFO", "NPYZERO", "NPYSTRINGS", "NPYLABELS3"
NOSOCK = "/nonexistent/dir/akida.sock"
TF_FILES = {F, Q}

CASES: list[tuple[list[str], int, str]] = [
    # top level
    (["nope"], 2, "invalid choice"),
    (["--bogus"], 2, "--bogus"),
    (["-v", "nope"], 2, "nope"),
    # summary / sample / version / devices / doctor
    (["summary"], 2, "--model"),
    (["summary", "-m", M], 1, M),
    (["summary", "-m", E], 1, E),
    (["summary", "-m", T], 1, T),
    (["summary", "-m", D], 1, D),
    (["summary", "-m", Z], 1, Z),
    (["summary", "-m", P, "--map", "NOPE"], 1, "NOPE"),
    (["summary", "-m", P, "--mode", "Bad"], 2, "--mode"),
    (["summary", "-m", P, "--bogus"], 2, "--bogus"),
    (["sample", "-o", NODIR], 1, "/nonexistent/dir"),
    (["sample", "-o", D], 1, "directory"),
    (["sample", "--bogus"], 2, "--bogus"),
    (["version", "--bogus"], 2, "--bogus"),
    (["version", "extra"], 2, "extra"),
    (["devices", "--bogus"], 2, "--bogus"),
    (["devices", "x"], 2, "x"),
    (["doctor", "--bogus"], 2, "--bogus"),
    # run
    (["run"], 2, "--model"),
    (["run", "-m", M], 1, M),
    (["run", "-m", E], 1, E),
    (["run", "-m", T], 1, T),
    (["run", "-m", D], 1, D),
    (["run", "-m", P, "-i", M], 1, M),
    (["run", "-m", P, "-i", D], 1, D),
    (["run", "-m", P, "-i", NX], 1, NX),
    (["run", "-m", P, "-i", N8], 1, "does not match"),
    (["run", "-m", P, "-i", NF], 1, "0..255"),
    (["run", "-m", P, "-i", T], 1, T),
    (["run", "-m", P, "--device", "nope"], 1, "nope"),
    (["run", "-m", P, "--device", "99"], 1, "99"),
    (["run", "-m", P, "--device", "sim://akd1000/99999999999"], 1, "0..63"),
    (["run", "-m", P, "--device", "foo://x"], 1, "foo://x"),
    (["run", "-m", P, "--frames", "0"], 2, "--frames"),
    (["run", "-m", P, "--frames", "-5"], 2, "--frames"),
    (["run", "-m", P, "--frames", "abc"], 2, "--frames"),
    (["run", "-m", P, "--batch", "0"], 2, "--batch"),
    (["run", "-m", P, "--batch", "1.5"], 2, "--batch"),
    (["run", "-m", P, "--duration", "0"], 2, "--duration"),
    (["run", "-m", P, "--duration", "-1"], 2, "--duration"),
    (["run", "-m", P, "--duration", "nan"], 2, "--duration"),
    (["run", "-m", P, "--duration", "inf"], 2, "--duration"),
    (["run", "-m", P, "--top-k", "0"], 2, "--top-k"),
    (["run", "-m", P, "-o", NODIR], 1, "/nonexistent/dir"),
    (["run", "-m", P, "-o", D], 1, "directory"),
    (["run", "-m", P, "--daemon", "--no-daemon"], 2, "--no-daemon"),
    (["run", "-m", P, "--daemon"], 1, "--daemon"),
    # service / stats / top
    (["service"], 2, "ACTION"),
    (["service", "bogus"], 2, "bogus"),
    (["service", "install", "--dir", T], 1, T),
    (["service", "install", "--bogus"], 2, "--bogus"),
    (["stats", "--socket", M], 1, M),
    (["stats", "--socket", T], 1, T),
    (["stats", "--bogus"], 2, "--bogus"),
    (["top", "--interval", "-1"], 2, "--interval"),
    (["top", "--interval", "0"], 2, "--interval"),
    (["top", "--interval", "x"], 2, "--interval"),
    (["top", "--count", "-3"], 2, "--count"),
    (["top", "--count", "1.5"], 2, "--count"),
    (["top", "--socket", M, "--count", "1"], 1, M),
    # check
    (["check"], 2, "--model"),
    (["check", "-m", M], 1, M),
    (["check", "-m", E], 1, E),
    (["check", "-m", T], 1, T),
    (["check", "-m", P], 1, "akida program"),
    (["check", "-m", D], 1, D),
    (["check", "-m", Z], 1, Z),
    (["check", "-m", F, "--stage", "bad"], 2, "--stage"),
    (["check", "-m", F, "--device", "nope"], 2, "--device"),
    (["check", "-m", F, "--bogus"], 2, "--bogus"),
    # quantize
    (["quantize"], 2, "--model"),
    (["quantize", "-m", F], 2, "--output"),
    (["quantize", "-m", M, "-o", "q.keras"], 1, M),
    (["quantize", "-m", E, "-o", "q.keras"], 1, E),
    (["quantize", "-m", T, "-o", "q.keras"], 1, T),
    (["quantize", "-m", P, "-o", "q.keras"], 1, "akida program"),
    (["quantize", "-m", Z, "-o", "q.keras"], 1, Z),
    (["quantize", "-m", F, "-o", NODIR], 1, "/nonexistent/dir"),
    (["quantize", "-m", F, "-o", D], 1, "directory"),
    (["quantize", "-m", F, "-o", "q.keras", "--samples", "0"], 2, "--samples"),
    (["quantize", "-m", F, "-o", "q.keras", "--samples", "-5"], 2, "--samples"),
    (["quantize", "-m", F, "-o", "q.keras", "--samples", "abc"], 2, "--samples"),
    (["quantize", "-m", F, "-o", "q.keras", "--percentile", "150"], 2, "--percentile"),
    (["quantize", "-m", F, "-o", "q.keras", "--percentile", "0"], 2, "--percentile"),
    (["quantize", "-m", F, "-o", "q.keras", "--percentile", "-1"], 2, "--percentile"),
    (["quantize", "-m", F, "-o", "q.keras", "--percentile", "nan"], 2, "--percentile"),
    (["quantize", "-m", F, "-o", "q.keras", "--percentile", "abc"], 2, "--percentile"),
    (["quantize", "-m", F, "-o", "q.keras", "--epochs", "-1"], 2, "--epochs"),
    (["quantize", "-m", F, "-o", "q.keras", "--epochs", "x"], 2, "--epochs"),
    (["quantize", "-m", F, "-o", "q.keras", "--weight-bits", "3"], 2, "--weight-bits"),
    (["quantize", "-m", F, "-o", "q.keras", "--activation-bits", "8"], 2, "--activation-bits"),
    (["quantize", "-m", F, "-o", "q.keras", "--input-weight-bits", "5"], 2, "--input-weight"),
    (["quantize", "-m", F, "-o", "q.keras", "--seed", "-1"], 2, "--seed"),
    (["quantize", "-m", F, "-o", "q.keras", "--dataset", "nope"], 1, "nope"),
    (["quantize", "-m", F, "-o", "q.keras", "--dataset", N8], 1, "model takes"),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", N8], 1, "model takes"),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", NX], 1, NX),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", ED], 1, "no images"),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", "keras:nope"], 1, "keras:nope"),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", TN], 1, TN),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", T], 1, T),
    (["quantize", "-m", F, "-o", "q.keras", "--dataset", NI, "--epochs", "1"], 1, "labels"),
    (["quantize", "-m", F, "-o", "q.keras", "--calibration", D], 1, "no images"),
    # convert
    (["convert"], 2, "--model"),
    (["convert", "-m", M, "-o", "p.akp"], 1, M),
    (["convert", "-m", E, "-o", "p.akp"], 1, E),
    (["convert", "-m", T, "-o", "p.akp"], 1, T),
    (["convert", "-m", P, "-o", "p.akp"], 1, "akida program"),
    (["convert", "-m", Q, "-o", NODIR], 1, "/nonexistent/dir"),
    (["convert", "-m", F, "-o", "p.akp"], 1, "akida check"),
    (["convert", "-m", Q, "-o", "p.akp", "--input-scaling", "1"], 2, "--input-scaling"),
    (["convert", "-m", Q, "-o", "p.akp", "--input-scaling", "a", "b"], 2, "--input-scaling"),
    (["convert", "-m", Q, "-o", "p.akp", "--input-scaling", "0", "0"], 1, "--input-scaling"),
    (["convert", "-m", Q, "-o", "p.akp", "--map", "nope"], 2, "--map"),
    # report
    (["report"], 2, "--model"),
    (["report", "-m", M], 1, M),
    (["report", "-m", E], 1, E),
    (["report", "-m", T], 1, T),
    (["report", "-m", D], 1, D),
    (["report", "-m", F], 1, "akida check"),
    (["report", "-m", P, "--samples", "0"], 2, "--samples"),
    (["report", "-m", P, "--samples", "-1"], 2, "--samples"),
    (["report", "-m", P, "--dataset", "nope"], 1, "nope"),
    (["report", "-m", P, "--dataset", N8], 1, "model takes"),
    (["report", "-m", P, "--device", "nope"], 2, "--device"),
    (["report", "-m", P, "--mode", "nope"], 2, "--mode"),
    # import (MetaTF)
    (["import"], 2, "model"),
    (["import", "x.fbz"], 2, "--output"),
    (["import", "x.fbz", "-o", "p.akp", "--mode", "bad"], 2, "--mode"),
    # export (MetaTF)
    (["export"], 2, "program"),
    (["export", "p.akp"], 2, "--output"),
    (["export", M, "-o", "x.fbz"], 1, M),
    # cdi
    (["cdi"], 2, "ACTION"),
    (["cdi", "nope"], 2, "nope"),
    (["cdi", "generate", "--bogus"], 2, "--bogus"),
    (["cdi", "generate", "-o", NODIR], 1, "/nonexistent/dir"),
    (["cdi", "generate", "-o", D], 1, "directory"),
    # stream
    (["stream"], 2, "--model"),
    (["stream", "-m", P], 2, "--source"),
    (["stream", "-m", M, "--source", D], 1, M),
    (["stream", "-m", P, "--source", M], 1, M),
    (["stream", "-m", P, "--source", T], 1, "cannot read this video"),
    (["stream", "-m", P, "--source", ED], 1, "no image files"),
    (["stream", "-m", P, "--source", NX], 1, NX),
    # learn
    (["learn", N8], 2, "--model"),
    (["learn", N8, "-m", M], 1, M),
    (["learn", T, "-m", P], 1, T),
    (["learn", NF, "-m", P], 1, "uint8"),
    (["learn", N8, "-m", P, "--label", "-1"], 2, "--label"),
    (["learn", "export", "-m", P], 1, "-o FILE"),
    (["learn", "import", "-m", P], 1, "-i FILE"),
    (["learn", "import", "-i", M, "-m", P], 1, M),
    (["stream", "-m", P, "--source", "camera:99"], 1, "camera:99"),
    (["stream", "-m", P, "--source", D, "--window", "0"], 2, "--window"),
    (["stream", "-m", P, "--source", D, "--policy", "x"], 2, "--policy"),
    (
        ["stream", "-m", P, "--source", D, "--events-per-frame", "5", "--window-us", "5"],
        2,
        "--window-us",
    ),
    # round 3 (issue 29): the cases a new user found, and the new commands and options
    (["run", "-m", P, "-i", ZERO], 1, "no frames"),
    (["run", "-m", PIPE], 1, "not a regular file"),
    (["run", "-m", P, "-o", "out.txt"], 1, ".npy"),
    (["run", "-m", P, "--plot", "p.jpg"], 1, ".png"),
    (["run", "-m", P, "--plot", "/nonexistent/dir/p.png"], 1, "/nonexistent/dir"),
    (["summary", "-m", PIPE], 1, "not a regular file"),
    (["summary", "-m", P, "--map", ""], 1, "--map"),
    (["summary", "-m", P, "--map", " "], 1, "--map"),
    (["summary", "-m", P, "--plot", "m.png"], 1, "--map AKD1000"),
    (["summary", "-m", P, "--map", "AKD1000", "--plot", "m.jpg"], 1, ".png"),
    (
        ["summary", "-m", P, "--map", "AKD1000", "--plot", "/nonexistent/dir/m.png"],
        1,
        "/nonexistent/dir",
    ),
    (["check", "-m", PIPE], 1, PIPE),
    (["stats", "--socket", NOSOCK], 1, "akidad --user"),
    (["top", "--socket", NOSOCK, "--count", "1"], 1, "akidad --user"),
    (["learn", N8, "-m", P, "--socket", NOSOCK], 1, "akidad --user"),
    (["learn", N8, "-m", P, "--label", "1", "--labels", N8], 2, "--labels"),
    (["learn", N8, "-m", P, "--labels", STRS], 1, "--labels"),
    (["learn", N8, "-m", P, "--labels", T], 1, "--labels"),
    (["learn", N8, "-m", P, "--labels", M], 1, "--labels"),
    (["learn", "import", "-i", D, "-m", P], 1, D),
    (["learn", N8, "-m", PIPE], 1, "not a regular file"),
    (["stream", "-m", P, "--source", NI, "--labels", STRS], 1, "--labels"),
    (["stream", "-m", P, "--source", NI, "--labels", T], 1, "--labels"),
    (["stream", "-m", P, "--source", NI, "--labels", M], 1, "--labels"),
    (["stream", "-m", P, "--source", NI, "--labels", NI], 1, "--labels"),
    (["stream", "-m", PIPE, "--source", NI], 1, "not a regular file"),
    (["benchmark"], 2, "--model"),
    (["benchmark", "-m", M], 1, M),
    (["benchmark", "-m", T], 1, T),
    (["benchmark", "-m", D], 1, D),
    (["benchmark", "-m", PIPE], 1, "not a regular file"),
    (["benchmark", "-m", P, "--batches", "0"], 2, "--batches"),
    (["benchmark", "-m", P, "--batches", "a,b"], 2, "--batches"),
    (["benchmark", "-m", P, "--batches", "1,1"], 2, "--batches"),
    (["benchmark", "-m", P, "--batches", ""], 2, "--batches"),
    (["benchmark", "-m", P, "--batches", "99999999"], 2, "--batches"),
    (["benchmark", "-m", P, "--frames", "0"], 2, "--frames"),
    (["benchmark", "-m", P, "--frames", "x"], 2, "--frames"),
    (["benchmark", "-m", P, "--frames", "4", "--batches", "8"], 1, "--frames"),
    (["benchmark", "-m", P, "--json", "--csv"], 2, "--csv"),
    (["benchmark", "-m", P, "--daemon", "--no-daemon"], 2, "--no-daemon"),
    (["benchmark", "-m", P, "--daemon"], 1, "--daemon"),
    (["benchmark", "-m", P, "--device", "nope", "--no-daemon"], 1, "nope"),
    (["benchmark", "-m", P, "--bogus"], 2, "--bogus"),
]

# akidad: every option with a bad value; each is refused before any device boots.
AKIDAD_CASES: list[tuple[list[str], str]] = [
    (["--metrics", "nonsense"], "--metrics"),
    (["--metrics", "host:99999"], "--metrics"),
    (["--metrics", "127.0.0.1:"], "--metrics"),
    (["--listen", "foo"], "--listen"),
    (["--listen", "tcp://host:x"], "--listen"),
    (["--socket-mode", "999"], "--socket-mode"),
    (["--socket-mode", "rw"], "--socket-mode"),
    (["--log-level", "nope"], "--log-level"),
    (["--config", M], "--config"),
    (["--config", D], "--config"),
    (["--config", T], "--config"),
    (["--tls-cert", M], "--tls-cert"),
    (["--tls-key", M], "--tls-key"),
    (["--tls-ca", D], "--tls-ca"),
    (["--tls-crl", M], "--tls-crl"),
    (["--state-dir", T], "--state-dir"),
    (["--tenant-dir", T], "--tenant-dir"),
    (["--socket", T], "--socket"),
    (["--socket", D], "--socket"),
    (["--simulated", "-1"], "simulated"),
    (["--simulated", "x"], "--simulated"),
    (["--simulated", "500"], "--simulated"),
    (["--device", "nope://x"], "nope://"),
    (["--bogus"], "--bogus"),
]


def test_the_matrix_covers_every_subcommand() -> None:
    from akida_rt.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    covered = {args[0] for args, _, _ in CASES}
    assert set(sub.choices) <= covered | {"help"}, set(sub.choices) - covered
    assert len(CASES) + len(AKIDAD_CASES) >= 200


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.keras").touch()
    (root / "text.keras").write_text("not a model\n")
    (root / "dir").mkdir()
    (root / "emptydir").mkdir()
    with zipfile.ZipFile(root / "bad.keras", "w") as zf:
        zf.writestr("config.json", "{broken")
    np.save(root / "x8.npy", np.zeros((4, 8, 8, 1), np.uint8))
    np.save(root / "xf.npy", np.full((2, 32, 32, 1), 0.5))
    np.save(root / "images.npy", np.zeros((8, 32, 32, 1), np.uint8))
    (root / "text.npy").write_text("not numpy\n")
    np.savez(root / "nox.npz", images=np.zeros((2, 32, 32, 1), np.uint8))
    os.mkfifo(root / "fifo.akp")
    np.save(root / "zero.npy", np.zeros((0, 32, 32, 1), np.uint8))
    np.save(root / "strings.npy", np.array(["a", "b"]))
    return {M: str(root / "missing.keras"), E: str(root / "empty.keras"),
            T: str(root / "text.keras"), D: str(root / "dir"), P: str(sample_program()),
            Z: str(root / "bad.keras"), N8: str(root / "x8.npy"), NF: str(root / "xf.npy"),
            NX: str(root / "text.npy"), NI: str(root / "images.npy"),
            ED: str(root / "emptydir"), TN: str(root / "nox.npz"), PIPE: str(root / "fifo.akp"),
            ZERO: str(root / "zero.npy"), STRS: str(root / "strings.npy")}  # fmt: skip


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> dict[str, str]:
    """A float digits CNN and its quantized version, saved as .keras."""
    pytest.importorskip("keras")
    from akida_rt.cli.toolchain import import_tensorflow

    import_tensorflow()
    from akida_rt.tools import models
    from akida_rt.tools.post_training import quantize_model

    root = tmp_path_factory.mktemp("keras")
    float_model = models.digits_cnn()
    float_model.save(root / "float.keras")
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 1)).astype(np.uint8)
    quantize_model(float_model, images).save(root / "quant.keras")
    return {F: str(root / "float.keras"), Q: str(root / "quant.keras")}


@pytest.mark.parametrize(("argv", "code", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_argument(argv, code, needle, files, request, tmp_path, monkeypatch, capsys) -> None:
    names = dict(files)
    if TF_FILES & set(argv):
        names.update(request.getfixturevalue("keras_files"))
    argv = [names.get(a, a) for a in argv]
    needle = names.get(needle, needle)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AKIDA_SOCKET", str(tmp_path / "no-daemon.sock"))
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert status == code, (argv, err)
    assert not captured.out, (argv, captured.out[:300])  # no partial output
    assert len(err) == 1 and needle in err[0], (argv, err)
    assert not Path("/nonexistent/dir").exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "needle"), AKIDAD_CASES, ids=[" ".join(c[0]) for c in AKIDAD_CASES]
)
def test_bad_akidad_option(argv, needle, files, tmp_path) -> None:
    """akidad exits 2 with one line naming the option; the socket path is left alone."""
    argv = [files.get(a, a) for a in argv]
    socket = tmp_path / "run" / "akida.sock"
    if "--socket" not in argv:
        argv = ["--socket", str(socket), *argv]
    text = files[T]
    before = Path(text).read_bytes()
    out = subprocess.run(
        [sys.executable, "-m", "akida_rt.daemon", "--user", "--state-dir", str(tmp_path / "s"),
         *argv], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    err = out.stderr.strip().splitlines()
    assert out.returncode == 2, (argv, out.stderr[-1000:])
    assert len(err) == 1 and needle in err[0] and "Traceback" not in out.stderr, err
    assert not out.stdout and Path(text).read_bytes() == before
