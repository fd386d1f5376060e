"""A kubelet stand-in built from kubelet's own device-plugin API (tests/kubelet_api/api.proto,
compiled at run time into a private descriptor pool), behaving as kubelet's device manager.

What it copies from kubelet (pkg/kubelet/cm/devicemanager): on start it removes every
socket in the device-plugin folder (its own old one included) and only then listens on
kubelet.sock; Register checks the version and the resource name, then dials the plugin's
socket back (blocking, 10 s like kubelet) and asks for its options before it answers; a
failed dial fails the Register call; then it watches the plugin's device list. When it
stops, its listener's socket file goes (Go unlinks it), unless it crashed.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

API_PROTO = Path(__file__).parent / "kubelet_api" / "api.proto"
VERSIONS = ("v1beta1",)
DIAL_TIMEOUT_S = 10.0  # kubelet's dial() deadline


@dataclass(frozen=True)
class OfficialApi:
    """The message classes and descriptors compiled from kubelet's api.proto."""

    file: descriptor_pb2.FileDescriptorProto
    messages: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.messages[name]
        except KeyError:
            raise AttributeError(name) from None

    def method(self, service: str, name: str) -> tuple[str, Any, Any, bool]:
        """(path, request class, response class, server streaming) of one RPC."""
        (svc,) = [s for s in self.file.service if s.name == service]
        (m,) = [m for m in svc.method if m.name == name]
        short = lambda t: t.rsplit(".", 1)[-1]  # noqa: E731
        return (
            f"/{self.file.package}.{service}/{name}",
            self.messages[short(m.input_type)],
            self.messages[short(m.output_type)],
            m.server_streaming,
        )

    def call(self, channel: grpc.Channel, service: str, name: str, request: Any, **kw: Any) -> Any:
        path, req, resp, streaming = self.method(service, name)
        assert isinstance(request, req), (type(request), req)
        make = channel.unary_stream if streaming else channel.unary_unary
        rpc = make(path, request_serializer=req.SerializeToString,
                   response_deserializer=resp.FromString)  # fmt: skip
        return rpc(request, **kw)


def descriptor_set(proto: Path) -> descriptor_pb2.FileDescriptorSet:
    """`proto` compiled by protoc (grpc_tools) into a FileDescriptorSet."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.desc"
        args = ["protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", proto.name]
        assert protoc.main(args) == 0, f"protoc failed on {proto}"
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@functools.cache
def official_api() -> OfficialApi:
    (file,) = descriptor_set(API_PROTO).file
    pool = descriptor_pool.DescriptorPool()  # not the default pool: ours lives there
    pool.AddSerializedFile(file.SerializeToString())
    fd = pool.FindFileByName(file.name)
    messages = {
        name: message_factory.GetMessageClass(desc)
        for name, desc in fd.message_types_by_name.items()
    }
    return OfficialApi(file, messages)


@dataclass
class Watch:
    """One ListAndWatch stream: every list received, with its arrival time."""

    lists: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    ended: bool = False


def is_extended_resource(name: str) -> bool:
    """kubelet's rule, in short: domain-qualified, not in kubernetes.io, no requests."""
    domain, _, rest = name.partition("/")
    return bool(rest) and "." in domain and not domain.endswith("kubernetes.io")


