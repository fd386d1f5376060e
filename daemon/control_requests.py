"""The control requests a connection serves (protobuf: hello, devices, load, stats, learned
and stored state): the controller call each one makes and the answer it builds."""

from __future__ import annotations

import json
from typing import Any

from akida_rt.wire import ipc
from akida_rt.wire.proto import daemon_pb2 as dpb

from .controller import Client, Controller


async def serve(ctl: Controller, client: Client, req: dpb.Request) -> dpb.Response:
    """Serve a control request (a task of its own: loads, state and stats wait)."""
    cfg = ctl.config
    resp = dpb.Response(id=req.id)
    kind = req.WhichOneof("body")
    if kind == "hello":
        hi = req.hello
        info = ctl.hello(client, hi.client_name, hi.priority, hi.protocol)
        h = resp.hello
        h.protocol, h.version, h.pid = ipc.PROTOCOL, info["version"], info["pid"]
        h.client_id, h.uid = info["client_id"], client.uid
        h.shm_threshold, h.max_frame = cfg.shm_threshold, cfg.max_frame
        h.max_tensor_bytes, h.max_timeout_ms = cfg.max_tensor_bytes, cfg.max_timeout_ms
    elif kind == "list_devices":
        for d in ctl.list_devices():
            resp.devices.devices.add(
                id=d["id"], name=d["name"], simulated=d["simulated"], kind=d["kind"],
                state=d["state"], queued=d["queued"], describe_json=as_json(d),
            )  # fmt: skip
    elif kind == "load":
        m = req.load
        s = await ctl.load(client, m.program, m.device, m.map_mode, m.hw_only)
        lo = resp.loaded
        lo.session, lo.program_hash, lo.name = s.session_id, s.key.content_hash, s.name
        lo.input_shape[:], lo.output_shape[:] = s.input_shape, s.output_shape
        lo.sequences, lo.input_bits = s.sequences, s.input_bits
    elif kind == "stats":
        resp.stats.json = as_json(await ctl.stats(client))
    elif kind == "learn_state":
        ls = req.learn_state
        state, data = await ctl.learned.state(client, ls.session, ls.op, ls.data, ls.num_classes)
        resp.learn_state.state_json, resp.learn_state.data = as_json(state), data
    elif kind == "get_state":
        g = req.get_state
        resp.state.data = ctl.get_state(client, g.key, g.owner_uid if g.has_owner else None)
    else:
        if kind == "unload":
            ctl.unload(client, req.unload.session)
        elif kind == "put_state":
            await ctl.put_state(client, req.put_state.key, req.put_state.data)
        elif kind == "delete_state":
            await ctl.delete_state(client, req.delete_state.key)
        resp.ack.SetInParent()
    return resp


def as_json(obj: Any) -> str:
    """JSON of plain data, anything else as its str (a describe or stats dict)."""
    return json.dumps(obj, default=str)
