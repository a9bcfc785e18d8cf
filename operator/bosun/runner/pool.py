"""A pool worker: a long-lived runner that claims the attempts offered to its Agent's pool.

The operator offers an admitted attempt of a pooled Agent by recording it in the Run's status
(``attempts[-1].pool``) instead of creating a Job. Every worker of the pool watches the Agent's
Runs (a field selector on ``spec.agentRef.name``) and claims an offer by updating the Run's
Lease with its resourceVersion: one more ``leaseTransitions`` (the claim's fencing epoch,
exactly a Job runner's) and the claim annotation naming the attempt, the worker and the
worker's own Lease. Of several workers racing, the API server lets exactly one update through.

Liveness costs one renewal per worker, not per Run: a claim holds while the worker's own Lease
(``contract.worker_lease_name``) is renewed at the epoch the claim names. The worker executes
each claimed attempt with the Job runner's code (``app.execute``) on a thread of its own; when
the attempt ends it releases the Run's Lease with the outcome in an annotation, which the
operator reads as it reads a Job's exit code. A worker that cannot renew its Lease stops every
attempt before its next tool call and exits (the Deployment starts it again); the operator ends
those attempts as Lost once the worker's Lease expires, and another worker claims the next.

SIGTERM drains: no more claims; every attempt stops at its next step boundary (a model request
in flight is abandoned and asked again by the next attempt, a tool call in flight finishes) and
is handed back (``ExitCode.HANDED_BACK``), so the operator starts its next attempt at once,
without spending the retry budget; then the worker releases its Lease and exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from bosun import constants, contract, httpclients, kube
from bosun.runner import (
    app,
    claims,
    config,
    errors,
    kubeapi,
    lease,
    logs,
    mirror,
    offers,
    redaction,
    telemetry,
)

__all__ = ["DRAIN_SECONDS_ENV", "Worker", "main"]

log = logging.getLogger("bosun.runner.pool")

_Obj = dict[str, Any]

DRAIN_SECONDS_ENV = "BOSUN_POOL_DRAIN_SECONDS"
"""How long a draining worker waits for its attempts to reach a step boundary (default 25 s,
inside the pod's 30 s grace period) before it abandons the tool calls still in flight."""


@dataclasses.dataclass
class _Active:
    run: str
    uid: str
    attempt: int
    claim: claims.Claim
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    tools_stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class Worker:
    """Claims and executes the attempts offered to one Agent's pool."""

    def __init__(
        self,
        template: config.Settings,
        env: Mapping[str, str],
        rest: kube.Rest,
        agent: str,
        slots: int,
        *,
        pod_uid: str | None = None,
        drain_seconds: float = 25.0,
    ) -> None:
        self.template = template
        self.env = env
        self.rest = rest
        self.agent = agent
        self.pool = contract.pool_name(agent)
        self.slots = max(1, slots)
        self.pod_uid = pod_uid
        self.drain_seconds = drain_seconds
        self.namespace = template.namespace
        self.cluster = kubeapi.Cluster(self.namespace, rest)
        self.keeper = lease.LeaseKeeper(
            lambda: kubeapi.Cluster(self.namespace, rest),
            template.lease_name,
            template.pod_name,
            duration_seconds=template.lease_duration_seconds,
            renew_seconds=template.lease_renew_seconds,
        )
        self.worker_epoch = 0
        self.draining = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self.runs = mirror.Mirror(
            rest,
            constants.API_VERSION,
            "runs",
            self.namespace,
            query=[("fieldSelector", f"spec.agentRef.name={agent}")],
            on_listed=self._listed,
            on_event=self._changed,
        )
        self.mirrors = mirror.Mirrors(rest, self.namespace, self.runs)
        self.reads = mirror.Cached(self.cluster, self.mirrors)
        """What the attempts read through: the mirrors while in sync, else the API server."""
        self.offers = offers.Offers(self.pool, template.pod_name)
        self._wake = threading.Event()
        self.claimed = 0
        self.lost = False

    # --- the worker's own Lease --------------------------------------------------------------

    def _ensure_own_lease(self) -> None:
        meta: _Obj = {
            "name": self.template.lease_name,
            "namespace": self.namespace,
            "labels": {
                constants.LABEL_MANAGED_BY: "bosun",
                constants.LABEL_AGENT: self.agent,
                constants.LABEL_POOL_WORKER: "true",
            },
        }
        if self.pod_uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.template.pod_name,
                    "uid": self.pod_uid,
                }
            ]
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "leaseDurationSeconds": round(self.template.lease_duration_seconds),
                "leaseTransitions": 0,
            },
        }
        # AlreadyExists: this pod's earlier process made it; acquire() takes it once it expired.
        with contextlib.suppress(kube.AlreadyExists):
            self.rest.request(
                "POST",
                kube.collection_path("coordination.k8s.io/v1", "leases", self.namespace),
                body,
            )

    def start(self) -> None:
        self._ensure_own_lease()
        wait = self.template.lease_duration_seconds + self.template.lease_renew_seconds
        self.worker_epoch = self.keeper.acquire(wait)
        self.keeper.start()
        log.info(
            "Started pool worker",
            extra={
                "fields": {"agent": self.agent, "slots": self.slots, "epoch": self.worker_epoch}
            },
        )

    # --- watching the Agent's Runs -----------------------------------------------------------

    def _listed(self, runs: list[_Obj], gone: set[str]) -> None:
        with self._lock:
            for name in gone:
                self._forget(name)
        for run in runs:
            self._seen(run)

    def _changed(self, kind: str, run: _Obj) -> None:
        if kind == "DELETED":
            with self._lock:
                self._forget(run["metadata"]["name"])
        else:
            self._seen(run)

    def watch_forever(self) -> None:
        """Keep the mirrors (the Agent's Runs, each change considered for a claim or a
        revocation, and what the attempts read before each step) until the worker stops."""
        for thread in self.mirrors.start(self.done):
            thread.join()

    def _seen(self, run: _Obj) -> None:
        name = run["metadata"]["name"]
        self.offers.seen(run)
        with self._lock:
            active = self._active.get(name)
            if active is not None:
                attempts = (run.get("status") or {}).get("attempts") or ()
                current = attempts[-1] if attempts else {}
                uid = run["metadata"].get("uid")
                if (
                    int(current.get("number") or 0) != active.attempt
                    or current.get("endTime")
                    or uid != active.uid
                ):
                    self._revoke(active, "AttemptEnded")
        self._wake.set()

    def _forget(self, name: str) -> None:
        self.offers.forget(name)
        active = self._active.get(name)
        if active is not None:
            self._revoke(active, "RunDeleted")

    def _revoke(self, active: _Active, reason: str) -> None:
        active.claim.revoke(reason)
        active.stop.set()
        active.tools_stop.set()

    # --- claiming ------------------------------------------------------------------------------

    def claim_forever(self) -> None:
        """Claim offered attempts while slots are free, until draining."""
        wait = offers.RETRY_SECONDS
        while not self.done.is_set() and not self.draining.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            wait = offers.RETRY_SECONDS
            if self.draining.is_set() or not self.keeper.held():
                continue
            with self._lock:
                busy = set(self._active)
            due, wait = self.offers.due(busy)
            for name, number, run in due:
                if self.draining.is_set() or not self._free():
                    break
                try:
                    self._try_claim(run, number)
                except Exception as err:  # one Run's trouble never stops the claiming
                    log.warning(
                        "Failed to claim", extra={"fields": {"run": name, "error": repr(err)}}
                    )
                    self.offers.retry_later(name)

    def _free(self) -> bool:
        with self._lock:
            return len(self._active) < self.slots

    def _try_claim(self, run: _Obj, number: int) -> None:
        name = run["metadata"]["name"]
        who = claims.Identity(
            self.template.pod_name,
            self.template.lease_name,
            self.worker_epoch,
            self.template.lease_duration_seconds,
        )
        # Blind (one request, no read) when this worker is the preferred one: another that
        # waited reads first and mostly finds the offer taken, which costs no write.
        blind = self.offers.preferred(name)
        epoch = claims.take(self.cluster, run, number, who, blind=blind)
        if epoch == claims.TAKEN:
            self.offers.taken(name, number)  # another worker has it
            return
        if epoch is None:
            # Not to be had now: claimed by another worker (whose claim the watch brings), or
            # held by an earlier attempt's live worker (which gives it back soon).
            self.offers.retry_later(name)
            self._wake.set()
            return
        self._start(run, number, epoch)

    # --- executing -------------------------------------------------------------------------------

    def _start(self, run: _Obj, number: int, epoch: int) -> None:
        name = run["metadata"]["name"]
        claim = claims.Claim(self.keeper, name)
        active = _Active(name, str(run["metadata"].get("uid") or ""), number, claim)
        settings = dataclasses.replace(
            self.template,
            run_name=name,
            run_uid=str(run["metadata"].get("uid") or ""),
            attempt=number,
            lease_name=contract.lease_name(name),
        )
        thread = threading.Thread(
            target=self._execute, args=(active, settings, epoch), name=f"run-{name}", daemon=True
        )
        active.thread = thread
        with self._lock:
            self._active[name] = active
            self.claimed += 1
        self.offers.taken(name, number)  # never tried again by this worker
        log.info("Claimed", extra={"fields": {"run": name, "attempt": number, "epoch": epoch}})
        thread.start()

    def _execute(self, active: _Active, settings: config.Settings, epoch: int) -> None:
        logs.SCOPE.set({"run": settings.run_name, "attempt": settings.attempt, "epoch": epoch})
        ending = app.Ending(contract.ExitCode.FAILED_RETRYABLE, "WorkerFailed")
        try:
            ending = app.execute(
                settings,
                self.env,
                self.reads,
                active.claim,
                epoch,
                stop=active.stop,
                tools_stop=active.tools_stop,
            )
        except Exception as err:
            # Reported like a runner that crashed: retryable, the next attempt resumes.
            log.exception("Attempt crashed", extra={"fields": {"run": settings.run_name}})
            ending = app.Ending(contract.ExitCode.FAILED_RETRYABLE, "WorkerFailed", repr(err)[:200])
        finally:
            try:
                self._release(active, settings, epoch, ending)
            finally:
                with self._lock:
                    self._active.pop(active.run, None)
                self._wake.set()

    def _release(
        self, active: _Active, settings: config.Settings, epoch: int, ending: app.Ending
    ) -> None:
        """Hand the Run's Lease back while this worker holds its own: with the outcome, or
        without one when the operator ended the attempt (so the next can be claimed at once).
        Nothing when the claim went with the worker's Lease: expiry tells the operator."""
        if not self.keeper.held():
            return
        if (
            self.draining.is_set()
            and active.claim.revoked is None
            and ending.reason == "Terminated"
        ):
            ending = app.Ending(
                contract.ExitCode.HANDED_BACK,
                constants.REASON_HANDED_BACK,
                f"worker {settings.pod_name} drained; the next attempt resumes the journal",
            )
        outcome = None
        if active.claim.revoked is None:
            # The output is in the Run's status: the Lease, readable more widely, says no more.
            message = "" if ending.code == contract.ExitCode.SUCCEEDED else ending.message
            outcome = {
                "attempt": settings.attempt,
                "epoch": epoch,
                "exitCode": int(ending.code),
                "reason": ending.reason[:200],
                "message": message[: app.MESSAGE_MAX_CHARS],
            }
        while self.keeper.held():
            try:
                if claims.give_back(
                    self.cluster, settings.lease_name, settings.pod_name, epoch, outcome
                ):
                    log.info(
                        "Released",
                        extra={"fields": {"exitCode": int(ending.code), "reason": ending.reason}},
                    )
                    return
            except kube.NotFound:
                return  # the Run is gone
            except kube.ApiError as err:
                log.warning("Failed to release", extra={"fields": {"error": str(err)}})
                self.done.wait(1.0)

    # --- stopping ------------------------------------------------------------------------------

    def drain(self) -> None:
        """Stop claiming; every attempt stops at its next step boundary and is handed back."""
        self.draining.set()
        self._wake.set()
        with self._lock:
            active = list(self._active.values())
        for each in active:
            each.stop.set()

    def wait_idle(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                threads = [a.thread for a in self._active.values() if a.thread is not None]
            if not threads:
                return True
            threads[0].join(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
        with self._lock:
            return not self._active

    def abandon(self) -> None:
        """Give up on attempts still in flight (their tool calls too)."""
        with self._lock:
            active = list(self._active.values())
        for each in active:
            each.stop.set()
            each.tools_stop.set()

    def close(self, release: bool) -> None:
        self.done.set()
        self.keeper.stop(release=release)


def main(env: Mapping[str, str] | None = None) -> int:
    source = os.environ if env is None else env
    try:
        template = config.Settings.for_pool(source)
        slots = int(source.get(contract.ENV_POOL_RUNS_PER_WORKER) or "10")
        drain_seconds = float(source.get(DRAIN_SECONDS_ENV) or "25")
    except (config.ConfigError, ValueError) as err:
        logs.configure()
        log.error("Failed to read settings", extra={"fields": {"error": str(err)}})
        return int(contract.ExitCode.FAILED_PERMANENT)
    agent = source[contract.ENV_POOL_AGENT]
    identity = {"namespace": template.namespace, "pod": template.pod_name, "agent": agent}
    logs.configure(template.log_level, identity=identity, secrets=redaction.secrets(source))
    threading.Thread(target=httpclients.prepare, name="tls", daemon=True).start()
    telemetry.configure(template.otlp_endpoint)
    # Most of a worker's threads wait on a socket: a small stack each keeps many Runs cheap.
    threading.stack_size(512 * 1024)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        rest = kube.connect(timeout=kubeapi.TIMEOUT)
    except (kube.ConfigError, OSError) as err:
        log.error("Failed to reach the API server", extra={"fields": {"error": str(err)}})
        return int(contract.ExitCode.FAILED_RETRYABLE)
    worker = Worker(
        template,
        source,
        rest,
        agent,
        slots,
        pod_uid=source.get(contract.ENV_POD_UID) or None,
        drain_seconds=drain_seconds,
    )
    code = contract.ExitCode.SUCCEEDED
    try:
        try:
            worker.start()
        except (errors.AttemptEnded, kube.ApiError) as err:
            log.error("Failed to take the worker's Lease", extra={"fields": {"error": str(err)}})
            return int(contract.ExitCode.FAILED_RETRYABLE)
        for target, name in ((worker.watch_forever, "watch"), (worker.claim_forever, "claim")):
            threading.Thread(target=target, name=name, daemon=True).start()
        while not stop.wait(0.5):
            if not worker.keeper.held():
                # Every claim went with the Lease: stop before any further tool call.
                log.error("Lost the worker's Lease; stopping every attempt and exiting")
                worker.lost = True
                worker.abandon()
                worker.wait_idle(5.0)
                code = contract.ExitCode.LEASE_LOST
                return int(code)
        log.info("Draining", extra={"fields": {"active": len(worker._active)}})
        worker.drain()
        if not worker.wait_idle(worker.drain_seconds):
            worker.abandon()
            worker.wait_idle(3.0)
        return int(code)
    finally:
        worker.close(release=not worker.lost)
        telemetry.shutdown()
        rest.close()
        log.info("Exited", extra={"fields": {"exitCode": int(code), "claimed": worker.claimed}})
