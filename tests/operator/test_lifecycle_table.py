"""The Run lifecycle as a transition table: observed world -> the essentials of the plan.

Pure: no cluster, no clock. Every condition and reason a Run can reach is a row; each row's
world is built by earlier decisions where it can be (a Running Run is a queued Run that
``lifecycle.admit`` admitted), so the table follows states the operator really produces.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import random
import re
import types
from collections.abc import Mapping
from typing import Any

import pytest

from bosun import constants, contract
from bosun.controller import conditions, lifecycle, plans, runstatus, settings

Obj = dict[str, Any]
C = constants
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
SETTINGS = settings.Settings(start_timeout_seconds=30, lease_duration_seconds=20)
AGENT: Obj = {
    "apiVersion": C.API_VERSION,
    "kind": "Agent",
    "metadata": {"name": "a", "namespace": "ns"},
    "spec": {
        "model": {"provider": "scripted"},
        "retry": {"maxAttempts": 2, "initialBackoffSeconds": 4, "maxBackoffSeconds": 60},
    },
}


def _ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def _run(
    status: Obj | None = None,
    *,
    name: str = "r",
    created: float = 60,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"u-{name}",
        "generation": 1,
        "creationTimestamp": conditions.stamp(_ago(created)),
    }
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": C.API_VERSION,
        "kind": "Run",
        "metadata": meta,
        "spec": {"agentRef": {"name": "a"}, "input": "hi", **spec},
        "status": status or {},
    }


def _world(run: Obj, **facts: Any) -> plans.World:
    facts.setdefault("agent", AGENT)
    facts.setdefault("settings", SETTINGS)
    facts.setdefault("rng", random.Random(7))
    return plans.World(run=run, **facts)


def _after(run: Obj, plan: plans.Plan | None) -> Obj:
    """``run`` as the API server holds it once ``plan``'s status is applied."""
    assert plan is not None and plan.status is not None
    foreign = [
        c
        for c in (run.get("status") or {}).get("conditions") or ()
        if c["type"] not in runstatus.OPERATOR_CONDITIONS
    ]
    status = {**plan.status, "conditions": [*plan.status["conditions"], *foreign]}
    return {**run, "status": status}


def _with(run: Obj, **spec: Any) -> Obj:
    return {**run, "spec": {**run["spec"], **spec}}


def _annotated(run: Obj, **annotations: str) -> Obj:
    return {**run, "metadata": {**run["metadata"], "annotations": annotations}}


def _job(done: str | None = None, reason: str | None = None, number: int = 1) -> Obj:
    status: Obj = {}
    if done:
        status["conditions"] = [{"type": done, "status": "True", "reason": reason}]
    return {
        "metadata": {"name": contract.job_name("r", number), "namespace": "ns"},
        "status": status,
    }


def _lease(holder: str | None, renewed: str = "t1", transitions: int = 0) -> Obj:
    spec: Obj = {"leaseDurationSeconds": 20, "leaseTransitions": transitions, "renewTime": renewed}
    if holder:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": contract.lease_name("r"), "namespace": "ns"}, "spec": spec}


def _termination(code: int, report: Obj | None = None) -> plans.PodFacts:
    message = None if report is None else json.dumps(report)
    return plans.PodFacts(exit_code=code, name="r-a1-x", message=message)


# --- the states the table starts from, each made by the lifecycle itself ---------------------

