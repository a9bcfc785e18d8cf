"""Crash-resume, unknown outcomes and fencing, with real processes on the control plane."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest

from bosun import contract
from bosun.dev import testing
from bosun.dev.servers import models, tools
from bosun.runner import lease as lease_logic

from . import harness

pytestmark = pytest.mark.cluster

AMOUNT = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}
THREE_CHARGES = [
    {"toolCalls": [{"tool": "charge", "args": {"amount": 1}}]},
    {"toolCalls": [{"tool": "charge", "args": {"amount": 2}}]},
    {"toolCalls": [{"tool": "charge", "args": {"amount": 3}}]},
    {"reply": "charged three times"},
]
LEASE_SECONDS = 3


def _setup(
    kube: harness.Harness,
    start: Callable[[Any], Any],
    script: list[dict[str, Any]],
    idempotent: bool = True,
    timeout: int = 30,
) -> tuple[models.OpenAIServer, tools.ToolServer]:
    model = start(models.OpenAIServer(script))
    toolbox = start(tools.ToolServer({"charge": lambda a: {"charged": a["amount"]}}))
    kube.agent(
        "biller",
        {
            "provider": "openai",
            "name": "m",
            "baseURL": f"{model.url}/v1",
            "timeoutSeconds": timeout,
        },
        ["charge"],
    )
    kube.http_tool(
        "charge",
        toolbox.url_for("charge"),
        AMOUNT,
        idempotent=idempotent,
        http={"timeoutSeconds": timeout},
    )
    kube.allow_all()
    kube.run("bill", "biller", lease_seconds=LEASE_SECONDS)
    return model, toolbox


def _start(kube: harness.Harness, attempt: int) -> harness.RunnerProcess:
    return kube.start_runner("bill", attempt=attempt, lease_seconds=LEASE_SECONDS)


def test_killed_after_the_second_of_three_charges_the_next_attempt_replays(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    model, toolbox = _setup(kube, servers, THREE_CHARGES)
    # The third model call comes right after the second charge's result was journaled.
    arrived, _release = model.gate(3)
    first = _start(kube, 1)
    assert arrived.wait(60), kube.explain()
    first.kill()
    assert [args for _, args in toolbox.executions] == [{"amount": 1}, {"amount": 2}]

    second = _start(kube, 2)
    assert second.wait(120) == contract.ExitCode.SUCCEEDED, kube.explain()

    assert [args for _, args in toolbox.executions] == [{"amount": 1}, {"amount": 2}, {"amount": 3}]
    assert all(count == 1 for count in toolbox.seen.values())
    records = kube.journal("bill")
    starts = [r for r in records if r["type"] == "attemptStarted"]
    assert [(s["attempt"], s["epoch"]) for s in starts] == [(1, 1), (2, 2)]
    assert starts[1]["replayedRecords"] > 0
    # Attempt 2 asked the model only for what was not journaled: turns 3 and 4.
    assert [r["step"] for r in records if r["type"] == "modelResponse" and r["attempt"] == 2] == [
        3,
        4,
    ]
    usage = kube.status("bill")["usage"]
    assert (usage["toolCalls"], usage["modelCalls"]) == (3, 4)
    assert kube.status("bill")["output"] == "charged three times"
    assert kube.lease("bill")["transitions"] == 2


def test_a_call_in_flight_at_the_crash_is_resent_with_its_idempotency_key(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    _model, toolbox = _setup(kube, servers, THREE_CHARGES)
    arrived, release = toolbox.gate(2)
    first = _start(kube, 1)
    assert arrived.wait(60), kube.explain()
    first.kill()
    release.set()
    testing.until(lambda: len(toolbox.executions) == 2, 30, what="the held charge to finish")

    second = _start(kube, 2)
    assert second.wait(120) == contract.ExitCode.SUCCEEDED, kube.explain()

    # The server got the second charge twice under one key and ran it once.
    assert [args for _, args in toolbox.executions] == [{"amount": 1}, {"amount": 2}, {"amount": 3}]
    assert sorted(toolbox.seen.values()) == [1, 1, 2]
    resent = [d for d in kube.decisions("bill") if d["outcome"] == "resent"]
    assert len(resent) == 1 and resent[0]["attempt"] == 2
    started = [r for r in kube.journal("bill") if r["type"] == "toolStarted"]
    assert resent[0]["idempotencyKey"] == started[1]["idempotencyKey"]


def test_unknown_outcome_of_a_non_idempotent_call_stops_for_a_human(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    _model, toolbox = _setup(kube, servers, THREE_CHARGES, idempotent=False)
    arrived, release = toolbox.gate(2)
    first = _start(kube, 1)
    assert arrived.wait(60), kube.explain()
    first.kill()
    release.set()

    second = _start(kube, 2)
    assert second.wait(120) == contract.ExitCode.NEEDS_HUMAN, kube.explain()

    assert len(toolbox.requests) == 2
    assert [d["outcome"] for d in kube.decisions("bill")][-1] == "outcomeUnknown"
    assert "NeedsHuman" in [e.reason for e in kube.events("bill")]


def _lease_expired(kube: harness.Harness) -> bool:
    lease = kube.coordination.read_namespaced_lease(
        contract.lease_name("bill"), kube.namespace, _preload_content=False
    )

    body = json.loads(lease.data)
    return lease_logic.is_free(body, datetime.datetime.now(datetime.UTC))


def test_a_paused_runner_that_lost_its_lease_neither_calls_tools_nor_writes_after_resuming(
    kube: harness.Harness, servers: Callable[[Any], Any]
) -> None:
    model, toolbox = _setup(kube, servers, THREE_CHARGES)
    # Runner A waits for its second model response when it is paused.
    arrived, release = model.gate(2)
    stale = _start(kube, 1)
    assert arrived.wait(60), kube.explain()
    stale.pause()
    testing.until(lambda: _lease_expired(kube), 30, what="runner A's lease to expire")

    successor = _start(kube, 2)
    assert successor.wait(120) == contract.ExitCode.SUCCEEDED, kube.explain()
    journal_before = kube.journal("bill")
    executions_before = list(toolbox.executions)

    # A gets its model response and runs again: it must stop before doing anything.
    release.set()
    stale.resume()
    assert stale.wait(60) == contract.ExitCode.LEASE_LOST, kube.explain()

    assert toolbox.executions == executions_before
    assert [args for _, args in toolbox.executions] == [{"amount": 1}, {"amount": 2}, {"amount": 3}]
    assert kube.journal("bill") == journal_before
    takeover = next(r["seq"] for r in journal_before if r["epoch"] == 2)
    assert all(r["epoch"] == 2 for r in journal_before if r["seq"] >= takeover)
    lines = stale.lines()
    ended = [x for x in lines if x["msg"] == "Ended attempt"]
    assert ended and ended[0]["reason"] in ("LeaseExpired", "LeaseTakenOver")
    assert [x for x in lines if x["msg"] == "Called tool"] == [
        x for x in lines if x["msg"] == "Called tool" and x["step"] == 1
    ]
    assert "LeaseLost" in [e.reason for e in kube.events("bill")]
    assert kube.lease("bill")["transitions"] == 2


@pytest.mark.parametrize("held", ["tool", "model"])
def test_sigterm_during_a_request_in_flight_ends_the_attempt_at_once(
    kube: harness.Harness, servers: Callable[[Any], Any], held: str
) -> None:
    # Held far longer than the test waits: only abandoning the request lets the runner exit.
    model, toolbox = _setup(kube, servers, THREE_CHARGES, timeout=3600)
    arrived, release = toolbox.gate(1) if held == "tool" else model.gate(2)
    runner = _start(kube, 1)
    try:
        assert arrived.wait(60), kube.explain(runner)
        runner.terminate()
        assert runner.wait(60) == contract.ExitCode.CANCELLED, kube.explain(runner)
    finally:
        release.set()
    ended = [r for r in kube.journal("bill") if r["type"] == "attemptEnded"]
    what = "the call to tool charge" if held == "tool" else "the request to model m"
    assert len(ended) == 1 and ended[0]["reason"] == "Terminated", ended
    assert what in ended[0]["message"]
    # The Lease was released for the next attempt, which resumes from the journal.
    assert kube.lease("bill").get("holder") in (None, ""), kube.lease("bill")
    second = _start(kube, 2)
    assert second.wait(120) == contract.ExitCode.SUCCEEDED, kube.explain(second)
    assert [args for _, args in toolbox.executions] == [{"amount": 1}, {"amount": 2}, {"amount": 3}]
