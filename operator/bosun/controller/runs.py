"""Reconcile one Run: admission state, its attempts' Jobs, lease expiry, retries, dead letters.

Level-based and idempotent: every call reads the Run, its Agent, the current attempt's Job and
the Run's Lease from the store, decides, and writes the operator's status fields only when
they changed. Attempt N's intent is recorded in status before its Job is created, and the Job's
name is derived from N, so a reconcile replayed after a crash creates nothing twice and counts
no attempt twice. Admission (which queued Run starts next) is the controller's job; this module
only reports whether a Run is waiting for it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import exceptions

from bosun import constants, contract, kube
from bosun.controller import builders, conditions, events, metrics, retry, runstatus
from bosun.controller import settings as settings_mod
from bosun.controller import store as store_mod

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]
ANNOTATION_REDRIVE = f"{constants.GROUP}/redrive"


@dataclasses.dataclass
class Result:
    """What the controller should do after a reconcile."""

    requeue_after: float | None = None
    wants_admission: bool = False


class RunReconciler:
    def __init__(
        self,
        store: store_mod.Store,
        rest: kube.Rest,
        settings: settings_mod.Settings,
    ) -> None:
        self.store = store
        self.rest = rest
        self.settings = settings
        # (namespace, lease) -> (what the Lease said, when this process first saw it say so).
        self._lease_seen: dict[tuple[str, str], tuple[tuple[Any, ...], float]] = {}

    # --- entry point ---------------------------------------------------------------------

    def reconcile(self, key: store_mod.Key) -> Result:
        run = self.store.runs.get(key)
        if run is None or run["metadata"].get("deletionTimestamp"):
            return Result()
        st = runstatus.RunStatus(run)
        result = self._decide(run, st)
        self._write(run, st)
        return result

    def _decide(self, run: Obj, st: runstatus.RunStatus) -> Result:
        spec = run.get("spec") or {}
        now = conditions.now()
        if self._redrive_requested(run, st):
            self._redrive(run, st)
            return Result(wants_admission=True)
        if st.phase in runstatus.TERMINAL_PHASES:
            return Result()
        if not st.phase:
            st.set("Queued", None, conditions.RECONCILING, "The operator is looking at this Run")
            st.phase = "Pending"
        active = st.active_attempt()
        if spec.get("cancel"):
            self._stop_active(run, st, "Cancelled", conditions.CANCELLED, "spec.cancel is true")
            self._finish(run, st, "Cancelled", conditions.CANCELLED, "The Run was cancelled")
            return Result()
        deadline = self._deadline(run)
        if deadline is not None and now >= deadline:
            self._stop_active(
                run, st, "TimedOut", conditions.DEADLINE_EXCEEDED, "the Run's deadline passed"
            )
            message = f"The Run exceeded deadlineSeconds={spec.get('deadlineSeconds')}"
            self._finish(run, st, "Failed", conditions.DEADLINE_EXCEEDED, message)
            return Result()
        if active is not None:
            if spec.get("suspend"):
                self._stop_active(run, st, "Cancelled", conditions.SUSPENDED, "spec.suspend")
                return self._wait_suspended(st)
            return self._supervise(run, st, active, deadline)
        return self._pending(run, st, deadline)

    # --- not running -------------------------------------------------------------------------

    def _pending(
        self, run: Obj, st: runstatus.RunStatus, deadline: datetime.datetime | None
    ) -> Result:
        spec = run.get("spec") or {}
        original = self._duplicate_of(run)
        if original is not None:
            st.fields["duplicateOf"] = original
            key = spec.get("idempotencyKey")
            message = f"Duplicate of Run {original} (idempotencyKey {key!r}); it never executes"
            st.set("Queued", False, conditions.DUPLICATE, message)
            st.phase = "Duplicate"
            st.fields["completionTime"] = conditions.stamp(conditions.now())
            events.emit(self.rest, run, conditions.DUPLICATE, message)
            metrics.RUNS.labels("Duplicate").inc()
            return Result()
        if spec.get("suspend"):
            return self._wait_suspended(st)
        agent_name = spec.get("agentRef", {}).get("name", "")
        agent = self.store.agents.get((run["metadata"]["namespace"], agent_name))
        if agent is None:
            message = f"Agent {agent_name} does not exist yet; the Run starts when it appears"
            if (st.condition("Queued") or {}).get("reason") != conditions.AGENT_NOT_FOUND:
                events.emit(self.rest, run, conditions.AGENT_NOT_FOUND, message, warning=True)
            st.set("Queued", True, conditions.AGENT_NOT_FOUND, message)
            st.phase = "Pending"
            return self._until_deadline(deadline)
        next_retry = conditions.parse(st.fields.get("nextRetryTime"))
        if next_retry is not None:
            wait = (next_retry - conditions.now()).total_seconds()
            if wait > 0:
                st.phase = "Retrying"
                return Result(requeue_after=wait)
        if st.phase not in ("Queued",):
            st.set("Queued", True, conditions.WAITING_FOR_CAPACITY, conditions.WAITING_MESSAGE)
            st.phase = "Queued"
        result = self._until_deadline(deadline)
        result.wants_admission = True
        return result

    def _wait_suspended(self, st: runstatus.RunStatus) -> Result:
        st.set("Queued", False, conditions.SUSPENDED, "spec.suspend is true; no attempt starts")
        st.set("Running", False, conditions.SUSPENDED, "The Run is suspended")
        st.phase = "Suspended"
        return Result()

    def _until_deadline(self, deadline: datetime.datetime | None) -> Result:
        if deadline is None:
            return Result()
        return Result(requeue_after=max(0.0, (deadline - conditions.now()).total_seconds()) + 0.5)

    def _deadline(self, run: Obj) -> datetime.datetime | None:
        seconds = (run.get("spec") or {}).get("deadlineSeconds")
        created = conditions.parse(run["metadata"].get("creationTimestamp"))
        if not seconds or created is None:
            return None
        return created + datetime.timedelta(seconds=int(seconds))

    def _duplicate_of(self, run: Obj) -> str | None:
        """The oldest other live-or-succeeded Run with this Run's idempotencyKey, if any."""
        key = (run.get("spec") or {}).get("idempotencyKey")
        if not key:
            return None
        meta = run["metadata"]
        mine = (meta.get("creationTimestamp") or "", meta["name"])
        best: tuple[str, str] | None = None
        for other in self.store.runs.values():
            ometa = other["metadata"]
            if ometa["namespace"] != meta["namespace"] or ometa["name"] == meta["name"]:
                continue
            if (other.get("spec") or {}).get("idempotencyKey") != key:
                continue
            phase = (other.get("status") or {}).get("phase")
            if phase in ("Failed", "Cancelled", "DeadLettered", "Duplicate"):
                continue
            theirs = (ometa.get("creationTimestamp") or "", ometa["name"])
            if theirs < mine and (best is None or theirs < best):
                best = theirs
        return best[1] if best else None

    # --- starting an attempt (called by the controller's admission) --------------------------

    def start_attempt(self, key: store_mod.Key) -> bool:
        """Record the next attempt in status (the admission decision). True when started."""
        run = self.store.runs.get(key)
        if run is None:
            return False
        st = runstatus.RunStatus(run)
        if st.active_attempt() is not None or st.phase in runstatus.TERMINAL_PHASES:
            return False
        now = conditions.now()
        number = st.next_attempt_number()
        job = contract.job_name(run["metadata"]["name"], number)
        st.attempts.append({"number": number, "job": job, "startTime": conditions.stamp(now)})
        st.fields.pop("nextRetryTime", None)
        st.fields.setdefault("startTime", conditions.stamp(now))
        st.fields.setdefault(
            "lease", {"name": contract.lease_name(run["metadata"]["name"]), "transitions": 0}
        )
        st.set("Queued", False, conditions.ADMITTED, f"Admitted as attempt {number}")
        st.set("Running", True, conditions.ATTEMPT_RUNNING, f"Attempt {number} runs as Job {job}")
        st.phase = "Running"
        self._write(run, st)
        if number == 1:
            created = conditions.parse(run["metadata"].get("creationTimestamp"))
            if created is not None:
                metrics.ADMISSION_LATENCY.observe(max(0.0, (now - created).total_seconds()))
        metrics.ATTEMPTS_STARTED.inc()
        log.info("Admitted run=%s/%s attempt=%d job=%s", key[0], key[1], number, job)
        return True

    def hold(self, key: store_mod.Key, reason: str, message: str, event: str | None = None) -> None:
        """Record why admission keeps a queued Run waiting (written only when it changes; an
        Event, saying ``event`` or else ``message``, when the reason does)."""
        run = self.store.runs.get(key)
        if run is None:
            return
        st = runstatus.RunStatus(run)
        if st.phase != "Queued" or st.active_attempt() is not None:
            return
        current = st.condition("Queued") or {}
        if current.get("reason") == reason and current.get("message") == message:
            return
        if current.get("reason") != reason and reason != conditions.WAITING_FOR_CAPACITY:
            events.emit(self.rest, run, reason, event or message, warning=True)
        st.set("Queued", True, reason, message)
        self._write(run, st)

    # --- supervising an active attempt ----------------------------------------------------------

    def _supervise(
        self,
        run: Obj,
        st: runstatus.RunStatus,
        attempt: Obj,
        deadline: datetime.datetime | None,
    ) -> Result:
        ns, name = run["metadata"]["namespace"], run["metadata"]["name"]
        job = self.store.jobs.get((ns, attempt["job"]))
        if job is None:
            if not self._create_children(run, st, attempt):
                return Result(requeue_after=5.0)
            return self._until_deadline(deadline)
        finished = _job_finished(job)
        if finished is not None:
            self._attempt_ended(run, st, job, finished)
            return Result(requeue_after=self._retry_wait(st), wants_admission=True)
        lease = self.store.leases.get((ns, contract.lease_name(name)))
        expiry = None
        if lease is not None:
            self._mirror_lease(st, lease)
            expiry = self._lease_expiry(lease, attempt)
        if expiry is None:
            # The runner has not taken the Lease yet: give it the start timeout.
            started = conditions.parse(attempt.get("startTime")) or conditions.now()
            limit = started + datetime.timedelta(seconds=self.settings.start_timeout_seconds)
            if conditions.now() >= limit:
                message = (
                    f"No runner of attempt {attempt['number']} took the Lease within "
                    f"{self.settings.start_timeout_seconds}s"
                )
                self._abandon(run, st, "RunnerNeverStarted", message)
                return Result(requeue_after=self._retry_wait(st), wants_admission=True)
            expiry = limit
        left = (expiry - conditions.now()).total_seconds()
        if left < 0:
            assert lease is not None
            holder = (lease.get("spec") or {}).get("holderIdentity")
            message = f"Lease held by {holder} expired; the attempt is taken over"
            self._abandon(run, st, "LeaseExpired", message)
            return Result(requeue_after=self._retry_wait(st), wants_admission=True)
        wait = left + 0.5
        if deadline is not None:
            wait = min(wait, (deadline - conditions.now()).total_seconds() + 0.5)
        return Result(requeue_after=wait)

    def _create_children(self, run: Obj, st: runstatus.RunStatus, attempt: Obj) -> bool:
        """Create the attempt's Job (and, once, the runner's RBAC and Lease)."""
        ns = run["metadata"]["namespace"]
        agent = self.store.agents.get((ns, run["spec"]["agentRef"]["name"]))
        if agent is None:
            st.set("Running", False, conditions.AGENT_NOT_FOUND, "The Agent disappeared")
            return False
        tools = [
            t
            for t in (self.store.tools.get((ns, n)) for n in agent.get("spec", {}).get("tools", []))
            if t is not None
        ]
        # The Lease is created last, so once the store has it the runner's RBAC exists too
        # and a retried attempt needs only its Job.
        if self.store.leases.get((ns, contract.lease_name(run["metadata"]["name"]))) is None:
            for child in (
                builders.service_account(run),
                builders.role(run),
                builders.role_binding(run),
            ):
                self.rest.create(child)
            lease = self.rest.create(builders.lease(run, self.settings.lease_duration_seconds))
            if lease is not None:
                self.store.leases.put(lease)
        job = builders.job(run, agent, tools, int(attempt["number"]), self.settings)
        created = self.rest.create(job)
        if created is not None:
            self.store.jobs.put(created)
            log.info(
                "Created job=%s/%s run=%s", ns, job["metadata"]["name"], run["metadata"]["name"]
            )
        return True

    def _lease_expiry(
        self, lease: Mapping[str, Any], attempt: Mapping[str, Any]
    ) -> datetime.datetime | None:
        """When the active attempt's hold on the Lease expires; None while it holds none.

        As client-go's leader election does, expiry is measured on this process's monotonic
        clock from the moment it last saw the Lease change, never from the runner's timestamps,
        so clock skew between nodes cannot shorten a Lease. A Lease still held by an earlier
        attempt's pod does not count against this attempt: its runner takes the expired Lease
        over when it starts.
        """
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        if not holder.startswith(f"{attempt['job']}-"):
            return None
        key = (lease["metadata"]["namespace"], lease["metadata"]["name"])
        version = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        seen = self._lease_seen.get(key)
        if seen is None or seen[0] != version:
            seen = (version, time.monotonic())
            self._lease_seen[key] = seen
        duration = float(spec.get("leaseDurationSeconds") or contract.LEASE_DURATION_SECONDS)
        left = seen[1] + duration - time.monotonic()
        return conditions.now() + datetime.timedelta(seconds=left)

    def _mirror_lease(self, st: runstatus.RunStatus, lease: Mapping[str, Any]) -> None:
        spec = lease.get("spec") or {}
        mirrored = {
            "name": lease["metadata"]["name"],
            "holder": spec.get("holderIdentity"),
            "transitions": int(spec.get("leaseTransitions") or 0),
        }
        st.fields["lease"] = {k: v for k, v in mirrored.items() if v is not None}
        attempt = st.active_attempt()
        holder = str(spec.get("holderIdentity") or "")
        if attempt is not None and holder.startswith(f"{attempt['job']}-"):
            attempt["pod"] = holder
            attempt["epoch"] = mirrored["transitions"]

    def _attempt_ended(
        self, run: Obj, st: runstatus.RunStatus, job: Mapping[str, Any], kind: str
    ) -> None:
        ns = run["metadata"]["namespace"]
        exit_code, pod_reason, pod_name, report = self._pod_outcome(ns, job["metadata"]["name"])
        attempt = st.active_attempt()
        assert attempt is not None
        if pod_name:
            attempt["pod"] = pod_name
        if kind == "Complete":
            verdict = retry.Verdict("Succeeded", "RunnerSucceeded", False)
        else:
            verdict = retry.failed_attempt(exit_code, pod_reason, _job_failure_reason(job), report)
        if exit_code is not None:
            attempt["exitCode"] = exit_code
        self._conclude(run, st, verdict)

    def _pod_outcome(
        self, namespace: str, job_name: str
    ) -> tuple[int | None, str | None, str | None, str | None]:
        """Exit code, pod reason, pod name and termination message of the Job's last pod."""
        pods = self.rest.list("v1", "pods", namespace, label_selector=f"job-name={job_name}")
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        for pod in reversed(pods):
            status = pod.get("status") or {}
            for container in status.get("containerStatuses") or ():
                terminated = (container.get("state") or {}).get("terminated")
                if terminated is not None:
                    return (
                        int(terminated["exitCode"]),
                        status.get("reason"),
                        pod["metadata"]["name"],
                        terminated.get("message"),
                    )
            return None, status.get("reason"), pod["metadata"]["name"], None
        return None, None, None, None

    def _abandon(self, run: Obj, st: runstatus.RunStatus, reason: str, message: str) -> None:
        """End the active attempt as Lost: its runner is gone or never came; retry it."""
        attempt = st.active_attempt()
        assert attempt is not None
        self.rest.delete("batch/v1", "jobs", run["metadata"]["namespace"], attempt["job"])
        metrics.LEASE_TAKEOVERS.inc()
        events.emit(self.rest, run, "LeaseLost", message, warning=True)
        self._conclude(run, st, retry.Verdict("Lost", reason, True, message))

    def _stop_active(
        self, run: Obj, st: runstatus.RunStatus, outcome: str, reason: str, why: str
    ) -> None:
        attempt = st.active_attempt()
        if attempt is None:
            return
        self.rest.delete("batch/v1", "jobs", run["metadata"]["namespace"], attempt["job"])
        st.end_attempt(conditions.now(), outcome, reason, f"Stopped: {why}")
        metrics.ATTEMPTS.labels(outcome).inc()

    # --- concluding an attempt --------------------------------------------------------------

    def _conclude(self, run: Obj, st: runstatus.RunStatus, verdict: retry.Verdict) -> None:
        now = conditions.now()
        st.end_attempt(now, verdict.outcome, verdict.reason, verdict.message)
        metrics.ATTEMPTS.labels(verdict.outcome).inc()
        number = st.attempts[-1]["number"]
        if verdict.outcome == "Succeeded":
            self._finish(run, st, "Succeeded", conditions.SUCCEEDED, f"Attempt {number} succeeded")
            return
        if verdict.outcome == "Cancelled":
            self._finish(run, st, "Cancelled", conditions.CANCELLED, "The runner was cancelled")
            return
        if not verdict.retryable:
            message = f"Attempt {number} failed permanently: {verdict.reason}"
            if verdict.message:
                message += f": {verdict.message}"
            self._finish(run, st, "Failed", verdict.reason, message)
            return
        policy = self._policy(run)
        failures = st.failures()
        if failures >= policy.max_attempts:
            self._dead_letter(run, st, failures, verdict)
            return
        delay = policy.delay(failures)
        st.attempts[-1]["backoffSeconds"] = round(delay, 3)
        when = now + datetime.timedelta(seconds=delay)
        st.fields["nextRetryTime"] = conditions.stamp_precise(when)
        message = (
            f"Attempt {number} ended {verdict.outcome} ({verdict.reason}); attempt {number + 1} "
            f"after {delay:.1f}s (bound {policy.bound(failures):.1f}s)"
        )
        st.set("Running", False, conditions.RETRY_SCHEDULED, message)
        st.set("Queued", True, conditions.RETRY_SCHEDULED, message)
        st.phase = "Retrying"
        metrics.RETRIES.inc()
        events.emit(self.rest, run, conditions.RETRY_SCHEDULED, message)
        log.info("Scheduled retry run=%s delay=%.2f", run["metadata"]["name"], delay)

    def _dead_letter(
        self, run: Obj, st: runstatus.RunStatus, failures: int, verdict: retry.Verdict
    ) -> None:
        message = (
            f"All {failures} attempts failed (last: {verdict.reason}); "
            "dead-lettered. 'bosun redrive' runs it again"
        )
        st.set("DeadLettered", True, conditions.RETRIES_EXHAUSTED, message)
        self._finish(run, st, "DeadLettered", conditions.RETRIES_EXHAUSTED, message)
        meta = run["metadata"]
        self.rest.merge_patch(
            constants.API_VERSION,
            "runs",
            meta["namespace"],
            meta["name"],
            {"metadata": {"labels": {constants.LABEL_DEAD_LETTER: "true"}}},
        )
        metrics.DEAD_LETTERS.inc()
        events.emit(self.rest, run, "DeadLettered", message, warning=True)

    def _finish(
        self, run: Obj, st: runstatus.RunStatus, phase: str, reason: str, message: str
    ) -> None:
        now = conditions.now()
        meta = run["metadata"]
        self._lease_seen.pop((meta["namespace"], contract.lease_name(meta["name"])), None)
        st.phase = phase
        st.fields.pop("nextRetryTime", None)
        st.fields["completionTime"] = conditions.stamp(now)
        st.set("Running", False, reason, message)
        if phase == "Succeeded":
            st.set("Succeeded", True, reason, message)
            st.set("Queued", False, reason, message)
        else:
            st.set("Failed", True, reason, message)
            st.set("Queued", False, reason, message)
        created = conditions.parse(run["metadata"].get("creationTimestamp"))
        metrics.RUNS.labels(phase).inc()
        if created is not None:
            metrics.RUN_DURATION.labels(phase).observe(max(0.0, (now - created).total_seconds()))
        agent = self.store.agents.get((meta["namespace"], run["spec"]["agentRef"]["name"])) or {}
        model = (agent.get("spec") or {}).get("model") or {}
        _count_usage(run, str(model.get("name") or model.get("provider") or "unknown"))
        if phase != "DeadLettered":
            events.emit(self.rest, run, phase, message, warning=phase != "Succeeded")
        log.info(
            "Finished run=%s/%s phase=%s reason=%s",
            run["metadata"]["namespace"],
            run["metadata"]["name"],
            phase,
            reason,
        )

    def _retry_wait(self, st: runstatus.RunStatus) -> float | None:
        when = conditions.parse(st.fields.get("nextRetryTime"))
        if when is None:
            return None
        return max(0.0, (when - conditions.now()).total_seconds())

    def _policy(self, run: Obj) -> retry.Policy:
        ns = run["metadata"]["namespace"]
        agent = self.store.agents.get((ns, run["spec"]["agentRef"]["name"])) or {}
        return retry.effective(run["spec"].get("retry"), agent.get("spec", {}).get("retry"))

    # --- redrive ---------------------------------------------------------------------------------

    def _redrive_requested(self, run: Obj, st: runstatus.RunStatus) -> bool:
        token = (run["metadata"].get("annotations") or {}).get(ANNOTATION_REDRIVE)
        return (
            bool(token)
            and token != st.fields.get("redrive")
            and st.phase
            in (
                "DeadLettered",
                "Failed",
            )
        )

    def _redrive(self, run: Obj, st: runstatus.RunStatus) -> None:
        meta = run["metadata"]
        st.fields["redrive"] = meta["annotations"][ANNOTATION_REDRIVE]
        st.fields["attemptBudgetStart"] = len(st.attempts) and int(st.attempts[-1]["number"])
        st.fields.pop("completionTime", None)
        st.fields.pop("nextRetryTime", None)
        message = "Redriven with a fresh attempt budget"
        st.set("DeadLettered", False, conditions.REDRIVEN, message)
        st.set("Failed", False, conditions.REDRIVEN, message)
        st.set("Queued", True, conditions.REDRIVEN, message)
        st.phase = "Queued"
        if (meta.get("labels") or {}).get(constants.LABEL_DEAD_LETTER):
            self.rest.merge_patch(
                constants.API_VERSION,
                "runs",
                meta["namespace"],
                meta["name"],
                {"metadata": {"labels": {constants.LABEL_DEAD_LETTER: None}}},
            )
        events.emit(self.rest, run, conditions.REDRIVEN, message)

    # --- writing ---------------------------------------------------------------------------------

    def _write(self, run: Obj, st: runstatus.RunStatus) -> None:
        if not st.changed():
            return
        try:
            updated = self.rest.apply(
                st.apply_body(), manager=contract.FIELD_MANAGER_OPERATOR, subresource="status"
            )
        except exceptions.ApiException as err:
            if err.status == 404:
                return
            raise
        self.store.runs.put(updated)
        st.mark_written()


def _job_finished(job: Mapping[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _job_failure_reason(job: Mapping[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("reason") or "")
    return None


def _count_usage(run: Mapping[str, Any], model: str) -> None:
    usage = (run.get("status") or {}).get("usage") or {}
    if usage.get("toolCalls"):
        metrics.TOOL_CALLS.labels("executed").inc(int(usage["toolCalls"]))
    if usage.get("deniedCalls"):
        metrics.TOOL_CALLS.labels("denied").inc(int(usage["deniedCalls"]))
    if usage.get("inputTokens"):
        metrics.TOKENS.labels(model, "input").inc(int(usage["inputTokens"]))
    if usage.get("outputTokens"):
        metrics.TOKENS.labels(model, "output").inc(int(usage["outputTokens"]))