NEW = _run()
QUEUED = _after(NEW, lifecycle.decide(_world(NEW), _ago(50)))
RUNNING = _after(QUEUED, lifecycle.admit(QUEUED, _ago(10)))
STALE = _after(QUEUED, lifecycle.admit(QUEUED, _ago(40)))  # past the 30 s start timeout
HOLDER = f"{contract.job_name('r', 1)}-pod"
SIGHTED = plans.LeaseSighting((HOLDER, "t1", 0), seen_at=100.0)
FAILED_ONCE = _after(  # at _ago(8), backing off for at most 4 s
    RUNNING,
    lifecycle.decide(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.FAILED_RETRYABLE)),
        _ago(8),
    ),
)
RUNNING_2 = _after(FAILED_ONCE, lifecycle.admit(FAILED_ONCE, _ago(3)))
DEAD = _after(
    RUNNING_2,
    lifecycle.decide(
        _world(
            RUNNING_2,
            job=_job("Failed", number=2),
            pod=_termination(contract.ExitCode.FAILED_RETRYABLE),
        ),
        NOW,
    ),
)
SUCCEEDED = _after(
    RUNNING, lifecycle.decide(_world(RUNNING, job=_job("Complete"), pod=_termination(0)), NOW)
)
PERMANENT = _after(
    RUNNING,
    lifecycle.decide(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.FAILED_PERMANENT)),
        NOW,
    ),
)
NO_AGENT = _after(NEW, lifecycle.decide(_world(NEW, agent=None), _ago(50)))
SUSPENDED = _after(NEW, lifecycle.decide(_world(_with(NEW, suspend=True)), _ago(50)))


# --- the table -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Expect:
    """The essentials of a plan. ``phase`` None means no status write at all."""

    phase: str | None
    conditions: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    actions: tuple[str, ...] = ()
    requeue: float | types.EllipsisType | None = None
    """Seconds; ``...`` for any positive wait (a jittered backoff)."""
    admission: bool = False
    facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _summary(action: plans.Action) -> str:
    if isinstance(action, plans.Create):
        return f"create {action.obj['kind']} {action.obj['metadata']['name']}"
    if isinstance(action, plans.DeleteJob):
        return f"delete Job {action.name}"
    if isinstance(action, plans.Emit):
        return f"{'warn' if action.warning else 'event'} {action.reason}"
    return f"label dead-letter {'on' if action.on else 'off'}"


T, F, U = "True", "False", "Unknown"
LEASE = contract.lease_name("r")
ACCOUNT = contract.runner_account_name("r")

