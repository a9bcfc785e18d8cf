"""`helm template` output validated by kubeconform against the API server's own schemas.

The schemas come from the local control plane's /openapi/v2 (see kubeschemas), strict: an
unknown or misspelt field anywhere, in a built-in kind or in a Bosun CRD, is an error.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import chartkit
import pytest
import yaml

from bosun.dev import testing

pytestmark = pytest.mark.cluster

# No Prometheus Operator CRDs here; test_chart_render checks the ServiceMonitor's shape.
SKIPPED = "monitoring.coreos.com/v1/ServiceMonitor"


def kubeconform(
    manifests: pathlib.Path, schemas: pathlib.Path, version: str
) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            str(chartkit.tool("kubeconform")),
            "-strict",
            "-output",
            "json",
            "-verbose",
            "-kubernetes-version",
            version,
            "-schema-location",
            str(schemas),
            "-skip",
            SKIPPED,
            str(manifests),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)["resources"]
    return results


@pytest.mark.parametrize(
    "values", [[], [chartkit.VALUES / "nondefault.yaml"]], ids=["default", "nondefault"]
)
def test_rendered_chart_is_valid(
    values: list[pathlib.Path],
    kube_schemas: pathlib.Path,
    control_plane: testing.ControlPlaneHandle,
    tmp_path: pathlib.Path,
) -> None:
    text = chartkit.template_text(values)
    manifests = tmp_path / "chart.yaml"
    manifests.write_text(text)
    results = kubeconform(
        manifests, kube_schemas, chartkit.server_version(control_plane.server_version)
    )
    problems = [
        f"{r['kind']} {r['name']}: {r['msg']}"
        for r in results
        if r["status"] not in ("statusValid", "statusSkipped")
    ]
    assert not problems, "\n".join(problems)
    rendered = chartkit.parse(text)
    assert len(results) == len(rendered)
    skipped = [r["kind"] for r in results if r["status"] == "statusSkipped"]
    assert skipped == (["ServiceMonitor"] if values else [])


def _broken(objs: list[chartkit.Obj]) -> list[chartkit.Obj]:
    """The default chart with three mistakes kubeconform must catch."""
    deployment = chartkit.one(objs, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    service = chartkit.one(objs, "Service")
    service["spec"]["ports"][0]["port"] = "eighty"
    crd = chartkit.one(objs, "CustomResourceDefinition", "runs.bosun.dev")
    agent = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "typo"},
        "spec": {"model": {"provider": "scripted"}, "tool": ["x"]},
    }
    return [deployment, service, crd, agent]


def test_kubeconform_catches_mistakes(
    kube_schemas: pathlib.Path, control_plane: testing.ControlPlaneHandle, tmp_path: pathlib.Path
) -> None:
    """Guard against a validation that passes everything (a missing or lax schema)."""
    manifests = tmp_path / "broken.yaml"
    manifests.write_text(yaml.safe_dump_all(_broken(chartkit.render())))
    results = {
        r["kind"]: r
        for r in kubeconform(
            manifests, kube_schemas, chartkit.server_version(control_plane.server_version)
        )
    }
    assert results["Deployment"]["status"] == "statusInvalid"
    assert "imagePullPolicyy" in results["Deployment"]["msg"]
    assert results["Service"]["status"] == "statusInvalid"
    assert results["Agent"]["status"] == "statusInvalid"
    assert "'tool' not allowed" in results["Agent"]["msg"]
    assert results["CustomResourceDefinition"]["status"] == "statusValid"
