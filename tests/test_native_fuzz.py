"""The kernels under AddressSanitizer and UBSan: a short run of tests/fuzz_native.py on a
sanitized build (the longer run is `python tests/fuzz_native.py --sanitize --seconds N`),
and a canary showing that such a run does report an out-of-bounds read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fuzz_native

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
BUDGET_S = 8


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return fuzz_native.build_sanitized(tmp_path_factory.mktemp("asan"))


def test_fuzzed_kernels_have_no_sanitizer_finding(sanitized):
    built, env = sanitized
    run = subprocess.run(
        [sys.executable, fuzz_native.__file__, "--kernels", str(built), "--seconds",
         str(BUDGET_S), "--seed", "1"],
        env=env, capture_output=True, text=True, timeout=BUDGET_S + 120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["cases"] > 100 and all(
        summary[k] for k in ("decoders", "files", "aedat4", "framing")
    )


def test_the_sanitized_run_reports_an_out_of_bounds_read(sanitized, tmp_path):
    """The same environment (libasan preloaded) aborts on a heap overflow."""
    _, env = sanitized
    src = tmp_path / "oob.c"
    src.write_text(
        "#include <stdlib.h>\n"
        "int oob(int i) { int *a = malloc(4 * sizeof(int)); int v = a[i]; free(a); return v; }\n"
    )
    lib = tmp_path / "oob.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-g", *fuzz_native.SANITIZE, str(src), "-o",
                    str(lib)], check=True)  # fmt: skip
    code = f"import ctypes; ctypes.CDLL({str(lib)!r}).oob(4)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode != 0 and "heap-buffer-overflow" in run.stderr
