"""Attacks on the device plugin's gRPC socket (issue 30, finding 12): its file mode under
umask 000, watch streams that hog its workers, and a quadratic preferred allocation."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")

from akida_rt.k8s import deviceplugin_pb2 as pb  # noqa: E402
from akida_rt.k8s import deviceplugin_pb2_grpc as pb_grpc  # noqa: E402
from akida_rt.k8s.boards import Board  # noqa: E402
from akida_rt.k8s.inventory import Inventory  # noqa: E402
from akida_rt.k8s.plugin import MAX_WATCHES, AkidaDevicePlugin, PluginServer  # noqa: E402

BOARD = Board(id="pcie-0000-01-00.0", kind="pcie", url="pcie:///dev/akida0",
              container_url="pcie:///dev/akida0")  # fmt: skip


@pytest.fixture
def served() -> Iterator[tuple[PluginServer, pb_grpc.DevicePluginStub]]:
    folder = Path(tempfile.mkdtemp(prefix="dpa-", dir="/tmp"))
    inventory = Inventory(scan=lambda: [BOARD], identify=lambda url: False)
    inventory.refresh()
    old = os.umask(0)  # the attack: an init system that starts the plugin with umask 000
    try:
        server = PluginServer(AkidaDevicePlugin(inventory, shares=1), str(folder)).start()
    finally:
        os.umask(old)
    channel = grpc.insecure_channel(f"unix://{server.path}")
    try:
        yield server, pb_grpc.DevicePluginStub(channel)
    finally:
        channel.close()
        inventory.stop()
        server.stop(0)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_socket_is_0600_under_umask_000(served) -> None:
    server, _ = served
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


def test_watch_streams_beyond_the_cap_are_refused_and_allocate_still_answers(served) -> None:
    _, stub = served
    streams = [stub.ListAndWatch(pb.Empty()) for _ in range(7)]  # the attack: 7 idle watches
    try:
        answered, refused = 0, 0
        for s in streams:
            try:
                next(s)
                answered += 1
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                refused += 1
        assert (answered, refused) == (MAX_WATCHES, 7 - MAX_WATCHES)
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[BOARD.id])]
        )
        reply = stub.Allocate(request, timeout=3)
        assert dict(reply.container_responses[0].envs) == {"AKIDA_VISIBLE_DEVICES": BOARD.url}
    finally:
        for s in streams:
            s.cancel()


def test_preferred_allocation_of_40000_ids_is_linear(served) -> None:
    _, stub = served
    ids = [f"{BOARD.id}::{n}" for n in range(40_000)]
    want = pb.ContainerPreferredAllocationRequest(
        available_deviceIDs=ids, must_include_deviceIDs=ids[:10], allocation_size=20_000
    )
    start = time.perf_counter()
    reply = stub.GetPreferredAllocation(
        pb.PreferredAllocationRequest(container_requests=[want]), timeout=10
    )
    took = time.perf_counter() - start
    chosen = list(reply.container_responses[0].deviceIDs)
    assert chosen[:10] == ids[:10] and len(chosen) == len(set(chosen)) == 20_000
    assert took < 1.0, f"{took:.2f} s for 40,000 ids"
