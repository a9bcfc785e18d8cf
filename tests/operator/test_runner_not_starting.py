"""A runner pod that cannot start says why on its Run: the operator reads no Secrets.

While no runner holds the Lease, the lifecycle asks to look at the attempt's pod; the kubelet's
waiting reason (CreateContainerConfigError for a missing Secret) becomes the Running condition's
reason RunnerNotStarting with the kubelet's message, and the Lost attempt at the start timeout
repeats it. Pure: no cluster, no clock.
"""

from __future__ import annotations

import lifecycle_worlds as w
import pytest

from bosun import constants as C
from bosun.controller import attempts, lifecycle, plans

MISSING = 'secret "llm" not found'
STUCK = plans.PodFacts(
    name="r-a1-x", waiting_reason="CreateContainerConfigError", waiting_message=MISSING
)
CREATING = plans.PodFacts(name="r-a1-x", waiting_reason="ContainerCreating")


def _running(plan: plans.Plan) -> dict[str, str]:
    assert plan.status is not None
    (found,) = [c for c in plan.status["conditions"] if c["type"] == C.CONDITION_RUNNING]
    return dict(found)


def test_without_a_look_at_the_pod_the_lifecycle_asks_for_one() -> None:
    plan = lifecycle.decide(w.world(w.RUNNING, job=w.job()), w.NOW)
    assert plan.look_at_pods is True
    assert plan.status is None and plan.actions == ()
    assert plan.requeue_after == pytest.approx(20.5)  # the start timeout, as before


def test_a_missing_secret_shows_on_the_running_condition_with_one_warning() -> None:
    plan = lifecycle.decide(w.world(w.RUNNING, job=w.job(), pod=STUCK), w.NOW)
    running = _running(plan)
    assert (running["status"], running["reason"]) == ("True", C.REASON_RUNNER_NOT_STARTING)
    assert f"CreateContainerConfigError: {MISSING}" in running["message"]
    assert plan.phase == C.PHASE_RUNNING
    assert [(a.reason, a.warning) for a in plan.actions if isinstance(a, plans.Emit)] == [
        (C.REASON_RUNNER_NOT_STARTING, True)
    ]
    assert plan.requeue_after == pytest.approx(attempts.POD_CHECK_SECONDS + 0.5)
    assert plan.status is not None
    assert plan.status["attempts"][-1]["pod"] == "r-a1-x"

    # Still stuck a moment later: no second Event.
    stuck = w.after(w.RUNNING, plan)
    again = lifecycle.decide(w.world(stuck, job=w.job(), pod=STUCK), w.NOW)
    assert again.actions == ()

    # The Secret appeared and the container is being created: AttemptRunning again.
    fixed = lifecycle.decide(w.world(stuck, job=w.job(), pod=CREATING), w.NOW)
    assert _running(fixed)["reason"] == C.REASON_ATTEMPT_RUNNING
    assert fixed.actions == ()


def test_a_pod_that_only_starts_slowly_changes_nothing() -> None:
    plan = lifecycle.decide(w.world(w.RUNNING, job=w.job(), pod=CREATING), w.NOW)
    assert plan.status is None and plan.actions == ()


def test_the_lost_attempt_at_the_start_timeout_repeats_why() -> None:
    stuck = w.after(w.RUNNING, lifecycle.decide(w.world(w.RUNNING, job=w.job(), pod=STUCK), w.NOW))
    later = w.NOW + (w.NOW - w.ago(25))  # 35 s after admission: past the 30 s start timeout
    plan = lifecycle.decide(w.world(stuck, job=w.job(), pod=STUCK), later)
    assert plan.ended == C.OUTCOME_LOST
    assert plan.status is not None
    attempt = plan.status["attempts"][-1]
    assert attempt["reason"] == C.REASON_RUNNER_NEVER_STARTED
    assert MISSING in attempt["message"]


def test_pod_facts_read_the_waiting_reason() -> None:
    pod = {
        "metadata": {"name": "r-a1-x", "creationTimestamp": "2030-01-01T12:00:00Z"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "runner",
                    "state": {
                        "waiting": {"reason": "CreateContainerConfigError", "message": MISSING}
                    },
                }
            ],
        },
    }
    assert plans.pod_facts([pod]) == STUCK