class OfficialKubelet:
    """kubelet's device manager on `folder/kubelet.sock`."""

    def __init__(self, folder: Path, dial_timeout_s: float = DIAL_TIMEOUT_S) -> None:
        self.api = official_api()
        self.folder = folder
        self.socket = folder / "kubelet.sock"
        self.dial_timeout_s = dial_timeout_s
        self.registrations: list[Any] = []
        self.refused: list[str] = []
        self.options: list[Any] = []
        self.watches: list[Watch] = []
        self.wiped: list[str] = []
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None
        self._channel: grpc.Channel | None = None

    # --------------------------------------------------------------- kubelet's server
    def start(self) -> OfficialKubelet:
        """Clean the folder as kubelet does (every socket goes), then listen."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for entry in self.folder.iterdir():
            if stat.S_ISSOCK(entry.lstat().st_mode):
                entry.unlink()
                self.wiped.append(entry.name)
        _, req, resp, _ = self.api.method("Registration", "Register")
        handler = grpc.method_handlers_generic_handler(
            "v1beta1.Registration",
            {
                "Register": grpc.unary_unary_rpc_method_handler(
                    self._register,
                    request_deserializer=req.FromString,
                    response_serializer=resp.SerializeToString,
                )
            },
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        assert server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server
        return self

    def _register(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.version not in VERSIONS:
            self._refuse(context, f"unsupported API version {request.version}")
        if not is_extended_resource(request.resource_name):
            self._refuse(context, f"invalid resource name {request.resource_name}")
        channel = grpc.insecure_channel(f"unix://{self.folder / request.endpoint}")
        try:  # kubelet's dial: grpc.WithBlock with a 10 s deadline
            grpc.channel_ready_future(channel).result(timeout=self.dial_timeout_s)
        except grpc.FutureTimeoutError:
            channel.close()
            self._refuse(context, f"failed to dial device plugin: {request.endpoint}")
        options = self.api.call(channel, "DevicePlugin", "GetDevicePluginOptions",
                                self.api.Empty(), timeout=5)  # fmt: skip
        watch = Watch()
        threading.Thread(target=self._watch, args=(channel, watch), daemon=True).start()
        with self._cond:
            if self._channel is not None:  # a plugin registering again replaces its endpoint
                self._channel.close()
            self._channel = channel
            self.registrations.append(request)
            self.options.append(options)
            self.watches.append(watch)
            self._cond.notify_all()
        return self.api.Empty()

    def _refuse(self, context: grpc.ServicerContext, why: str) -> None:
        with self._cond:
            self.refused.append(why)
            self._cond.notify_all()
        context.abort(grpc.StatusCode.UNKNOWN, why)  # kubelet returns a plain Go error

    def _watch(self, channel: grpc.Channel, watch: Watch) -> None:
        try:
            for response in self.api.call(
                channel, "DevicePlugin", "ListAndWatch", self.api.Empty()
            ):
                with self._cond:
                    devices = {d.ID: d.health for d in response.devices}
                    watch.lists.append((time.monotonic(), devices))
                    self._cond.notify_all()
        except (grpc.RpcError, ValueError):  # ValueError: the channel was closed
            pass
        with self._cond:
            watch.ended = True
            self._cond.notify_all()

    def stop(self, crash: bool = False) -> None:
        """Stop; a clean stop unlinks kubelet.sock, a crash leaves the file behind."""
        if self._server is not None:
            self._server.stop(0).wait(5)
            self._server = None
        with self._cond:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
        if not crash:
            self.socket.unlink(missing_ok=True)
        elif not self.socket.exists():  # grpc unlinked it: put a dead socket file back
            import socket as so

            with so.socket(so.AF_UNIX, so.SOCK_STREAM) as dead:
                dead.bind(str(self.socket))

    # ------------------------------------------------------------------- test helpers
    def wait_registered(self, count: int = 1, timeout_s: float = 10.0) -> Any:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.registrations) >= count, timeout_s), (
                f"no registration #{count} within {timeout_s} s "
                f"(refused: {self.refused}; folder: {sorted(os.listdir(self.folder))})"
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

    def plugin_call(self, name: str, request: Any, timeout: float = 5) -> Any:
        assert self._channel is not None, "no plugin registered"
        return self.api.call(self._channel, "DevicePlugin", name, request, timeout=timeout)

    def allocate(self, *ids: str) -> Any:
        api = self.api
        request = api.AllocateRequest(
            container_requests=[api.ContainerAllocateRequest(devices_ids=ids)]
        )
        (response,) = self.plugin_call("Allocate", request).container_responses
        return response
