"""The CRDs on a real API server: examples accepted, invalid manifests rejected, explain works."""

from __future__ import annotations

import copy
import functools
import json
import pathlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import api_cases
import pytest

import bosun.api
from bosun import retry
from bosun.api import common, crdgen
from bosun.dev import testing

pytestmark = pytest.mark.cluster

EXAMPLES = api_cases.EXAMPLES
EXAMPLE_FILES = api_cases.EXAMPLE_FILES
PLURALS = {info.kind: info.plural for info in crdgen.KINDS}


@pytest.fixture(scope="module")
def shared_namespace(bosun_crds: testing.ControlPlaneHandle) -> Iterator[str]:
    """One namespace for the table of invalid manifests (each case names its own objects)."""
    name = f"api-invalid-{uuid.uuid4().hex[:6]}"
    bosun_crds.kubectl("create", "namespace", name)
    yield name
    bosun_crds.kubectl("delete", "namespace", name, "--wait=false")


def _kubectl_json(
    cp: testing.ControlPlaneHandle, *args: str, manifest: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    return cp.kubectl(*args, input=None if manifest is None else json.dumps(manifest), check=False)


def _items(output: str) -> list[dict[str, Any]]:
    document: dict[str, Any] = json.loads(output)
    items: list[dict[str, Any]] = document["items"] if document["kind"] == "List" else [document]
    return items


def _contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds everything in ``expected`` (the server may add defaults)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def test_kinds_are_served_with_short_names_and_category(
    bosun_crds: testing.ControlPlaneHandle, namespace: str
) -> None:
    out = bosun_crds.kubectl("api-resources", "--api-group=bosun.dev", "-o", "wide").stdout
    for info in crdgen.KINDS:
        line = next(row for row in out.splitlines() if row.startswith(info.plural + " "))
        assert info.short_names[0] in line.split()
        assert "bosun" in line  # the category
    assert bosun_crds.kubectl("get", "bosun", "-n", namespace).returncode == 0


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=str(p.relative_to(EXAMPLES))) for p in EXAMPLE_FILES]
)
def test_example_is_accepted_by_server_side_dry_run(
    bosun_crds: testing.ControlPlaneHandle, namespace: str, path: pathlib.Path
) -> None:
    documents = api_cases.load(path)
    proc = bosun_crds.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", str(path), "-o", "json"
    )
    returned = _items(proc.stdout)
    assert len(returned) == len(documents)
    for written, stored in zip(documents, returned, strict=True):
        if written["kind"] == "Secret":
            continue
        # Nothing was pruned: the server kept every field the file sets (and may add defaults).
        assert _contains(stored["spec"], written["spec"])
        # What the server returns, defaults and metadata included, round-trips through the models.
        assert bosun.api.parse(stored).to_dict() == stored


def test_examples_apply_and_show_up_in_get_bosun(
    bosun_crds: testing.ControlPlaneHandle, namespace: str
) -> None:
    bosun_crds.kubectl("apply", "--server-side", "-n", namespace, "-R", "-f", str(EXAMPLES))
    out = bosun_crds.kubectl("get", "bosun", "-n", namespace, "-o", "name").stdout.split()
    expected = {
        f"{doc['kind'].lower()}.bosun.dev/{doc['metadata']['name']}"
        for path in EXAMPLE_FILES
        for doc in api_cases.load(path)
        if doc["kind"] in PLURALS
    }
    assert set(out) == expected
    agents = bosun_crds.kubectl("get", "agents", "-n", namespace).stdout
    columns = r"^NAME\s+PROVIDER\s+MODEL\s+READY\s+MODE\s+WORKERS\s+RUNS/H\s+TOKENS/H\s+AGE"
    assert re.search(columns, agents, re.M)
    assert re.search(r"^support-triage\s+openai\s+gpt-4o-mini\s", agents, re.M)
    assert re.search(r"^demo\s+scripted\s", agents, re.M)


