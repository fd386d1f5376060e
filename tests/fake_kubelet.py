"""A fake kubelet for the device-plugin tests: a real gRPC server on a Unix socket that
serves Registration the way kubelet does, then dials the plugin back, watches its device
list and allocates, over the same v1beta1 wire protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from akida_rt.k8s import deviceplugin_pb2 as pb
from akida_rt.k8s import deviceplugin_pb2_grpc as pb_grpc


@dataclass
class Watch:
    """One ListAndWatch stream: every list received, with its arrival time."""

    lists: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    ended: bool = False


class FakeKubelet(pb_grpc.RegistrationServicer):
    """kubelet's side: `folder/kubelet.sock`; each registration dials `folder/<endpoint>`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "kubelet.sock"
        self.registrations: list[pb.RegisterRequest] = []
        self.options: list[pb.DevicePluginOptions] = []
        self.watches: list[Watch] = []
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None
        self._channels: list[grpc.Channel] = []
        self.plugin: pb_grpc.DevicePluginStub | None = None

    # --------------------------------------------------------------- kubelet's server
    def start(self) -> FakeKubelet:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RegistrationServicer_to_server(self, server)
        assert server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server
        return self

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported {request.version}")
        channel = grpc.insecure_channel(f"unix://{self.folder / request.endpoint}")
        stub = pb_grpc.DevicePluginStub(channel)
        options = stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
        watch = Watch()
        threading.Thread(target=self._watch, args=(stub, watch), daemon=True).start()
        with self._cond:
            self._channels.append(channel)
            self.plugin = stub
            self.registrations.append(request)
            self.options.append(options)
            self.watches.append(watch)
            self._cond.notify_all()
        return pb.Empty()

    def _watch(self, stub: pb_grpc.DevicePluginStub, watch: Watch) -> None:
        try:
            for response in stub.ListAndWatch(pb.Empty()):
                with self._cond:
                    devices = {d.id: d.health for d in response.devices}
                    watch.lists.append((time.monotonic(), devices))
                    self._cond.notify_all()
        except grpc.RpcError:
            pass
        with self._cond:
            watch.ended = True
            self._cond.notify_all()

    # ------------------------------------------------------------------- test helpers
    def wait_registered(self, count: int = 1, timeout_s: float = 10.0) -> pb.RegisterRequest:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.registrations) >= count, timeout_s), (
                f"no registration #{count} within {timeout_s} s"
            )
            return self.registrations[count - 1]

    def wait_devices(
        self, check: Callable[[dict[str, str]], bool], timeout_s: float = 10.0
    ) -> tuple[float, dict[str, str]]:
        """The first list of the latest watch that passes `check` (arrival time, list)."""

        def found() -> tuple[float, dict[str, str]] | None:
            if not self.watches:
                return None
            return next((item for item in self.watches[-1].lists if check(item[1])), None)

        with self._cond:
            assert self._cond.wait_for(lambda: found() is not None, timeout_s), (
                f"no device list passing the check within {timeout_s} s; lists: "
                f"{[lst for _, lst in self.watches[-1].lists] if self.watches else 'none'}"
            )
            result = found()
            assert result is not None
            return result

    def forget_lists(self) -> None:
        """Drop the lists received so far, so the next wait_devices sees newer ones only."""
        with self._cond:
            self.watches[-1].lists.clear()

    def allocate(self, *ids: str) -> pb.ContainerAllocateResponse:
        assert self.plugin is not None
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(device_ids=ids)]
        )
        (response,) = self.plugin.Allocate(request, timeout=5).container_responses
        return response

    def stop(self, wipe_plugin_sockets: bool = True) -> None:
        """Stop, as a restarting kubelet does: its socket goes, and (when it starts again)
        every plugin socket in the folder is removed."""
        if self._server is not None:
            self._server.stop(0).wait(5)
            self._server = None
        for channel in self._channels:
            channel.close()
        self.socket.unlink(missing_ok=True)
        if wipe_plugin_sockets:
            for sock in self.folder.glob("*.sock"):
                sock.unlink()
