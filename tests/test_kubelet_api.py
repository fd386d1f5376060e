"""Our deviceplugin.proto against kubelet's official api.proto (tests/kubelet_api/): the
same package, services, methods, messages and fields (names with kubelet's casing,
numbers, types, labels), and so the same JSON and text forms."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("grpc_tools")

from google.protobuf import descriptor_pb2, json_format, text_format

from akida_rt.k8s import deviceplugin_pb2 as ours

from .official_kubelet import API_PROTO, descriptor_set, official_api

OURS = Path(ours.__file__).with_name("deviceplugin.proto")


def _shape(file: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    messages = {}

    def walk(msgs, prefix: str) -> None:
        for m in msgs:
            messages[prefix + m.name] = sorted(
                (f.name, f.number, f.type, f.label, f.type_name, f.json_name) for f in m.field
            )
            walk(m.nested_type, f"{prefix}{m.name}.")

    walk(file.message_type, "")
    services = {
        s.name: sorted(
            (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for m in s.method
        )
        for s in file.service
    }
    return {"package": file.package, "messages": messages, "services": services}


def test_our_proto_is_kubelets_field_for_field() -> None:
    (theirs,) = descriptor_set(API_PROTO).file
    (mine,) = descriptor_set(OURS).file
    a, b = _shape(mine), _shape(theirs)
    assert a["package"] == b["package"] == "v1beta1"
    assert a["services"] == b["services"]
    assert sorted(a["messages"]) == sorted(b["messages"])
    for name, fields in b["messages"].items():
        assert a["messages"][name] == fields, name
    assert len(b["messages"]) >= 20 and len(b["services"]["DevicePlugin"]) == 5


def test_json_and_text_forms_match_kubelets() -> None:
    api = official_api()
    mine = ours.AllocateRequest(
        container_requests=[ours.ContainerAllocateRequest(devices_ids=["a"])]
    )
    theirs = api.AllocateRequest.FromString(mine.SerializeToString())
    assert json_format.MessageToJson(mine) == json_format.MessageToJson(theirs)
    assert text_format.MessageToString(mine) == text_format.MessageToString(theirs)
    device = ours.Device(ID="pcie-0000-01-00.0", health="Healthy")
    assert json_format.MessageToDict(device) == {"ID": "pcie-0000-01-00.0", "health": "Healthy"}
