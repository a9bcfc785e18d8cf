"""Journal record types: JSON round trips, the format version, and records that cannot be read."""

from __future__ import annotations

import datetime
import typing
from typing import Any

import pytest

from bosun import contract
from bosun.runner import conversation, errors, journal, records

from . import test_loop

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=datetime.UTC)
STAMP: dict[str, Any] = {"seq": 7, "epoch": 3, "attempt": 2, "time": T0}
TURN = conversation.AssistantTurn(
    "",
    (
        conversation.ToolCall("c1", "charge", {"amount": 5}),
        conversation.ToolCall("c2", "x", {}, "bad"),
    ),
    conversation.TokenUsage(11, 4),
    "gpt",
    "tool_calls",
)

# One record of every type with every field set, and one with only what it needs.
FULL: list[records.Record] = [
    records.AttemptStarted(**STAMP, pod="runner-abc", replayed_records=12),
    records.ModelResponse(**STAMP, step=2, turn=TURN, duration_ms=420.5),
    records.Decision(
        **STAMP,
        step=2,
        kind="tool",
        outcome="approvalRequested",
        action="RequireApproval",
        reason="ApprovalRequired",
        message="a human must approve this call",
        policy="pay",
        rule="ask",
        call_id="c1",
        tool="charge",
        call_hash="h" * 64,
        decision_micros=40,
        requested_time=T0,
        expiry_time=T0 + datetime.timedelta(seconds=60),
        approval="yes",
        approval_call_hash="0" * 64,
        approved_by="bob",
        approval_reason="known",
        idempotency_key="k" * 32,
    ),
    records.ToolStarted(**STAMP, step=2, call_id="c1", tool="charge", idempotency_key="k" * 32),
    records.ToolResult(
        **STAMP,
        step=2,
        call_id="c1",
        tool="charge",
        content='{"ok": true}',
        is_error=True,
        status=502,
        duration_ms=35.0,
    ),
    records.OutputRejected(**STAMP, step=3, problems="the answer is not JSON"),
    records.RunFinished(**STAMP, output="done", reason="Answered"),
    records.AttemptEnded(**STAMP, reason="OutcomeUnknown", message="call c1", exit_code=14),
]
MINIMAL: list[records.Record] = [
    records.AttemptStarted(),
    records.ModelResponse(step=1, turn=conversation.AssistantTurn("hi")),
    records.Decision(
        step=3, kind="model", outcome="denied", action="Deny", reason="LimitReached", message="m"
    ),
    records.ToolStarted(step=1, call_id="c", tool="t", idempotency_key="k"),
    records.ToolResult(step=1, call_id="c", tool="t", content=""),
    records.OutputRejected(step=1, problems="p"),
    records.RunFinished(output=""),
    records.AttemptEnded(reason="Failed", exit_code=1),
]


def test_every_record_type_has_a_sample() -> None:
    kinds = set(typing.get_args(records.Record))
    assert {type(r) for r in FULL} == kinds
    assert {type(r) for r in MINIMAL} == kinds


@pytest.mark.parametrize("record", [*FULL, *MINIMAL], ids=lambda r: type(r).__name__)
def test_a_record_round_trips_through_json(record: records.Record) -> None:
    data = record.to_json()
    assert data["type"] == record.TYPE
    assert data["formatVersion"] == records.FORMAT_VERSION
    assert type(record).from_json(data) == record
    assert records.read(data) == record


def test_the_json_keys_are_the_journals_camel_case_keys() -> None:
    stamp = {"type", "formatVersion", "seq", "epoch", "attempt", "time"}
    keys = {type(r).__name__: set(r.to_json()) - stamp for r in FULL}
    assert keys == {
        "AttemptStarted": {"pod", "replayedRecords"},
        "ModelResponse": {"step", "turn", "durationMs"},
        "Decision": {
            "step",
            "kind",
            "outcome",
            "action",
            "reason",
            "message",
            "policy",
            "rule",
            "callId",
            "tool",
            "callHash",
            "decisionMicros",
            "requestedTime",
            "expiryTime",
            "approval",
            "approvalCallHash",
            "approvedBy",
            "approvalReason",
            "idempotencyKey",
        },
        "ToolStarted": {"step", "callId", "tool", "idempotencyKey"},
        "ToolResult": {"step", "callId", "tool", "content", "isError", "status", "durationMs"},
        "OutputRejected": {"step", "problems"},
        "RunFinished": {"output", "reason"},
        "AttemptEnded": {"reason", "message", "exitCode"},
    }
    assert FULL[0].to_json()["time"] == "2026-01-01T12:00:00.123+00:00"


