"""The Run lifecycle's rules about attempts: supervise the active one, end it, conclude.

``supervise`` creates the attempt's children, mirrors its Lease, says on the Running condition
why the attempt's pod cannot start its runner (a missing Secret: the operator never reads
Secrets, the kubelet reports it) and ends it as Lost when its runner never takes the Lease or
lets it expire; when its Job has ended it reads the verdict
(``retry``) and concludes the Run's next step: finished, a retry after a backoff, or
dead-lettered. ``stop_active`` and ``finish`` serve the Run-level rules too. Pure, like all of
the lifecycle: these functions edit a ``plans.Draft``.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Mapping
from typing import Any

from bosun import constants, contract, retry
from bosun.controller import builders, conditions, outcomes, plans, runnerclasses, runstatus

__all__ = [
    "POD_CHECK_SECONDS",
    "abandon",
    "conclude",
    "finish",
    "mirror_lease",
    "retry_wait",
    "stop_active",
    "supervise",
    "until",
]

_QUEUED = constants.CONDITION_QUEUED
_RUNNING = constants.CONDITION_RUNNING
_JOB_DONE = ("Complete", "Failed")
# The kubelet's waiting reasons that mean a runner container will not start until someone fixes
# something: a Secret (or key) it references is missing, or its image cannot be pulled.
_STUCK = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
    }
)
# While no runner holds the Lease, how often to look at the attempt's pod again.
POD_CHECK_SECONDS = 5.0


def supervise(
    d: plans.Draft, attempt: Mapping[str, Any], deadline: datetime.datetime | None
) -> plans.Plan:
    """The plan for a Run with an active ``attempt``."""
    world, st, now = d.world, d.st, d.now
    if world.job is None:
        return _create_children(d, attempt, deadline)
    foreign = _not_ours(world.run, world.job)
    if foreign is not None:
        # Someone else's Job under the attempt's name decides nothing about this Run, and is
        # not ours to delete: the attempt fails and the next one gets another name.
        d.emit(constants.REASON_JOB_NOT_OWNED, foreign, warning=True)
        verdict = outcomes.Verdict(
            constants.OUTCOME_FAILED, constants.REASON_JOB_NOT_OWNED, True, foreign
        )
        conclude(d, verdict)
        return d.plan(requeue_after=retry_wait(st, now), wants_admission=True)
    ended = _job_finished(world.job)
    if ended is not None:
        if world.pod is None:
            return plans.Plan(look_at_pods=True)
        _attempt_ended(d, world.job, world.pod, ended)
        return d.plan(requeue_after=retry_wait(st, now), wants_admission=True)
    lease = world.lease
    expiry = None
    if lease is not None:
        mirror_lease(st, lease)
        expiry = _lease_expiry(d, lease, attempt)
    if expiry is None:
        # The runner has not taken the Lease yet: give it the start timeout.
        timeout = world.settings.start_timeout_seconds
        started = conditions.parse(attempt.get("startTime")) or now
        limit = started + datetime.timedelta(seconds=timeout)
        if now >= limit:
            message = f"No runner of attempt {attempt['number']} took the Lease within {timeout}s"
            running = st.condition(_RUNNING) or {}
            if running.get("reason") == constants.REASON_RUNNER_NOT_STARTING:
                message += f"; {running.get('message')}"
            abandon(d, constants.REASON_RUNNER_NEVER_STARTED, message)
            return d.plan(requeue_after=retry_wait(st, now), wants_admission=True)
        expiry = limit
        if world.pod is None:
            d.facts["look_at_pods"] = True
        else:
            _say_why_not_started(d, attempt, world.pod)
            expiry = min(limit, now + datetime.timedelta(seconds=POD_CHECK_SECONDS))
    else:
        _say_why_not_started(d, attempt, None)
    left = (expiry - now).total_seconds()
    if left < 0:
        assert lease is not None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        message = f"Lease held by {holder} expired; the attempt is taken over"
        abandon(d, constants.REASON_LEASE_EXPIRED, message)
        return d.plan(requeue_after=retry_wait(st, now), wants_admission=True)
    wait = left + 0.5
    if deadline is not None:
        wait = min(wait, (deadline - now).total_seconds() + 0.5)
    return d.plan(requeue_after=wait)


def _not_ours(run: Mapping[str, Any], job: Mapping[str, Any]) -> str | None:
    """Why ``job`` is not a child of ``run`` (its controller must be the Run, by UID)."""
    uid = run["metadata"].get("uid")
    owners = (job.get("metadata") or {}).get("ownerReferences") or ()
    controller = next((o for o in owners if o.get("controller")), None)
    if controller is not None and controller.get("kind") == "Run" and controller.get("uid") == uid:
        return None
    who = f"{controller.get('kind')} {controller.get('name')}" if controller else "nothing"
    return (
        f"Job {job['metadata'].get('name')} has the name of this attempt's Job but is controlled"
        f" by {who}, not by this Run; it was not adopted (delete it if it is not needed)"
    )


def _say_why_not_started(
    d: plans.Draft, attempt: Mapping[str, Any], pod: plans.PodFacts | None
) -> None:
    """Running says RunnerNotStarting (with a warning Event when it starts saying so) while the
    attempt's pod cannot start its runner, and AttemptRunning again once that passed."""
    current = d.st.condition(_RUNNING) or {}
    stuck = pod is not None and pod.waiting_reason in _STUCK
    if not stuck:
        if current.get("reason") == constants.REASON_RUNNER_NOT_STARTING:
            message = f"Attempt {attempt['number']} runs as Job {attempt['job']}"
            d.set(_RUNNING, True, constants.REASON_ATTEMPT_RUNNING, message)
        return
    assert pod is not None
    detail = f"{pod.waiting_reason}: {pod.waiting_message}" if pod.waiting_message else ""
    message = (
        f"The pod {pod.name} of attempt {attempt['number']} cannot start the runner "
        f"({detail or pod.waiting_reason}); it starts once that is fixed, or the attempt ends "
        f"as Lost after {d.world.settings.start_timeout_seconds}s"
    )
    if current.get("reason") != constants.REASON_RUNNER_NOT_STARTING:
        d.emit(constants.REASON_RUNNER_NOT_STARTING, message, warning=True)
    d.set(_RUNNING, True, constants.REASON_RUNNER_NOT_STARTING, message)
    active = d.st.active_attempt()
    if active is not None and pod.name:
        active["pod"] = pod.name


