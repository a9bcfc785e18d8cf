"""Rules of the Run lifecycle that a single table row cannot show: admission's decisions,
multi-step paths (a backoff interrupted, a redrive), purity, and the phase derived from the
conditions in one place. Pure: no cluster, no clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import random
import re
from typing import Any

import lifecycle_worlds as w
import pytest

from bosun import constants
from bosun.controller import conditions, lifecycle, plans, runstatus

Obj = dict[str, Any]
C = constants
T, F, U = "True", "False", "Unknown"

# --- admission's decisions -------------------------------------------------------------------


def test_admit_records_the_attempt_before_its_job_exists() -> None:
    plan = lifecycle.admit(w.QUEUED, w.NOW)
    assert plan is not None and plan.status is not None
    assert plan.admitted == 1 and plan.actions == ()
    assert plan.phase == C.PHASE_RUNNING
    assert plan.condition(C.CONDITION_QUEUED) == (F, C.REASON_ADMITTED)
    assert plan.condition(C.CONDITION_RUNNING) == (T, C.REASON_ATTEMPT_RUNNING)
    assert plan.status["attempts"] == [
        {"number": 1, "job": "r-a1", "startTime": conditions.stamp(w.NOW)}
    ]
    assert plan.status["lease"] == {"name": w.LEASE, "transitions": 0}
    assert plan.status["startTime"] == conditions.stamp(w.NOW)


def test_admit_after_a_backoff_numbers_on_and_keeps_the_first_start() -> None:
    plan = lifecycle.admit(w.FAILED_ONCE, w.NOW)
    assert plan is not None and plan.status is not None
    assert plan.admitted == 2
    assert "nextRetryTime" not in plan.status
    assert plan.status["startTime"] == conditions.stamp(w.ago(10))


@pytest.mark.parametrize("run", [w.RUNNING, w.SUCCEEDED, w.DEAD], ids=["active", "done", "dead"])
def test_admit_refuses_an_active_or_finished_run(run: Obj) -> None:
    assert lifecycle.admit(run, w.NOW) is None


BUDGET = "Agent a started 3 Runs in the last hour (runsPerHour 3)"


def test_hold_says_why_once_and_warns_only_on_a_new_reason() -> None:
    held = lifecycle.hold(w.QUEUED, C.REASON_BUDGET_EXCEEDED, BUDGET, w.NOW, "over budget")
    assert held is not None
    assert held.phase == C.PHASE_QUEUED
    assert held.condition(C.CONDITION_QUEUED) == (T, C.REASON_BUDGET_EXCEEDED)
    assert held.actions == (plans.Emit(C.REASON_BUDGET_EXCEEDED, "over budget", True),)
    run = w.after(w.QUEUED, held)
    assert lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET, w.NOW) is None
    again = lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET + ".", w.NOW)
    assert again is not None and again.status is not None and again.actions == ()
    back = lifecycle.hold(run, C.REASON_WAITING_FOR_CAPACITY, lifecycle.WAITING_MESSAGE, w.NOW)
    assert back is not None and back.actions == ()
    assert back.condition(C.CONDITION_QUEUED) == (T, C.REASON_WAITING_FOR_CAPACITY)


@pytest.mark.parametrize(
    "run", [w.RUNNING, w.FAILED_ONCE, w.NO_AGENT], ids=["running", "retry", "pending"]
)
def test_hold_leaves_a_run_that_is_not_queued_alone(run: Obj) -> None:
    assert lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET, w.NOW) is None


# --- rules that take more than one step ------------------------------------------------------


def test_a_retry_reports_its_backoff_within_the_policy_bound() -> None:
    plan = lifecycle.decide(w.world(w.RUNNING, job=w.job("Failed"), pod=w.termination(1)), w.NOW)
    assert plan.status is not None and plan.retry_delay is not None
    assert 0 <= plan.retry_delay <= 4
    [attempt] = plan.status["attempts"]
    assert attempt["outcome"] == C.OUTCOME_FAILED and attempt["reason"] == "PodFailed"
    assert attempt["backoffSeconds"] == round(plan.retry_delay, 3)
    next_retry = conditions.parse(plan.status["nextRetryTime"])
    assert next_retry == w.NOW + datetime.timedelta(seconds=plan.retry_delay)
    assert plan.requeue_after == pytest.approx(plan.retry_delay)
    [event] = plan.actions
    assert isinstance(event, plans.Emit)
    assert event.message.startswith("Attempt 1 ended Failed (PodFailed); attempt 2 after")


def test_a_run_suspended_during_its_backoff_resumes_retrying() -> None:
    suspended = w.after(
        w.FAILED_ONCE, lifecycle.decide(w.world(w.with_spec(w.FAILED_ONCE, suspend=True)), w.ago(8))
    )
    assert suspended["status"]["phase"] == C.PHASE_SUSPENDED
    resumed = lifecycle.decide(w.world(suspended), w.ago(8))
    assert resumed.phase == C.PHASE_RETRYING
    assert resumed.condition(C.CONDITION_QUEUED) == (T, C.REASON_RETRY_SCHEDULED)
    assert not resumed.wants_admission


def test_a_redriven_run_gets_a_fresh_budget() -> None:
    redriven = w.after(
        w.DEAD, lifecycle.decide(w.world(w.annotated(w.DEAD, **{C.ANNOTATION_REDRIVE: "1"})), w.NOW)
    )
    assert redriven["status"]["attemptBudgetStart"] == 2
    assert lifecycle.decide(w.world(redriven), w.NOW).phase is None  # token already acted on
    third = w.after(redriven, lifecycle.admit(redriven, w.NOW))
    assert third["status"]["attempts"][-1]["number"] == 3
    failed = lifecycle.decide(
        w.world(third, job=w.job("Failed", number=3), pod=w.termination(1)), w.NOW
    )
    assert failed.phase == C.PHASE_RETRYING


def test_a_job_ending_is_decided_the_same_with_the_pods_looked_at() -> None:
    first = lifecycle.decide(w.world(w.RUNNING, job=w.job("Failed")), w.NOW)
    assert first == plans.Plan(look_at_pods=True)
    pods: list[Obj] = [
        {"metadata": {"name": "old", "creationTimestamp": "2030-01-01T11:00:00Z"}, "status": {}},
        {
            "metadata": {"name": "new", "creationTimestamp": "2030-01-01T11:30:00Z"},
            "status": {
                "reason": "Evicted",
                "containerStatuses": [{"state": {"terminated": {"exitCode": 137, "message": "m"}}}],
            },
        },
    ]
    facts = plans.pod_facts(pods)
    assert facts == plans.PodFacts(137, "Evicted", "new", "m")
    assert plans.pod_facts([]) == plans.PodFacts()
    plan = lifecycle.decide(w.world(w.RUNNING, job=w.job("Failed"), pod=facts), w.NOW)
    assert plan.status is not None
    assert plan.status["attempts"][0]["pod"] == "new"
    assert plan.status["attempts"][0]["exitCode"] == 137


def test_decide_is_pure() -> None:
    world = w.world(w.RUNNING, job=w.job("Failed"), pod=w.termination(1))
    before = json.dumps(world.run, sort_keys=True)
    first = lifecycle.decide(world, w.NOW)
    second = lifecycle.decide(dataclasses.replace(world, rng=random.Random(7)), w.NOW)
    assert first == second
    assert json.dumps(world.run, sort_keys=True) == before


# --- phase, derived from the conditions ------------------------------------------------------


def _conds(**found: tuple[str, str]) -> list[Obj]:
    return [{"type": kind, "status": s, "reason": r} for kind, (s, r) in found.items()]


@pytest.mark.parametrize(
    ("found", "phase"),
    [
        ({}, None),
        ({"Queued": (U, C.REASON_RECONCILING)}, C.PHASE_PENDING),
        ({"Queued": (T, C.REASON_AGENT_NOT_FOUND)}, C.PHASE_PENDING),
        ({"Queued": (T, C.REASON_WAITING_FOR_CAPACITY)}, C.PHASE_QUEUED),
        ({"Queued": (T, C.REASON_BUDGET_EXCEEDED)}, C.PHASE_QUEUED),
        ({"Queued": (T, C.REASON_REDRIVEN)}, C.PHASE_QUEUED),
        ({"Queued": (T, C.REASON_RETRY_SCHEDULED)}, C.PHASE_RETRYING),
        ({"Queued": (F, C.REASON_ADMITTED), "Running": (T, "AttemptRunning")}, C.PHASE_RUNNING),
        ({"Queued": (F, C.REASON_ADMITTED), "Running": (F, "AgentNotFound")}, C.PHASE_RUNNING),
        ({"Running": (T, "AttemptRunning")}, C.PHASE_RUNNING),
        ({"Queued": (F, C.REASON_SUSPENDED)}, C.PHASE_SUSPENDED),
        ({"Queued": (F, C.REASON_DUPLICATE)}, C.PHASE_DUPLICATE),
        ({"Succeeded": (T, C.REASON_SUCCEEDED)}, C.PHASE_SUCCEEDED),
        ({"Failed": (T, "RunnerFailed")}, C.PHASE_FAILED),
        ({"Failed": (T, C.REASON_DEADLINE_EXCEEDED)}, C.PHASE_FAILED),
        ({"Failed": (T, C.REASON_CANCELLED)}, C.PHASE_CANCELLED),
        (
            {"Failed": (T, "RetriesExhausted"), "DeadLettered": (T, "RetriesExhausted")},
            C.PHASE_DEAD_LETTERED,
        ),
        (
            {
                "Queued": (T, C.REASON_REDRIVEN),
                "Failed": (F, "Redriven"),
                "DeadLettered": (F, "Redriven"),
            },
            C.PHASE_QUEUED,
        ),
    ],
)
def test_phase_is_derived_from_the_conditions(
    found: dict[str, tuple[str, str]], phase: str | None
) -> None:
    assert runstatus.phase_of(_conds(**found)) == phase


def test_awaiting_approval_shows_over_running_only() -> None:
    approval = {"type": C.CONDITION_AWAITING_APPROVAL, "status": "True", "reason": "ToolCall"}
    running = {
        **w.RUNNING,
        "status": {
            **w.RUNNING["status"],
            "conditions": [*w.RUNNING["status"]["conditions"], approval],
        },
    }
    assert runstatus.RunStatus(running).displayed_phase() == C.PHASE_AWAITING_APPROVAL
    plan = lifecycle.decide(w.world(running, job=w.job(), lease=w.lease(w.HOLDER)), w.NOW)
    assert plan.phase == C.PHASE_AWAITING_APPROVAL
    assert plan.condition(C.CONDITION_AWAITING_APPROVAL) is None  # the runner's, never written
    queued = {
        **w.QUEUED,
        "status": {
            **w.QUEUED["status"],
            "conditions": [*w.QUEUED["status"]["conditions"], approval],
        },
    }
    assert runstatus.RunStatus(queued).displayed_phase() == C.PHASE_QUEUED


def test_only_runstatus_names_the_phase_field() -> None:
    package = pathlib.Path(runstatus.__file__).parent
    writes = re.compile(r"""\[["']phase["']\]\s*=|\.phase\s*=[^=]|["']phase["']\s*:""")
    offenders = [
        path.name
        for path in package.glob("*.py")
        if path.name != "runstatus.py" and writes.search(path.read_text())
    ]
    assert offenders == []
