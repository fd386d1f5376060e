"""deploy/helm/akida, rendered and linted by Helm itself (the helm binary, or Helm's Go SDK
through helm-python-sdk): it lints clean, every rendered document passes the strict
Kubernetes schema, and the plain manifests in deploy/k8s are exactly its rendering
(`make manifests`). Skips, saying why, when neither form of Helm is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
_spec = importlib.util.spec_from_file_location("helm_render", DEPLOY / "helm" / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)
try:
    ENGINE = render.engine()
except render.NoHelm as exc:
    pytestmark = pytest.mark.skip(reason=str(exc))
CRDS = {"NodeFeatureRule", "ServiceMonitor"}


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_chart_lints() -> None:
    assert render.lint() == []


@pytest.mark.parametrize("name", sorted(render.OUTPUTS))
def test_the_plain_manifests_are_the_charts_rendering(name: str) -> None:
    shipped = (DEPLOY / "k8s" / name).read_text()
    assert shipped == render.plain(name), f"deploy/k8s/{name} is stale: run make manifests"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"mode": "akidad", "shares": 8, "metrics": {"serviceMonitor": {"enabled": True}}},
        {"mode": "akidad", "metrics": {"enabled": False}, "nfd": {"enabled": False},
         # Helm merges maps with the defaults: null removes the default label
         "nodeSelector": {"brainchip.com/akida": None, "example.com/edge": "yes"}},
    ],
)  # fmt: skip
def test_every_rendering_passes_the_strict_schema_and_the_plugins_parser(values) -> None:
    from akida_rt.k8s.main import build_parser

    rendered = [d for text in render.render_templates(values).values() for d in docs(text)]
    for doc in rendered:
        if doc["kind"] not in CRDS:
            kv.validate(doc, kv.latest_version(), strict=True)
    (plugin,) = [d for d in rendered if d["metadata"]["name"] == "akida-device-plugin"]
    spec = plugin["spec"]["template"]["spec"]
    args = build_parser().parse_args(spec["containers"][0]["args"])
    assert args.shares == values.get("shares", 4 if values.get("mode") == "akidad" else 1)
    wanted = values.get("nodeSelector", {"brainchip.com/akida": "present"})
    assert spec["nodeSelector"] == {k: v for k, v in wanted.items() if v is not None}
    metrics = values.get("metrics", {}).get("enabled", True)
    assert (args.metrics is not None) == metrics
    kinds = {d["kind"] for d in rendered}
    assert ("Service" in kinds) == metrics
    assert ("ServiceMonitor" in kinds) == (
        metrics and "serviceMonitor" in values.get("metrics", {})
    )
    assert ("NodeFeatureRule" in kinds) == values.get("nfd", {}).get("enabled", True)
