"""Unit tests of the API models: parsing, aliases, validation, round trips and helpers."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import api_cases
import pydantic
import pytest

import bosun.api
from bosun import constants
from bosun.api import agent, approval, common, policy, run, tool

EXAMPLES = api_cases.EXAMPLES
EXAMPLE_DOCUMENTS = [
    (f"{path.relative_to(EXAMPLES)}#{index}", document)
    for path in api_cases.EXAMPLE_FILES
    for index, document in enumerate(api_cases.load(path))
]


def test_examples_cover_every_kind_and_the_demo_is_scripted() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLE_DOCUMENTS}
    assert {"Agent", "Tool", "Policy", "Run", "Secret"} <= kinds
    providers = {
        doc["spec"]["model"]["provider"] for _, doc in EXAMPLE_DOCUMENTS if doc["kind"] == "Agent"
    }
    assert providers == {"openai", "scripted"}


@pytest.mark.parametrize(
    "document",
    [pytest.param(doc, id=name) for name, doc in EXAMPLE_DOCUMENTS if doc["kind"] != "Secret"],
)
def test_example_round_trips_through_the_models_unchanged(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == constants.API_VERSION
    parsed = bosun.api.parse(document)
    assert type(parsed).__name__ == document["kind"]
    assert parsed.to_dict() == document


def test_example_secret_is_a_marked_placeholder() -> None:
    secrets = [(name, doc) for name, doc in EXAMPLE_DOCUMENTS if doc["kind"] == "Secret"]
    assert secrets, "the support-triage example needs its Secret placeholder"
    for name, secret in secrets:
        path = EXAMPLES / name.split("#")[0]
        assert "PLACEHOLDER" in path.read_text()
        assert all("REPLACE-ME" in value for value in secret["stringData"].values())


@pytest.mark.parametrize("name", sorted(api_cases.BASES))
def test_base_manifests_are_valid(name: str) -> None:
    manifest = api_cases.BASES[name]()
    assert bosun.api.parse(manifest).to_dict() == manifest


CREATE_CASES = [case for case in api_cases.INVALID if case.before is None]


def _with_status(case: api_cases.Invalid) -> dict[str, Any]:
    manifest = copy.deepcopy(case.manifest)
    if case.status is not None:
        manifest["status"] = case.status
    return manifest


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CREATE_CASES if c.python])
def test_models_reject_what_the_api_server_rejects(case: api_cases.Invalid) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        bosun.api.parse(_with_status(case))
    # The models must object to the same field, not to something else in the manifest.
    if case.field in str(caught.value):
        return
    field = tuple(name or index for name, index in api_cases.TOKEN.findall(case.field))
    for error in caught.value.errors():
        loc = tuple(str(part) for part in error["loc"])
        if loc[: len(field)] == field:
            return
        if error["type"] == "value_error" and loc and field[: len(loc)] == loc:
            return  # a model validator of the field's parent
    raise AssertionError(f"{case.field} not named in:\n{caught.value}")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CREATE_CASES if not c.python])
def test_models_accept_what_only_the_api_server_can_reject(case: api_cases.Invalid) -> None:
    # Keeps the table honest: flip `python` when the models learn to reject one of these.
    bosun.api.parse(_with_status(case))


def test_invalid_table_is_large_and_distinct() -> None:
    ids = [case.id for case in api_cases.INVALID]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40
    assert {case.manifest["kind"] for case in api_cases.INVALID} == {
        "Agent",
        "Tool",
        "Policy",
        "Run",
        "Approval",
    }


def test_fields_are_camel_case_and_populate_by_name() -> None:
    spec = run.RunSpec(agent_ref=common.LocalObjectReference(name="a"), input="hi")
    spec_by_alias = run.RunSpec.model_validate({"agentRef": {"name": "a"}, "input": "hi"})
    assert spec == spec_by_alias
    dumped = spec.model_dump(exclude_unset=True)
    assert dumped == {"agentRef": {"name": "a"}, "input": "hi"}
    assert agent.ModelSpec(provider="openai", name="m", base_url="http://x").model_dump(
        exclude_none=True
    ) == {"provider": "openai", "name": "m", "baseURL": "http://x"}


def test_resource_built_in_python_writes_api_version_and_kind() -> None:
    obj = run.Run(
        metadata=common.ObjectMeta(name="r"),
        spec=run.RunSpec(agent_ref=common.LocalObjectReference(name="a"), input="hi"),
    )
    assert obj.to_dict() == {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "r"},
        "spec": {"agentRef": {"name": "a"}, "input": "hi"},
    }
    assert obj.spec.priority == 0
    assert obj.spec.suspend is False
    assert obj.status.phase is None


def test_api_version_matches_the_constants() -> None:
    assert common.Resource.model_fields["api_version"].default == constants.API_VERSION


def test_wrong_kind_or_api_version_is_rejected() -> None:
    manifest = api_cases.run()
    with pytest.raises(pydantic.ValidationError):
        run.Run.model_validate({**manifest, "kind": "Agent"})
    with pytest.raises(pydantic.ValidationError):
        run.Run.model_validate({**manifest, "apiVersion": "bosun.dev/v1"})
    with pytest.raises(ValueError, match="not a Bosun kind"):
        bosun.api.parse({**manifest, "kind": "Pod"})


def test_server_object_parses_with_metadata_and_status_kept() -> None:
    manifest = api_cases.run()
    manifest["metadata"].update(
        {
            "namespace": "ns",
            "uid": "0b7c",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        }
    )
    manifest["spec"].update({"suspend": False, "cancel": False})
    manifest["status"] = {
        "observedGeneration": 1,
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "AttemptStarted",
                "message": "Attempt 1 started",
                "lastTransitionTime": "2025-01-01T00:00:05Z",
                "observedGeneration": 1,
            }
        ],
        "attempts": [{"number": 1, "job": "run-1-1", "startTime": "2025-01-01T00:00:05Z"}],
        "lease": {"name": "run-1", "holder": "run-1-1-abcde", "transitions": 0},
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "modelCalls": 1},
        "pendingApprovals": [
            {"callHash": api_cases.HASH, "tool": "issue-refund", "args": {"amount": 150}}
        ],
    }
    parsed = run.Run.from_dict(manifest)
    assert parsed.to_dict() == manifest
    assert parsed.metadata.generation == 1
    ready = parsed.status.condition("Running")
    assert ready is not None
    assert ready.last_transition_time == datetime.datetime(2025, 1, 1, 0, 0, 5, tzinfo=datetime.UTC)
    assert parsed.status.condition("Succeeded") is None
    assert parsed.status.attempts[0].outcome is None


def test_unknown_fields_are_ignored_like_kubernetes_clients_do() -> None:
    manifest = api_cases.tool()
    manifest["spec"]["futureField"] = {"x": 1}
    parsed = tool.Tool.from_dict(manifest)
    assert "futureField" not in parsed.to_dict()["spec"]


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (
            tool.ToolSpec,
            {"description": "d"},
            "exactly one transport",
        ),
        (
            agent.ModelSpec,
            {"provider": "scripted"},
            "script is required",
        ),
        (
            agent.ModelSpec,
            {"provider": "anthropic", "name": "claude", "script": [{"reply": "x"}]},
            "only allowed when provider is scripted",
        ),
        (agent.ModelSpec, {"provider": "anthropic"}, "name is required"),
        (agent.ScriptTurn, {}, "exactly one of toolCalls or reply"),
        (
            tool.Header,
            {"name": "A", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            "exactly one of value or valueFrom",
        ),
        (
            common.RetrySpec,
            {"initialBackoffSeconds": 10, "maxBackoffSeconds": 5},
            "maxBackoffSeconds must be at least",
        ),
        (
            policy.PolicyRule,
            {"tools": ["*"], "action": "Deny", "approvalTimeoutSeconds": 60},
            "approvalTimeoutSeconds is only allowed",
        ),
        (
            common.LabelSelectorRequirement,
            {"key": "k", "operator": "Exists", "values": ["v"]},
            "values",
        ),
        (
            tool.ToolSpec,
            {"description": "d", "http": {"url": "http://x"}, "inputSchema": {"type": "string"}},
            "inputSchema.type",
        ),
        (
            agent.AgentSpec,
            {"model": {"provider": "scripted", "script": [{"reply": "x"}]}, "tools": ["a", "a"]},
            "repeat",
        ),
    ],
)
def test_model_validators_mirror_the_cel_rules(
    model: type[pydantic.BaseModel], data: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        model.model_validate(data)


def test_scripted_model_needs_no_name_and_others_accept_a_script_of_tool_calls() -> None:
    spec = agent.ModelSpec.model_validate(
        {
            "provider": "scripted",
            "script": [
                {"toolCalls": [{"tool": "t", "args": {"n": [1, {"deep": True}]}}]},
                {"reply": ""},
            ],
        }
    )
    assert spec.name is None
    assert spec.script is not None
    first = spec.script[0].tool_calls
    assert first is not None
    assert first[0].args == {"n": [1, {"deep": True}]}
    assert spec.script[1].reply == ""


def test_http_defaults() -> None:
    http = tool.HTTPTransport(url="https://x.example.com")
    assert (http.method, http.timeout_seconds, http.headers) == ("POST", 30, [])


def test_call_hash_binds_tool_and_canonical_arguments() -> None:
    digest = approval.call_hash("issue-refund", {"amount": 100, "orderId": "A-1"})
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    # Key order does not matter; values and the tool do.
    assert digest == approval.call_hash("issue-refund", {"orderId": "A-1", "amount": 100})
    assert digest != approval.call_hash("issue-refund", {"orderId": "A-1", "amount": 10000})
    assert digest != approval.call_hash("lookup-order", {"orderId": "A-1", "amount": 100})
    # Fixed value (sha256 of `{"args":{},"tool":"t"}`): runner and CLI agree across versions.
    assert approval.call_hash("t", {}) == (
        "a9c1b56f2d5711641e3a95a211412b31f9042cd471d093fc67e268e679fd0f45"
    )
    approval.ApprovalSpec(run_name="r", call_hash=digest, decision="Approved", approved_by="me")


def test_public_api_is_curated() -> None:
    for name in bosun.api.__all__:
        assert hasattr(bosun.api, name), name
