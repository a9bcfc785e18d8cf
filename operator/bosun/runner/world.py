"""What the loop reads from the API before each step: its Run, Agent, Policies and Tools.

Each read parses what a tenant wrote with the API models and turns what cannot be used into the
attempt's end: a deleted, replaced, cancelled or suspended Run ends it as cancelled; an Agent
that is gone or does not parse, and a Policy or ClusterPolicy that does not parse (it might
deny), end it as a permanent failure, so governance fails closed. ClusterPolicies the runner may
not read (Forbidden, or their CRD missing) make every decision a denial; any other API error
ends the attempt before the call, as every read does. A Tool that does not parse is skipped
(the call to it is then denied as not found).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, TypeVar

import pydantic

from bosun import kube
from bosun.api import agent as agent_api
from bosun.api import clusterpolicy as clusterpolicy_api
from bosun.api import policy as policy_api
from bosun.api import run as run_api
from bosun.api import tool as tool_api
from bosun.runner import config, errors, governance, governing, kubeapi

__all__ = ["cel_view", "read_agent", "read_policies", "read_run", "read_tool", "read_tools"]

log = logging.getLogger("bosun.runner.loop")

_Obj = dict[str, Any]
_P = TypeVar("_P", policy_api.Policy, clusterpolicy_api.ClusterPolicy)


def read_run(cluster: kubeapi.ClusterAPI, settings: config.Settings) -> tuple[_Obj, run_api.Run]:
    """This attempt's Run, as stored and parsed; raises when the attempt must not go on."""
    try:
        obj = cluster.get_run(settings.run_name)
    except kube.NotFound as err:
        raise errors.Cancelled("RunDeleted", "the Run no longer exists") from err
    try:
        run = run_api.Run.from_dict(obj)
    except pydantic.ValidationError as err:
        raise errors.PermanentFailure("InvalidRun", str(err)[:500]) from err
    if run.metadata.uid and run.metadata.uid != settings.run_uid:
        raise errors.Cancelled("RunReplaced", "the Run was deleted and created again")
    if run.spec.cancel:
        raise errors.Cancelled("RunCancelled", "spec.cancel is true")
    if run.spec.suspend:
        raise errors.Cancelled("RunSuspended", "spec.suspend is true")
    return obj, run


def read_agent(cluster: kubeapi.ClusterAPI, run: run_api.Run) -> tuple[_Obj, agent_api.Agent]:
    """The Run's Agent, as stored and parsed."""
    name = run.spec.agent_ref.name
    try:
        obj = cluster.get_agent(name)
    except kube.NotFound as err:
        raise errors.PermanentFailure("AgentNotFound", f"Agent {name} does not exist") from err
    try:
        return obj, agent_api.Agent.from_dict(obj)
    except pydantic.ValidationError as err:
        raise errors.PermanentFailure("InvalidAgent", str(err)[:500]) from err


def read_policies(
    cluster: kubeapi.ClusterAPI,
    settings: config.Settings,
    agent: agent_api.Agent,
    now: datetime.datetime,
) -> governing.PolicySet:
    """What governs the next call of ``agent``: every Policy of the namespace, every
    ClusterPolicy, the namespace's labels and, when a ClusterPolicy budgets namespaces, what
    the namespace's other Agents used within the hour. A Policy or ClusterPolicy that does not
    parse ends the attempt."""
    parsed = [_parse(policy_api.Policy, item) for item in cluster.list_policies()]
    try:
        items = cluster.list_clusterpolicies()
    except (kube.Forbidden, kube.NotFound) as err:
        log.warning("Failed to read ClusterPolicies", extra={"fields": {"error": str(err)}})
        return governing.PolicySet(
            policies=tuple(parsed),
            namespace_labels=settings.namespace_labels,
            unreadable=str(err)[:300],
        )
    clusters = [_parse(clusterpolicy_api.ClusterPolicy, item) for item in items]
    tokens = tool_calls = 0
    if any(c.spec.namespace_budgets is not None for c in clusters):
        published = [_usage(item) for item in cluster.list_agents()]
        tokens, tool_calls = governance.namespace_usage(
            published, agent.metadata.name or "", settings.run_name, now
        )
    return governing.PolicySet(
        policies=tuple(parsed),
        cluster_policies=tuple(clusters),
        namespace_labels=settings.namespace_labels,
        namespace_tokens=tokens,
        namespace_tool_calls=tool_calls,
    )


def _parse(model: type[_P], item: _Obj) -> _P:
    try:
        return model.from_dict(item)
    except pydantic.ValidationError as err:
        # A Policy we cannot read might deny: fail closed for every call.
        name = (item.get("metadata") or {}).get("name")
        kind = model.__name__
        raise errors.PermanentFailure(
            f"Invalid{kind}", f"{kind} {name} does not parse: {str(err)[:300]}"
        ) from err


def _usage(item: _Obj) -> tuple[str, agent_api.AgentUsage | None]:
    """An Agent's name and published hourly usage (written by the operator, never a tenant)."""
    name = str((item.get("metadata") or {}).get("name") or "")
    raw = (item.get("status") or {}).get("usage")
    if raw is None:
        return name, None
    try:
        return name, agent_api.AgentUsage.model_validate(raw)
    except pydantic.ValidationError as err:
        # Usage we cannot count might exhaust a namespace budget: fail closed.
        raise errors.PermanentFailure(
            "InvalidAgentUsage", f"Agent {name} status.usage does not parse: {str(err)[:300]}"
        ) from err


def read_tools(cluster: kubeapi.ClusterAPI, names: list[str]) -> dict[str, tool_api.Tool]:
    """The namespace's Tools among ``names`` that parse, by name."""
    found: dict[str, tool_api.Tool] = {}
    for item in cluster.list_tools():
        name = (item.get("metadata") or {}).get("name")
        if name not in names:
            continue
        try:
            found[name] = tool_api.Tool.from_dict(item)
        except pydantic.ValidationError:
            log.warning("Ignored invalid tool", extra={"fields": {"tool": name}})
    return found


def read_tool(cluster: kubeapi.ClusterAPI, name: str) -> tool_api.Tool | None:
    """One Tool, or None when it is gone or does not parse."""
    try:
        return tool_api.Tool.from_dict(cluster.get_tool(name))
    except kube.NotFound:
        return None
    except pydantic.ValidationError:
        return None


def cel_view(obj: _Obj) -> _Obj:
    """An object as CEL sees it: without managedFields, which nobody should write rules on."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}
