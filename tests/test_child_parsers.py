"""Third-party parsers on hostile files (issue 30, findings 7 and 9): a `.fbz` swapped
after it was checked, and the memory limit on the children that run akida and
dv-processing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from akida_rt.limits import cap_address_space


def test_a_symlink_swapped_after_the_read_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker wins the race at the worst moment: right after akida_rt read the file,
    the name points at a truncated model (akida segfaults on it in-process). The import
    parses the bytes it read, in its child, and the caller's process never reads the name
    again."""
    pytest.importorskip("akida")
    from akida_rt.tools import metatf

    from tests.metatf_models import random_model

    theirs, x = random_model(2)
    good, cut = tmp_path / "good.fbz", tmp_path / "cut.fbz"
    theirs.save(str(good))
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    link = tmp_path / "model.fbz"
    link.symlink_to(good)
    read_once = metatf._read_once

    def read_then_swap(path: Path) -> bytes:
        data = read_once(path)
        link.unlink()
        link.symlink_to(cut)
        return data

    monkeypatch.setattr(metatf, "_read_once", read_then_swap)
    ours = metatf.import_model(link)
    np.testing.assert_array_equal(ours.forward(x), theirs.forward(x))
    assert ours.name == "model"
    with pytest.raises(metatf.ConversionError, match="not a readable MetaTF model"):
        metatf.import_model(link)  # the swapped-in file itself: refused, and we survive


def test_the_cut_file_by_the_cli_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("akida")
    from tests.metatf_models import random_model

    theirs, _ = random_model(2)
    theirs.save(str(tmp_path / "good.fbz"))
    data = (tmp_path / "good.fbz").read_bytes()
    (tmp_path / "cut.fbz").write_bytes(data[: len(data) // 2])
    out = subprocess.run([sys.executable, "-m", "akida_rt", "import", str(tmp_path / "cut.fbz"),
                          "-o", str(tmp_path / "o.akp")], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "not a readable MetaTF model" in out.stderr and not (tmp_path / "o.akp").exists()


def test_a_capped_child_cannot_take_the_machines_memory() -> None:
    """What the akida and dv-processing children do after their imports: a runaway
    allocation of 4 GiB fails in the child, which exits with a clear status."""
    code = (
        "import numpy as np, sys\n"
        "from akida_rt.limits import cap_address_space\n"
        "cap_address_space(256 << 20)\n"
        "try:\n"
        "    np.ones(4 << 30, np.uint8)\n"
        "except MemoryError:\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 3


def test_the_limit_leaves_room_for_what_is_mapped() -> None:
    pid = os.fork()
    if pid == 0:  # in a child: the cap is for this process only
        try:
            cap_address_space(64 << 20)
            np.ones(16 << 20, np.uint8).sum()
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
