"""The Bosun API: typed models of Agent, Tool, Policy, Run, Approval, RunnerClass and
ClusterPolicy.

The models are the single source of the CRD schemas (see `bosun.api.crdgen`) and what the
operator, the runner and the CLI use to read and write these objects.
"""

from __future__ import annotations

from bosun.api.agent import Agent, AgentSpec, AgentStatus, ModelSpec, ScriptToolCall, ScriptTurn
from bosun.api.approval import Approval, ApprovalSpec, ApprovalStatus, call_hash
from bosun.api.clusterpolicy import ClusterPolicy, ClusterPolicySpec, ClusterPolicyStatus
from bosun.api.common import (
    Condition,
    LabelSelector,
    LocalObjectReference,
    ObjectMeta,
    Resource,
    RetrySpec,
    SecretKeySelector,
    ToolRetrySpec,
)
from bosun.api.policy import Policy, PolicyRule, PolicySpec, PolicyStatus
from bosun.api.run import Attempt, Run, RunPhase, RunSpec, RunStatus, Usage
from bosun.api.runnerclass import RunnerClass, RunnerClassSpec, RunnerClassStatus
from bosun.api.schedule import Schedule, ScheduleSpec, ScheduleStatus
from bosun.api.tool import HTTPTransport, MCPTransport, Tool, ToolSpec, ToolStatus
from bosun.api.webhook import Webhook, WebhookSpec, WebhookStatus

__all__ = [
    "Agent",
    "AgentSpec",
    "AgentStatus",
    "Approval",
    "ApprovalSpec",
    "ApprovalStatus",
    "Attempt",
    "ClusterPolicy",
    "ClusterPolicySpec",
    "ClusterPolicyStatus",
    "Condition",
    "HTTPTransport",
    "LabelSelector",
    "LocalObjectReference",
    "MCPTransport",
    "ModelSpec",
    "ObjectMeta",
    "Policy",
    "PolicyRule",
    "PolicySpec",
    "PolicyStatus",
    "Resource",
    "RetrySpec",
    "Run",
    "RunPhase",
    "RunSpec",
    "RunStatus",
    "RunnerClass",
    "RunnerClassSpec",
    "RunnerClassStatus",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
    "ScriptToolCall",
    "ScriptTurn",
    "SecretKeySelector",
    "Tool",
    "ToolRetrySpec",
    "ToolSpec",
    "ToolStatus",
    "Usage",
    "Webhook",
    "WebhookSpec",
    "WebhookStatus",
    "call_hash",
    "parse",
]

_MODELS: dict[str, type[Resource]] = {
    model.__name__: model
    for model in (
        Agent,
        Tool,
        Policy,
        Run,
        Approval,
        RunnerClass,
        ClusterPolicy,
        Schedule,
        Webhook,
    )
}


def parse(manifest: dict[str, object]) -> Resource:
    """Parse a bosun.dev manifest of any Kind into its model."""
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in _MODELS:
        raise ValueError(f"not a Bosun kind: {kind!r}")
    return _MODELS[kind].model_validate(manifest)
