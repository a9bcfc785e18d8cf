"""The command line's own output, without a cluster: what a user is told while a Run waits."""

from __future__ import annotations

from bosun import cli


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
