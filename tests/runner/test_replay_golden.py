"""Golden journals: what an earlier runner wrote must replay the same today.

How they were made: ``golden/v1-*.json`` hold the records written by the runner of commit
b6a3ac6 (before records carried ``formatVersion``) in real scenarios of the loop, produced by
``golden/make_v1.py`` (its docstring has the command), next to what that runner's replay and
trace made of them (``expected``). Never regenerate them: a new format gets new files, and
these must keep reading (Temporal's replayer habit). ``golden/v1-output-rejected.json`` came
later, from the runner that added ``outputRejected`` (``golden/make_output_rejected.py``): its
records carry ``formatVersion`` 1, and it pins that record the same way from then on.
"""

from __future__ import annotations

import json
import pathlib
import typing
from typing import Any

import pytest

from bosun.runner import conversation, errors, records, replay, runtrace

from . import fakes, test_loop

GOLDEN = pathlib.Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("v1-*.json"))
LATER = frozenset({"v1-output-rejected"})
"""Golden files written after records carried ``formatVersion``."""


def _golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"v1-{name}.json").read_text())
    return data


def _state(name: str) -> replay.State:
    return replay.State.build(records.read_all(_golden(name)["records"]))


def test_the_golden_journals_cover_every_record_type_and_outcome() -> None:
    stored = [r for path in FILES for r in json.loads(path.read_text())["records"]]
    assert {r["type"] for r in stored} == {cls.TYPE for cls in typing.get_args(records.Record)}
    assert {r["outcome"] for r in stored if r["type"] == "decision"} == set(records.Outcome)
    unversioned = [
        r
        for path in FILES
        if path.stem not in LATER
        for r in json.loads(path.read_text())["records"]
    ]
    assert unversioned and all("formatVersion" not in r for r in unversioned)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_golden_journal_replays_to_what_its_runner_saw(path: pathlib.Path) -> None:
    golden = json.loads(path.read_text())
    journaled = records.read_all(golden["records"])
    assert all(r.format_version == 1 for r in journaled)
    state = replay.State.build(journaled)
    expected = golden["expected"]
    assert (state.finished.output if state.finished else None) == expected["output"]
    assert state.usage() == expected["usage"]
    told = [m for m in state.messages("go") if isinstance(m, conversation.ToolResults)]
    assert [[o.call_id, o.content, o.is_error] for m in told for o in m.outcomes] == expected[
        "done"
    ]
    assert [[c.call.id, c.unknown] for c in state.open_calls()] == expected["open"]
    last = state.last_turn()
    assert bool(last and last[1].is_final) == expected["answered"]
    assert runtrace.render(journaled, "run").splitlines() == expected["trace"]
    assert {str(k): v for k, v in state.rejected.items()} == expected.get("rejected", {})


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_golden_record_loses_no_field_when_written_again(path: pathlib.Path) -> None:
    for stored in json.loads(path.read_text())["records"]:
        written = records.read(stored).to_json()
        assert written.pop("formatVersion") == stored.pop("formatVersion", 1) == 1
        # A field that was null and is optional is left out; nothing else changes.
        assert written == {k: v for k, v in stored.items() if v is not None or k in written}


