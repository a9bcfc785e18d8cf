"""The real operator runs the real runner in an emulated Job pod, end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bosun.dev import testing
from bosun.dev.servers import tools
from bosun.runner import approvals, kubeapi

from . import harness

pytestmark = pytest.mark.cluster


def _until_phase(
    control_plane: testing.ControlPlaneHandle, kube: harness.Harness, run: str, *phases: str
) -> dict[str, Any]:
    """The Run's status once its phase is one of ``phases`` (explaining the namespace if not)."""
    status: dict[str, Any] = testing.until(
        lambda: (s := kube.status(run)).get("phase") in phases and s,
        120,
        what=f"Run {run} to reach {' or '.join(phases)}",
        explain=lambda: control_plane.explain_namespace(kube.namespace),
    )
    return status


def test_operator_job_runs_the_runner_to_success_with_least_privilege(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    servers: Callable[[Any], Any],
) -> None:
    toolbox = servers(tools.ToolServer({"greet": lambda a: {"greeting": f"hi {a['name']}"}}))
    script = [
        {"toolCalls": [{"tool": "greet", "args": {"name": "ada"}}]},
        {"reply": "I greeted Ada."},
    ]
    kube.agent("greeter", {"provider": "scripted", "script": script}, ["greet"])
    kube.http_tool("greet", toolbox.url_for("greet"))
    kube.allow_all()
    kube.create(
        {
            "kind": "Run",
            "metadata": {"name": "hello"},
            "spec": {"agentRef": {"name": "greeter"}, "input": "greet ada"},
        }
    )

    operator = testing.start_operator(
        control_plane,
        kube.namespace,
        BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]',
        BOSUN_LEASE_DURATION_SECONDS="6",
    )
    try:
        status = _until_phase(control_plane, kube, "hello", "Succeeded", "Failed", "DeadLettered")
    finally:
        operator.stop()

    assert status["phase"] == "Succeeded", status
    assert status["output"] == "I greeted Ada."
    assert status["usage"]["toolCalls"] == 1 and status["steps"] == 2
    assert toolbox.executions == [("greet", {"name": "ada"})]
    assert [r["type"] for r in kube.journal("hello")][-1] == "runFinished"


