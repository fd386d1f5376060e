"""PCIe transport: sysfs discovery, node errors, ownership, hotplug.

Registers and memory over pread/pwrite only (no mmap, no ioctl) are tested in
test_pcie_real_interface.py.

simulated chips stand behind the file-io seam (fake sysfs root + simulated /dev/akidaN), so the
code under test is the PCIe transport that drives a board.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from akida_rt.driver import discovery, fileio, pcie, sysfs
from akida_rt.driver.bus import open_bus
from akida_rt.driver.sim_rack import SimRack

from akida_rt.errors import (
    DeviceBusy,
    DeviceLost,
    DeviceNotFound,
    PermissionDeniedError,
)
from tests import chip_addresses as ca

MEM = 4 << 20


@pytest.fixture
def rack(tmp_path: Path):
    made = SimRack(tmp_path / "root")
    yield made
    made.close()


def test_discovery_maps_each_function_to_its_node(rack: SimRack) -> None:
    rack.add_pcie("P1", mem=MEM)
    rack.add_pcie("P2", device_id=ca.PCI_AKD1500, mem=MEM)
    found = sysfs.scan(rack.root)
    assert [(f.address, f.pci_id, f.model) for f in found] == [
        ("0000:01:00.0", "1e7c:bca1", "AKD1000"),
        ("0000:02:00.0", "1e7c:a500", "AKD1500"),
    ]
    assert [f.node for f in found] == [rack.root / "dev" / "akida0", rack.root / "dev" / "akida1"]
    assert all(f.driver == sysfs.KERNEL_DRIVER and f.bar0_size == ca.BAR_SIZE for f in found)
    assert sysfs.module_loaded(rack.root) and sysfs.module_version(rack.root) == "sim"
    assert f"pcie://{rack.root}/dev/akida1" in pcie.discover_urls()


def test_node_found_through_class_misc_when_the_function_has_no_misc_dir(tmp_path: Path) -> None:
    dev = tmp_path / "sys" / "devices" / "pci0000:00" / "0000:03:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x1e7c\n")
    (dev / "device").write_text("0xa500\n")
    links = tmp_path / "sys" / "bus" / "pci" / "devices"
    links.mkdir(parents=True)
    (links / "0000:03:00.0").symlink_to(dev)
    misc = tmp_path / "sys" / "class" / "misc" / "akida3"
    misc.mkdir(parents=True)
    (misc / "device").symlink_to(dev)
    (fn,) = sysfs.scan(tmp_path)
    assert fn.node == tmp_path / "dev" / "akida3" and fn.model == "AKD1500"
    assert fn.bar0_size == sysfs.DEFAULT_BAR0_SIZE and fn.driver is None


def test_unplug_mid_transfer_then_replug_brings_back_the_same_id(rack: SimRack) -> None:
    url = rack.add_pcie("P1", mem=MEM)
    discovery.register_discoverer("akida_rt.driver.pcie:discover_urls")
    device = discovery.open_device(url)
    slot = rack.pcie.slot("P1")

    chunks = []  # the bus moves 1 KiB per pwrite, as akida_dw_edma's DMA does

    def pull_at_third_chunk(s: object, index: int) -> None:
        chunks.append(index)
        if len(chunks) == 3:
            slot.unplug()

    slot.chunk_hook = pull_at_third_chunk
    with pytest.raises(DeviceLost):
        device.bus.write(ca.DATA, bytes(8192))
    slot.chunk_hook = None
    assert url not in pcie.discover_urls() and not (rack.root / "dev" / "akida0").exists()
    with pytest.raises(DeviceLost, match="lost"):
        device.bus.read32(ca.CHIP_INFO)  # the node answers ENODEV
    with pytest.raises(DeviceLost):
        device.identify()
    assert device.lost
    with pytest.raises(DeviceNotFound):
        open_bus(url)
    slot.replug()
    with pytest.raises(DeviceLost):  # a file opened before the removal stays dead
        device.bus.read(ca.DATA, 4)
    assert url in pcie.discover_urls()
    again = discovery.open_device(url)
    assert again is not device and again.id == device.id and again.serial == "0000:01:00.0"
    again.close()


def test_node_missing_while_sysfs_shows_the_device_says_driver_not_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rack = SimRack(tmp_path, driver_loaded=False)
    try:
        rack.add_pcie("P1", mem=MEM)
        with caplog.at_level(logging.WARNING, logger="akida_rt.driver.pcie"):
            assert not [u for u in pcie.discover_urls() if str(tmp_path) in u]
        assert "akida_dw_edma is not loaded" in caplog.text
        with pytest.raises(DeviceNotFound, match=r"akida_dw_edma is not loaded.*modprobe"):
            open_bus(f"pcie://{tmp_path}/dev/akida0")
        with pytest.raises(DeviceNotFound, match="not loaded"):
            open_bus("pcie://0000:01:00.0")
    finally:
        rack.close()


# Everything the open needs is imported before the child drops to nobody: that user may not
# read the sources when the repository sits in a private (0700) directory.
_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import akida_rt.driver.pcie, akida_rt.driver.udev
    from akida_rt.driver.bus import open_bus
    from akida_rt.driver.sim_rack import SimRack
    rack = SimRack()
    url = rack.add_pcie("P1", mem=1 << 20)
    node = url[len("pcie://"):]
    if os.getuid() == 0:  # root passes every permission check: become nobody
        os.chmod(rack.root, 0o755)
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
    else:
        os.chmod(node, 0o000)
    try:
        open_bus(url)
        out = {"error": None}
    except Exception as exc:
        out = {"error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))
    """
)


