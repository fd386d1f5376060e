"""Render the Helm chart (deploy/helm/akida) into the plain manifests of deploy/k8s, so both
come from the same templates and values: `make manifests`, or `python deploy/helm/render.py`.

Rendering is Helm's own: the `helm` binary when on PATH, else Helm's Go SDK through the
`helm-python-sdk` package (libhelm_c). Without either it says so and exits 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHART = Path(__file__).resolve().parent / "akida"
PLAIN = Path(__file__).resolve().parents[1] / "k8s"
RELEASE, NAMESPACE = "akida", "kube-system"

# plain file -> (values over the chart's defaults, templates in order)
OUTPUTS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "device-plugin.yaml": ({"mode": "plugin"}, ["device-plugin.yaml", "metrics.yaml"]),
    "akidad.yaml": ({"mode": "akidad"}, ["akidad.yaml", "device-plugin.yaml", "metrics.yaml"]),
    "nfd-rules.yaml": ({}, ["nfd.yaml"]),
    "monitoring.yaml": ({"metrics": {"serviceMonitor": {"enabled": True}}},
                        ["servicemonitor.yaml"]),
}  # fmt: skip


class NoHelm(RuntimeError):
    """Neither the helm binary nor helm-python-sdk is installed."""


def engine() -> str:
    """ "helm" (the binary) or "helm-python-sdk"; NoHelm when neither is here."""
    if shutil.which("helm"):
        return "helm"
    try:
        import helm_python  # noqa: F401
    except ImportError:
        raise NoHelm(
            "neither helm nor helm-python-sdk is installed (pip install helm-python-sdk)"
        ) from None
    return "helm-python-sdk"


def _clean(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if not x.startswith("# Source: ")]
    while lines and lines[0].strip() in ("", "---"):
        lines.pop(0)
    return "\n".join(lines).strip()


def render_templates(values: dict[str, Any], chart: Path = CHART) -> dict[str, str]:
    """Each template's rendered text (file name -> YAML), by Helm."""
    if engine() == "helm":
        out = {}
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(values, f)
            f.flush()
            for path in sorted((chart / "templates").glob("*.yaml")):
                res = subprocess.run(
                    ["helm", "template", RELEASE, str(chart), "-f", f.name, "--namespace",
                     NAMESPACE, "--show-only", f"templates/{path.name}"],
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                out[path.name] = _clean(res.stdout) if res.returncode == 0 else ""
        return out
    import helm_python

    rendered = helm_python.Chart.load(str(chart)).render(values, name=RELEASE, namespace=NAMESPACE)
    return {Path(k).name: _clean(v) for k, v in rendered.items()}


def lint(chart: Path = CHART) -> list[str]:
    """Helm's lint errors (empty when the chart is fine)."""
    if engine() == "helm":
        res = subprocess.run(["helm", "lint", str(chart)], capture_output=True, text=True)
        return [] if res.returncode == 0 else [res.stdout + res.stderr]
    import helm_python

    return [str(e) for e in helm_python.lint(str(chart)).get("errors", [])]


def plain(name: str) -> str:
    """The text of plain manifest `name`, as generated from the chart."""
    values, templates = OUTPUTS[name]
    rendered = render_templates(values)
    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "the defaults"
    head = (
        f"# Generated from deploy/helm/akida (values: {shown}) by `make manifests`:\n"
        "# edit the chart's templates, not this file.\n"
    )
    return head + "\n---\n".join(rendered[t] for t in templates if rendered[t]) + "\n"


def main() -> int:
    try:
        errors = lint()
    except NoHelm as exc:
        print(f"render: error: {exc}", file=sys.stderr)
        return 2
    if errors:
        print("render: error: helm lint: " + "; ".join(errors), file=sys.stderr)
        return 1
    for name in OUTPUTS:
        (PLAIN / name).write_text(plain(name))
        print(f"wrote {PLAIN / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
