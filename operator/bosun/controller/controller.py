"""The operator's engine: store, work queue, reconcile workers and admission.

Watch events (delivered by kopf) update the store and enqueue the keys they concern: a Run, or
the Run a Job or Lease belongs to, or the Runs waiting for an Agent. Workers reconcile one key at
a time (never the same key twice at once). Admission starts queued Runs in ``fairshare``'s
order (admin-owned priority classes, then a fair share of the slots across namespaces, then the
namespace's own priority and age), within each Agent's ``maxConcurrentRuns``, the per-namespace
and operator-wide caps and the Policies' and ClusterPolicies' ``runsPerHour`` (per Agent and per
namespace), counting from the store, which sees the operator's own writes at once; it starts
only after the initial listing, so a restarted operator never over-admits. Each Agent's hourly
usage is published a few seconds after its Runs change (``usage``), batching the changes.
Retention (``retention``) sweeps the finished Runs in its own thread: once listed, when the next
TTL it knows of expires, soon after an Agent changes, and at least every retention interval (a
Run that just finished is never due within the hour, so its finishing needs no sweep).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from bosun import constants, kube, retry
from bosun.controller import (
    conditions,
    fairshare,
    lifecycle,
    metrics,
    pools,
    resources,
    retention,
    runs,
    runstatus,
    schedules,
    usage,
    workqueue,
)
from bosun.controller import settings as settings_mod
from bosun.controller import store as store_mod

__all__ = ["CLUSTER_SCOPED", "LIST_PAGE", "WATCHED", "Controller", "Item", "Obj"]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]
Item = tuple[str, store_mod.Key]

_RETENTION_GAP = 1.0
"""Seconds at least between two retention sweeps, so a burst of Agent changes costs one."""

# What the operator watches: plural -> (apiVersion, label selector for the initial list).
WATCHED: dict[str, tuple[str, str | None]] = {
    "agents": (constants.API_VERSION, None),
    "tools": (constants.API_VERSION, None),
    "policies": (constants.API_VERSION, None),
    "schedules": (constants.API_VERSION, None),
    "webhooks": (constants.API_VERSION, None),
    "runnerclasses": (constants.API_VERSION, None),
    "clusterpolicies": (constants.API_VERSION, None),
    "namespaces": ("v1", None),
    "runs": (constants.API_VERSION, None),
    "jobs": ("batch/v1", f"{constants.LABEL_MANAGED_BY}=bosun"),
    "leases": ("coordination.k8s.io/v1", f"{constants.LABEL_MANAGED_BY}=bosun"),
    "deployments": ("apps/v1", f"{constants.LABEL_MANAGED_BY}=bosun"),
}
CLUSTER_SCOPED = frozenset({"runnerclasses", "clusterpolicies", "namespaces"})
"""Watched kinds listed cluster-wide even when the operator watches some namespaces."""


class Controller:
    def __init__(self, rest: kube.Rest, settings: settings_mod.Settings) -> None:
        self.rest = rest
        self.settings = settings
        self.store = store_mod.Store()
        self.queue: workqueue.WorkQueue[Item] = workqueue.WorkQueue()
        self.runs = runs.RunReconciler(self.store, rest, settings)
        self.resources = resources.ResourceReconciler(self.store, rest)
        self.pools = pools.PoolReconciler(self.store, rest, settings)
        self.schedules = schedules.ScheduleReconciler(self.store, rest)
        metrics.POOLS.source = lambda: pools.figures(self.store)
        self.usage = usage.UsageReconciler(self.store, rest)
        self.retention = retention.Retention(self.store, rest, settings)
        self._retention_due = threading.Event()
        self._usage_due: dict[store_mod.Key, float] = {}
        self._usage_guard = threading.Lock()
        # What the operator acts on in each Agent, as last seen in a watch event: the store
        # cannot tell, since it also takes the responses of the operator's own status writes.
        self._agent_seen: dict[store_mod.Key, tuple[Any, ...]] = {}
        self.synced = threading.Event()
        self.stopping = threading.Event()
        self._admission = threading.Event()
        self._locks: dict[store_mod.Key, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._failures: dict[Item, int] = collections.defaultdict(int)
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------

    def prime(self) -> None:
        """List everything once, so the first decisions see the whole state (a page at a
        time, so that only the store's compact copies outlive the listing)."""
        for plural, (api_version, selector) in WATCHED.items():
            scopes = (None,) if plural in CLUSTER_SCOPED else self.settings.namespaces or (None,)
            for namespace in scopes:
                for obj in store_mod.list_pages(
                    self.rest, api_version, plural, namespace, selector, page_size=LIST_PAGE
                ):
                    obj.setdefault("apiVersion", api_version)
                    self.observe(plural, "ADDED", obj)
        self.synced.set()
        self._admission.set()
        log.info(
            "Listed initial state runs=%d agents=%d jobs=%d",
            len(self.store.runs),
            len(self.store.agents),
            len(self.store.jobs),
        )

    def start(self) -> None:
        for index in range(self.settings.workers):
            self._spawn(self._work, f"reconcile-{index}")
        self._spawn(self._admit_loop, "admission")
        self._spawn(self._retain_loop, "retention")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def alive(self) -> bool:
        """False once a worker or the admission thread has died."""
        return all(thread.is_alive() for thread in self._threads) or not self._threads

    def stop(self) -> None:
        self.stopping.set()
        self.queue.shutdown()
        self._admission.set()
        self._retention_due.set()
        for thread in self._threads:
            thread.join(timeout=10)

    # --- events --------------------------------------------------------------------------------

    def observe(self, plural: str, event_type: str | None, obj: Obj) -> None:
        """Take one watch event (or listed object) into the store and enqueue what it affects."""
        kind = self.store.kind(plural)
        key = store_mod.key_of(obj)
        if event_type == "DELETED":
            kind.delete(obj)
        elif not kind.put(obj):
            return
        if plural == "runs":
            self.queue.add(("runs", key))
            schedule = _labels(obj).get(constants.LABEL_SCHEDULE)
            if schedule:  # its Schedule counts its active Runs, and may start a waiting fire
                self.queue.add(("schedules", (key[0], schedule)))
            if (obj.get("status") or {}).get("startTime"):
                self.usage_soon(store_mod.agent_key_of(obj), self.settings.usage_interval_seconds)
            if event_type == "DELETED":
                self._admission.set()
                with self._locks_guard:
                    self._locks.pop(key, None)
        elif plural == "leases" and _labels(obj).get(constants.LABEL_POOL_WORKER) == "true":
            # A pool worker's own Lease: look again when it would expire unrenewed (a deleted
            # one is waited out from its last sighting: its worker may still be acting).
            self.runs.worker_expires_in(key)
            duration = float((obj.get("spec") or {}).get("leaseDurationSeconds") or 15)
            self.queue.add_after(("workers", key), duration + 0.5)
        elif plural in ("schedules", "webhooks"):
            self.queue.add((plural, key))
        elif plural == "deployments":
            served = _labels(obj).get(constants.LABEL_AGENT)
            if served:  # ready workers are the pool's capacity: admission may offer more
                self.queue.add(("agents", (key[0], served)))
                self._admission.set()
        elif plural in ("jobs", "leases"):
            run_name = (obj["metadata"].get("labels") or {}).get(constants.LABEL_RUN)
            owner = _run_owner(obj)
            name = owner or run_name
            if name:
                self.queue.add(("runs", (key[0], name)))
        elif plural == "agents":
            acted_on = store_mod.acted_on(obj)
            if event_type != "DELETED" and self._agent_seen.get(key) == acted_on:
                return  # only its status moved (often the operator's own write)
            if event_type == "DELETED":
                self._agent_seen.pop(key, None)
            else:
                self._agent_seen[key] = acted_on
            self.queue.add(("agents", key))
            self._retention_due.set()  # its history limits may have changed
            self.usage_soon(key, 0.0)
            for run in self.store.runs_of(key):
                self.queue.add(("runs", store_mod.key_of(run)))
            self._admission.set()
        elif plural == "tools":
            self.queue.add(("tools", key))
            for agent in self.store.agents.values():
                if agent["metadata"]["namespace"] == key[0] and key[1] in (
                    agent.get("spec") or {}
                ).get("tools", []):
                    self.queue.add(("agents", store_mod.key_of(agent)))
        elif plural == "runnerclasses":
            # Which class is the default, and every class's bounds, decide Agents' readiness.
            self.queue.add(("runnerclasses", key))
            for other in self.store.runnerclasses.values():
                if other["metadata"]["name"] != key[1]:
                    self.queue.add(("runnerclasses", store_mod.key_of(other)))
            for agent in self.store.agents.values():
                self.queue.add(("agents", store_mod.key_of(agent)))
        elif plural in ("policies", "clusterpolicies"):
            self.queue.add((plural, key))
            self._admission.set()  # a changed runsPerHour may let Runs start
        elif plural == "namespaces":
            self._admission.set()  # new labels may select other ClusterPolicies' budgets
            for agent in self.store.agents.values():  # pools' workers are told the labels
                if agent["metadata"]["namespace"] == key[1] and pools.pool_of(agent):
                    self.queue.add(("agents", store_mod.key_of(agent)))

    def usage_soon(self, agent: store_mod.Key, delay: float) -> None:
        """Publish the Agent's usage within ``delay`` seconds (sooner if already due)."""
        due = time.monotonic() + delay
        with self._usage_guard:
            if self._usage_due.get(agent, float("inf")) <= due:
                return
            self._usage_due[agent] = due
        self.queue.add_after(("usage", agent), delay)

    # --- workers ---------------------------------------------------------------------------------

    def _lock(self, key: store_mod.Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks[key]

    def _work(self) -> None:
        while not self.stopping.is_set():
            item = self.queue.get()
            if item is None:
                return
            plural, key = item
            started = time.perf_counter()
            try:
                if plural == "runs":
                    with self._lock(key):
                        result = self.runs.reconcile(key)
                    if result.wants_admission:
                        self._admission.set()
                    if result.requeue_after is not None:
                        self.queue.add_after(item, result.requeue_after)
                elif plural == "workers":
                    again = self._check_worker(key)
                    if again is not None:
                        self.queue.add_after(item, again)
                elif plural == "usage":
                    with self._usage_guard:
                        self._usage_due.pop(key, None)
                    later = self.usage.reconcile(key)
                    if later is not None:
                        self.usage_soon(key, later)
                else:
                    again = (
                        self.schedules.reconcile(key)
                        if plural == "schedules"
                        else self.resources.reconcile(plural, key)
                    )
                    if plural == "agents":
                        self.pools.reconcile(key)
                    if again is not None:
                        self.queue.add_after(item, again)
                self._failures.pop(item, None)
            except Exception:
                failures = self._failures[item] = self._failures[item] + 1
                delay = retry.RECONCILE_ERRORS.bound(failures)
                metrics.RECONCILE_ERRORS.labels(plural).inc()
                log.exception(
                    "Reconcile failed kind=%s object=%s/%s retry_in=%.1fs",
                    plural,
                    key[0],
                    key[1],
                    delay,
                )
                self.queue.add_after(item, delay)
            finally:
                metrics.RECONCILE.labels(plural).observe(time.perf_counter() - started)
                self.queue.done(item)

    # --- pools ---------------------------------------------------------------------------------

    def _check_worker(self, key: store_mod.Key) -> float | None:
        """Wake the Runs a pool worker claimed once its Lease expired; else when to look again."""
        left = self.runs.worker_expires_in(key)
        if left is not None and left >= 0:
            return left + 0.5
        for run in pools.claimed_by(self.store, key):
            self.queue.add(("runs", run))
        if self.store.leases.get(key) is None:
            self.runs.forget_worker(key)
        return None

    # --- retention -----------------------------------------------------------------------------

    def _retain_loop(self) -> None:
        wait = 0.0
        while not self.stopping.is_set():
            self._retention_due.wait(wait)
            if self.stopping.is_set():
                return
            if not self.synced.is_set():
                wait = 1.0
                continue
            self._retention_due.clear()
            wait = float(self.settings.retention_interval_seconds)
            try:
                decided = self.retention.run_once()
            except Exception:
                log.exception("Retention sweep failed; retrying")
                wait = min(wait, 10.0)
            else:
                if decided.next_expiry is not None:
                    due = (decided.next_expiry - conditions.now()).total_seconds()
                    wait = min(wait, max(0.0, due))
            self.stopping.wait(_RETENTION_GAP)
            wait = max(0.0, wait - _RETENTION_GAP)

    # --- admission -----------------------------------------------------------------------------

    def _admit_loop(self) -> None:
        while not self.stopping.is_set():
            self._admission.wait(1.0)
            self._admission.clear()
            if self.stopping.is_set():
                return
            if not self.synced.is_set():
                continue
            try:
                self.admit()
            except Exception:
                log.exception("Admission failed; retrying")
                time.sleep(0.5)
                self._admission.set()

    def admit(self) -> int:
        """Start as many queued Runs as the limits allow; return how many started."""
        active_total = 0
        per_agent: dict[store_mod.Key, int] = collections.defaultdict(int)
        per_namespace: dict[str, int] = collections.defaultdict(int)
        queued: dict[store_mod.Key, tuple[fairshare.Candidate, store_mod.Key]] = {}
        settings = self.settings
        classes = settings.classes
        start_times: dict[store_mod.Key, list[str]] = collections.defaultdict(list)
        waiting_by = collections.Counter[str]()
        reason_of: dict[store_mod.Key, str] = {}
        for run in self.store.runs.values():
            meta = run["metadata"]
            spec = run.get("spec") or {}
            agent_key = store_mod.agent_key_of(run)
            why = runstatus.waiting_reason(run)
            if why is not None:
                waiting_by[why] += 1
                reason_of[store_mod.key_of(run)] = why
            started_at = (run.get("status") or {}).get("startTime")
            if started_at:
                start_times[agent_key].append(started_at)
            if (run.get("status") or {}).get("phase") in runstatus.TERMINAL_PHASES:
                continue
            st = runstatus.RunStatus(run)
            if st.active_attempt() is not None:
                active_total += 1
                per_agent[agent_key] += 1
                per_namespace[meta["namespace"]] += 1
            elif (
                st.phase == constants.PHASE_QUEUED
                and not spec.get("suspend")
                and not spec.get("cancel")
            ):
                tier, refused = fairshare.tier_of(
                    meta["namespace"],
                    spec.get("priorityClassName"),
                    classes,
                    settings.default_priority_class,
                )
                if refused is not None:
                    with self._lock(store_mod.key_of(run)):
                        self.runs.hold(
                            store_mod.key_of(run),
                            constants.REASON_PRIORITY_CLASS_NOT_ALLOWED,
                            f"The Run waits: {refused}",
                        )
                    continue
                candidate = fairshare.Candidate(
                    meta["namespace"],
                    meta["name"],
                    tier,
                    int(spec.get("priority") or 0),
                    meta.get("creationTimestamp") or "",
                )
                queued[store_mod.key_of(run)] = (candidate, agent_key)
        ordered = fairshare.order((c for c, _ in queued.values()), per_namespace, settings.weights)
        started = 0
        now = conditions.now()
        budgets = usage.RunsBudgets(start_times, self.store, now)
        for candidate in ordered:
            key = (candidate.namespace, candidate.name)
            agent_key = queued[key][1]
            agent = self.store.agents.get(agent_key)
            if agent is None:
                continue
            unready = resources.not_ready(agent)
            if unready is not None:
                # A Run of an Agent the operator found unusable waits, saying why.
                with self._lock(key):
                    self.runs.hold(key, constants.REASON_AGENT_NOT_READY, unready)
                continue
            current = self.store.runs.get(key)
            first = current is not None and not (current.get("status") or {}).get("startTime")
            spent = budgets.take(agent) if first else None
            if spent is not None:
                with self._lock(key):
                    self.runs.hold(key, constants.REASON_BUDGET_EXCEEDED, *spent)
                continue
            limit = _agent_limit(agent)
            capacity = pools.capacity(self.store, agent)
            if capacity is not None:  # a pool: offer no more attempts than it can take on
                limit = capacity if limit is None else min(limit, capacity)
            quota = settings.max_concurrent_runs_per_namespace
            if (
                active_total >= settings.max_concurrent_runs
                or (limit is not None and per_agent[agent_key] >= limit)
                or (quota and per_namespace[candidate.namespace] >= quota)
            ):
                held_for = conditions.find(
                    ((current or {}).get("status") or {}).get("conditions"),
                    constants.CONDITION_QUEUED,
                )
                if (held_for or {}).get("reason") in (
                    constants.REASON_BUDGET_EXCEEDED,
                    constants.REASON_AGENT_NOT_READY,
                    constants.REASON_PRIORITY_CLASS_NOT_ALLOWED,
                ):
                    with self._lock(key):
                        self.runs.hold(
                            key, constants.REASON_WAITING_FOR_CAPACITY, lifecycle.WAITING_MESSAGE
                        )
                continue
            with self._lock(key):
                begun = self.runs.start_attempt(key)
            if begun:
                if key in reason_of:
                    waiting_by[reason_of[key]] -= 1
                started += 1
                active_total += 1
                per_agent[agent_key] += 1
                per_namespace[candidate.namespace] += 1
                self.queue.add(("runs", key))
        for why in runstatus.WAITING_REASONS:
            metrics.QUEUE_DEPTH.labels(why).set(waiting_by[why])
        metrics.ACTIVE_RUNS.set(active_total)
        return started


LIST_PAGE = 500
"""Objects per page of the initial listing (the operator's and kopf's)."""


def _agent_limit(agent: Mapping[str, Any]) -> int | None:
    concurrency = (agent.get("spec") or {}).get("concurrency") or {}
    value = concurrency.get("maxConcurrentRuns")
    return int(value) if value else None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _run_owner(obj: Mapping[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("kind") == "Run" and ref.get("apiVersion", "").startswith(constants.GROUP):
            return str(ref["name"])
    return None
