"""The Run lifecycle of an attempt offered to a worker pool: offer, claim, liveness, outcome.

Pure: worlds made by the lifecycle itself (``lifecycle_worlds``), no cluster, no clock.
"""

from __future__ import annotations

import json
from typing import Any

import lifecycle_worlds as w

from bosun import constants, contract
from bosun.controller import (
    builders,
    conditions,
    lifecycle,
    plans,
    pools,
    runnerclasses,
    runstatus,
)
from bosun.controller import settings as settings_mod

C = constants
T, F = "True", "False"
POOL = contract.pool_name("a")
POOLED_AGENT: dict[str, Any] = {
    **w.AGENT,
    "metadata": {**w.AGENT["metadata"], "uid": "u-a"},
    "spec": {**w.AGENT["spec"], "runner": {"pool": {"workers": 2, "runsPerWorker": 3}}},
}
OFFERED = w.after(w.QUEUED, lifecycle.admit(w.QUEUED, w.ago(10), POOL))


def _lease(
    claim: dict[str, Any] | None = None, outcome: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    found = w.lease(spec.pop("holder", None), transitions=spec.pop("transitions", 0))
    owner = spec.pop("owner", "u-r")
    found["metadata"]["ownerReferences"] = [
        {"apiVersion": C.API_VERSION, "kind": "Run", "name": "r", "uid": owner, "controller": True}
    ]
    found["metadata"]["labels"] = {C.LABEL_AGENT: "a"}
    if "acquired" in spec:
        found["spec"]["acquireTime"] = conditions.stamp(w.ago(spec.pop("acquired")))
    notes = {}
    if claim is not None:
        notes[contract.ANNOTATION_CLAIM] = json.dumps(claim)
    if outcome is not None:
        notes[contract.ANNOTATION_OUTCOME] = json.dumps(outcome)
    found["metadata"]["annotations"] = notes
    return found


CLAIM = {
    "attempt": 1,
    "worker": "bosun-pool-a-x",
    "workerLease": "bosun-worker-x",
    "workerEpoch": 1,
}


def _decide(run: dict[str, Any], **facts: Any) -> plans.Plan:
    facts.setdefault("agent", POOLED_AGENT)
    return lifecycle.decide(w.world(run, **facts), w.NOW)


def test_admission_offers_the_attempt_to_the_pool_instead_of_a_job() -> None:
    plan = lifecycle.admit(w.QUEUED, w.NOW, POOL)
    assert plan is not None and plan.status is not None
    assert plan.status["attempts"] == [
        {"number": 1, "pool": POOL, "startTime": conditions.stamp(w.NOW)}
    ]
    running = next(c for c in plan.status["conditions"] if c["type"] == C.CONDITION_RUNNING)
    assert "offered to the workers of pool bosun-pool-a" in running["message"]


def test_an_offer_gets_a_lease_labelled_for_the_pool_and_no_job_or_per_run_rbac() -> None:
    plan = _decide(OFFERED)
    created = [a.obj for a in plan.actions if isinstance(a, plans.Create)]
    assert [o["kind"] for o in created] == ["Lease"]
    assert created[0]["metadata"]["labels"][C.LABEL_AGENT] == "a"
    assert not any(isinstance(a, plans.DeleteJob) for a in plan.actions)


def test_an_unclaimed_offer_waits_for_the_start_timeout_then_ends_lost() -> None:
    waiting = _decide(OFFERED, lease=_lease())
    assert waiting.status is None or waiting.phase == C.PHASE_RUNNING
    assert waiting.requeue_after is not None and 0 < waiting.requeue_after <= 21
    stale = w.after(w.QUEUED, lifecycle.admit(w.QUEUED, w.ago(40), POOL))
    plan = _decide(stale, lease=_lease())
    assert plan.ended == C.OUTCOME_LOST
    attempt = plan.status["attempts"][-1]  # type: ignore[index]
    assert attempt["reason"] == C.REASON_RUNNER_NEVER_STARTED
    assert "No worker of pool bosun-pool-a claimed attempt 1" in attempt["message"]


def test_a_claim_holds_while_its_worker_renews_and_ends_lost_when_it_stops() -> None:
    held = _decide(
        OFFERED, lease=_lease(CLAIM, holder="bosun-pool-a-x", transitions=1), worker_left=4.0
    )
    assert held.ended is None
    assert held.status is None  # the claim is recorded with the attempt's end: no write now
    longer = _decide(
        OFFERED,
        lease=_lease(CLAIM, holder="bosun-pool-a-x", transitions=1, acquired=11),
        worker_left=4.0,
    )
    attempt = longer.status["attempts"][-1]  # type: ignore[index]
    assert (attempt["pod"], attempt["epoch"]) == ("bosun-pool-a-x", 1)  # shown once it ran 10 s
    assert held.requeue_after is not None and held.requeue_after > 4  # the worker's Lease wakes it
    lost = _decide(
        OFFERED, lease=_lease(CLAIM, holder="bosun-pool-a-x", transitions=1), worker_left=-0.5
    )
    assert lost.ended == C.OUTCOME_LOST and lost.taken_over
    assert lost.status["attempts"][-1]["reason"] == C.REASON_LEASE_EXPIRED  # type: ignore[index]
    assert lost.status["nextRetryTime"]  # type: ignore[index]


def test_the_outcome_the_worker_released_concludes_the_attempt_like_an_exit_code() -> None:
    ok = {"attempt": 1, "epoch": 1, "exitCode": 0, "reason": "Succeeded", "message": "done"}
    plan = _decide(OFFERED, lease=_lease(CLAIM, ok, transitions=1))
    assert plan.phase == C.PHASE_SUCCEEDED
    attempt = plan.status["attempts"][-1]  # type: ignore[index]
    assert (attempt["pod"], attempt["epoch"]) == ("bosun-pool-a-x", 1)
    failed = {"attempt": 1, "epoch": 1, "exitCode": 10, "reason": "ToolDenied", "message": "no"}
    plan = _decide(OFFERED, lease=_lease(CLAIM, failed, transitions=1))
    assert plan.phase == C.PHASE_FAILED
    assert plan.status["attempts"][-1]["reason"] == "ToolDenied"  # type: ignore[index]


def test_an_outcome_of_another_attempt_or_epoch_decides_nothing() -> None:
    stale = {"attempt": 1, "epoch": 1, "exitCode": 0, "reason": "Succeeded", "message": ""}
    plan = _decide(
        OFFERED, lease=_lease(CLAIM, stale, holder="bosun-pool-a-y", transitions=2), worker_left=3.0
    )
    assert plan.ended is None  # a newer claim (epoch 2) took the Lease since


def test_a_handed_back_attempt_queues_the_next_at_once_without_spending_the_budget() -> None:
    back = {
        "attempt": 1,
        "epoch": 1,
        "exitCode": int(contract.ExitCode.HANDED_BACK),
        "reason": "HandedBack",
        "message": "drained",
    }
    plan = _decide(OFFERED, lease=_lease(CLAIM, back, transitions=1))
    assert plan.ended == C.OUTCOME_HANDED_BACK
    assert plan.condition(C.CONDITION_QUEUED) == (T, C.REASON_HANDED_BACK)
    assert plan.status is not None and "nextRetryTime" not in plan.status
    requeued = w.after(OFFERED, plan)
    again = lifecycle.admit(requeued, w.NOW, POOL)
    assert again is not None and again.admitted == 2
    assert runstatus.RunStatus(requeued).failures() == 0


def test_a_claimed_attempt_past_its_timeout_ends_timed_out() -> None:
    agent = {**POOLED_AGENT, "spec": {**POOLED_AGENT["spec"], "limits": {"runTimeoutSeconds": 5}}}
    early = w.after(w.QUEUED, lifecycle.admit(w.QUEUED, w.ago(40), POOL))
    recent = _decide(
        early,
        agent=agent,
        lease=_lease(CLAIM, holder="bosun-pool-a-x", transitions=1, acquired=10),
        worker_left=4.0,
    )
    assert recent.ended is None  # timed from the claim: the offer may have waited for a slot
    plan = _decide(
        early,
        agent=agent,
        lease=_lease(CLAIM, holder="bosun-pool-a-x", transitions=1, acquired=40),
        worker_left=4.0,
    )
    assert plan.ended == C.OUTCOME_TIMED_OUT


def test_a_lease_left_by_a_deleted_run_of_the_same_name_decides_nothing() -> None:
    ok = {"attempt": 1, "epoch": 1, "exitCode": 0, "reason": "Succeeded", "message": ""}
    plan = _decide(OFFERED, lease=_lease(CLAIM, ok, transitions=1, owner="u-old"))
    assert plan.ended is None and plan.phase in (None, C.PHASE_RUNNING)


def test_an_unclaimed_offer_is_withdrawn_without_cost_when_the_agent_drops_its_pool() -> None:
    plan = _decide(OFFERED, agent=w.AGENT, lease=_lease())
    assert plan.ended == C.OUTCOME_HANDED_BACK
    assert plan.condition(C.CONDITION_QUEUED) == (T, C.REASON_HANDED_BACK)
    requeued = w.after(OFFERED, plan)
    assert runstatus.RunStatus(requeued).failures() == 0


def test_a_lease_of_a_run_begun_in_job_mode_is_labelled_for_the_pool_first() -> None:
    unlabelled = _lease()
    unlabelled["metadata"]["labels"] = {}
    plan = _decide(OFFERED, lease=unlabelled)
    assert plan.actions == (plans.LabelForPool("a"),)


def test_the_pool_deployment_is_the_agents_runner_pod_with_its_secrets_by_reference() -> None:
    agent = {
        **POOLED_AGENT,
        "spec": {
            **POOLED_AGENT["spec"],
            "model": {"provider": "openai", "apiKeySecretRef": {"name": "llm", "key": "token"}},
        },
    }
    settings = settings_mod.Settings(runner_env=(("BOSUN_RUNNER_LOG_LEVEL", "DEBUG"),))
    objs = pools.objects(
        agent, [], settings, runnerclasses.Resolved(None, None, False), {"team": "x"}
    )
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "Deployment",
    ]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "u-a" for o in objs)
    assert objs[1]["rules"] == contract.pool_rules()
    deployment = objs[-1]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == POOL and pod["restartPolicy"] == "Always"
    (container,) = pod["containers"]
    assert container["args"] == ["pool"]
    env = {e["name"]: e for e in container["env"]}
    assert env[contract.ENV_POOL_AGENT]["value"] == "a"
    assert env[contract.ENV_POOL_RUNS_PER_WORKER]["value"] == "3"
    assert env[contract.ENV_MODEL_API_KEY]["valueFrom"] == {
        "secretKeyRef": {"name": "llm", "key": "token"}
    }
    assert json.loads(env[contract.ENV_NAMESPACE_LABELS]["value"]) == {"team": "x"}
    assert env["BOSUN_RUNNER_LOG_LEVEL"]["value"] == "DEBUG"
    # The same pod a Job's runner gets: one builder for both.
    job = builders.job(w.RUNNING, agent, [], 1, settings)
    assert (
        container["securityContext"]
        == job["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    )
    # What the operator rendered is hashed, so a changed runner rolls the pool.
    other = pools.deployment(
        agent, [], settings_mod.Settings(), runnerclasses.Resolved(None, None, False), None
    )
    key = pools.ANNOTATION_SPEC_HASH
    assert other["metadata"]["annotations"][key] != deployment["metadata"]["annotations"][key]
