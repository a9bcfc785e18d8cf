"""Reconcile one Run: observe its world from the store, let ``lifecycle`` decide, apply the plan.

Level-based and idempotent: every call reads the Run, its Agent, the latest attempt's Job and
the Run's Lease from the store, asks ``lifecycle.decide`` what to do, runs the plan's actions
in order (children, Job deletions, Events, the dead-letter label) and then writes the
operator's status fields when they changed. Attempt N's intent is recorded in status before its
Job is created, and the Job's name is derived from N, so a reconcile replayed after a crash
creates nothing twice and counts no attempt twice. Admission (which queued Run starts next) is
the controller's job; this module applies its decisions about one Run (``start_attempt``,
``hold``).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from bosun import constants, contract, kube
from bosun.controller import (
    builders,
    conditions,
    events,
    lifecycle,
    metrics,
    plans,
    pools,
    runnerclasses,
    runstatus,
)
from bosun.controller import settings as settings_mod
from bosun.controller import store as store_mod

__all__ = ["Obj", "Result", "RunReconciler"]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]


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
        # (namespace, lease) -> what the Lease said, and when this process first saw it say so
        # (Runs' Leases, and pool workers' own, which many reconciles read at once).
        self._lease_seen: dict[store_mod.Key, plans.LeaseSighting] = {}
        self._seen_guard = threading.Lock()

    # --- entry points ----------------------------------------------------------------------

    def reconcile(self, key: store_mod.Key) -> Result:
        run = self.store.runs.get(key)
        if run is None:
            return Result()
        now = conditions.now()
        world = self._observe(run)
        plan = lifecycle.decide(world, now)
        if plan.look_at_pods:
            world = dataclasses.replace(world, pod=self._pod_facts(world))
            plan = lifecycle.decide(world, now)
        self._apply(world, plan, now)
        return Result(requeue_after=plan.requeue_after, wants_admission=plan.wants_admission)

    def start_attempt(self, key: store_mod.Key) -> bool:
        """Record the next attempt in status (the admission decision). True when started."""
        run = self.store.runs.get(key)
        if run is None:
            return False
        now = conditions.now()
        agent = self.store.agents.get(store_mod.agent_key_of(run))
        pool = None
        if agent is not None and pools.pool_of(agent) is not None:
            pool = contract.pool_name(agent["metadata"]["name"])
        plan = lifecycle.admit(run, now, pool)
        if plan is None or plan.admitted is None:
            return False
        lease_key = (key[0], contract.lease_name(key[1]))
        if pool is not None and agent is not None and self.store.leases.get(lease_key) is None:
            # The Lease first, so the workers that see the offer can claim it at once.
            lease = builders.lease(run, self.settings.lease_duration_seconds, _agent_name(agent))
            self._create(run, lease)
        self._write(run, plan)
        number = plan.admitted
        if number == 1:
            created = conditions.parse(run["metadata"].get("creationTimestamp"))
            if created is not None:
                metrics.ADMISSION_LATENCY.observe(max(0.0, (now - created).total_seconds()))
        metrics.ATTEMPTS_STARTED.inc()
        where = pool or contract.job_name(key[1], number)
        log.info("Admitted run=%s/%s attempt=%d to=%s", key[0], key[1], number, where)
        return True

    def hold(self, key: store_mod.Key, reason: str, message: str, event: str | None = None) -> None:
        """Record why admission keeps a queued Run waiting (written only when it changes; an
        Event, saying ``event`` or else ``message``, when the reason does)."""
        run = self.store.runs.get(key)
        if run is None:
            return
        plan = lifecycle.hold(run, reason, message, conditions.now(), event)
        if plan is not None:
            self._act(run, plan)
            self._write(run, plan)

    # --- observing -------------------------------------------------------------------------------

    def _observe(self, run: Obj) -> plans.World:
        meta, spec = run["metadata"], run.get("spec") or {}
        ns = meta["namespace"]
        agent = self.store.agents.get(store_mod.agent_key_of(run))
        tools: tuple[Obj, ...] = ()
        if agent is not None:
            found = (self.store.tools.get((ns, n)) for n in agent.get("spec", {}).get("tools", []))
            tools = tuple(t for t in found if t is not None)
        attempts = (run.get("status") or {}).get("attempts") or ()
        latest = attempts[-1] if attempts else {}
        job = self.store.jobs.get((ns, latest["job"])) if latest.get("job") else None
        lease_key = (ns, contract.lease_name(meta["name"]))
        lease = self.store.leases.get(lease_key)
        worker_left = None
        if latest.get("pool") and lease is not None:
            claim = contract.lease_note(lease, contract.ANNOTATION_CLAIM)
            if claim is not None and claim.get("attempt") == latest.get("number"):
                worker_left = self.worker_left(ns, claim)
        peers: tuple[Obj, ...] = ()
        if spec.get("idempotencyKey"):
            peers = tuple(
                other
                for other in self.store.runs.values()
                if other["metadata"]["namespace"] == ns
                and (other.get("spec") or {}).get("idempotencyKey") == spec["idempotencyKey"]
            )
        return plans.World(
            run=run,
            agent=agent,
            tools=tools,
            runner_class=(
                None
                if agent is None
                else runnerclasses.resolve(agent, self.store.runnerclasses.values())
            ),
            namespace_labels=_labels(self.store.namespaces.get(("", ns))),
            job=job,
            lease=lease,
            worker_left=worker_left,
            sighting=self._lease_seen.get(lease_key),
            monotonic=time.monotonic(),
            peers=peers,
            settings=self.settings,
        )

    def worker_left(self, namespace: str, claim: Mapping[str, Any]) -> float:
        """Seconds until the Lease of the worker a claim names expires, measured on this
        process's monotonic clock from when it was first seen saying what it says (negative:
        expired, or held by another holder or epoch than the claim's). A Lease deleted since
        it was seen is waited out from that sighting: its worker may not know yet."""
        key = (namespace, str(claim.get("workerLease") or ""))
        left = self.worker_expires_in(key)
        with self._seen_guard:
            seen = self._lease_seen.get(key)
        if left is None or seen is None:
            return -1.0
        holder, _, epoch, _ = seen.version
        if holder != claim.get("worker") or epoch != claim.get("workerEpoch"):
            return -1.0
        return left

    def worker_expires_in(self, key: store_mod.Key) -> float | None:
        """Seconds until the worker Lease ``key`` expires unrenewed (negative once it did);
        None when it was never seen."""
        found = self.store.leases.get(key)
        now = time.monotonic()
        with self._seen_guard:
            seen = self._lease_seen.get(key)
            if found is not None:
                spec = found.get("spec") or {}
                duration = float(
                    spec.get("leaseDurationSeconds") or contract.LEASE_DURATION_SECONDS
                )
                version = (
                    spec.get("holderIdentity"),
                    spec.get("renewTime"),
                    int(spec.get("leaseTransitions") or 0),
                    duration,
                )
                if seen is None or seen.version != version:
                    seen = self._lease_seen[key] = plans.LeaseSighting(version, now)
        if seen is None:
            return None
        return seen.seen_at + float(seen.version[3]) - now

    def forget_worker(self, key: store_mod.Key) -> None:
        with self._seen_guard:
            self._lease_seen.pop(key, None)

    def _pod_facts(self, world: plans.World) -> plans.PodFacts:
        """What the pods of the latest attempt's Job left behind."""
        assert world.job is not None
        meta = world.job["metadata"]
        selector = f"job-name={meta['name']}"
        pods = self.rest.list("v1", "pods", meta["namespace"], label_selector=selector)
        return plans.pod_facts(pods)

    # --- applying ----------------------------------------------------------------------------

    def _apply(self, world: plans.World, plan: plans.Plan, now: datetime.datetime) -> None:
        run = world.run
        meta = run["metadata"]
        lease_key = (meta["namespace"], contract.lease_name(meta["name"]))
        self._act(run, plan)
        if plan.ended is not None:
            metrics.ATTEMPTS.labels(plan.ended).inc()
        if plan.taken_over:
            metrics.LEASE_TAKEOVERS.inc()
        if plan.sighting is not None:
            self._lease_seen[lease_key] = plan.sighting
        if plan.retry_delay is not None:
            metrics.RETRIES.inc()
            log.info("Scheduled retry run=%s delay=%.2f", meta["name"], plan.retry_delay)
        if plan.dead_lettered:
            metrics.DEAD_LETTERS.inc()
        if plan.duplicate_of is not None:
            metrics.RUNS.labels(constants.PHASE_DUPLICATE).inc()
        if plan.finished is not None:
            self._lease_seen.pop(lease_key, None)
            self._count_finished(world, plan.finished, now)
        self._write(run, plan)

    def _act(self, run: Mapping[str, Any], plan: plans.Plan) -> None:
        """Run the plan's actions, in order."""
        meta = run["metadata"]
        ns = meta["namespace"]
        for action in plan.actions:
            if isinstance(action, plans.Create):
                self._create(run, dict(action.obj))
            elif isinstance(action, plans.DeleteJob):
                self.rest.delete("batch/v1", "jobs", ns, action.name)
            elif isinstance(action, plans.Emit):
                events.emit(self.rest, run, action.reason, action.message, warning=action.warning)
            elif isinstance(action, plans.LabelForPool):
                self._label_for_pool(run, action.agent)
            else:
                label = {constants.LABEL_DEAD_LETTER: "true" if action.on else None}
                self.rest.merge_patch(
                    constants.API_VERSION,
                    "runs",
                    ns,
                    meta["name"],
                    {"metadata": {"labels": label}},
                )

    def _label_for_pool(self, run: Mapping[str, Any], agent: str) -> None:
        """Label the Run's Lease and its RunJournal chunks with ``agent`` (a journal kept in
        ConfigMaps, from before RunJournals, stays as it is: pool workers cannot write it)."""
        meta = run["metadata"]
        ns, name = meta["namespace"], meta["name"]
        patch = {"metadata": {"labels": {constants.LABEL_AGENT: agent}}}
        for chunk in range(contract.JOURNAL_MAX_CHUNKS):
            journal = contract.journal_name(name, chunk)
            try:
                self.rest.merge_patch(constants.API_VERSION, "runjournals", ns, journal, patch)
            except kube.NotFound:
                break
        lease = contract.lease_name(name)
        updated = self.rest.merge_patch("coordination.k8s.io/v1", "leases", ns, lease, patch)
        if updated is not None:
            self.store.leases.put(updated)
        log.info("Labelled run=%s/%s for the pool of agent=%s", ns, name, agent)

    def _create(self, run: Mapping[str, Any], child: Obj) -> None:
        created = self.rest.create(child)
        if created is None and child["kind"] == "Job":
            # The name is taken. Whoever's Job it is, look at it now (the watch sees only
            # Bosun's labels), so the lifecycle can tell whether this Run controls it.
            meta = child["metadata"]
            created = self.rest.get("batch/v1", "jobs", meta["namespace"], meta["name"])
            if created is not None:
                self.store.jobs.put(created)
            return
        if created is None:
            return
        if child["kind"] == "Lease":
            self.store.leases.put(created)
        elif child["kind"] == "Job":
            self.store.jobs.put(created)
            ns, name = child["metadata"]["namespace"], child["metadata"]["name"]
            log.info("Created job=%s/%s run=%s", ns, name, run["metadata"]["name"])

    def _count_finished(
        self, world: plans.World, finished: plans.Finish, now: datetime.datetime
    ) -> None:
        run = world.run
        created = conditions.parse(run["metadata"].get("creationTimestamp"))
        metrics.RUNS.labels(finished.phase).inc()
        if created is not None:
            duration = max(0.0, (now - created).total_seconds())
            metrics.RUN_DURATION.labels(finished.phase).observe(duration)
        model = ((world.agent or {}).get("spec") or {}).get("model") or {}
        _count_usage(run, str(model.get("name") or model.get("provider") or "unknown"))
        log.info(
            "Finished run=%s/%s phase=%s reason=%s",
            run["metadata"]["namespace"],
            run["metadata"]["name"],
            finished.phase,
            finished.reason,
        )

    def _write(self, run: Mapping[str, Any], plan: plans.Plan) -> None:
        if plan.status is None:
            return
        try:
            updated = self.rest.apply(
                runstatus.apply_body(run, plan.status),
                manager=contract.FIELD_MANAGER_OPERATOR,
                subresource="status",
            )
        except kube.NotFound:
            return
        self.store.runs.put(updated)


def _agent_name(agent: Mapping[str, Any]) -> str:
    return str(agent["metadata"]["name"])


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


def _labels(namespace: Obj | None) -> dict[str, str] | None:
    """A Namespace's labels; None when the operator has not seen it."""
    return None if namespace is None else dict(namespace["metadata"].get("labels") or {})