# What is done, what remains, the output and the usage, spelled out for each scenario.
CASES = {
    # name: (output, open calls (id, outcome unknown), modelCalls, toolCalls, deniedCalls)
    "answered": ("Hello from the agent", [], 1, 0, 0),
    "tool-allowed": ("finished", [], 2, 1, 0),
    "tool-denied": ("finished", [], 2, 0, 1),
    "approval-granted": ("finished", [], 2, 1, 0),
    "approval-denied": ("finished", [], 2, 0, 1),
    "approval-expired": ("finished", [], 2, 0, 1),
    "approval-pending": (None, [("call-1-1", False)], 1, 0, 0),
    "interrupted": (None, [("call-1-1", True)], 1, 1, 0),
    "resent-finished": ("finished", [], 2, 1, 0),
    "needs-human": (None, [("call-1-1", True)], 1, 1, 0),
    "limit-reached": (None, [], 2, 2, 0),
    "output-rejected": ('{"category":"billing","urgent":false}', [], 3, 0, 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_golden_journal_says_what_is_done_and_what_remains(name: str) -> None:
    output, remaining, model_calls, tool_calls, denied = CASES[name]
    state = _state(name)
    assert (state.finished.output if state.finished else None) == output
    assert [(c.call.id, c.unknown) for c in state.open_calls()] == remaining
    usage = state.usage()
    assert (usage["modelCalls"], usage["toolCalls"], usage["deniedCalls"]) == (
        model_calls,
        tool_calls,
        denied,
    )


def test_the_golden_approvals_keep_who_decided_and_when() -> None:
    granted = [r for r in _state("approval-granted").history if isinstance(r, records.Decision)]
    assert [d.outcome for d in granted] == [
        "approvalRequested",
        "approvalIgnored",
        "approvalGranted",
    ]
    assert (granted[1].approval, granted[1].approval_call_hash) == ("other", "0" * 64)
    assert (granted[2].approved_by, granted[2].approval_reason) == ("bob", "known")
    asked = granted[0]
    assert asked.requested_time is not None and asked.expiry_time is not None
    assert (asked.expiry_time - asked.requested_time).total_seconds() == 60
    [denial] = [c.denial for c in _state("approval-denied").calls.values()]
    assert denial is not None and (denial.approved_by, denial.approval_reason) == (
        "alice",
        "too much",
    )


# --- today's loop resumes yesterday's journals ---------------------------------------------------


def _resume(name: str, world: test_loop.World) -> test_loop.World:
    stored = _golden(name)["records"]
    world.store.records.extend(stored)
    world.store.epoch = max(r["epoch"] for r in stored)
    return world


def test_a_finished_golden_journal_is_only_reported_again() -> None:
    for name in ("answered", "tool-allowed", "approval-granted", "resent-finished"):
        world = _resume(name, test_loop.World(test_loop._charges(5)))
        before = list(world.store.records)
        assert world.execute(attempt=3, epoch=3) == CASES[name][0]
        assert world.store.records == before
        assert world.executor.calls == []


def test_an_interrupted_golden_call_is_resent_with_its_recorded_key() -> None:
    world = test_loop.World(test_loop._charges(5))
    world.cluster.put(fakes.tool_obj("charge", inputSchema=test_loop.CHARGE, idempotent=True))
    _resume("interrupted", world)
    [started] = [r for r in _golden("interrupted")["records"] if r["type"] == "toolStarted"]
    assert world.execute(attempt=2, epoch=2) == "finished"
    assert [c[2] for c in world.executor.calls] == [started["idempotencyKey"]]
    written = world.store.records[len(_golden("interrupted")["records"]) :]
    assert [r["seq"] for r in written] == list(range(5, 5 + len(written)))
    assert {r["formatVersion"] for r in written} == {records.FORMAT_VERSION}
    assert [r["outcome"] for r in written if r["type"] == "decision"] == ["resent"]


def test_a_golden_call_of_unknown_outcome_still_needs_a_human() -> None:
    world = _resume("needs-human", test_loop.World(test_loop._charges(5)))
    with pytest.raises(errors.NeedsHuman):
        world.execute(attempt=3, epoch=3)
    assert world.executor.calls == []


def test_a_golden_pending_approval_is_still_awaited_and_can_be_granted() -> None:
    rules = [
        {
            "name": "ask",
            "tools": ["charge"],
            "action": "RequireApproval",
            "approvalTimeoutSeconds": 60,
        }
    ]
    world = _resume("approval-pending", test_loop.World(test_loop._charges(100), rules))
    [asked] = [r for r in _golden("approval-pending")["records"] if r["type"] == "decision"]
    world.cluster.put(
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "Approval",
            "metadata": {"name": "yes"},
            "spec": {
                "runName": "run",
                "callHash": asked["callHash"],
                "decision": "Approved",
                "approvedBy": "bob",
            },
        }
    )
    assert world.execute(attempt=2, epoch=2) == "finished"
    outcomes = [d["outcome"] for d in world.decisions()]
    assert outcomes == ["approvalRequested", "approvalGranted"]
    assert [c[1] for c in world.executor.calls] == [{"amount": 100}]
