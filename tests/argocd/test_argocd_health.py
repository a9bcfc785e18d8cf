"""Bosun's Argo CD health checks, run in Lua 5.1 on sample objects of every Kind and state.

The samples and expectations live next to each script in Argo CD's own layout
(``health_test.yaml`` + ``testdata/``), so the scripts can be proposed upstream as they are.
"""

from __future__ import annotations

import pathlib
import typing
from typing import Any

import argocd_lua
import jsonschema
import pytest
import yaml

from bosun.api import crdgen
from bosun.api import run as run_api

Case = tuple[str, pathlib.Path, dict[str, str]]


def _cases() -> list[Case]:
    cases = []
    for kind in argocd_lua.KINDS:
        folder = argocd_lua.CUSTOMIZATIONS / kind
        for test in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]:
            cases.append((kind, folder / test["inputPath"], test["healthStatus"]))
    return cases


CASES = _cases()
# Samples an API server would accept (unknown_* holds a phase the API does not have).
VALID = [case for case in CASES if not case[1].stem.startswith("unknown_")]


def _load(path: pathlib.Path) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    return obj


@pytest.mark.parametrize(
    ("kind", "sample", "expected"), CASES, ids=[f"{c[0]}-{c[1].stem}" for c in CASES]
)
def test_health_of_sample(kind: str, sample: pathlib.Path, expected: dict[str, str]) -> None:
    obj = _load(sample)
    assert obj["kind"] == kind
    script = argocd_lua.script_path(kind).read_text()
    assert argocd_lua.health(script, obj) == expected


EXPECTED_STATUSES = {
    "Agent": {"Healthy", "Progressing", "Degraded"},
    "Tool": {"Healthy", "Progressing", "Degraded"},
    "Policy": {"Healthy", "Progressing", "Degraded"},
    "Run": {"Healthy", "Progressing", "Degraded", "Suspended", "Unknown"},
}


def test_every_status_of_every_kind_has_a_sample() -> None:
    seen: dict[str, set[str]] = {kind: set() for kind in argocd_lua.KINDS}
    for kind, _, expected in CASES:
        seen[kind].add(expected["status"])
    assert seen == EXPECTED_STATUSES


@pytest.mark.parametrize("phase", typing.get_args(run_api.RunPhase))
def test_every_run_phase_has_a_health(phase: str) -> None:
    """A phase the API gains must be given a health here, not fall through to Unknown."""
    obj = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "r", "namespace": "n", "generation": 1},
        "status": {"phase": phase, "observedGeneration": 1},
    }
    result = argocd_lua.health(argocd_lua.script_path("Run").read_text(), obj)
    assert result["status"] in {"Healthy", "Progressing", "Degraded", "Suspended"}, result
    assert result["message"]


def test_readiness_kinds_share_one_script() -> None:
    scripts = {
        kind: argocd_lua.script_path(kind).read_text() for kind in ("Agent", "Tool", "Policy")
    }
    assert len(set(scripts.values())) == 1, "fix Agent, Tool and Policy health.lua alike"


def _strict(node: Any) -> Any:
    """A CRD schema as the API server applies it: unknown fields are not part of the object."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: {name: _strict(sub) for name, sub in value.items()}
        if key == "properties"
        else _strict(value)
        for key, value in node.items()
    }
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@pytest.mark.parametrize(
    ("kind", "sample", "expected"), VALID, ids=[f"{c[0]}-{c[1].stem}" for c in VALID]
)
def test_samples_are_valid_objects(
    kind: str, sample: pathlib.Path, expected: dict[str, str]
) -> None:
    """Samples follow the CRD schema, so the scripts are tested on shapes the API can hold."""
    errors = _schema_errors(kind, sample)
    assert not errors, errors


def test_sample_schema_check_bites() -> None:
    unknown = [case for case in CASES if case not in VALID]
    assert unknown
    for kind, sample, _ in unknown:
        assert any("phase" in error for error in _schema_errors(kind, sample))


def _schema_errors(kind: str, sample: pathlib.Path) -> list[str]:
    info = next(i for i in crdgen.KINDS if i.kind == kind)
    schema = _strict(crdgen.openapi_schema(info))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(_load(sample))
    ]


def test_sandbox_has_no_io() -> None:
    """Argo CD's Lua offers no io/os; a script using them must fail here too."""
    with pytest.raises(Exception, match="io"):
        argocd_lua.health("io.open('/etc/passwd')\nreturn {}", {})


def test_install_snippets_embed_the_scripts() -> None:
    assert argocd_lua.CONFIGMAP.read_text() == argocd_lua.render_configmap(), (
        "argocd/argocd-cm.yaml is stale: python tests/argocd/argocd_lua.py"
    )
    assert argocd_lua.HELM_VALUES.read_text() == argocd_lua.render_helm_values(), (
        "argocd/argo-cd-values.yaml is stale: python tests/argocd/argocd_lua.py"
    )
    configmap = yaml.safe_load(argocd_lua.CONFIGMAP.read_text())
    values = yaml.safe_load(argocd_lua.HELM_VALUES.read_text())
    assert configmap["data"] == values["configs"]["cm"] == argocd_lua.configmap_data()
    assert sorted(configmap["data"]) == sorted(
        f"resource.customizations.health.bosun.dev_{kind}" for kind in argocd_lua.KINDS
    )
