"""Decide what one Run needs next, as a pure function of what the operator observed of it.

``decide(world, now)`` takes a ``plans.World`` (the Run, its Agent and Tools, the Job and pod
of its latest attempt, its Lease and when this process first saw that Lease so, the settings)
and returns a ``plans.Plan``: the operator's status to apply (conditions, attempts,
nextRetryTime...), the children to create or delete, the Events to emit in order, when to look
again and whether admission should run. The Run-level rules (redrive, cancel, deadline,
suspend, duplicates, waiting for an Agent or for admission) are here, the rules about the active
attempt in ``attempts``; ``admit`` and ``hold`` are admission's two decisions about a queued
Run. Nothing here talks to the API server or reads a clock; ``runs`` observes the world and
executes plans. Conditions carry the state; ``runstatus`` derives the phase from them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants, contract
from bosun.controller import attempts, conditions, plans, pooled, runstatus

__all__ = ["WAITING_MESSAGE", "admit", "decide", "hold"]

WAITING_MESSAGE = "Waiting for admission"

_QUEUED = constants.CONDITION_QUEUED
_RUNNING = constants.CONDITION_RUNNING


# --- the decision ----------------------------------------------------------------------------


def decide(world: plans.World, now: datetime.datetime) -> plans.Plan:
    """What the Run in ``world`` needs at ``now``."""
    if world.run["metadata"].get("deletionTimestamp"):
        return plans.Plan()
    d = plans.Draft(world, now)
    st = d.st
    spec = world.run.get("spec") or {}
    if _redrive_requested(world.run, st):
        _redrive(d)
        return d.plan(wants_admission=True)
    if st.phase in runstatus.TERMINAL_PHASES:
        return d.plan()
    if not st.phase:
        d.set(_QUEUED, None, constants.REASON_RECONCILING, "The operator is looking at this Run")
    active = st.active_attempt()
    if spec.get("cancel"):
        attempts.stop_active(
            d, constants.OUTCOME_CANCELLED, constants.REASON_CANCELLED, "spec.cancel is true"
        )
        attempts.finish(d, constants.REASON_CANCELLED, "The Run was cancelled")
        return d.plan()
    deadline = contract.run_deadline(world.run)
    if deadline is not None and now >= deadline:
        why = "the Run's deadline passed"
        attempts.stop_active(
            d, constants.OUTCOME_TIMED_OUT, constants.REASON_DEADLINE_EXCEEDED, why
        )
        message = f"The Run exceeded deadlineSeconds={spec.get('deadlineSeconds')}"
        attempts.finish(d, constants.REASON_DEADLINE_EXCEEDED, message)
        return d.plan()
    if active is not None:
        if spec.get("suspend"):
            attempts.stop_active(
                d, constants.OUTCOME_CANCELLED, constants.REASON_SUSPENDED, "spec.suspend"
            )
            return _wait_suspended(d)
        if active.get("pool"):
            return pooled.supervise(d, active, deadline)
        return attempts.supervise(d, active, deadline)
    return _pending(d, deadline)


# --- not running -----------------------------------------------------------------------------


def _pending(d: plans.Draft, deadline: datetime.datetime | None) -> plans.Plan:
    world, st, now = d.world, d.st, d.now
    spec = world.run.get("spec") or {}
    original = _duplicate_of(world.run, world.peers)
    if original is not None:
        st.fields["duplicateOf"] = original
        key = spec.get("idempotencyKey")
        message = f"Duplicate of Run {original} (idempotencyKey {key!r}); it never executes"
        d.set(_QUEUED, False, constants.REASON_DUPLICATE, message)
        st.fields["completionTime"] = conditions.stamp(now)
        d.emit(constants.REASON_DUPLICATE, message)
        d.facts["duplicate_of"] = original
        return d.plan()
    if spec.get("suspend"):
        return _wait_suspended(d)
    if world.agent is None:
        agent_name = spec.get("agentRef", {}).get("name", "")
        message = f"Agent {agent_name} does not exist yet; the Run starts when it appears"
        if (st.condition(_QUEUED) or {}).get("reason") != constants.REASON_AGENT_NOT_FOUND:
            d.emit(constants.REASON_AGENT_NOT_FOUND, message, warning=True)
        d.set(_QUEUED, True, constants.REASON_AGENT_NOT_FOUND, message)
        return d.plan(requeue_after=attempts.until(deadline, now))
    next_retry = conditions.parse(st.fields.get("nextRetryTime"))
    if next_retry is not None:
        wait = (next_retry - now).total_seconds()
        if wait > 0:
            if st.phase != constants.PHASE_RETRYING:
                # Suspended or without its Agent while the backoff ran: say it runs again.
                message = (
                    f"Attempt {st.next_attempt_number()} starts after {st.fields['nextRetryTime']}"
                )
                d.set(_QUEUED, True, constants.REASON_RETRY_SCHEDULED, message)
            return d.plan(requeue_after=wait)
    if st.phase != constants.PHASE_QUEUED:
        d.set(_QUEUED, True, constants.REASON_WAITING_FOR_CAPACITY, WAITING_MESSAGE)
    return d.plan(requeue_after=attempts.until(deadline, now), wants_admission=True)


def _wait_suspended(d: plans.Draft) -> plans.Plan:
    d.set(_QUEUED, False, constants.REASON_SUSPENDED, "spec.suspend is true; no attempt starts")
    d.set(_RUNNING, False, constants.REASON_SUSPENDED, "The Run is suspended")
    return d.plan()


def _duplicate_of(run: Mapping[str, Any], peers: Iterable[Mapping[str, Any]]) -> str | None:
    """The oldest other live-or-succeeded Run with this Run's idempotencyKey, if any."""
    key = (run.get("spec") or {}).get("idempotencyKey")
    if not key:
        return None
    meta = run["metadata"]
    mine = (meta.get("creationTimestamp") or "", meta["name"])
    best: tuple[str, str] | None = None
    for other in peers:
        ometa = other["metadata"]
        if ometa["namespace"] != meta["namespace"] or ometa["name"] == meta["name"]:
            continue
        if (other.get("spec") or {}).get("idempotencyKey") != key:
            continue
        phase = (other.get("status") or {}).get("phase")
        if phase in _NOT_ORIGINALS:
            continue
        theirs = (ometa.get("creationTimestamp") or "", ometa["name"])
        if theirs < mine and (best is None or theirs < best):
            best = theirs
    return best[1] if best else None