ROWS: list[Any] = [
    # Waiting to start.
    pytest.param(
        _world(NEW),
        _ago(50),
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="new Run with its Agent: Queued for admission",
    ),
    pytest.param(
        _world(NEW, agent=None),
        _ago(50),
        Expect(
            C.PHASE_PENDING,
            {C.CONDITION_QUEUED: (T, C.REASON_AGENT_NOT_FOUND)},
            ("warn AgentNotFound",),
        ),
        id="new Run without its Agent: Pending, AgentNotFound, one warning",
    ),
    pytest.param(
        _world(NO_AGENT, agent=None),
        NOW,
        Expect(None),
        id="still no Agent: nothing new to say, no second warning",
    ),
    pytest.param(
        _world(_with(NEW, deadlineSeconds=100), agent=None),
        NOW,
        Expect(
            C.PHASE_PENDING,
            {C.CONDITION_QUEUED: (T, C.REASON_AGENT_NOT_FOUND)},
            ("warn AgentNotFound",),
            requeue=40.5,
        ),
        id="waiting for an Agent is looked at again just past the deadline",
    ),
    pytest.param(
        _world(NO_AGENT),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="the Agent appears: Queued",
    ),
    pytest.param(
        _world(QUEUED),
        NOW,
        Expect(None, admission=True),
        id="still Queued: no write, admission asked again",
    ),
    # Duplicates.
    pytest.param(
        _world(
            _run(idempotencyKey="k"), peers=(_run(name="older", created=120, idempotencyKey="k"),)
        ),
        NOW,
        Expect(
            C.PHASE_DUPLICATE,
            {C.CONDITION_QUEUED: (F, C.REASON_DUPLICATE)},
            ("event DuplicateIdempotencyKey",),
            facts={"duplicate_of": "older"},
        ),
        id="an older live Run has the idempotencyKey: Duplicate, never executes",
    ),
    pytest.param(
        _world(
            _run(idempotencyKey="k"),
            peers=(
                _run({"phase": "Failed"}, name="older", created=120, idempotencyKey="k"),
                _run(name="newer", created=10, idempotencyKey="k"),
            ),
        ),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="only a failed older and a newer Run share the key: not a duplicate",
    ),
    # Suspend.
    pytest.param(
        _world(_with(NEW, suspend=True)),
        _ago(50),
        Expect(
            C.PHASE_SUSPENDED,
            {
                C.CONDITION_QUEUED: (F, C.REASON_SUSPENDED),
                C.CONDITION_RUNNING: (F, C.REASON_SUSPENDED),
            },
        ),
        id="suspended before it starts: Suspended, no admission",
    ),
    pytest.param(
        _world(_with(RUNNING, suspend=True), job=_job()),
        NOW,
        Expect(
            C.PHASE_SUSPENDED,
            {
                C.CONDITION_QUEUED: (F, C.REASON_SUSPENDED),
                C.CONDITION_RUNNING: (F, C.REASON_SUSPENDED),
            },
            ("delete Job r-a1",),
            facts={"ended": C.OUTCOME_CANCELLED},
        ),
        id="suspended while running: the attempt's Job is deleted, attempt Cancelled",
    ),
    pytest.param(
        _world(SUSPENDED),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="resumed: Queued again",
    ),
    # Cancel and deadline.
    pytest.param(
        _world(_with(QUEUED, cancel=True)),
        NOW,
        Expect(
            C.PHASE_CANCELLED,
            {
                C.CONDITION_QUEUED: (F, C.REASON_CANCELLED),
                C.CONDITION_RUNNING: (F, C.REASON_CANCELLED),
                C.CONDITION_FAILED: (T, C.REASON_CANCELLED),
            },
            ("warn Cancelled",),
            facts={"finished": plans.Finish(C.PHASE_CANCELLED, C.REASON_CANCELLED)},
        ),
        id="cancelled while queued",
    ),
    pytest.param(
        _world(_with(RUNNING, cancel=True), job=_job()),
        NOW,
        Expect(
            C.PHASE_CANCELLED,
            {C.CONDITION_FAILED: (T, C.REASON_CANCELLED)},
            ("delete Job r-a1", "warn Cancelled"),
            facts={"ended": C.OUTCOME_CANCELLED},
        ),
        id="cancelled while running: Job deleted first",
    ),
    pytest.param(
        _world(_with(RUNNING, deadlineSeconds=30), job=_job()),
        NOW,
        Expect(
            C.PHASE_FAILED,
            {
                C.CONDITION_FAILED: (T, C.REASON_DEADLINE_EXCEEDED),
                C.CONDITION_QUEUED: (F, C.REASON_DEADLINE_EXCEEDED),
            },
            ("delete Job r-a1", "warn Failed"),
            facts={
                "ended": C.OUTCOME_TIMED_OUT,
                "finished": plans.Finish(C.PHASE_FAILED, C.REASON_DEADLINE_EXCEEDED),
            },
        ),
        id="the Run's deadline passes while running: Failed, DeadlineExceeded",
    ),
    # An admitted attempt.
    pytest.param(
        _world(RUNNING),
        NOW,
        Expect(
            None,
            actions=(
                f"create ServiceAccount {ACCOUNT}",
                f"create Role {ACCOUNT}",
                f"create RoleBinding {ACCOUNT}",
                f"create Lease {LEASE}",
                "create Job r-a1",
            ),
        ),
        id="admitted, no Job yet: RBAC, Lease (last) and Job created",
    ),
    pytest.param(
        _world(RUNNING, lease=_lease(None)),
        NOW,
        Expect(None, actions=("create Job r-a1",)),
        id="a retried attempt with its Lease in place needs only its Job",
    ),
    pytest.param(
        _world(RUNNING, agent=None),
        NOW,
        Expect(
            C.PHASE_RUNNING,
            {
                C.CONDITION_QUEUED: (F, C.REASON_ADMITTED),
                C.CONDITION_RUNNING: (F, C.REASON_AGENT_NOT_FOUND),
            },
            requeue=5.0,
        ),
        id="admitted but the Agent vanished: no Job, still Running, look again in 5 s",
    ),
    pytest.param(
        _world(RUNNING, job=_job()),
        NOW,
        Expect(None, requeue=20.5),
        id="the runner has not taken the Lease: wait for the start timeout",
    ),
    pytest.param(
        _world(STALE, job=_job(), lease=_lease("r-a0-old")),
        NOW,
        Expect(
            C.PHASE_RETRYING,
            {
                C.CONDITION_QUEUED: (T, C.REASON_RETRY_SCHEDULED),
                C.CONDITION_RUNNING: (F, C.REASON_RETRY_SCHEDULED),
            },
            ("delete Job r-a1", "warn LeaseLost", "event RetryScheduled"),
            requeue=...,
            admission=True,
            facts={"ended": C.OUTCOME_LOST, "taken_over": True},
        ),
        id="no runner took the Lease in time (an old pod's hold does not count): Lost, retry",
    ),
    pytest.param(
        _world(RUNNING, job=_job(), lease=_lease(HOLDER), monotonic=500.0),
        NOW,
        Expect(
            C.PHASE_RUNNING,
            {C.CONDITION_RUNNING: (T, C.REASON_ATTEMPT_RUNNING)},
            requeue=20.5,
            facts={"sighting": plans.LeaseSighting((HOLDER, "t1", 0), 500.0)},
        ),
        id="the runner holds the Lease: mirrored, expiry measured from this sighting",
    ),
    pytest.param(
        _world(
            RUNNING,
            job=_job(),
            lease=_lease(HOLDER),
            sighting=SIGHTED,
            monotonic=SIGHTED.seen_at + 25,
        ),
        NOW,
        Expect(
            C.PHASE_RETRYING,
            {C.CONDITION_QUEUED: (T, C.REASON_RETRY_SCHEDULED)},
            ("delete Job r-a1", "warn LeaseLost", "event RetryScheduled"),
            requeue=...,
            admission=True,
            facts={"ended": C.OUTCOME_LOST, "taken_over": True},
        ),
        id="the Lease went unrenewed past its duration: lost lease, retry",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Complete")),
        NOW,
        Expect(None, facts={"look_at_pods": True}),
        id="the Job ended: look at its pod before deciding",
    ),
    # How an attempt's end moves the Run.
    pytest.param(
        _world(RUNNING, job=_job("Complete"), pod=_termination(0)),
        NOW,
        Expect(
            C.PHASE_SUCCEEDED,
            {
                C.CONDITION_SUCCEEDED: (T, C.REASON_SUCCEEDED),
                C.CONDITION_RUNNING: (F, C.REASON_SUCCEEDED),
                C.CONDITION_QUEUED: (F, C.REASON_SUCCEEDED),
            },
            ("event Succeeded",),
            admission=True,
            facts={
                "ended": C.OUTCOME_SUCCEEDED,
                "finished": plans.Finish(C.PHASE_SUCCEEDED, C.REASON_SUCCEEDED),
            },
        ),
        id="Job complete: Succeeded",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.FAILED_PERMANENT)),
        NOW,
        Expect(
            C.PHASE_FAILED,
            {C.CONDITION_FAILED: (T, "RunnerFailed")},
            ("warn Failed",),
            admission=True,
            facts={"ended": C.OUTCOME_FAILED},
        ),
        id="permanent failure: Failed, RunnerFailed",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.NEEDS_HUMAN)),
        NOW,
        Expect(
            C.PHASE_FAILED,
            {C.CONDITION_FAILED: (T, "NeedsHumanDecision")},
            ("warn Failed",),
            admission=True,
        ),
        id="the runner needs a human: Failed, NeedsHumanDecision",
    ),
    pytest.param(
        _world(
            RUNNING,
            job=_job("Failed"),
            pod=_termination(
                contract.ExitCode.FAILED_PERMANENT, {"reason": "PolicyDenied", "message": "no"}
            ),
        ),
        NOW,
        Expect(
            C.PHASE_FAILED,
            {C.CONDITION_FAILED: (T, "PolicyDenied")},
            ("warn Failed",),
            admission=True,
        ),
        id="permanent failure in the runner's own words",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.CANCELLED)),
        NOW,
        Expect(
            C.PHASE_CANCELLED,
            {C.CONDITION_FAILED: (T, C.REASON_CANCELLED)},
            ("warn Cancelled",),
            admission=True,
            facts={"ended": C.OUTCOME_CANCELLED},
        ),
        id="the runner was cancelled: Cancelled",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Failed"), pod=_termination(contract.ExitCode.FAILED_RETRYABLE)),
        NOW,
        Expect(
            C.PHASE_RETRYING,
            {
                C.CONDITION_QUEUED: (T, C.REASON_RETRY_SCHEDULED),
                C.CONDITION_RUNNING: (F, C.REASON_RETRY_SCHEDULED),
            },
            ("event RetryScheduled",),
            requeue=...,
            admission=True,
            facts={"ended": C.OUTCOME_FAILED},
        ),
        id="retryable failure within the budget: retry scheduled",
    ),
    pytest.param(
        _world(RUNNING, job=_job("Failed", "DeadlineExceeded"), pod=plans.PodFacts()),
        NOW,
        Expect(
            C.PHASE_RETRYING,
            {C.CONDITION_QUEUED: (T, C.REASON_RETRY_SCHEDULED)},
            ("event RetryScheduled",),
            requeue=...,
            admission=True,
            facts={"ended": C.OUTCOME_TIMED_OUT},
        ),
        id="the attempt's Job hit its deadline: TimedOut, retried",
    ),
    pytest.param(
        _world(RUNNING_2, job=_job("Failed", number=2), pod=_termination(1)),
        NOW,
        Expect(
            C.PHASE_DEAD_LETTERED,
            {
                C.CONDITION_DEAD_LETTERED: (T, C.REASON_RETRIES_EXHAUSTED),
                C.CONDITION_FAILED: (T, C.REASON_RETRIES_EXHAUSTED),
                C.CONDITION_QUEUED: (F, C.REASON_RETRIES_EXHAUSTED),
            },
            ("label dead-letter on", "warn DeadLettered"),
            admission=True,
            facts={
                "dead_lettered": True,
                "finished": plans.Finish(C.PHASE_DEAD_LETTERED, C.REASON_RETRIES_EXHAUSTED),
            },
        ),
        id="the last allowed attempt fails: DeadLettered, labelled, one Event",
    ),
    # The backoff.
    pytest.param(
        _world(FAILED_ONCE),
        _ago(8),
        Expect(None, requeue=...),
        id="backing off: nothing written, looked at again when it ends",
    ),
    pytest.param(
        _world(FAILED_ONCE),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="the backoff is over: Queued for the next attempt",
    ),
    # Finished Runs and redrive.
    pytest.param(_world(SUCCEEDED), NOW, Expect(None), id="Succeeded stays Succeeded"),
    pytest.param(_world(DEAD), NOW, Expect(None), id="DeadLettered stays without a redrive"),
    pytest.param(
        _world({**QUEUED, "metadata": {**QUEUED["metadata"], "deletionTimestamp": "x"}}),
        NOW,
        Expect(None),
        id="a Run being deleted is left alone",
    ),
    pytest.param(
        _world(
            _annotated(
                {**DEAD, "metadata": {**DEAD["metadata"], "labels": {C.LABEL_DEAD_LETTER: "true"}}},
                **{C.ANNOTATION_REDRIVE: "1"},
            )
        ),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {
                C.CONDITION_QUEUED: (T, C.REASON_REDRIVEN),
                C.CONDITION_FAILED: (F, C.REASON_REDRIVEN),
                C.CONDITION_DEAD_LETTERED: (F, C.REASON_REDRIVEN),
            },
            ("label dead-letter off", "event Redriven"),
            admission=True,
        ),
        id="a dead letter redriven: Queued with a fresh budget, label removed",
    ),
    pytest.param(
        _world(_annotated(PERMANENT, **{C.ANNOTATION_REDRIVE: "1"})),
        NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_REDRIVEN)},
            ("event Redriven",),
            admission=True,
        ),
        id="a Failed Run redriven",
    ),
    pytest.param(
        _world(_annotated(SUCCEEDED, **{C.ANNOTATION_REDRIVE: "1"})),
        NOW,
        Expect(None),
        id="a Succeeded Run is not redriven",
    ),
]