def _create_children(
    d: plans.Draft, attempt: Mapping[str, Any], deadline: datetime.datetime | None
) -> plans.Plan:
    """The attempt's Job (and, once, the runner's RBAC and Lease)."""
    world = d.world
    if world.agent is None:
        d.set(_RUNNING, False, constants.REASON_AGENT_NOT_FOUND, "The Agent disappeared")
        return d.plan(requeue_after=5.0)
    chosen = world.runner_class or runnerclasses.Resolved(None, None, False)
    if chosen.missing:
        message = f"RunnerClass {chosen.name} not found; the attempt starts when it exists"
        d.set(_RUNNING, False, constants.REASON_RUNNER_CLASS_NOT_FOUND, message)
        return d.plan(requeue_after=5.0)
    run, settings = world.run, world.settings
    # The Lease is created last, so once the store has it the runner's RBAC exists too and a
    # retried attempt needs only its Job.
    if world.lease is None:
        for child in (
            builders.service_account(run),
            builders.role(run),
            builders.role_binding(run),
            builders.network_policy(run, chosen),
        ):
            d.actions.append(plans.Create(child))
        d.actions.append(plans.Create(builders.lease(run, settings.lease_duration_seconds)))
    job = builders.job(
        run,
        world.agent,
        world.tools,
        int(attempt["number"]),
        settings,
        runner_class=chosen,
        namespace_labels=world.namespace_labels,
    )
    d.actions.append(plans.Create(job))
    return d.plan(requeue_after=until(deadline, d.now))


def _lease_expiry(
    d: plans.Draft, lease: Mapping[str, Any], attempt: Mapping[str, Any]
) -> datetime.datetime | None:
    """When the active attempt's hold on the Lease expires; None while it holds none.

    A Lease still held by an earlier attempt's pod does not count against this attempt: its
    runner takes the expired Lease over when it starts.
    """
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    if not holder.startswith(f"{attempt['job']}-"):
        return None
    version = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
    seen = d.world.sighting
    if seen is None or seen.version != version:
        seen = plans.LeaseSighting(version, d.world.monotonic)
        d.facts["sighting"] = seen
    duration = float(spec.get("leaseDurationSeconds") or contract.LEASE_DURATION_SECONDS)
    left = seen.seen_at + duration - d.world.monotonic
    return d.now + datetime.timedelta(seconds=left)


def mirror_lease(st: runstatus.RunStatus, lease: Mapping[str, Any]) -> None:
    spec = lease.get("spec") or {}
    mirrored = {
        "name": lease["metadata"]["name"],
        "holder": spec.get("holderIdentity"),
        "transitions": int(spec.get("leaseTransitions") or 0),
    }
    st.fields["lease"] = {k: v for k, v in mirrored.items() if v is not None}
    attempt = st.active_attempt()
    holder = str(spec.get("holderIdentity") or "")
    if attempt is not None and attempt.get("job") and holder.startswith(f"{attempt['job']}-"):
        attempt["pod"] = holder
        attempt["epoch"] = mirrored["transitions"]


def _attempt_ended(d: plans.Draft, job: Mapping[str, Any], pod: plans.PodFacts, kind: str) -> None:
    attempt = d.st.active_attempt()
    assert attempt is not None
    if pod.name:
        attempt["pod"] = pod.name
    if kind == "Complete":
        verdict = outcomes.Verdict(constants.OUTCOME_SUCCEEDED, "RunnerSucceeded", False)
    else:
        verdict = outcomes.failed_attempt(
            pod.exit_code, pod.reason, _job_failure_reason(job), pod.message
        )
    if pod.exit_code is not None:
        attempt["exitCode"] = pod.exit_code
    conclude(d, verdict)