def test_permission_denied_names_the_udev_rule() -> None:
    """The kernel refuses the node (mode 0660, not our group): the message names the fix."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["error"] == PermissionDeniedError.__name__
    assert "99-akida.rules" in out["message"] and "udevadm" in out["message"]
    assert "usermod -aG akida" in out["message"]


def test_os_file_io_provider_on_a_real_file(tmp_path: Path) -> None:
    """The provider used on hardware: os.pread/os.pwrite at offsets, nothing else."""
    path = tmp_path / "node"
    path.write_bytes(bytes(8192))
    handle = fileio.open_node(str(path))
    assert isinstance(handle, fileio.OsHandle) and not hasattr(handle, "mmap")
    assert handle.pwrite(b"abcdef", 4096 + 3) == 6
    assert handle.pread(6, 4096 + 3) == b"abcdef"
    handle.close()
    with pytest.raises(FileNotFoundError):
        fileio.open_node(str(tmp_path / "absent"))


def test_akida_devices_lists_configured_sim_boards() -> None:
    env = dict(os.environ, AKIDA_SIM_BOARDS="pcie:1,usb:1")
    done = subprocess.run(
        [sys.executable, "-m", "akida_rt.cli.main", "devices", "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [(d["kind"], d["serial"]) for d in listed] == [
        ("pcie", "0000:01:00.0"),
        ("usb", "SIMU0001"),
    ]
    assert listed[1]["id"] == "usb://1e7c:bca1?serial=SIMU0001"
    # A simulated chip stays visibly simulated behind a real transport: the flag comes from
    # the chip's own identity, not from the URL scheme.
    assert [d["simulated"] for d in listed] == [True, True]


def test_node_registered_in_sysfs_but_missing_from_dev(rack: SimRack) -> None:
    url = rack.add_pcie("P1", mem=MEM)
    (rack.root / "dev" / "akida0").unlink()
    with pytest.raises(DeviceNotFound, match="udevadm trigger"):
        open_bus(url)


def test_a_node_has_one_owner_at_a_time(rack: SimRack) -> None:
    url = rack.add_pcie("P1", mem=MEM)
    first = open_bus(url)
    with pytest.raises(DeviceBusy, match="in use by another program"):
        open_bus(url)
    first.close()
    second = open_bus(url)  # the lock went with the first file
    second.close()


def test_a_node_held_by_another_process_is_busy(rack: SimRack) -> None:
    """A real flock held by another process (as akidad holds a board) refuses the open."""
    url = rack.add_pcie("P1", mem=MEM)
    node = pcie.node_of_url(url)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys
            fd = os.open({node!r}, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("held", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DeviceBusy, match="akidad or an embedded user"):
            open_bus(url)
    finally:
        holder.communicate("", timeout=10)
    open_bus(url).close()  # the holder exited: free again


def test_os_handles_lock_exclusively(tmp_path: Path) -> None:
    path = tmp_path / "node"
    path.write_bytes(bytes(4096))
    a = fileio.OsProvider().open(str(path), os.O_RDWR)
    b = fileio.OsProvider().open(str(path), os.O_RDWR)
    a.lock()
    with pytest.raises(BlockingIOError):
        b.lock()
    a.close()
    b.lock()
    b.close()