@pytest.mark.parametrize(("world", "now", "expect"), ROWS)
def test_transition_table(world: plans.World, now: datetime.datetime, expect: Expect) -> None:
    plan = lifecycle.decide(world, now)
    assert plan.phase == expect.phase
    for kind, (status, reason) in expect.conditions.items():
        assert plan.condition(kind) == (status, reason), kind
    assert tuple(_summary(a) for a in plan.actions) == expect.actions
    if expect.requeue is not ...:
        assert plan.requeue_after == pytest.approx(expect.requeue)
    else:
        assert plan.requeue_after is not None and plan.requeue_after > 0
    assert plan.wants_admission == expect.admission
    for name, value in expect.facts.items():
        assert getattr(plan, name) == value, name


# --- admission's decisions -------------------------------------------------------------------


def test_admit_records_the_attempt_before_its_job_exists() -> None:
    plan = lifecycle.admit(QUEUED, NOW)
    assert plan is not None and plan.status is not None
    assert plan.admitted == 1 and plan.actions == ()
    assert plan.phase == C.PHASE_RUNNING
    assert plan.condition(C.CONDITION_QUEUED) == (F, C.REASON_ADMITTED)
    assert plan.condition(C.CONDITION_RUNNING) == (T, C.REASON_ATTEMPT_RUNNING)
    assert plan.status["attempts"] == [
        {"number": 1, "job": "r-a1", "startTime": conditions.stamp(NOW)}
    ]
    assert plan.status["lease"] == {"name": LEASE, "transitions": 0}
    assert plan.status["startTime"] == conditions.stamp(NOW)


