"""Valid base manifests of every Kind and a table of invalid variations of them.

The table drives both the unit tests (do the models reject what the API server rejects?) and
the cluster tests (does the API server reject it, naming the offending field?).
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
from typing import Any

import yaml

Manifest = dict[str, Any]

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))


def load(path: pathlib.Path) -> list[Manifest]:
    """The documents of a (multi-document) YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


API_VERSION = "bosun.dev/v1alpha1"
HASH = "3f" * 32


def _object(kind: str, name: str, spec: Manifest) -> Manifest:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def agent() -> Manifest:
    return _object(
        "Agent",
        "triage",
        {
            "model": {
                "provider": "openai",
                "name": "gpt-4o-mini",
                "baseURL": "http://vllm.models.svc:8000/v1",
                "apiKeySecretRef": {"name": "llm", "key": "api-key"},
                "temperature": 0.5,
            },
            "instructions": "Be brief.",
            "tools": ["lookup-order", "issue-refund"],
            "limits": {"maxSteps": 10, "maxTokensPerRun": 20000},
            "retry": {"maxAttempts": 4, "initialBackoffSeconds": 2, "maxBackoffSeconds": 60},
            "concurrency": {"maxConcurrentRuns": 2},
            "runner": {
                "className": "general",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1}},
            },
        },
    )


def scripted_agent() -> Manifest:
    return _object(
        "Agent",
        "scripted",
        {
            "model": {
                "provider": "scripted",
                "script": [
                    {"toolCalls": [{"tool": "lookup-order", "args": {"orderId": "A-1"}}]},
                    {"reply": "Done."},
                ],
            },
            "tools": ["lookup-order"],
        },
    )


def tool() -> Manifest:
    return _object(
        "Tool",
        "lookup-order",
        {
            "description": "Look an order up.",
            "inputSchema": {
                "type": "object",
                "properties": {"orderId": {"type": "string"}},
                "required": ["orderId"],
            },
            "http": {
                "url": "https://helpdesk.example.com/orders",
                "method": "GET",
                "headers": [
                    {"name": "Accept", "value": "application/json"},
                    {
                        "name": "Authorization",
                        "valueFrom": {"secretKeyRef": {"name": "helpdesk", "key": "token"}},
                    },
                ],
                "timeoutSeconds": 5,
            },
            "idempotent": True,
            "retry": {"maxAttempts": 2},
        },
    )


def mcp_tool() -> Manifest:
    return _object(
        "Tool",
        "search-docs",
        {
            "description": "Search the product documentation.",
            "mcp": {"url": "http://docs-mcp.tools.svc:8080/mcp", "toolName": "search"},
        },
    )


def policy() -> Manifest:
    return _object(
        "Policy",
        "governance",
        {
            "agentSelector": {
                "matchLabels": {"team": "support"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}],
            },
            "rules": [
                {"name": "deny-deletes", "tools": ["*delete*"], "action": "Deny"},
                {
                    "name": "big-refunds",
                    "tools": ["issue-refund"],
                    "when": "double(args.amount) > 100.0",
                    "action": "RequireApproval",
                    "approvalTimeoutSeconds": 600,
                },
                {"tools": ["lookup-?rder", "[!x]*"], "action": "Allow"},
            ],
            "budgets": {"tokensPerHour": 100000, "toolCallsPerHour": 100, "runsPerHour": 10},
            "models": {"allowed": ["gpt-4o*"]},
        },
    )


def run() -> Manifest:
    return _object(
        "Run",
        "run-1",
        {
            "agentRef": {"name": "triage"},
            "input": "Refund order A-1001.",
            "idempotencyKey": "ticket-1",
            "priority": 5,
            "deadlineSeconds": 600,
            "retry": {"maxAttempts": 3, "backoffMultiplier": 1.5},
        },
    )


def approval() -> Manifest:
    return _object(
        "Approval",
        "run-1-approval",
        {
            "runName": "run-1",
            "callHash": HASH,
            "decision": "Approved",
            "approvedBy": "jane@example.com",
        },
    )


BASES = {
    "agent": agent,
    "scripted-agent": scripted_agent,
    "tool": tool,
    "mcp-tool": mcp_tool,
    "policy": policy,
    "run": run,
    "approval": approval,
}

TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _walk(manifest: Manifest, path: str) -> tuple[Any, str | int]:
    keys: list[str | int] = [int(index) if index else name for name, index in TOKEN.findall(path)]
    node: Any = manifest
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def put(manifest: Manifest, path: str, value: Any) -> Manifest:
    """A copy of ``manifest`` with the value at ``path`` (``spec.rules[0].action``) set."""
    result = copy.deepcopy(manifest)
    parent, key = _walk(result, path)
    parent[key] = value
    return result