def test_run_printer_columns_show_phase_attempt_and_tokens(
    bosun_crds: testing.ControlPlaneHandle, namespace: str
) -> None:
    bosun_crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(api_cases.run()))
    status = {
        "phase": "Running",
        "attempts": [{"number": 1, "outcome": "Lost"}, {"number": 2}],
        "usage": {"totalTokens": 1234},
    }
    bosun_crds.kubectl(
        "patch", "run", "run-1", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    out = bosun_crds.kubectl("get", "runs", "-n", namespace).stdout
    assert re.search(r"^NAME\s+AGENT\s+PHASE\s+ATTEMPT\s+TOKENS\s+AGE", out, re.M)
    assert re.search(r"^run-1\s+triage\s+Running\s+2\s+1234\s", out, re.M)


def test_tool_url_column_shows_either_transport(
    bosun_crds: testing.ControlPlaneHandle, namespace: str
) -> None:
    for manifest in (api_cases.tool(), api_cases.mcp_tool()):
        bosun_crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    out = bosun_crds.kubectl("get", "tools", "-n", namespace, "-o", "wide").stdout
    assert re.search(r"^lookup-order\s+https://helpdesk.example.com/orders\s", out, re.M)
    assert re.search(r"^search-docs\s+http://docs-mcp.tools.svc:8080/mcp\s", out, re.M)


@pytest.mark.cel
def test_allowed_updates_pass_the_transition_rules(
    bosun_crds: testing.ControlPlaneHandle, namespace: str, cel: None
) -> None:
    manifest = api_cases.run()
    bosun_crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    for change in ({"suspend": True}, {"suspend": False}, {"cancel": True}, {"suspend": True}):
        bosun_crds.kubectl(
            "patch", "run", "run-1", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": change}),
        )  # fmt: skip
    stored = json.loads(
        bosun_crds.kubectl("get", "run", "run-1", "-n", namespace, "-o", "json").stdout
    )
    assert (stored["spec"]["cancel"], stored["spec"]["suspend"]) == (True, True)
    # Labels and annotations are not spec: they stay editable.
    bosun_crds.kubectl("label", "run", "run-1", "-n", namespace, "team=support")


def _case_param(case: api_cases.Invalid) -> Any:
    marks = [pytest.mark.cel] if case.cel else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_case_param(c) for c in api_cases.INVALID])
def test_api_server_rejects_invalid_manifest_naming_the_field(
    bosun_crds: testing.ControlPlaneHandle,
    shared_namespace: str,
    request: pytest.FixtureRequest,
    case: api_cases.Invalid,
) -> None:
    if case.cel:
        request.getfixturevalue("cel")
    ns = ("-n", shared_namespace)
    if case.before is None and case.status is None:
        proc = _kubectl_json(
            bosun_crds, "create", "--dry-run=server", *ns, "-f", "-", manifest=case.manifest
        )
    else:
        # Updates need a real object first; name it after the case so cases do not collide.
        original = copy.deepcopy(case.before or case.manifest)
        original["metadata"]["name"] = case.id
        bosun_crds.kubectl("create", *ns, "-f", "-", input=json.dumps(original))
        if case.status is not None:
            proc = _kubectl_json(
                bosun_crds, "patch", PLURALS[original["kind"]], case.id, *ns,
                "--subresource=status", "--type=merge", "-p", json.dumps({"status": case.status}),
            )  # fmt: skip
        else:
            update = copy.deepcopy(case.manifest)
            update["metadata"]["name"] = case.id
            proc = _kubectl_json(bosun_crds, "replace", *ns, "-f", "-", manifest=update)
    assert proc.returncode != 0, f"accepted:\n{proc.stdout}"
    assert case.field in proc.stderr, proc.stderr


def _object_paths(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object node with properties below ``node`` (arrays walked through), with its path."""
    if node.get("type") == "array":
        node = node["items"]
    if "properties" not in node:
        return
    yield path, node
    for name, child in node["properties"].items():
        yield from _object_paths(child, f"{path}.{name}")


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("info", [pytest.param(i, id=i.kind) for i in crdgen.KINDS])
def test_kubectl_explain_describes_every_spec_field(
    bosun_crds: testing.ControlPlaneHandle, info: common.KindInfo
) -> None:
    spec = crdgen.openapi_schema(info)["properties"]["spec"]
    checked = 0
    for path, node in _object_paths(spec, f"{info.plural}.spec"):
        # The API server publishes new CRDs to OpenAPI a moment after they are established.
        out = testing.until(
            functools.partial(_explain, bosun_crds, path),
            timeout=30,
            what=f"kubectl explain {path}",
        )
        flat = _flat(out)
        assert _flat(node["description"]) in flat, path
        for name, child in node["properties"].items():
            assert re.search(rf"\b{name}\s+<", out), f"{path}.{name} missing"
            assert _flat(child["description"]) in flat, f"{path}.{name}"
            checked += 1
    assert checked >= 3


def _explain(cp: testing.ControlPlaneHandle, path: str) -> str | None:
    proc = cp.kubectl("explain", path, check=False)
    return proc.stdout if proc.returncode == 0 else None


@pytest.mark.parametrize(
    ("path", "defaults"),
    [
        ("runs.spec.retry", retry.RUN_DEFAULTS),
        ("agents.spec.retry", retry.RUN_DEFAULTS),
        ("tools.spec.retry", retry.TOOL_CALL_DEFAULTS),
    ],
)
def test_kubectl_explain_prints_the_retry_defaults_the_code_uses(
    bosun_crds: testing.ControlPlaneHandle, path: str, defaults: retry.Policy
) -> None:
    expected = defaults.fields()
    for field, value in expected.items():
        out = testing.until(
            functools.partial(_explain, bosun_crds, f"{path}.{field}"),
            timeout=30,
            what=f"kubectl explain {path}.{field}",
        )
        assert f"Built-in default: {value:g}." in _flat(out), f"{path}.{field}: {out}"
