"""The lifecycle's rules for an attempt offered to a worker pool instead of a Job.

The offer is the attempt in the Run's status (``attempts[].pool``); the Run's Lease, owned by
the Run, is both the claim (``contract.ANNOTATION_CLAIM``, written by the worker that won it)
and the mailbox of the outcome (``ANNOTATION_OUTCOME``, written when it gives the Lease back),
read as a Job's exit code is. The claiming worker's own Lease is the attempt's liveness
(``World.worker_left``): once it expires, the attempt ends Lost. An unclaimed offer ends Lost
after the start timeout, or is withdrawn without spending the retry budget when the Agent no
longer has a pool; a draining worker's hand-back queues the next attempt at once. Pure, like
all of the lifecycle: these functions edit a ``plans.Draft``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from bosun import constants, contract
from bosun.controller import attempts, builders, conditions, outcomes, plans, pools

__all__ = ["CLAIM_RESYNC_SECONDS", "SHOW_CLAIM_AFTER_SECONDS", "supervise"]

_RUNNING = constants.CONDITION_RUNNING
_QUEUED = constants.CONDITION_QUEUED

SHOW_CLAIM_AFTER_SECONDS = 10.0
"""How long a claimed attempt runs before its worker and epoch are written to the Run's status
(a short one has them written with its end)."""
CLAIM_RESYNC_SECONDS = 60.0
"""How often a claimed attempt is looked at when nothing happens: its worker's Lease events
wake it when that worker stops renewing."""


def supervise(
    d: plans.Draft, attempt: Mapping[str, Any], deadline: datetime.datetime | None
) -> plans.Plan:
    """The plan for a Run whose active attempt is offered to a pool."""
    world, st, now = d.world, d.st, d.now
    number = int(attempt["number"])
    lease = world.lease
    agent = (world.agent or {}).get("metadata", {}).get("name")
    if lease is None:
        if agent is None:
            d.set(_RUNNING, False, constants.REASON_AGENT_NOT_FOUND, "The Agent disappeared")
            return d.plan(requeue_after=5.0)
        duration = world.settings.lease_duration_seconds
        d.actions.append(plans.Create(builders.lease(world.run, duration, str(agent))))
        return d.plan(requeue_after=attempts.POD_CHECK_SECONDS)
    ours = contract.owned_by_run(lease, world.run)
    labels = (lease.get("metadata") or {}).get("labels") or {}
    if ours and agent and labels.get(constants.LABEL_AGENT) != agent:
        # A Run begun in Job mode: its Lease and journal get the label the workers need.
        d.actions.append(plans.LabelForPool(str(agent)))
        return d.plan(requeue_after=attempts.POD_CHECK_SECONDS)
    # A Lease left by a deleted Run of the same name decides nothing: the garbage collector
    # removes it, and then this Run's is created.
    claim = contract.lease_note(lease, contract.ANNOTATION_CLAIM) if ours else None
    outcome = contract.lease_note(lease, contract.ANNOTATION_OUTCOME) if ours else None
    spec = lease.get("spec") or {}
    epoch = int(spec.get("leaseTransitions") or 0)
    if claim is None or claim.get("attempt") != number:
        return _unclaimed(d, attempt, deadline)
    worker = str(claim.get("worker") or "")

    def record_claim() -> None:
        # Written with the attempt's end, or once it ran SHOW_CLAIM_AFTER_SECONDS: a short
        # attempt costs one status write less (the Lease shows the holder meanwhile).
        attempts.mirror_lease(st, lease)
        active = st.active_attempt()
        if active is not None:
            active["pod"] = worker
            active["epoch"] = epoch

    if outcome is not None and outcome.get("attempt") == number and outcome.get("epoch") == epoch:
        record_claim()
        _claim_ended(d, outcome)
        return d.plan(requeue_after=attempts.retry_wait(st, now), wants_admission=True)
    if world.worker_left is None or world.worker_left < 0:
        record_claim()
        message = (
            f"Worker {worker} of pool {attempt['pool']} stopped renewing its Lease; the attempt"
            " is taken over"
        )
        attempts.abandon(d, constants.REASON_LEASE_EXPIRED, message)
        return d.plan(requeue_after=attempts.retry_wait(st, now), wants_admission=True)
    # Timed from the claim: an offer may wait for a free slot.
    claimed = conditions.parse(spec.get("acquireTime")) or now
    started = max(claimed, conditions.parse(attempt.get("startTime")) or claimed)
    limits = ((world.agent or {}).get("spec") or {}).get("limits") or {}
    seconds = int(limits.get("runTimeoutSeconds") or world.settings.attempt_timeout_seconds)
    # The runner stops itself at runTimeoutSeconds; past it and a grace period, it is hung.
    limit = started + datetime.timedelta(seconds=seconds + world.settings.lease_duration_seconds)
    if now >= limit:
        record_claim()
        message = f"Attempt {number} ran over {seconds}s in worker {worker}"
        verdict = outcomes.Verdict(constants.OUTCOME_TIMED_OUT, "AttemptTimedOut", True, message)
        attempts.conclude(d, verdict)
        return d.plan(requeue_after=attempts.retry_wait(st, now), wants_admission=True)
    shown = claimed + datetime.timedelta(seconds=SHOW_CLAIM_AFTER_SECONDS)
    if now >= shown:
        record_claim()  # a longer attempt shows its worker (a no-op once written)
    resync = now + datetime.timedelta(seconds=CLAIM_RESYNC_SECONDS)
    wake = min(limit, resync) if now >= shown else min(limit, resync, shown)
    return d.plan(requeue_after=_sooner(wake, deadline, now))


def _unclaimed(
    d: plans.Draft, attempt: Mapping[str, Any], deadline: datetime.datetime | None
) -> plans.Plan:
    """An offer no worker claimed yet: withdrawn when the Agent dropped its pool, Lost after
    the start timeout."""
    world, st, now = d.world, d.st, d.now
    number = int(attempt["number"])
    if world.agent is not None and pools.pool_of(world.agent) is None:
        _hand_back(d, f"The Agent has no pool anymore; attempt {number} was withdrawn")
        return d.plan(requeue_after=attempts.retry_wait(st, now), wants_admission=True)
    timeout = world.settings.start_timeout_seconds
    limit = (conditions.parse(attempt.get("startTime")) or now) + datetime.timedelta(
        seconds=timeout
    )
    if now >= limit:
        message = f"No worker of pool {attempt['pool']} claimed attempt {number} within {timeout}s"
        attempts.abandon(d, constants.REASON_RUNNER_NEVER_STARTED, message)
        return d.plan(requeue_after=attempts.retry_wait(st, now), wants_admission=True)
    return d.plan(requeue_after=_sooner(limit, deadline, now))


def _sooner(
    moment: datetime.datetime, deadline: datetime.datetime | None, now: datetime.datetime
) -> float:
    if deadline is not None:
        moment = min(moment, deadline)
    return max(0.0, (moment - now).total_seconds()) + 0.5


def _claim_ended(d: plans.Draft, outcome: Mapping[str, Any]) -> None:
    """Conclude the attempt from what its worker wrote when it gave the Lease back."""
    attempt = d.st.active_attempt()
    assert attempt is not None
    code = outcome.get("exitCode")
    exit_code = code if isinstance(code, int) else None
    if exit_code is not None:
        attempt["exitCode"] = exit_code
    if exit_code == contract.ExitCode.HANDED_BACK:
        _hand_back(d, str(outcome.get("message") or ""))
        return
    verdict = outcomes.classify_exit(exit_code)
    if exit_code is not None:
        report = {"reason": outcome.get("reason"), "message": outcome.get("message")}
        verdict = outcomes.explained(verdict, json.dumps(report))
    attempts.conclude(d, verdict)


def _hand_back(d: plans.Draft, message: str) -> None:
    """End the attempt HandedBack and queue the next at once, the retry budget untouched."""
    st = d.st
    active = st.active_attempt()
    assert active is not None
    number = int(active["number"])
    st.end_attempt(d.now, constants.OUTCOME_HANDED_BACK, constants.REASON_HANDED_BACK, message)
    d.facts["ended"] = constants.OUTCOME_HANDED_BACK
    text = f"Attempt {number} was handed back ({message}); attempt {number + 1} starts now"
    d.set(_RUNNING, False, constants.REASON_HANDED_BACK, text)
    d.set(_QUEUED, True, constants.REASON_HANDED_BACK, text)