def drop(manifest: Manifest, path: str) -> Manifest:
    """A copy of ``manifest`` without the value at ``path``."""
    result = copy.deepcopy(manifest)
    parent, key = _walk(result, path)
    del parent[key]
    return result


@dataclasses.dataclass(frozen=True)
class Invalid:
    """A manifest the API server must reject, and the field its message must name."""

    id: str
    manifest: Manifest
    field: str
    """Text the error must contain: the offending field's path (or the rule's own words)."""
    before: Manifest | None = None
    """For a forbidden update: the valid object created first; ``manifest`` is the update."""
    status: Manifest | None = None
    """For an invalid status: the status written through the status subresource."""
    python: bool = True
    """Whether the models reject it too (False where only the server can tell)."""
    cel: bool = False
    """Whether a CEL rule rejects it (skipped on API servers without CEL)."""


def _update(id: str, before: Manifest, path: str, value: Any, field: str) -> Invalid:  # noqa: A002
    return Invalid(id, put(before, path, value), field, before=before, python=False, cel=True)


INVALID: list[Invalid] = [
    # Agent
    Invalid("agent-missing-model", drop(agent(), "spec.model"), "spec.model"),
    Invalid("agent-missing-spec", drop(agent(), "spec"), "spec"),
    Invalid(
        "agent-unknown-provider",
        put(agent(), "spec.model.provider", "gemini"),
        "spec.model.provider",
    ),
    Invalid(
        "agent-scripted-without-script",
        drop(scripted_agent(), "spec.model.script"),
        "spec.model.script",
        cel=True,
    ),
    Invalid(
        "agent-script-on-openai",
        put(agent(), "spec.model.script", [{"reply": "hi"}]),
        "spec.model.script",
        cel=True,
    ),
    Invalid(
        "agent-openai-without-name", drop(agent(), "spec.model.name"), "spec.model.name", cel=True
    ),
    Invalid(
        "agent-empty-script", put(scripted_agent(), "spec.model.script", []), "spec.model.script"
    ),
    Invalid(
        "agent-script-turn-both",
        put(
            scripted_agent(),
            "spec.model.script[0].reply",
            "and also a reply",
        ),
        "spec.model.script[0]",
        cel=True,
    ),
    Invalid(
        "agent-script-turn-neither",
        put(scripted_agent(), "spec.model.script[1]", {}),
        "spec.model.script[1]",
        cel=True,
    ),
    Invalid(
        "agent-script-tool-name-invalid",
        put(scripted_agent(), "spec.model.script[0].toolCalls[0].tool", "Lookup Order"),
        "spec.model.script[0].toolCalls[0].tool",
    ),
    Invalid(
        "agent-temperature-too-high",
        put(agent(), "spec.model.temperature", 3),
        "spec.model.temperature",
    ),
    Invalid(
        "agent-base-url-not-http",
        put(agent(), "spec.model.baseURL", "ftp://models.example.com"),
        "spec.model.baseURL",
    ),
    Invalid(
        "agent-secret-ref-missing-key",
        drop(agent(), "spec.model.apiKeySecretRef.key"),
        "spec.model.apiKeySecretRef.key",
    ),
    Invalid("agent-tool-name-invalid", put(agent(), "spec.tools[0]", "Bad_Name"), "spec.tools[0]"),
    Invalid(
        "agent-tools-duplicate",
        put(agent(), "spec.tools", ["lookup-order", "lookup-order"]),
        "spec.tools[1]",
    ),
    Invalid(
        "agent-max-steps-zero", put(agent(), "spec.limits.maxSteps", 0), "spec.limits.maxSteps"
    ),
    Invalid(
        "agent-max-output-retries-over",
        put(agent(), "spec.limits.maxOutputRetries", 11),
        "spec.limits.maxOutputRetries",
    ),
    Invalid(
        "agent-output-schema-not-an-object",
        put(agent(), "spec.outputSchema", "json please"),
        "spec.outputSchema",
    ),
    Invalid(
        "agent-concurrency-wrong-type",
        put(agent(), "spec.concurrency.maxConcurrentRuns", "two"),
        "spec.concurrency.maxConcurrentRuns",
    ),
    Invalid(
        "agent-concurrency-missing-max",
        put(agent(), "spec.concurrency", {}),
        "spec.concurrency.maxConcurrentRuns",
    ),
    Invalid(
        "agent-toleration-unknown-operator",
        put(agent(), "spec.runner.tolerations", [{"key": "gpu", "operator": "Sometimes"}]),
        "spec.runner.tolerations[0].operator",
    ),
    Invalid(
        "agent-runner-image-moved-to-runnerclass",
        put(agent(), "spec.runner.image", "example.com/any:latest"),
        "runner.image moved to RunnerClass",
        python=False,
        cel=True,
    ),
    Invalid(
        "agent-runner-service-account-moved-to-runnerclass",
        put(agent(), "spec.runner.serviceAccountName", "default"),
        "runner.serviceAccountName moved to RunnerClass",
        python=False,
        cel=True,
    ),
    _update(
        "agent-runner-node-selector-added-on-update",
        agent(),
        "spec.runner.nodeSelector",
        {"node-role.kubernetes.io/control-plane": ""},
        "runner.nodeSelector moved to RunnerClass",
    ),
    Invalid(
        "agent-quantity-invalid",
        put(agent(), "spec.runner.resources.limits.cpu", "lots"),
        "spec.runner.resources.limits.cpu",
    ),
    Invalid(
        "agent-instructions-oversized",
        put(agent(), "spec.instructions", "x" * 65537),
        "spec.instructions",
    ),
    Invalid(
        "agent-retry-max-attempts-zero",
        put(agent(), "spec.retry.maxAttempts", 0),
        "spec.retry.maxAttempts",
    ),
    Invalid(
        "agent-unknown-field",
        put(agent(), "spec.modle", {"provider": "openai"}),
        "spec.modle",
        python=False,
    ),
    # Tool
    Invalid(
        "tool-two-transports",
        put(tool(), "spec.mcp", {"url": "http://mcp.example.com/mcp", "toolName": "x"}),
        "spec.http or spec.mcp",
        cel=True,
    ),
    Invalid("tool-no-transport", drop(tool(), "spec.http"), "spec.http or spec.mcp", cel=True),
    Invalid("tool-missing-description", drop(tool(), "spec.description"), "spec.description"),
    Invalid("tool-empty-description", put(tool(), "spec.description", ""), "spec.description"),
    Invalid(
        "tool-url-without-scheme",
        put(tool(), "spec.http.url", "helpdesk.example.com/orders"),
        "spec.http.url",
    ),
    Invalid("tool-unknown-method", put(tool(), "spec.http.method", "FETCH"), "spec.http.method"),
    Invalid(
        "tool-negative-timeout",
        put(tool(), "spec.http.timeoutSeconds", -5),
        "spec.http.timeoutSeconds",
    ),
    Invalid(
        "tool-header-value-and-secret",
        put(tool(), "spec.http.headers[0].valueFrom", {"secretKeyRef": {"name": "a", "key": "b"}}),
        "spec.http.headers[0]",
        cel=True,
    ),
    Invalid(
        "tool-header-secret-missing-name",
        drop(tool(), "spec.http.headers[1].valueFrom.secretKeyRef.name"),
        "spec.http.headers[1].valueFrom.secretKeyRef.name",
    ),
    Invalid(
        "tool-header-name-invalid",
        put(tool(), "spec.http.headers[0].name", "Bad Header"),
        "spec.http.headers[0].name",
    ),
    Invalid(
        "tool-headers-duplicate",
        put(tool(), "spec.http.headers[1].name", "Accept"),
        "spec.http.headers[1]",
    ),
    Invalid(
        "tool-mcp-missing-tool-name", drop(mcp_tool(), "spec.mcp.toolName"), "spec.mcp.toolName"
    ),
    Invalid(
        "tool-input-schema-not-object",
        put(tool(), "spec.inputSchema.type", "array"),
        "spec.inputSchema.type",
    ),
    Invalid(
        "tool-idempotent-wrong-type",
        put(tool(), "spec.idempotent", "yes"),
        "spec.idempotent",
        python=False,
    ),
    Invalid(
        "tool-name-with-dots",
        put(tool(), "metadata.name", "lookup.order"),
        "metadata.name",
        cel=True,
    ),
    Invalid(
        "tool-retry-multiplier-below-one",
        put(tool(), "spec.retry.backoffMultiplier", 0.5),
        "spec.retry.backoffMultiplier",
    ),
    # Policy
    Invalid(
        "policy-unknown-action",
        put(policy(), "spec.rules[0].action", "Maybe"),
        "spec.rules[0].action",
    ),
    Invalid(
        "policy-missing-action", drop(policy(), "spec.rules[0].action"), "spec.rules[0].action"
    ),
    Invalid("policy-empty-tools", put(policy(), "spec.rules[0].tools", []), "spec.rules[0].tools"),
    Invalid(
        "policy-glob-unclosed-class",
        put(policy(), "spec.rules[0].tools[0]", "[abc"),
        "spec.rules[0].tools[0]",
    ),
    Invalid(
        "policy-glob-uppercase",
        put(policy(), "spec.rules[0].tools[0]", "Delete*"),
        "spec.rules[0].tools[0]",
    ),
    Invalid("policy-empty-when", put(policy(), "spec.rules[1].when", ""), "spec.rules[1].when"),
    Invalid(
        "policy-approval-timeout-on-allow",
        put(policy(), "spec.rules[2].approvalTimeoutSeconds", 600),
        "spec.rules[2].approvalTimeoutSeconds",
        cel=True,
    ),
    Invalid(
        "policy-selector-in-without-values",
        put(policy(), "spec.agentSelector.matchExpressions[0].values", []),
        "spec.agentSelector.matchExpressions[0].values",
        cel=True,
    ),
    Invalid(
        "policy-negative-budget",
        put(policy(), "spec.budgets.tokensPerHour", -1),
        "spec.budgets.tokensPerHour",
    ),
    Invalid(
        "policy-too-many-rules",
        put(policy(), "spec.rules", [{"tools": ["*"], "action": "Allow"}] * 129),
        "spec.rules",
    ),
    Invalid(
        "policy-models-allowed-empty",
        put(policy(), "spec.models.allowed", []),
        "spec.models.allowed",
    ),
    # Run
    Invalid("run-missing-agent-ref", drop(run(), "spec.agentRef"), "spec.agentRef"),
    Invalid("run-missing-input", drop(run(), "spec.input"), "spec.input"),
    Invalid(
        "run-agent-name-invalid", put(run(), "spec.agentRef.name", "Foo Bar"), "spec.agentRef.name"
    ),
    Invalid(
        "run-negative-deadline", put(run(), "spec.deadlineSeconds", -1), "spec.deadlineSeconds"
    ),
    Invalid(
        "run-negative-backoff",
        put(run(), "spec.retry.initialBackoffSeconds", -1),
        "spec.retry.initialBackoffSeconds",
    ),
    Invalid(
        "run-max-backoff-below-initial",
        put(put(run(), "spec.retry.initialBackoffSeconds", 60), "spec.retry.maxBackoffSeconds", 5),
        "spec.retry.maxBackoffSeconds",
        cel=True,
    ),
    Invalid(
        "run-too-many-attempts", put(run(), "spec.retry.maxAttempts", 101), "spec.retry.maxAttempts"
    ),
    Invalid("run-priority-wrong-type", put(run(), "spec.priority", "high"), "spec.priority"),
    Invalid(
        "run-idempotency-key-oversized",
        put(run(), "spec.idempotencyKey", "k" * 257),
        "spec.idempotencyKey",
    ),
    Invalid(
        "run-invalid-phase",
        run(),
        "status.phase",
        status={"phase": "Exploded"},
    ),
    Invalid(
        "run-condition-bad-status",
        run(),
        "status.conditions[0].status",
        status={
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "Yes",
                    "reason": "Done",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ]
        },
    ),
    _update("run-input-changed", run(), "spec.input", "Refund order A-2002.", "spec.input"),
    _update("run-agent-changed", run(), "spec.agentRef.name", "other", "spec.agentRef"),
    _update("run-retry-changed", run(), "spec.retry.maxAttempts", 9, "spec.retry"),
    _update("run-priority-changed", run(), "spec.priority", 99, "spec.priority"),
    _update(
        "run-idempotency-key-removed",
        run(),
        "spec.idempotencyKey",
        None,
        "spec.idempotencyKey",
    ),
    _update(
        "run-uncancelled", put(run(), "spec.cancel", True), "spec.cancel", False, "spec.cancel"
    ),
    # Approval
    Invalid("approval-hash-not-hex", put(approval(), "spec.callHash", "xyz"), "spec.callHash"),
    Invalid(
        "approval-unknown-decision", put(approval(), "spec.decision", "Maybe"), "spec.decision"
    ),
    Invalid("approval-missing-approver", drop(approval(), "spec.approvedBy"), "spec.approvedBy"),
    Invalid("approval-missing-run", drop(approval(), "spec.runName"), "spec.runName"),
    _update("approval-decision-changed", approval(), "spec.decision", "Denied", "spec.decision"),
    _update("approval-reason-added", approval(), "spec.reason", "changed my mind", "spec.reason"),
]