_NOT_ORIGINALS = (
    constants.PHASE_FAILED,
    constants.PHASE_CANCELLED,
    constants.PHASE_DEAD_LETTERED,
    constants.PHASE_DUPLICATE,
)


# --- admission's decisions -------------------------------------------------------------------


def admit(
    run: Mapping[str, Any], now: datetime.datetime, pool: str | None = None
) -> plans.Plan | None:
    """Start the Run's next attempt (recorded in status before its Job exists; with ``pool``,
    the name of its Agent's pool, the record is the offer its workers claim); None when the
    Run has an active attempt or has finished."""
    st = runstatus.RunStatus(run)
    if st.active_attempt() is not None or st.phase in runstatus.TERMINAL_PHASES:
        return None
    name = run["metadata"]["name"]
    number = st.next_attempt_number()
    job = contract.job_name(name, number)
    started = conditions.stamp(now)
    if pool is not None:
        st.attempts.append({"number": number, "pool": pool, "startTime": started})
    else:
        st.attempts.append({"number": number, "job": job, "startTime": started})
    st.fields.pop("nextRetryTime", None)
    st.fields.setdefault("startTime", conditions.stamp(now))
    st.fields.setdefault("lease", {"name": contract.lease_name(name), "transitions": 0})
    st.set(_QUEUED, False, constants.REASON_ADMITTED, f"Admitted as attempt {number}", at=now)
    message = f"Attempt {number} runs as Job {job}"
    if pool is not None:
        message = f"Attempt {number} is offered to the workers of pool {pool}"
    st.set(_RUNNING, True, constants.REASON_ATTEMPT_RUNNING, message, at=now)
    return plans.Plan(status=st.render(), admitted=number)


def hold(
    run: Mapping[str, Any],
    reason: str,
    message: str,
    now: datetime.datetime,
    event: str | None = None,
) -> plans.Plan | None:
    """Say why admission keeps a queued Run waiting; None when that is already said or the Run
    is not queued. An Event (saying ``event``, else ``message``) when the reason changes to
    one other than WaitingForCapacity."""
    st = runstatus.RunStatus(run)
    if st.phase != constants.PHASE_QUEUED or st.active_attempt() is not None:
        return None
    current = st.condition(_QUEUED) or {}
    if current.get("reason") == reason and current.get("message") == message:
        return None
    actions: tuple[plans.Action, ...] = ()
    if current.get("reason") != reason and reason != constants.REASON_WAITING_FOR_CAPACITY:
        actions = (plans.Emit(reason, event or message, True),)
    st.set(_QUEUED, True, reason, message, at=now)
    return plans.Plan(status=st.render() if st.changed() else None, actions=actions)


# --- redrive ---------------------------------------------------------------------------------


def _redrive_requested(run: Mapping[str, Any], st: runstatus.RunStatus) -> bool:
    token = (run["metadata"].get("annotations") or {}).get(constants.ANNOTATION_REDRIVE)
    return (
        bool(token)
        and token != st.fields.get("redrive")
        and st.phase in (constants.PHASE_DEAD_LETTERED, constants.PHASE_FAILED)
    )


def _redrive(d: plans.Draft) -> None:
    st, meta = d.st, d.world.run["metadata"]
    st.fields["redrive"] = meta["annotations"][constants.ANNOTATION_REDRIVE]
    st.fields["attemptBudgetStart"] = len(st.attempts) and int(st.attempts[-1]["number"])
    st.fields.pop("completionTime", None)
    st.fields.pop("nextRetryTime", None)
    message = "Redriven with a fresh attempt budget"
    d.set(constants.CONDITION_DEAD_LETTERED, False, constants.REASON_REDRIVEN, message)
    d.set(constants.CONDITION_FAILED, False, constants.REASON_REDRIVEN, message)
    d.set(_QUEUED, True, constants.REASON_REDRIVEN, message)
    if (meta.get("labels") or {}).get(constants.LABEL_DEAD_LETTER):
        d.actions.append(plans.LabelDeadLetter(False))
    d.emit(constants.REASON_REDRIVEN, message)