def test_hourly_budgets_hold_across_runs_of_an_agent(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    servers: Callable[[Any], Any],
) -> None:
    """runsPerHour holds Runs in the queue; toolCallsPerHour and tokensPerHour count every Run
    of the Agent (published by the operator in the Agent's status.usage), not just one."""
    toolbox = servers(tools.ToolServer({"greet": lambda a: {"greeting": f"hi {a['name']}"}}))
    script = [
        {"toolCalls": [{"tool": "greet", "args": {"name": "ada"}}]},
        {"reply": "done"},
    ]
    kube.agent("caller", {"provider": "scripted", "script": script}, ["greet"], labels={"t": "c"})
    kube.agent(
        "talker", {"provider": "scripted", "script": [{"reply": "hi"}]}, [], labels={"t": "t"}
    )
    kube.http_tool("greet", toolbox.url_for("greet"))
    kube.allow_all()
    kube.policy(
        "caller-hourly",
        [],
        agentSelector={"matchLabels": {"t": "c"}},
        budgets={"runsPerHour": 3, "toolCallsPerHour": 2},
    )
    kube.policy(
        "talker-hourly", [], agentSelector={"matchLabels": {"t": "t"}}, budgets={"tokensPerHour": 1}
    )
    operator = testing.start_operator(
        control_plane,
        kube.namespace,
        BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]',
        BOSUN_LEASE_DURATION_SECONDS="6",
        BOSUN_USAGE_INTERVAL_SECONDS="1",
    )

    def explain() -> str:
        return control_plane.explain_namespace(kube.namespace)

    def usage(agent: str, **expected: Any) -> dict[str, Any]:
        def published() -> dict[str, Any]:
            found = dict((kube.get("Agent", agent).get("status") or {}).get("usage") or {})
            found.setdefault("activeRuns", [])  # the API server drops an empty list
            return found

        return testing.until(
            lambda: (u := published()) and all(u.get(k) == v for k, v in expected.items()) and u,
            60,
            what=f"Agent {agent} usage {expected}",
            explain=explain,
        )

    try:
        # Two Runs use the caller's two tool calls per hour; the third Run's call is denied.
        for name in ("c1", "c2"):
            kube.submit_run(name, "caller", "go")
            assert kube.until_finished(name)["usage"]["toolCalls"] == 1
        usage("caller", toolCalls=2)
        kube.submit_run("c3", "caller", "go")
        third = kube.until_finished("c3")
        assert third["phase"] == "Succeeded" and third["usage"]["deniedCalls"] == 1, third
        denial = [d for d in kube.decisions("c3") if d["outcome"] == "denied"]
        assert [(d["reason"], d["policy"], d["rule"]) for d in denial] == [
            ("BudgetExceeded", "caller-hourly", "budgets.toolCallsPerHour")
        ], denial
        assert "may make at most 2 tool calls per hour and made 2" in denial[0]["message"]
        assert len(toolbox.executions) == 2

        # runsPerHour is 3: the fourth Run waits in the queue and says why.
        used = usage("caller", runs=3, activeRuns=[])
        assert used["toolCalls"] == 2 and used["windowSeconds"] == 3600
        kube.submit_run("c4", "caller", "go")
        queued = testing.until(
            lambda: (c := kube.condition("c4", "Queued")) and c["reason"] == "BudgetExceeded" and c,
            60,
            what="c4 to be held by runsPerHour",
            explain=explain,
        )
        assert "Policy caller-hourly allows 3 Runs of Agent caller per hour" in queued["message"]
        [held] = [e for e in kube.events("c4") if e.reason == "BudgetExceeded"]
        assert held.message.startswith(queued["message"] + "; the next may start at ")
        assert kube.status("c4").get("phase") == "Queued" and not kube.status("c4").get("attempts")

        # Raising the budget lets it start at once.
        kube.custom.patch_namespaced_custom_object(
            "bosun.dev",
            "v1alpha1",
            kube.namespace,
            "policies",
            "caller-hourly",
            {"spec": {"budgets": {"runsPerHour": 4}}},
        )
        assert kube.until_finished("c4")["usage"]["deniedCalls"] == 1
        usage("caller", runs=4, activeRuns=[])

        # The talker may use one token per hour: its first Run answers, its second may not
        # call the model at all.
        kube.submit_run("t1", "talker", "go")
        first = kube.until_finished("t1")
        assert first["phase"] == "Succeeded" and first["usage"]["totalTokens"] >= 1, first
        usage("talker", tokens=first["usage"]["totalTokens"])
        kube.submit_run("t2", "talker", "go")
        second = kube.until_finished("t2")
        assert second["phase"] == "Failed", second
        assert second["usage"]["modelCalls"] == 0
        failed = next(c for c in second["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "BudgetExceeded", failed
    finally:
        operator.stop()
    assert len(toolbox.executions) == 2


def test_a_run_waiting_for_approval_shows_phase_awaiting_approval_until_decided(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    servers: Callable[[Any], Any],
) -> None:
    toolbox = servers(tools.ToolServer({"refund": lambda a: {"refunded": a["amount"]}}))
    script = [
        {"toolCalls": [{"tool": "refund", "args": {"amount": 500}}]},
        {"reply": "refunded"},
    ]
    kube.agent("clerk", {"provider": "scripted", "script": script}, ["refund"])
    kube.http_tool("refund", toolbox.url_for("refund"))
    kube.policy("ask", [{"name": "ask", "tools": ["refund"], "action": "RequireApproval"}])
    kube.create(
        {
            "kind": "Run",
            "metadata": {"name": "pay"},
            "spec": {"agentRef": {"name": "clerk"}, "input": "refund 500"},
        }
    )
    operator = testing.start_operator(
        control_plane, kube.namespace, BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]'
    )
    try:
        waiting = _until_phase(control_plane, kube, "pay", "AwaitingApproval")
        assert toolbox.executions == []
        pending = waiting["pendingApprovals"][0]
        condition = next(c for c in waiting["conditions"] if c["type"] == "AwaitingApproval")
        assert (
            f"bosun approve -n {kube.namespace} pay {pending['callHash'][:12]}"
            in (condition["message"])
        )
        admin = kubeapi.Cluster(kube.namespace, control_plane.rest())
        approvals.create_approval(admin, "pay", pending["callHash"][:12], "Approved")
        status = _until_phase(control_plane, kube, "pay", "Succeeded", "Failed")
    finally:
        operator.stop()
    assert status["phase"] == "Succeeded", status
    assert toolbox.executions == [("refund", {"amount": 500})]
