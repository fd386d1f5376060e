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
CRDS = {"NodeFeatureRule", "ServiceMonitor"}  # not in the Kubernetes schemas: see below


def by_kind(kind: str, name: str, file: str = "") -> dict[str, Any]:
    return next(
        d
        for key, d in DOCS.items()
        if d["kind"] == kind and d["metadata"]["name"] == name and key.startswith(file)
    )


@pytest.mark.parametrize("name", sorted(k for k, d in DOCS.items() if d["kind"] not in CRDS))
def test_manifest_passes_the_strict_kubernetes_schema(name: str) -> None:
    kv.validate(DOCS[name], VERSION, strict=True)


def test_least_privilege_plugin_and_the_privilege_akidad_needs() -> None:
    for file in ("device-plugin.yaml", "akidad.yaml"):
        spec = by_kind("DaemonSet", "akida-device-plugin", file)["spec"]["template"]["spec"]
        sc = spec["containers"][0]["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"]
        mounts = {
            m["mountPath"]: m.get("readOnly", False) for m in spec["containers"][0]["volumeMounts"]
        }
        assert mounts["/dev"] and mounts["/sys"]  # read-only: it never opens a board
    akidad = by_kind("DaemonSet", "akidad")["spec"]["template"]["spec"]["containers"][0]
    assert akidad["securityContext"] == {"privileged": True}  # the device cgroup, only


def test_nfd_rule_labels_akd1000_nodes_as_the_daemonsets_select() -> None:
    rule = by_kind("NodeFeatureRule", "brainchip-akida")
    assert rule["apiVersion"] == "nfd.k8s-sigs.io/v1alpha1"
    for r in rule["spec"]["rules"]:
        assert r["labels"] == {"brainchip.com/akida": "present"}
        (match,) = r["matchFeatures"]
        assert match["matchExpressions"]["vendor"]["value"] == ["1e7c"]
        assert match["matchExpressions"]["device"]["value"] == ["bca1"]
    for d in DOCS.values():
        if d["kind"] == "DaemonSet":
            assert d["spec"]["template"]["spec"]["nodeSelector"] == r["labels"]


def test_metrics_are_served_and_scraped() -> None:
    monitor = by_kind("ServiceMonitor", "akida")
    wanted = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    for name, port in (("akidad-metrics", 9464), ("akida-device-plugin-metrics", 9465)):
        svc = by_kind("Service", name, "akidad.yaml")
        assert svc["metadata"]["labels"]["app.kubernetes.io/name"] in wanted
        assert svc["spec"]["ports"][0]["port"] == port
    from akida_rt.daemon.app import build_parser as akidad_parser

    from akida_rt.k8s.main import build_parser as plugin_parser

    akidad = by_kind("DaemonSet", "akidad")["spec"]["template"]["spec"]["containers"][0]
    assert akidad_parser().parse_args(akidad["command"][1:]).metrics_listen == "0.0.0.0:9464"
    plugin = by_kind("DaemonSet", "akida-device-plugin", "akidad.yaml")
    args = plugin_parser().parse_args(plugin["spec"]["template"]["spec"]["containers"][0]["args"])
    assert (args.metrics, args.shares) == ("0.0.0.0:9465", 4)
    assert str(args.tenant_dir) == akidad_parser().parse_args(akidad["command"][1:]).tenant_dir


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"].update(containres=[]),  # typo'd field
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=7),
        lambda d: d["spec"].pop("selector"),
    ],
)
def test_the_schema_check_refuses_broken_manifests(mutate: Any) -> None:
    broken = copy.deepcopy(by_kind("DaemonSet", "akida-device-plugin", "device-plugin.yaml"))
    mutate(broken)
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, VERSION, strict=True)


def test_the_pod_requests_one_board_and_the_plugin_args_parse() -> None:
    for name in ("akida-digits", "akida-share-a", "akida-share-b"):
        pod = by_kind("Pod", name)
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {RESOURCE: 1}

    from akida_rt.k8s.main import build_parser

    plugin = by_kind("DaemonSet", "akida-device-plugin", "device-plugin.yaml")
    plugin = plugin["spec"]["template"]["spec"]
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


def test_akidads_configmap_is_a_config_akidad_accepts(tmp_path: Path) -> None:
    """The per-pod limits in the akidad ConfigMap, read by akidad's own config parser, and
    mounted where the DaemonSet's --config points."""
    from akida_rt.daemon.app import build_parser
    from akida_rt.daemon.config import apply_file, defaults

    config = by_kind("ConfigMap", "akidad-config")["data"]["akidad.toml"]
    (tmp_path / "akidad.toml").write_text(config)
    cfg = apply_file(defaults(user_mode=False), tmp_path / "akidad.toml")
    assert cfg.max_connections_per_uid == 4 and cfg.max_in_flight == 128
    ds = by_kind("DaemonSet", "akidad")["spec"]["template"]["spec"]
    args = build_parser().parse_args(ds["containers"][0]["command"][1:])
    mounts = {m["mountPath"]: m["name"] for m in ds["containers"][0]["volumeMounts"]}
    volume = next(v for v in ds["volumes"] if v["name"] == mounts[str(args.config.parent)])
    assert volume["configMap"]["name"] == "akidad-config" and args.config.name == "akidad.toml"