def test_a_record_without_a_format_version_reads_as_version_1() -> None:
    stored = {
        "seq": 4,
        "epoch": 1,
        "attempt": 1,
        "time": "2026-01-01T00:16:40.000+00:00",
        "type": "toolStarted",
        "step": 1,
        "callId": "call-1-1",
        "tool": "charge",
        "idempotencyKey": "5813967af1251594b94961a58588a60d",
    }
    record = records.read(stored)
    assert isinstance(record, records.ToolStarted)
    assert record.format_version == 1
    assert (record.seq, record.call_id, record.idempotency_key) == (
        4,
        "call-1-1",
        stored["idempotencyKey"],
    )
    assert record.to_json() == {**stored, "formatVersion": 1}


def _future(**changes: Any) -> dict[str, Any]:
    return {**records.RunFinished(seq=3, output="x").to_json(), **changes}


@pytest.mark.parametrize(
    "stored",
    [
        _future(formatVersion=records.FORMAT_VERSION + 1),
        _future(formatVersion=99, type="somethingNew"),
        _future(type="checkpoint"),
        {k: v for k, v in _future().items() if k != "type"},
    ],
    ids=["newer-version", "newer-version-new-type", "unknown-type", "no-type"],
)
def test_a_newer_format_or_an_unknown_type_is_a_permanent_failure(stored: dict[str, Any]) -> None:
    with pytest.raises(records.Unreadable) as caught:
        records.read(stored)
    assert caught.value.reason == records.FORMAT_UNSUPPORTED == "JournalFormatUnsupported"
    assert isinstance(caught.value, errors.PermanentFailure)
    assert caught.value.exit_code == contract.ExitCode.FAILED_PERMANENT
    assert "journal record 3" in caught.value.message


def _decision(**changes: Any) -> dict[str, Any]:
    return {**FULL[2].to_json(), **changes}


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


MALFORMED = {
    "not-an-object": ["type", "runFinished"],
    "version-text": _future(formatVersion="2"),
    "version-zero": _future(formatVersion=0),
    "no-output": _without(_future(), "output"),
    "seq-text": _future(seq="3"),
    "step-missing": _without(FULL[1].to_json(), "step"),
    "step-text": {**FULL[1].to_json(), "step": "2"},
    "step-bool": {**FULL[1].to_json(), "step": True},
    "turn-not-object": {**FULL[1].to_json(), "turn": "hello"},
    "turn-call-without-id": {
        **FULL[1].to_json(),
        "turn": {"text": "", "toolCalls": [{"name": "charge"}]},
    },
    "outcome-unknown": _decision(outcome="maybe"),
    "kind-unknown": _decision(kind="human"),
    "tool-call-without-id": _without(_decision(), "callId"),
    "approval-without-expiry": _without(_decision(), "expiryTime"),
    "time-not-iso": _decision(time="yesterday"),
    "time-without-offset": _decision(requestedTime="2026-01-01T00:00:00"),
    "is-error-text": {**FULL[4].to_json(), "isError": "yes"},
    "exit-code-missing": _without(FULL[-1].to_json(), "exitCode"),
    "rejection-without-problems": _without(FULL[5].to_json(), "problems"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_record_is_a_permanent_failure_not_a_crash(name: str) -> None:
    with pytest.raises(records.Unreadable) as caught:
        records.read(MALFORMED[name])
    assert caught.value.reason == records.RECORD_INVALID == "JournalRecordInvalid"
    assert caught.value.exit_code == contract.ExitCode.FAILED_PERMANENT


def test_a_record_read_as_the_wrong_type_is_refused() -> None:
    with pytest.raises(records.Unreadable):
        records.ToolStarted.from_json(FULL[4].to_json())


def test_the_journal_stamps_its_format_and_reads_back_the_same_records() -> None:
    store = journal.MemoryStore()
    writer = journal.Journal(
        journal.MemoryBackend(store),
        epoch=1,
        attempt=1,
        now=lambda: T0 + datetime.timedelta(microseconds=456),
    )
    writer.open()
    written = writer.write(*MINIMAL)
    assert [r.seq for r in written] == list(range(1, len(MINIMAL) + 1))
    assert {r.time for r in written} == {T0}
    assert all(s["formatVersion"] == records.FORMAT_VERSION for s in store.records)
    reader = journal.Journal(journal.MemoryBackend(store), epoch=2, attempt=2)
    assert reader.open() == written


def test_an_attempt_on_a_journal_from_a_newer_runner_ends_before_it_does_anything() -> None:
    world = test_loop.World(test_loop._charges(1))
    world.store.records.append({**records.AttemptStarted(seq=1).to_json(), "formatVersion": 2})
    before = list(world.store.records)
    with pytest.raises(records.Unreadable) as caught:
        world.execute()
    assert caught.value.reason == "JournalFormatUnsupported"
    assert world.store.records == before
    assert world.executor.calls == []
    assert world.cluster.statuses == []
