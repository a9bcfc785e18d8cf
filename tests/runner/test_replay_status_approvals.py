"""Replay of journals, status rendering, approval matching and the trace rendering."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from bosun.api import approval as approval_api
from bosun.runner import approvals, conversation, records, replay, runtrace, status

T0 = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)


def _turn(step: int, *calls: tuple[str, str], text: str = "", tokens: int = 10) -> records.Record:
    turn = conversation.AssistantTurn(
        text,
        tuple(conversation.ToolCall(cid, name, {"n": step}) for cid, name in calls),
        conversation.TokenUsage(tokens, 2),
        "m",
    )
    return records.ModelResponse(step=step, turn=turn, time=T0)


def _allowed(step: int, call_id: str) -> records.Decision:
    return records.Decision(
        step=step,
        kind="tool",
        outcome="allowed",
        action="Allow",
        reason="PolicyAllowed",
        message="",
        call_id=call_id,
        tool="charge",
        time=T0,
    )


def _records() -> list[records.Record]:
    return [
        records.AttemptStarted(time=T0),
        _turn(1, ("a", "charge"), ("b", "refund")),
        _allowed(1, "a"),
        records.ToolStarted(step=1, call_id="a", tool="charge", idempotency_key="k", time=T0),
        records.ToolResult(step=1, call_id="a", tool="charge", content="ok", time=T0),
        records.Decision(
            step=1,
            kind="tool",
            call_id="b",
            tool="refund",
            outcome="denied",
            action="Deny",
            reason="PolicyDenied",
            message="no",
            policy="p",
            rule="r",
            time=T0,
        ),
        _turn(2, ("c", "charge")),
        records.ToolStarted(step=2, call_id="c", tool="charge", idempotency_key="k2", time=T0),
    ]


def test_replay_rebuilds_the_conversation_and_finds_the_unknown_call() -> None:
    state = replay.State.build(_records())
    messages = state.messages("task")
    assert isinstance(messages[0], conversation.UserMessage)
    results = messages[2]
    assert isinstance(results, conversation.ToolResults)
    assert [(o.call_id, o.content, o.is_error) for o in results.outcomes] == [
        ("a", "ok", False),
        ("b", "call denied (PolicyDenied): no [policy p, rule r]", True),
    ]
    [open_call] = state.open_calls()
    assert open_call.call.id == "c" and open_call.unknown
    assert state.usage() == {
        "inputTokens": 20,
        "outputTokens": 4,
        "totalTokens": 24,
        "modelCalls": 2,
        "toolCalls": 2,
        "deniedCalls": 1,
    }


def test_the_hourly_window_counts_only_recent_records() -> None:
    state = replay.State.build(_records())
    now = datetime.datetime(2026, 1, 1, 12, 30, tzinfo=datetime.UTC)
    assert state.window(now) == {"toolCalls": 2, "tokens": 24}
    later = datetime.datetime(2026, 1, 1, 13, 30, tzinfo=datetime.UTC)
    assert state.window(later) == {"toolCalls": 0, "tokens": 0}


def test_status_carries_every_runner_owned_field_and_the_condition() -> None:
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    pending = status.Pending("h" * 64, "refund", {"amount": 5}, "p", "r", moment, moment)
    body = status.render(
        "run",
        status.Report({"modelCalls": 1}, 1, None, (pending,), "ApprovalRequested", "approve it"),
        moment,
    )
    assert body["metadata"] == {"name": "run"}
    got = body["status"]
    assert got["steps"] == 1 and "output" not in got
    assert got["pendingApprovals"][0]["callHash"] == "h" * 64
    assert got["conditions"] == [
        {
            "type": "AwaitingApproval",
            "status": "True",
            "reason": "ApprovalRequested",
            "message": "approve it",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]


def _approval(name: str, call: str, decision: str, run: str = "r") -> approval_api.Approval:
    return approval_api.Approval.from_dict(
        {
            "kind": "Approval",
            "metadata": {"name": name},
            "spec": {"runName": run, "callHash": call, "decision": decision, "approvedBy": "u"},
        }
    )


def test_an_approval_binds_to_run_and_call_hash_and_a_denial_wins() -> None:
    mine = approvals.call_hash("refund", {"amount": 100})
    assert mine != approvals.call_hash("refund", {"amount": 10000})
    assert mine == approvals.call_hash("refund", {"amount": 100})
    others = [
        _approval("x", approvals.call_hash("refund", {"amount": 10000}), "Approved"),
        _approval("y", mine, "Approved", run="other"),
    ]
    binding = approvals.Binding("r", "aaaa-0001", None, 1, "c1", mine)
    assert approvals.decision_for(others, binding) is None
    both = [*others, _approval("ok", mine, "Approved"), _approval("no", mine, "Denied")]
    found = approvals.decision_for(both, binding)
    assert found is not None and found.metadata.name == "no"


RUN_CREATED = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)
HASH = "ab" * 32


def _bound(name: str = "a", created: str = "2026-01-01T12:00:05Z", **spec: Any) -> Any:
    owners = spec.pop("owners", None)
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if owners is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "bosun.dev/v1alpha1", "kind": "Run", "name": "r", "uid": uid}
            for uid in owners
        ]
    body = {"runName": "r", "callHash": HASH, "decision": "Approved", "approvedBy": "u", **spec}
    return approval_api.Approval.from_dict({"kind": "Approval", "metadata": metadata, "spec": body})


@pytest.mark.parametrize(
    ("approval", "refused"),
    [
        (_bound(runUID="aaaa-0001", step=3, callID="c1", owners=["aaaa-0001"]), None),
        (_bound(runUID="aaaa-0001", step=2, callID="c0"), "decides another call"),
        (_bound(runUID="aaaa-0001", step=3, callID="c9"), "decides another call"),
        (_bound(runUID="bbbb-0002", step=3, callID="c1"), "runUID differs"),
        (_bound(runUID="aaaa-0001", step=3, callID="c1", owners=["bbbb-0002"]), "owned by another"),
        (_bound(runName="other"), "for Run other"),
        (_bound(callHash="cd" * 32), "callHash does not match"),
        # Legacy Approvals (no runUID): once each, and never one older than the Run.
        (_bound(), None),
        (_bound(created="2026-01-01T11:59:00Z"), "older than this Run"),
        (_bound(created="2026-01-01T12:00:00Z"), "older than this Run"),
        (_bound(name="used"), "already used by another call"),
    ],
)
def test_an_approval_decides_one_call_of_one_run(approval: Any, refused: str | None) -> None:
    binding = approvals.Binding("r", "aaaa-0001", RUN_CREATED, 3, "c1", HASH, frozenset({"used"}))
    why = binding.refuses(approval)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_the_journal_says_which_approvals_other_calls_used() -> None:
    same = {"amount": 5}
    calls = (
        conversation.ToolCall("c1", "refund", same),
        conversation.ToolCall("c2", "refund", same),
    )
    turn = conversation.AssistantTurn("", calls)
    granted = [
        records.Decision(
            step=1,
            kind="tool",
            tool="refund",
            call_id=call_id,
            action="RequireApproval",
            reason="r",
            message="",
            outcome=records.Outcome.APPROVAL_GRANTED,
            approval=name,
        )
        for call_id, name in (("c1", "first"),)
    ]
    state = replay.State.build([records.ModelResponse(step=1, turn=turn), *granted])
    assert state.approvals_used(besides=state.calls["1:c2"]) == {"first"}
    assert state.approvals_used(besides=state.calls["1:c1"]) == frozenset()


def test_a_call_is_named_by_its_hash_or_a_unique_pending_prefix() -> None:
    first, second = "abcdef1" + "0" * 57, "abcdef2" + "0" * 57
    run = {
        "metadata": {"name": "r"},
        "status": {"pendingApprovals": [{"callHash": first}, {"callHash": second}]},
    }
    assert approvals.resolve_call(run, "ABCDEF1") == first
    assert approvals.resolve_call(run, "f" * 64) == "f" * 64
    with pytest.raises(ValueError, match="matches 2 pending calls"):
        approvals.resolve_call(run, "abcdef")
    with pytest.raises(ValueError, match="matches 0"):
        approvals.resolve_call(run, "ffffff")


@pytest.mark.parametrize("call", ["", "  ", "a", "ab", "ab000", "zz0000", "ab00-0", "$CALL"])
def test_an_empty_short_or_non_hex_call_decides_nothing(call: str) -> None:
    run = {
        "metadata": {"name": "r"},
        "status": {"pendingApprovals": [{"callHash": "ab" + "0" * 62, "tool": "refund"}]},
    }
    with pytest.raises(ValueError, match="is not a call hash") as caught:
        approvals.resolve_call(run, call)
    assert "ab0000000000 (tool refund)" in str(caught.value)


def test_a_call_already_decided_says_so_and_by_whom() -> None:
    run = {"metadata": {"name": "r"}, "status": {"pendingApprovals": []}}
    decided = [_approval("r-ab00", "ab" + "0" * 62, "Approved")]
    with pytest.raises(ValueError, match="already decided: Approved by"):
        approvals.resolve_call(run, "ab0000", decided)


def test_trace_renders_the_decision_path() -> None:
    stamped = [
        dataclasses.replace(r, seq=n + 1, epoch=1, attempt=1) for n, r in enumerate(_records())
    ]
    stamped[0] = dataclasses.replace(stamped[0], pod="p", replayed_records=0)
    text = runtrace.render(stamped, "r")
    lines = text.splitlines()
    assert lines[0] == ("Run r: 2 model calls, 2 tool calls, 1 denied, 24 tokens (20 in / 4 out)")
    assert "model m → tool calls: charge, refund [10 in / 2 out" in lines[2]
    assert "denied — p/r" in lines[6] and ": no" in lines[6]
    assert (
        lines[-1].endswith("charge called (Idempotency-Key k2)")
        or "Idempotency-Key k2" in (lines[-1])
    )


def _stamped() -> list[records.Record]:
    stamped = [
        dataclasses.replace(r, seq=n + 1, epoch=1, attempt=1) for n, r in enumerate(_records())
    ]
    stamped[0] = dataclasses.replace(stamped[0], pod="p", replayed_records=0)
    return stamped


def test_trace_says_when_no_key_was_sent_and_how_an_unclosed_attempt_ended() -> None:
    stamped = _stamped()
    stamped[-1] = dataclasses.replace(stamped[-1], idempotency_key="")
    status = {"attempts": [{"number": 1, "outcome": "Lost", "reason": "LeaseExpired"}]}
    lines = runtrace.render(stamped, "r", status).splitlines()
    assert lines[-2].endswith("charge called (not idempotent: no key sent)")
    assert "attempt 1 ended Lost (LeaseExpired) without a journal record" in lines[-1]
    # Without the Run's status nothing is guessed.
    assert "ended Lost" not in runtrace.render(stamped, "r")


def test_trace_of_a_run_that_never_started_says_why() -> None:
    status = {
        "phase": "Pending",
        "conditions": [
            {"type": "Queued", "reason": "AgentNotFound", "message": "Agent a does not exist"}
        ],
    }
    lines = runtrace.render([], "r", status).splitlines()
    assert lines[0].startswith("Run r: 0 model calls")
    assert lines[1] == "  no attempt has started (phase Pending): Agent a does not exist"