def test_admit_after_a_backoff_numbers_on_and_keeps_the_first_start() -> None:
    plan = lifecycle.admit(FAILED_ONCE, NOW)
    assert plan is not None and plan.status is not None
    assert plan.admitted == 2
    assert "nextRetryTime" not in plan.status
    assert plan.status["startTime"] == conditions.stamp(_ago(10))


@pytest.mark.parametrize("run", [RUNNING, SUCCEEDED, DEAD], ids=["active", "done", "dead"])
def test_admit_refuses_an_active_or_finished_run(run: Obj) -> None:
    assert lifecycle.admit(run, NOW) is None


BUDGET = "Agent a started 3 Runs in the last hour (runsPerHour 3)"


def test_hold_says_why_once_and_warns_only_on_a_new_reason() -> None:
    held = lifecycle.hold(QUEUED, C.REASON_BUDGET_EXCEEDED, BUDGET, NOW, "over budget")
    assert held is not None
    assert held.phase == C.PHASE_QUEUED
    assert held.condition(C.CONDITION_QUEUED) == (T, C.REASON_BUDGET_EXCEEDED)
    assert held.actions == (plans.Emit(C.REASON_BUDGET_EXCEEDED, "over budget", True),)
    run = _after(QUEUED, held)
    assert lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET, NOW) is None
    again = lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET + ".", NOW)
    assert again is not None and again.status is not None and again.actions == ()
    back = lifecycle.hold(run, C.REASON_WAITING_FOR_CAPACITY, lifecycle.WAITING_MESSAGE, NOW)
    assert back is not None and back.actions == ()
    assert back.condition(C.CONDITION_QUEUED) == (T, C.REASON_WAITING_FOR_CAPACITY)


