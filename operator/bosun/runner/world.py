"""What the loop reads from the API before each step: its Run, Agent, Policies and Tools.

Each read parses what a tenant wrote with the API models and turns what cannot be used into the
attempt's end: a deleted, replaced, cancelled or suspended Run ends it as cancelled; an Agent
that is gone or does not parse, and a Policy that does not parse (it might deny), end it as a
permanent failure, so governance fails closed. A Tool that does not parse is skipped (the call
to it is then denied as not found).
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic

from bosun import kube
from bosun.api import agent as agent_api
from bosun.api import policy as policy_api
from bosun.api import run as run_api
from bosun.api import tool as tool_api
from bosun.runner import config, errors, kubeapi

__all__ = ["cel_view", "read_agent", "read_policies", "read_run", "read_tool", "read_tools"]

log = logging.getLogger("bosun.runner.loop")

_Obj = dict[str, Any]


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


def read_policies(cluster: kubeapi.ClusterAPI) -> list[policy_api.Policy]:
    """Every Policy of the namespace; one that does not parse ends the attempt."""
    parsed = []
    for item in cluster.list_policies():
        try:
            parsed.append(policy_api.Policy.from_dict(item))
        except pydantic.ValidationError as err:
            # A Policy we cannot read might deny: fail closed for every call.
            name = (item.get("metadata") or {}).get("name")
            raise errors.PermanentFailure(
                "InvalidPolicy", f"Policy {name} does not parse: {str(err)[:300]}"
            ) from err
    return parsed


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
