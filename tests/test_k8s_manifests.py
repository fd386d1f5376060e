"""deploy/k8s/: every manifest passes a real Kubernetes schema check (kubernetes-validate,
strict: unknown fields refused), and the manifests agree with the programs they run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate")

from akida_rt.k8s.boards import RESOURCE  # noqa: E402

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
VERSION = kv.latest_version()


def documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            docs[f"{path.name}#{i}"] = doc
    return docs


DOCS = documents()


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in DOCS.values() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_manifest_passes_the_strict_kubernetes_schema(name: str) -> None:
    kv.validate(DOCS[name], VERSION, strict=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"].update(containres=[]),  # typo'd field
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=7),
        lambda d: d["spec"].pop("selector"),
    ],
)
def test_the_schema_check_refuses_broken_manifests(mutate: Any) -> None:
    broken = copy.deepcopy(by_kind("DaemonSet", "akida-device-plugin"))
    mutate(broken)
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, VERSION, strict=True)


def test_the_pod_requests_one_board_and_the_plugin_args_parse() -> None:
    pod = by_kind("Pod", "akida-digits")
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {RESOURCE: 1}

    from akida_rt.k8s.main import build_parser

    plugin = by_kind("DaemonSet", "akida-device-plugin")["spec"]["template"]["spec"]
    (container,) = plugin["containers"]
    assert container["command"] == ["akida-device-plugin"]
    args = build_parser().parse_args(container["args"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(args.kubelet_socket).parent) in mounts  # its socket lands beside kubelet's


def test_the_akidad_daemonset_runs_a_valid_akidad_command() -> None:
    from akida_rt.daemon.app import build_parser

    spec = by_kind("DaemonSet", "akidad")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"][0] == "akidad"
    args = build_parser().parse_args(container["command"][1:])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(args.socket_path.parent) in mounts and str(args.state_dir) in mounts