@pytest.mark.parametrize(
    "run", [RUNNING, FAILED_ONCE, NO_AGENT], ids=["running", "retry", "pending"]
)
def test_hold_leaves_a_run_that_is_not_queued_alone(run: Obj) -> None:
    assert lifecycle.hold(run, C.REASON_BUDGET_EXCEEDED, BUDGET, NOW) is None


# --- rules that take more than one step ------------------------------------------------------


def test_a_retry_reports_its_backoff_within_the_policy_bound() -> None:
    plan = lifecycle.decide(_world(RUNNING, job=_job("Failed"), pod=_termination(1)), NOW)
    assert plan.status is not None and plan.retry_delay is not None
    assert 0 <= plan.retry_delay <= 4
    [attempt] = plan.status["attempts"]
    assert attempt["outcome"] == C.OUTCOME_FAILED and attempt["reason"] == "PodFailed"
    assert attempt["backoffSeconds"] == round(plan.retry_delay, 3)
    next_retry = conditions.parse(plan.status["nextRetryTime"])
    assert next_retry == NOW + datetime.timedelta(seconds=plan.retry_delay)
    assert plan.requeue_after == pytest.approx(plan.retry_delay)
    [event] = plan.actions
    assert isinstance(event, plans.Emit)
    assert event.message.startswith("Attempt 1 ended Failed (PodFailed); attempt 2 after")


