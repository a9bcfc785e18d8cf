"""The Run lifecycle as a transition table: observed world -> the essentials of the plan.

Pure: no cluster, no clock. Every condition and reason a Run can reach is a row; each row's
world starts from a state the lifecycle itself made (``lifecycle_worlds``).
"""

from __future__ import annotations

import dataclasses
import datetime
import types
from collections.abc import Mapping
from typing import Any

import lifecycle_worlds as w
import pytest

from bosun import constants, contract
from bosun.controller import lifecycle, plans

C = constants
T, F, U = "True", "False", "Unknown"

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


ROWS: list[Any] = [
    # Waiting to start.
    pytest.param(
        w.world(w.NEW),
        w.ago(50),
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="new Run with its Agent: Queued for admission",
    ),
    pytest.param(
        w.world(w.NEW, agent=None),
        w.ago(50),
        Expect(
            C.PHASE_PENDING,
            {C.CONDITION_QUEUED: (T, C.REASON_AGENT_NOT_FOUND)},
            ("warn AgentNotFound",),
        ),
        id="new Run without its Agent: Pending, AgentNotFound, one warning",
    ),
    pytest.param(
        w.world(w.NO_AGENT, agent=None),
        w.NOW,
        Expect(None),
        id="still no Agent: nothing new to say, no second warning",
    ),
    pytest.param(
        w.world(w.with_spec(w.NEW, deadlineSeconds=100), agent=None),
        w.NOW,
        Expect(
            C.PHASE_PENDING,
            {C.CONDITION_QUEUED: (T, C.REASON_AGENT_NOT_FOUND)},
            ("warn AgentNotFound",),
            requeue=40.5,
        ),
        id="waiting for an Agent is looked at again just past the deadline",
    ),
    pytest.param(
        w.world(w.NO_AGENT),
        w.NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="the Agent appears: Queued",
    ),
    pytest.param(
        w.world(w.QUEUED),
        w.NOW,
        Expect(None, admission=True),
        id="still Queued: no write, admission asked again",
    ),
    # Duplicates.
    pytest.param(
        w.world(
            w.run(idempotencyKey="k"), peers=(w.run(name="older", created=120, idempotencyKey="k"),)
        ),
        w.NOW,
        Expect(
            C.PHASE_DUPLICATE,
            {C.CONDITION_QUEUED: (F, C.REASON_DUPLICATE)},
            ("event DuplicateIdempotencyKey",),
            facts={"duplicate_of": "older"},
        ),
        id="an older live Run has the idempotencyKey: Duplicate, never executes",
    ),
    pytest.param(
        w.world(
            w.run(idempotencyKey="k"),
            peers=(
                w.run({"phase": "Failed"}, name="older", created=120, idempotencyKey="k"),
                w.run(name="newer", created=10, idempotencyKey="k"),
            ),
        ),
        w.NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="only a failed older and a newer Run share the key: not a duplicate",
    ),
    # Suspend.
    pytest.param(
        w.world(w.with_spec(w.NEW, suspend=True)),
        w.ago(50),
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
        w.world(w.with_spec(w.RUNNING, suspend=True), job=w.job()),
        w.NOW,
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
        w.world(w.SUSPENDED),
        w.NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="resumed: Queued again",
    ),
    # Cancel and deadline.
    pytest.param(
        w.world(w.with_spec(w.QUEUED, cancel=True)),
        w.NOW,
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
        w.world(w.with_spec(w.RUNNING, cancel=True), job=w.job()),
        w.NOW,
        Expect(
            C.PHASE_CANCELLED,
            {C.CONDITION_FAILED: (T, C.REASON_CANCELLED)},
            ("delete Job r-a1", "warn Cancelled"),
            facts={"ended": C.OUTCOME_CANCELLED},
        ),
        id="cancelled while running: Job deleted first",
    ),
    pytest.param(
        w.world(w.with_spec(w.RUNNING, deadlineSeconds=30), job=w.job()),
        w.NOW,
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
        w.world(w.RUNNING),
        w.NOW,
        Expect(
            None,
            actions=(
                f"create ServiceAccount {w.ACCOUNT}",
                f"create Role {w.ACCOUNT}",
                f"create RoleBinding {w.ACCOUNT}",
                f"create NetworkPolicy {w.ACCOUNT}",
                f"create Lease {w.LEASE}",
                "create Job r-a1",
            ),
        ),
        id="admitted, no Job yet: RBAC, NetworkPolicy, Lease (last) and Job created",
    ),
    pytest.param(
        w.world(w.RUNNING, lease=w.lease(None)),
        w.NOW,
        Expect(None, actions=("create Job r-a1",)),
        id="a retried attempt with its Lease in place needs only its Job",
    ),
    pytest.param(
        w.world(w.RUNNING, agent=None),
        w.NOW,
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
        w.world(w.RUNNING, job=w.job()),
        w.NOW,
        Expect(None, requeue=20.5),
        id="the runner has not taken the Lease: wait for the start timeout",
    ),
    pytest.param(
        w.world(
            w.RUNNING,
            job=w.job(
                "Complete",
                controller={"kind": "Run", "name": "r", "uid": "u-other", "controller": True},
            ),
        ),
        w.NOW,
        Expect(
            C.PHASE_RETRYING,
            {
                C.CONDITION_QUEUED: (T, C.REASON_RETRY_SCHEDULED),
                C.CONDITION_RUNNING: (F, C.REASON_RETRY_SCHEDULED),
            },
            ("warn JobNotOwned", "event RetryScheduled"),
            requeue=...,
            admission=True,
            facts={"ended": C.OUTCOME_FAILED},
        ),
        id="a Job of the attempt's name controlled by another Run: not adopted, never deleted",
    ),
    pytest.param(
        w.world(w.STALE, job=w.job(), lease=w.lease("r-a0-old")),
        w.NOW,
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
        w.world(w.RUNNING, job=w.job(), lease=w.lease(w.HOLDER), monotonic=500.0),
        w.NOW,
        Expect(
            C.PHASE_RUNNING,
            {C.CONDITION_RUNNING: (T, C.REASON_ATTEMPT_RUNNING)},
            requeue=20.5,
            facts={"sighting": plans.LeaseSighting((w.HOLDER, "t1", 0), 500.0)},
        ),
        id="the runner holds the Lease: mirrored, expiry measured from this sighting",
    ),
    pytest.param(
        w.world(
            w.RUNNING,
            job=w.job(),
            lease=w.lease(w.HOLDER),
            sighting=w.SIGHTED,
            monotonic=w.SIGHTED.seen_at + 25,
        ),
        w.NOW,
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
        w.world(w.RUNNING, job=w.job("Complete")),
        w.NOW,
        Expect(None, facts={"look_at_pods": True}),
        id="the Job ended: look at its pod before deciding",
    ),
    # How an attempt's end moves the Run.
    pytest.param(
        w.world(w.RUNNING, job=w.job("Complete"), pod=w.termination(0)),
        w.NOW,
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
        w.world(
            w.RUNNING, job=w.job("Failed"), pod=w.termination(contract.ExitCode.FAILED_PERMANENT)
        ),
        w.NOW,
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
        w.world(w.RUNNING, job=w.job("Failed"), pod=w.termination(contract.ExitCode.NEEDS_HUMAN)),
        w.NOW,
        Expect(
            C.PHASE_FAILED,
            {C.CONDITION_FAILED: (T, "NeedsHumanDecision")},
            ("warn Failed",),
            admission=True,
        ),
        id="the runner needs a human: Failed, NeedsHumanDecision",
    ),
    pytest.param(
        w.world(
            w.RUNNING,
            job=w.job("Failed"),
            pod=w.termination(
                contract.ExitCode.FAILED_PERMANENT, {"reason": "PolicyDenied", "message": "no"}
            ),
        ),
        w.NOW,
        Expect(
            C.PHASE_FAILED,
            {C.CONDITION_FAILED: (T, "PolicyDenied")},
            ("warn Failed",),
            admission=True,
        ),
        id="permanent failure in the runner's own words",
    ),
    pytest.param(
        w.world(w.RUNNING, job=w.job("Failed"), pod=w.termination(contract.ExitCode.CANCELLED)),
        w.NOW,
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
        w.world(
            w.RUNNING, job=w.job("Failed"), pod=w.termination(contract.ExitCode.FAILED_RETRYABLE)
        ),
        w.NOW,
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
        w.world(w.RUNNING, job=w.job("Failed", "DeadlineExceeded"), pod=plans.PodFacts()),
        w.NOW,
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
        w.world(w.RUNNING_2, job=w.job("Failed", number=2), pod=w.termination(1)),
        w.NOW,
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
        w.world(w.FAILED_ONCE),
        w.ago(8),
        Expect(None, requeue=...),
        id="backing off: nothing written, looked at again when it ends",
    ),
    pytest.param(
        w.world(w.FAILED_ONCE),
        w.NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_WAITING_FOR_CAPACITY)},
            admission=True,
        ),
        id="the backoff is over: Queued for the next attempt",
    ),
    # Finished Runs and redrive.
    pytest.param(w.world(w.SUCCEEDED), w.NOW, Expect(None), id="Succeeded stays Succeeded"),
    pytest.param(w.world(w.DEAD), w.NOW, Expect(None), id="DeadLettered stays without a redrive"),
    pytest.param(
        w.world({**w.QUEUED, "metadata": {**w.QUEUED["metadata"], "deletionTimestamp": "x"}}),
        w.NOW,
        Expect(None),
        id="a Run being deleted is left alone",
    ),
    pytest.param(
        w.world(
            w.annotated(
                {
                    **w.DEAD,
                    "metadata": {**w.DEAD["metadata"], "labels": {C.LABEL_DEAD_LETTER: "true"}},
                },
                **{C.ANNOTATION_REDRIVE: "1"},
            )
        ),
        w.NOW,
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
        w.world(w.annotated(w.PERMANENT, **{C.ANNOTATION_REDRIVE: "1"})),
        w.NOW,
        Expect(
            C.PHASE_QUEUED,
            {C.CONDITION_QUEUED: (T, C.REASON_REDRIVEN)},
            ("event Redriven",),
            admission=True,
        ),
        id="a Failed Run redriven",
    ),
    pytest.param(
        w.world(w.annotated(w.SUCCEEDED, **{C.ANNOTATION_REDRIVE: "1"})),
        w.NOW,
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
