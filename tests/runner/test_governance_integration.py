"""Governance and approvals enforced by the runner on the real control plane."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bosun import contract
from bosun.api import approval as approval_api
from bosun.dev import testing
from bosun.dev.servers import tools
from bosun.runner import approvals, kubeapi

from . import harness

pytestmark = pytest.mark.cluster

AMOUNT = {
    "type": "object",
    "properties": {"amount": {"type": "number"}},
    "required": ["amount"],
}


def _payments(start: Callable[[Any], Any]) -> tools.ToolServer:
    return start(
        tools.ToolServer(
            {
                "charge": lambda a: {"charged": a["amount"]},
                "refund": lambda a: {"refunded": a["amount"]},
                "lookup": lambda a: {"found": True},
                "secret": lambda a: {"leaked": True},
            }
        )
    )


def test_unlisted_denied_cel_error_invalid_and_over_budget_calls_never_reach_the_tool(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    toolbox = _payments(servers)
    script = [
        {"toolCalls": [{"tool": "secret", "args": {}}]},
        {"toolCalls": [{"tool": "refund", "args": {"amount": 5}}]},
        {"toolCalls": [{"tool": "lookup", "args": {"amount": 1}}]},
        {"toolCalls": [{"tool": "charge", "args": {"amount": "lots"}}]},
        {"toolCalls": [{"tool": "charge", "args": {"amount": 1}}]},
        {"toolCalls": [{"tool": "charge", "args": {"amount": 2}}]},
        {"reply": "done"},
    ]
    kube.agent("payer", {"provider": "scripted", "script": script}, ["charge", "refund", "lookup"])
    for name in ("charge", "refund", "lookup", "secret"):
        kube.http_tool(name, toolbox.url_for(name), AMOUNT)
    kube.policy(
        "payments",
        [
            {
                "name": "no-refunds",
                "tools": ["refund"],
                "action": "Deny",
                "message": "refunds go through support",
            },
            {
                "name": "broken-rule",
                "tools": ["lookup"],
                "when": "args.missing == 1",
                "action": "Allow",
            },
            {"name": "charges", "tools": ["charge", "lookup"], "action": "Allow"},
        ],
        budgets={"toolCallsPerHour": 1},
    )
    kube.run("pay", "payer")

    # Small journal chunks: the run's records span several RunJournals under the runner's RBAC.
    proc = kube.start_runner("pay", env={"BOSUN_RUNNER_JOURNAL_CHUNK_BYTES": "700"})
    assert proc.wait(120) == contract.ExitCode.SUCCEEDED, kube.explain()
    chunks = [
        chunk["metadata"]["name"]
        for chunk in kube.list("RunJournal")
        if chunk["metadata"]["name"].startswith("bosun-journal-pay-")
    ]
    assert len(chunks) > 1

    assert toolbox.executions == [("charge", {"amount": 1})]
    assert toolbox.seen == {}
    denied = [d for d in kube.decisions("pay") if d["outcome"] == "denied"]
    assert [(d["tool"], d["reason"], d["policy"], d["rule"]) for d in denied] == [
        ("secret", "ToolNotListed", None, "Agent.spec.tools"),
        ("refund", "PolicyDenied", "payments", "no-refunds"),
        ("lookup", "CELError", "payments", "broken-rule"),
        ("charge", "InvalidArguments", None, "Tool.spec.inputSchema"),
        ("charge", "BudgetExceeded", "payments", "budgets.toolCallsPerHour"),
    ]
    logged = [
        line
        for line in proc.lines()
        if line["msg"] == "Decided call" and line["decision"] == "denied"
    ]
    assert [(x["tool"], x["reason"], x.get("policy"), x["rule"], x["run"]) for x in logged] == [
        (d["tool"], d["reason"], d["policy"], d["rule"], "pay") for d in denied
    ]
    assert all(x["level"] == "WARNING" and x["step"] >= 1 for x in logged)
    status = kube.status("pay")
    assert status["usage"]["deniedCalls"] == 5
    assert status["usage"]["toolCalls"] == 1
    assert status["steps"] == 7
    reasons = [e.reason for e in kube.events("pay")]
    assert reasons.count("ToolDenied") == 5
    # The model was told why, so it can adapt.
    tool_outcome = [r for r in kube.journal("pay") if r["type"] == "decision"][1]
    assert tool_outcome["message"] == "refunds go through support"


def _approval_setup(kube: harness.Harness, toolbox: tools.ToolServer, amount: int) -> None:
    script = [
        {"toolCalls": [{"tool": "refund", "args": {"amount": amount}}]},
        {"reply": "refund handled"},
    ]
    kube.agent("support", {"provider": "scripted", "script": script}, ["refund"])
    kube.http_tool("refund", toolbox.url_for("refund"), AMOUNT)
    kube.policy(
        "refunds",
        [
            {
                "name": "big-refunds",
                "tools": ["refund"],
                "when": "double(args.amount) > 100.0",
                "action": "RequireApproval",
            },
            {"name": "refunds", "tools": ["refund"], "action": "Allow"},
        ],
    )


def _awaiting(kube: harness.Harness, run: str) -> dict[str, Any] | None:
    condition = kube.condition(run, "AwaitingApproval")
    if condition is None or condition["status"] != "True":
        return None
    return kube.status(run)


def test_approval_pauses_the_run_and_only_the_matching_call_hash_resumes_it(
    kube: harness.Harness, servers: Callable[[Any], Any], control_plane: testing.ControlPlaneHandle
) -> None:
    toolbox = _payments(servers)
    _approval_setup(kube, toolbox, 500)
    kube.run("big", "support")
    proc = kube.start_runner("big")

    status = testing.until(
        lambda: _awaiting(kube, "big"), 60, what="AwaitingApproval=True", explain=kube.explain
    )
    expected = approval_api.call_hash("refund", {"amount": 500})
    [pending] = status["pendingApprovals"]
    assert pending["callHash"] == expected
    assert (pending["tool"], pending["args"], pending["policy"], pending["rule"]) == (
        "refund",
        {"amount": 500},
        "refunds",
        "big-refunds",
    )
    testing.until(
        lambda: "ApprovalRequested" in [e.reason for e in kube.events("big")],
        30,
        what="the ApprovalRequested Event",
        explain=kube.explain,
    )

    # Approving a different call (a refund of 10) must not resume this one.
    admin = kubeapi.Cluster(kube.namespace, control_plane.rest())
    other = approval_api.call_hash("refund", {"amount": 10})
    kube.create(
        {
            "kind": "Approval",
            "metadata": {"name": "wrong-call"},
            "spec": {
                "runName": "big",
                "callHash": other,
                "decision": "Approved",
                "approvedBy": "someone",
            },
        }
    )
    testing.until(
        lambda: any(d["outcome"] == "approvalIgnored" for d in kube.decisions("big")),
        30,
        what="the runner to see and ignore the mismatched approval",
        explain=kube.explain,
    )
    assert toolbox.executions == []
    assert proc.proc.poll() is None
    assert _awaiting(kube, "big") is not None

    # `bosun approve big <prefix>` resolves the pending call and records who decided.
    approvals.create_approval(admin, "big", expected[:10], "Approved", reason="customer is VIP")
    assert proc.wait(60) == contract.ExitCode.SUCCEEDED, kube.explain()

    assert toolbox.executions == [("refund", {"amount": 500})]
    granted = [d for d in kube.decisions("big") if d["outcome"] == "approvalGranted"]
    assert len(granted) == 1
    assert granted[0]["callHash"] == expected
    assert granted[0]["approvedBy"]
    assert kube.condition("big", "AwaitingApproval")["status"] == "False"
    assert kube.status("big")["pendingApprovals"] == []
    assert kube.status("big")["output"] == "refund handled"
    admin.close()


def test_denied_approval_refuses_the_call_and_the_run_goes_on(
    kube: harness.Harness, servers: Callable[[Any], Any], control_plane: testing.ControlPlaneHandle
) -> None:
    toolbox = _payments(servers)
    _approval_setup(kube, toolbox, 900)
    kube.run("deny-me", "support")
    proc = kube.start_runner("deny-me")
    status = testing.until(
        lambda: _awaiting(kube, "deny-me"), 60, what="AwaitingApproval=True", explain=kube.explain
    )

    admin = kubeapi.Cluster(kube.namespace, control_plane.rest())
    approvals.create_approval(
        admin,
        "deny-me",
        status["pendingApprovals"][0]["callHash"],
        "Denied",
        reason="too much",
        approved_by="alice",
    )
    assert proc.wait(60) == contract.ExitCode.SUCCEEDED, kube.explain()

    assert toolbox.executions == []
    [denial] = [d for d in kube.decisions("deny-me") if d["outcome"] == "approvalDenied"]
    assert (denial["approvedBy"], denial["approvalReason"]) == ("alice", "too much")
    assert kube.status("deny-me")["usage"]["deniedCalls"] == 1
    assert "ApprovalDenied" in [e.reason for e in kube.events("deny-me")]
    admin.close()


def test_small_refund_needs_no_approval(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    toolbox = _payments(servers)
    _approval_setup(kube, toolbox, 50)
    kube.run("small", "support")
    assert kube.start_runner("small").wait(60) == contract.ExitCode.SUCCEEDED, kube.explain()
    assert toolbox.executions == [("refund", {"amount": 50})]
    assert kube.condition("small", "AwaitingApproval")["status"] == "False"


def _repeat_setup(kube: harness.Harness, toolbox: tools.ToolServer) -> None:
    _approval_setup(kube, toolbox, 500)
    same = {"toolCalls": [{"tool": "refund", "args": {"amount": 500}}]}
    kube.delete("Agent", "support")
    kube.agent(
        "support", {"provider": "scripted", "script": [same, same, {"reply": "done"}]}, ["refund"]
    )


def _pending_at(kube: harness.Harness, run: str, step: int) -> dict[str, Any] | None:
    status = _awaiting(kube, run)
    pending = (status or {}).get("pendingApprovals") or []
    return pending[0] if pending and pending[0].get("step") == step else None


def test_one_approval_decides_one_call_and_an_identical_repeat_asks_again(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    control_plane: testing.ControlPlaneHandle,
    chart_user_roles: dict[str, str],
) -> None:
    toolbox = _payments(servers)
    _repeat_setup(kube, toolbox)
    # A real approver: a user bound to the chart's approver role in this namespace only.
    control_plane.bind(kube.namespace, "carol@example.com", chart_user_roles["approver"])
    carol = kubeapi.Cluster(kube.namespace, control_plane.user_rest("carol@example.com"))
    kube.run("twice", "support")
    proc = kube.start_runner("twice")
    try:
        first = testing.until(
            lambda: _pending_at(kube, "twice", 1), 60, what="step 1 paused", explain=kube.explain
        )
        approvals.create_approval(carol, "twice", first["callHash"][:12], "Approved")
        # The model repeats the identical refund: the first Approval does not cover it.
        second = testing.until(
            lambda: _pending_at(kube, "twice", 2), 60, what="step 2 paused", explain=kube.explain
        )
        assert second["callHash"] == first["callHash"]
        assert toolbox.executions == [("refund", {"amount": 500})]
        assert proc.proc.poll() is None
        approvals.create_approval(carol, "twice", second["callHash"][:12], "Approved")
        assert proc.wait(60) == contract.ExitCode.SUCCEEDED, kube.explain()
    finally:
        carol.close()
    assert toolbox.executions == [("refund", {"amount": 500})] * 2
    granted = [d for d in kube.decisions("twice") if d["outcome"] == "approvalGranted"]
    assert [d["step"] for d in granted] == [1, 2]
    assert len({d["approval"] for d in granted}) == 2
    for name in {d["approval"] for d in granted}:
        approval = kube.get("Approval", name)
        assert approval["spec"]["runUID"] == kube.uids["twice"]
        assert approval["spec"]["approvedBy"] == "carol@example.com"
        assert [o["uid"] for o in approval["metadata"]["ownerReferences"]] == [kube.uids["twice"]]


def test_a_run_recreated_under_the_same_name_inherits_no_approval(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    toolbox = _payments(servers)
    _approval_setup(kube, toolbox, 500)
    hash_ = approval_api.call_hash("refund", {"amount": 500})
    kube.run("again", "support")
    old_uid = kube.uids["again"]
    # What a deleted predecessor left: a legacy Approval (no runUID) and one bound to its UID.
    for name, extra in (("legacy", {}), ("bound-old", {"runUID": old_uid})):
        kube.create(
            {
                "kind": "Approval",
                "metadata": {"name": name},
                "spec": {
                    "runName": "again",
                    "callHash": hash_,
                    "decision": "Approved",
                    "approvedBy": "someone",
                    **extra,
                },
            }
        )
    kube.delete("Run", "again")
    testing.until(lambda: _gone(kube, "again"), 60, what="the old Run to be deleted")
    kube.submit_run("again", "support")
    assert kube.uids["again"] != old_uid
    proc = kube.start_runner("again")
    try:
        testing.until(
            lambda: (
                {"legacy", "bound-old"}
                <= {
                    d.get("approval")
                    for d in kube.decisions("again")
                    if d["outcome"] == "approvalIgnored"
                }
            ),
            60,
            what="both inherited Approvals to be ignored",
            explain=kube.explain,
        )
        assert _awaiting(kube, "again") is not None
        assert toolbox.executions == []
        ignored = {
            d["approval"]: d["message"]
            for d in kube.decisions("again")
            if d["outcome"] == "approvalIgnored"
        }
        assert "older than this Run" in ignored["legacy"]
        assert "runUID differs" in ignored["bound-old"]
    finally:
        proc.kill()


def _gone(kube: harness.Harness, run: str) -> bool:
    try:
        kube.get("Run", run)
    except Exception:
        return True
    return False