def test_a_run_suspended_during_its_backoff_resumes_retrying() -> None:
    suspended = _after(
        FAILED_ONCE, lifecycle.decide(_world(_with(FAILED_ONCE, suspend=True)), _ago(8))
    )
    assert suspended["status"]["phase"] == C.PHASE_SUSPENDED
    resumed = lifecycle.decide(_world(suspended), _ago(8))
    assert resumed.phase == C.PHASE_RETRYING
    assert resumed.condition(C.CONDITION_QUEUED) == (T, C.REASON_RETRY_SCHEDULED)
    assert not resumed.wants_admission


def test_a_redriven_run_gets_a_fresh_budget() -> None:
    redriven = _after(
        DEAD, lifecycle.decide(_world(_annotated(DEAD, **{C.ANNOTATION_REDRIVE: "1"})), NOW)
    )
    assert redriven["status"]["attemptBudgetStart"] == 2
    assert lifecycle.decide(_world(redriven), NOW).phase is None  # token already acted on
    third = _after(redriven, lifecycle.admit(redriven, NOW))
    assert third["status"]["attempts"][-1]["number"] == 3
    failed = lifecycle.decide(_world(third, job=_job("Failed", number=3), pod=_termination(1)), NOW)
    assert failed.phase == C.PHASE_RETRYING


def test_a_job_ending_is_decided_the_same_with_the_pods_looked_at() -> None:
    first = lifecycle.decide(_world(RUNNING, job=_job("Failed")), NOW)
    assert first == plans.Plan(look_at_pods=True)
    pods = [
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
    plan = lifecycle.decide(_world(RUNNING, job=_job("Failed"), pod=facts), NOW)
    assert plan.status is not None
    assert plan.status["attempts"][0]["pod"] == "new"
    assert plan.status["attempts"][0]["exitCode"] == 137


def test_decide_is_pure() -> None:
    world = _world(RUNNING, job=_job("Failed"), pod=_termination(1))
    before = json.dumps(world.run, sort_keys=True)
    first = lifecycle.decide(world, NOW)
    second = lifecycle.decide(dataclasses.replace(world, rng=random.Random(7)), NOW)
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
        **RUNNING,
        "status": {**RUNNING["status"], "conditions": [*RUNNING["status"]["conditions"], approval]},
    }
    assert runstatus.RunStatus(running).displayed_phase() == C.PHASE_AWAITING_APPROVAL
    plan = lifecycle.decide(_world(running, job=_job(), lease=_lease(HOLDER)), NOW)
    assert plan.phase == C.PHASE_AWAITING_APPROVAL
    assert plan.condition(C.CONDITION_AWAITING_APPROVAL) is None  # the runner's, never written
    queued = {
        **QUEUED,
        "status": {**QUEUED["status"], "conditions": [*QUEUED["status"]["conditions"], approval]},
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
