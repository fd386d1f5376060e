"""The kubelet device-plugin service (API v1beta1) for Akida boards, its gRPC server on a
Unix socket in kubelet's device-plugin folder, and registration with kubelet.

Allocate gives a container its boards' device nodes (read-write) and
`AKIDA_VISIBLE_DEVICES` (their URLs as the container sees them), which akida_rt's
discovery honours; or, when akidad serves the boards, a socket of akidad's instead: with
tenant sockets (`Tenants`), one per share, whose identity akidad takes from the socket,
not from the pod's uid.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from akida_rt.driver.health import HEALTH_ENV, note_name
from akida_rt.k8s import deviceplugin_pb2 as pb
from akida_rt.k8s import deviceplugin_pb2_grpc as pb_grpc
from akida_rt.k8s.board_health import DriverNotes
from akida_rt.k8s.boards import RESOURCE, Board, container_env
from akida_rt.k8s.inventory import HEALTHY, Inventory
from akida_rt.k8s.metrics import PluginMetrics
from akida_rt.k8s.tenants import Tenants

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
KUBELET_DIR = "/var/lib/kubelet/device-plugins"
KUBELET_SOCKET = f"{KUBELET_DIR}/kubelet.sock"
ENDPOINT = "akida.sock"
TENANT_MOUNT = "/run/akida"  # where a container finds its tenant socket
HEALTH_MOUNT = "/run/akida-health"  # where the driver in a container writes its notes
MAX_WATCHES = 2  # kubelet keeps one ListAndWatch; one more covers its reconnect
WORKERS = MAX_WATCHES + 6  # watches never take the threads Allocate needs


class AkidaDevicePlugin(pb_grpc.DevicePluginServicer):
    """The DevicePlugin service over an Inventory.

    Args:
        inventory: the offered boards and their health.
        akidad_socket: when set, containers share the boards through the host's akidad:
            Allocate mounts this socket (read-only mount; connecting still works) and sets
            AKIDA_SOCKET, and passes no device nodes (the daemon owns the boards).
        tenants: akidad's tenant sockets, one per share: Allocate gives a container its
            share's socket folder (and a fresh tenant identity) instead of akidad_socket.
        shares: devices listed per board (akidad mode): kubelet then places up to this
            many containers on one board, each with its own share id `<board>::<n>`.
        notes: the host folders where the driver in a container reports its boards'
            faults (plugin mode): Allocate mounts each board's folder and sets
            AKIDA_HEALTH_DIR.
    """

    def __init__(
        self,
        inventory: Inventory,
        akidad_socket: str | None = None,
        tenants: Tenants | None = None,
        shares: int = 1,
        metrics: PluginMetrics | None = None,
        notes: DriverNotes | None = None,
    ) -> None:
        if shares > 1 and not (akidad_socket or tenants):
            raise ValueError("sharing a board needs akidad (--akidad-socket or --tenant-dir)")
        self.inventory = inventory
        self.akidad_socket = akidad_socket
        self.tenants = tenants
        self.shares = shares
        self.notes = notes
        self.metrics = metrics or PluginMetrics()
        self.metrics.devices = self.listed
        self._watches = threading.BoundedSemaphore(MAX_WATCHES)

    def share_ids(self, board_id: str) -> list[str]:
        """The device ids kubelet sees for one board."""
        if self.shares == 1:
            return [board_id]
        return [f"{board_id}::{n}" for n in range(self.shares)]

    def listed(self) -> list[tuple[str, str]]:
        """(device id, health) of every device listed."""
        _, boards = self.inventory.snapshot()
        return [(i, item.health) for item in boards for i in self.share_ids(item.board.id)]

    def GetDevicePluginOptions(self, request: pb.Empty, context: Any) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(
            pre_start_required=False, get_preferred_allocation_available=True
        )

    def ListAndWatch(self, request: pb.Empty, context: Any) -> Iterator[pb.ListAndWatchResponse]:
        if not self._watches.acquire(blocking=False):
            log.warning("ListAndWatch refused: %d watches are open already", MAX_WATCHES)
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{RESOURCE}: {MAX_WATCHES} device-list watches are open; close one first",
            )
        try:
            log.info("kubelet is watching the device list")
            yield from self._watch(context)
        finally:
            self._watches.release()

    def _watch(self, context: Any) -> Iterator[pb.ListAndWatchResponse]:
        sent = -1
        while context.is_active() and not self.inventory.stopped:
            version, listed = self.inventory.snapshot()
            if version != sent:
                sent = version
                yield pb.ListAndWatchResponse(
                    devices=[
                        pb.Device(ID=ident, health=item.health)
                        for item in listed
                        for ident in self.share_ids(item.board.id)
                    ]
                )
            self.inventory.wait_change(sent, timeout_s=1.0)

    def GetPreferredAllocation(
        self, request: pb.PreferredAllocationRequest, context: Any
    ) -> pb.PreferredAllocationResponse:
        responses = []
        for want in request.container_requests:
            # linear in the ids offered: one pass to rank, a dict keeps the order
            chosen = dict.fromkeys(want.must_include_deviceIDs)
            healthy: list[str] = []
            others: list[str] = []
            for ident in sorted(set(want.available_deviceIDs)):
                item = self.inventory.board(board_of(ident))
                (healthy if item is not None and item.health == HEALTHY else others).append(ident)
            for ident in healthy + others:  # healthy boards first, in a stable order
                if len(chosen) >= want.allocation_size:
                    break
                chosen.setdefault(ident)
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=list(chosen)))
        return pb.PreferredAllocationResponse(container_responses=responses)

    def Allocate(self, request: pb.AllocateRequest, context: Any) -> pb.AllocateResponse:
        responses = []
        for want in request.container_requests:
            boards: list[Board] = []
            listed = dict(self.listed())
            for ident in want.devices_ids:
                item = self.inventory.board(board_of(ident))
                if item is None or ident not in listed:
                    known = ", ".join(listed) or "none"
                    log.warning("Allocate: unknown device id %r (offered: %s)", ident, known)
                    context.abort(
                        grpc.StatusCode.NOT_FOUND,
                        f"{RESOURCE}: no device {ident!r} on this node; offered: {known}",
                    )
                elif item.board not in boards:
                    boards.append(item.board)
            responses.append(self._container(boards, list(want.devices_ids)))
            for ident in want.devices_ids:
                self.metrics.allocations.inc(ident)
            log.info("Allocate: %s", ", ".join(want.devices_ids))
        return pb.AllocateResponse(container_responses=responses)

    def _container(self, boards: list[Board], ids: list[str]) -> pb.ContainerAllocateResponse:
        annotations = {"brainchip.com/akida.devices": ",".join(ids)}
        if self.tenants is not None:
            # One tenant per container: its first share's socket, with a fresh identity.
            folder, tenant = self.tenants.assign(ids[0])
            return pb.ContainerAllocateResponse(
                envs={"AKIDA_SOCKET": f"{TENANT_MOUNT}/{self.tenants.SOCKET}"},
                mounts=[
                    pb.Mount(container_path=TENANT_MOUNT, host_path=str(folder), read_only=True)
                ],
                annotations={**annotations, "brainchip.com/akida.tenant": str(tenant)},
            )
        if self.akidad_socket:
            shared = os.path.dirname(self.akidad_socket)
            return pb.ContainerAllocateResponse(
                envs={"AKIDA_SOCKET": self.akidad_socket},
                mounts=[pb.Mount(container_path=shared, host_path=shared, read_only=True)],
                annotations=annotations,
            )
        envs, mounts = container_env(boards), []
        if self.notes is not None:
            envs[HEALTH_ENV] = HEALTH_MOUNT
            mounts = [
                pb.Mount(
                    container_path=f"{HEALTH_MOUNT}/{note_name(b.container_url)}",
                    host_path=str(self.notes.folder(b.id)),
                )
                for b in boards
            ]
        return pb.ContainerAllocateResponse(
            envs=envs,
            mounts=mounts,
            devices=[
                pb.DeviceSpec(
                    container_path=n.container_path,
                    host_path=n.host_path,
                    permissions=n.permissions,
                )
                for b in boards
                for n in b.nodes
            ],
            annotations=annotations,
        )

    def PreStartContainer(
        self, request: pb.PreStartContainerRequest, context: Any
    ) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()


def board_of(device_id: str) -> str:
    """The board id of a device id (a share `<board>::<n>` or the board itself)."""
    return device_id.split("::", 1)[0]


class PluginServer:
    """The plugin's gRPC server on `<folder>/<endpoint>`."""

    def __init__(self, servicer: AkidaDevicePlugin, folder: str, endpoint: str = ENDPOINT):
        self.path = Path(folder) / endpoint
        self.endpoint = endpoint
        self._servicer = servicer
        self._server: Any = None
        self._ident: tuple[int, int] | None = None

    def start(self) -> PluginServer:
        self.path.unlink(missing_ok=True)  # a stale socket of an earlier run
        pool = futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dp")
        server = grpc.server(pool)
        pb_grpc.add_DevicePluginServicer_to_server(self._servicer, server)
        old_umask = os.umask(0o177)  # the socket is born 0600 (only kubelet, as root, calls)
        try:
            if not server.add_insecure_port(f"unix://{self.path}"):
                raise OSError(f"{self.path}: cannot listen on the device-plugin socket")
            server.start()
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        st = self.path.stat()
        self._ident = (st.st_dev, st.st_ino)
        self._server = server
        log.info("serving %s on %s", RESOURCE, self.path)
        return self

    def socket_gone(self) -> bool:
        """Whether our socket file was removed or replaced (kubelet wipes the folder when it
        restarts)."""
        try:
            st = self.path.stat()
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def stop(self, grace_s: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s).wait(grace_s + 1)
            self._server = None
        if not self.socket_gone():
            self.path.unlink(missing_ok=True)


def register(kubelet_socket: str, endpoint: str, timeout_s: float = 5.0) -> None:
    """Register with kubelet (grpc.RpcError when it refuses or does not answer)."""
    with grpc.insecure_channel(f"unix://{kubelet_socket}") as channel:
        pb_grpc.RegistrationStub(channel).Register(
            pb.RegisterRequest(
                version=API_VERSION,
                endpoint=endpoint,
                resource_name=RESOURCE,
                options=pb.DevicePluginOptions(get_preferred_allocation_available=True),
            ),
            timeout=timeout_s,
        )
