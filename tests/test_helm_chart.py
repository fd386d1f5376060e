"""deploy/helm/akida: `helm lint`, and `helm template` in plugin and akidad modes, each
document passing the strict Kubernetes schema and naming the same objects, with the same
arguments, as the plain manifests in deploy/k8s. Skips without helm (not packaged for
Debian 12: install it from helm.sh to run these)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate")
HELM = shutil.which("helm")
pytestmark = pytest.mark.skipif(HELM is None, reason="helm is not installed (see helm.sh)")
ROOT = Path(__file__).resolve().parents[1] / "deploy"
CHART = ROOT / "helm" / "akida"
CRDS = {"NodeFeatureRule", "ServiceMonitor"}


def render(*sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    out = subprocess.run([HELM, "template", "akida", str(CHART), *args],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def plain(*files: str) -> set[tuple[str, str]]:
    docs = [d for f in files for d in yaml.safe_load_all((ROOT / "k8s" / f).read_text())]
    return {(d["kind"], d["metadata"]["name"]) for d in docs if d}


def test_the_chart_lints() -> None:
    out = subprocess.run([HELM, "lint", str(CHART)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("sets", "files"),
    [
        ((), ("device-plugin.yaml", "nfd-rules.yaml")),
        (("mode=akidad", "metrics.serviceMonitor.enabled=true"),
         ("akidad.yaml", "nfd-rules.yaml", "monitoring.yaml")),
    ],
)  # fmt: skip
def test_rendered_chart_matches_the_plain_manifests(sets: tuple[str, ...], files) -> None:
    from akida_rt.k8s.main import build_parser

    docs = render(*sets)
    for doc in docs:
        if doc["kind"] not in CRDS:
            kv.validate(doc, kv.latest_version(), strict=True)
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == plain(*files)
    (ds,) = [d for d in docs if d["metadata"]["name"] == "akida-device-plugin"]
    args = build_parser().parse_args(ds["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.shares == (4 if "mode=akidad" in sets else 1)
