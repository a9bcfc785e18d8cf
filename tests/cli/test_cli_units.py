"""The command line's own output, without a cluster: what a user is told while a Run waits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bosun import cli, kube, ops


def test_a_waiting_run_names_the_pending_call_and_the_commands_that_decide_it() -> None:
    run = {
        "metadata": {"name": "refund-1", "namespace": "team-a"},
        "status": {
            "phase": "AwaitingApproval",
            "attempts": [{"number": 1}],
            "pendingApprovals": [
                {
                    "callHash": "e5ae54b4d295" + "0" * 52,
                    "tool": "issue-refund",
                    "args": {"amount": 500, "orderId": "A-1"},
                    "policy": "refunds",
                    "rule": "approve-large",
                    "expiryTime": "2026-12-01T11:00:00Z",
                }
            ],
        },
    }
    text = cli._describe(run)
    assert text.splitlines()[0] == "phase=AwaitingApproval attempt=1"
    assert 'issue-refund {"amount":500,"orderId":"A-1"}' in text
    assert "policy refunds, rule approve-large" in text
    assert "bosun approve -n team-a refund-1 e5ae54b4d295" in text
    assert "bosun deny -n team-a refund-1 e5ae54b4d295" in text


def test_a_duplicate_run_names_the_run_it_duplicates() -> None:
    run = {
        "metadata": {"name": "b", "namespace": "n"},
        "status": {"phase": "Duplicate", "duplicateOf": "a"},
    }
    assert cli._describe(run) == "phase=Duplicate duplicateOf=a"


def _rest_serving(run: dict[str, Any], patches: list[httpx.Request]) -> kube.Rest:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            patches.append(request)
        return httpx.Response(200, json=run)

    return kube.Rest(
        kube.Credentials(server="https://api.test"), transport=httpx.MockTransport(answer)
    )


def test_redrive_refuses_a_run_whose_deadline_has_passed() -> None:
    run = {
        "metadata": {"name": "late", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"agentRef": {"name": "a"}, "deadlineSeconds": 60},
        "status": {"phase": "Failed"},
    }
    patches: list[httpx.Request] = []
    with pytest.raises(ops.OpsError, match="passed its deadline"):
        ops.redrive(_rest_serving(run, patches), "n", "late")
    assert patches == []
    fresh = {**run, "spec": {"agentRef": {"name": "a"}, "deadlineSeconds": 10**9}}
    assert ops.redrive(_rest_serving(fresh, patches), "n", "late")
    assert len(patches) == 1