def abandon(d: plans.Draft, reason: str, message: str) -> None:
    """End the active attempt as Lost: its runner is gone or never came; retry it."""
    attempt = d.st.active_attempt()
    assert attempt is not None
    if attempt.get("job"):
        d.actions.append(plans.DeleteJob(str(attempt["job"])))
    d.facts["taken_over"] = True
    d.emit(constants.EVENT_LEASE_LOST, message, warning=True)
    conclude(d, outcomes.Verdict(constants.OUTCOME_LOST, reason, True, message))


def stop_active(d: plans.Draft, outcome: str, reason: str, why: str) -> None:
    attempt = d.st.active_attempt()
    if attempt is None:
        return
    # A pool's worker sees the attempt end in the Run's status and stops it.
    if attempt.get("job"):
        d.actions.append(plans.DeleteJob(str(attempt["job"])))
    d.st.end_attempt(d.now, outcome, reason, f"Stopped: {why}")
    d.facts["ended"] = outcome


# --- concluding an attempt -------------------------------------------------------------------


def conclude(d: plans.Draft, verdict: outcomes.Verdict) -> None:
    st, now = d.st, d.now
    st.end_attempt(now, verdict.outcome, verdict.reason, verdict.message)
    d.facts["ended"] = verdict.outcome
    number = st.attempts[-1]["number"]
    if verdict.outcome == constants.OUTCOME_SUCCEEDED:
        finish(d, constants.REASON_SUCCEEDED, f"Attempt {number} succeeded", succeeded=True)
        return
    if verdict.outcome == constants.OUTCOME_CANCELLED:
        finish(d, constants.REASON_CANCELLED, "The runner was cancelled")
        return
    if not verdict.retryable:
        message = f"Attempt {number} failed permanently: {verdict.reason}"
        if verdict.message:
            message += f": {verdict.message}"
        finish(d, verdict.reason, message)
        return
    policy = _policy(d.world)
    failures = st.failures()
    if failures >= policy.max_attempts:
        _dead_letter(d, failures, verdict)
        return
    uniform = d.world.rng.uniform if d.world.rng is not None else random.uniform
    delay = policy.delay(failures, uniform=uniform)
    st.attempts[-1]["backoffSeconds"] = round(delay, 3)
    st.fields["nextRetryTime"] = conditions.stamp_precise(now + datetime.timedelta(seconds=delay))
    message = (
        f"Attempt {number} ended {verdict.outcome} ({verdict.reason}); attempt {number + 1} "
        f"after {delay:.1f}s (bound {policy.bound(failures):.1f}s)"
    )
    d.set(_RUNNING, False, constants.REASON_RETRY_SCHEDULED, message)
    d.set(_QUEUED, True, constants.REASON_RETRY_SCHEDULED, message)
    d.facts["retry_delay"] = delay
    d.emit(constants.REASON_RETRY_SCHEDULED, message)


def _dead_letter(d: plans.Draft, failures: int, verdict: outcomes.Verdict) -> None:
    message = (
        f"All {failures} attempts failed (last: {verdict.reason}); "
        "dead-lettered. 'bosun redrive' runs it again"
    )
    reason = constants.REASON_RETRIES_EXHAUSTED
    d.set(constants.CONDITION_DEAD_LETTERED, True, reason, message)
    finish(d, reason, message)
    d.actions.append(plans.LabelDeadLetter(True))
    d.facts["dead_lettered"] = True
    d.emit(constants.EVENT_DEAD_LETTERED, message, warning=True)


def finish(d: plans.Draft, reason: str, message: str, *, succeeded: bool = False) -> None:
    """End the Run: Succeeded, or Failed (shown as Cancelled or DeadLettered when the
    conditions say so); an Event named after the phase, except for a dead letter's."""
    st = d.st
    st.fields.pop("nextRetryTime", None)
    st.fields["completionTime"] = conditions.stamp(d.now)
    d.set(_RUNNING, False, reason, message)
    final = constants.CONDITION_SUCCEEDED if succeeded else constants.CONDITION_FAILED
    d.set(final, True, reason, message)
    d.set(_QUEUED, False, reason, message)
    phase = st.phase
    assert phase is not None
    d.facts["finished"] = plans.Finish(phase, reason)
    if phase != constants.PHASE_DEAD_LETTERED:
        d.emit(phase, message, warning=phase != constants.PHASE_SUCCEEDED)


def until(deadline: datetime.datetime | None, now: datetime.datetime) -> float | None:
    """Seconds until just past ``deadline`` (None without one)."""
    if deadline is None:
        return None
    return max(0.0, (deadline - now).total_seconds()) + 0.5


def retry_wait(st: runstatus.RunStatus, now: datetime.datetime) -> float | None:
    when = conditions.parse(st.fields.get("nextRetryTime"))
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _policy(world: plans.World) -> retry.Policy:
    agent_spec = (world.agent or {}).get("spec", {})
    return retry.layered(
        retry.RUN_DEFAULTS, world.run["spec"].get("retry"), agent_spec.get("retry")
    )


def _job_finished(job: Mapping[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") in _JOB_DONE and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _job_failure_reason(job: Mapping[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("reason") or "")
    return None
