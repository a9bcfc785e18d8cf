"""Retention: which finished Runs to delete (a pure decision) and the sweep that deletes them.

``sweep(runs, agents, defaults, now)`` decides: a finished Run goes once its
``spec.ttlSecondsAfterFinished`` (else the operator's default) has passed since its
completionTime, and once it falls outside its Agent's ``spec.history`` (else the operator's
defaults): the newest ``succeeded`` Succeeded Runs and the newest ``failed`` Failed, Cancelled
and Duplicate Runs of each Agent are kept, older ones deleted first; either way not before it
has left the hour of usage that budgets count. DeadLettered Runs wait for
``bosun redrive`` and are not counted against the history: only their TTL deletes them. A Run
that has not finished, has an attempt without an end, is being deleted or has a redrive the
operator has not acted on yet is never chosen. ``Retention`` runs sweeps over the store and
deletes each chosen Run with preconditions on its UID and resourceVersion, so a Run that changed
(say, redriven) or was re-created since the decision is left alone; its Jobs, Lease, journal and
RBAC go with it through their owner references.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants, kube
from bosun.controller import conditions, metrics, runstatus, usage
from bosun.controller import settings as settings_mod
from bosun.controller import store as store_mod

__all__ = [
    "DELETERS",
    "FAILED",
    "HISTORY_LIMIT",
    "SUCCEEDED",
    "TTL_EXPIRED",
    "Defaults",
    "Deletion",
    "Retention",
    "Sweep",
    "completed_at",
    "delete",
    "deletion_of",
    "sweep",
]

log = logging.getLogger("bosun.operator")

SUCCEEDED = "succeeded"
FAILED = "failed"
TTL_EXPIRED = "TTLExpired"
HISTORY_LIMIT = "HistoryLimit"

_HISTORY_KINDS = {
    constants.PHASE_SUCCEEDED: SUCCEEDED,
    constants.PHASE_FAILED: FAILED,
    constants.PHASE_CANCELLED: FAILED,
    constants.PHASE_DUPLICATE: FAILED,
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Defaults:
    """The operator's retention for Runs and Agents that set none; None keeps everything."""

    ttl_seconds: int | None = None
    succeeded: int | None = None
    failed: int | None = None

    @classmethod
    def of(cls, settings: settings_mod.Settings) -> Defaults:
        """The settings' defaults, where 0 means keep everything."""
        return cls(
            ttl_seconds=settings.run_ttl_seconds or None,
            succeeded=settings.run_history_succeeded or None,
            failed=settings.run_history_failed or None,
        )


@dataclasses.dataclass(frozen=True)
class Deletion:
    """One Run to delete, exactly as it was when the decision was made."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    reason: str
    """TTLExpired or HistoryLimit."""
    message: str


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What one sweep decided."""

    deletions: tuple[Deletion, ...] = ()
    next_expiry: datetime.datetime | None = None
    """When the next Run kept may be due for deletion; None when none will be."""


# --- the decision ----------------------------------------------------------------------------


def completed_at(run: Mapping[str, Any]) -> datetime.datetime | None:
    """When a finished Run finished: status.completionTime, else the time its final condition
    became true (Runs finished before completionTime was always set); None when unknown."""
    status = run.get("status") or {}
    stamp = conditions.parse(status.get("completionTime"))
    if stamp is not None:
        return stamp
    found = status.get("conditions") or ()
    for kind in (
        constants.CONDITION_DEAD_LETTERED,
        constants.CONDITION_SUCCEEDED,
        constants.CONDITION_FAILED,
    ):
        condition = conditions.find(found, kind)
        if condition is not None and condition.get("status") == "True":
            return conditions.parse(condition.get("lastTransitionTime"))
    return None


def sweep(
    runs: Iterable[Mapping[str, Any]],
    agents: Mapping[store_mod.Key, Mapping[str, Any]],
    defaults: Defaults,
    now: datetime.datetime,
) -> Sweep:
    """Which of ``runs`` to delete at ``now``, given their Agents (by key) and the defaults.

    A Run is kept until it has left the hour of usage its Agent's budgets count (an hour after
    it started and after it finished), so deleting Runs never gives a budget back.
    """
    deletions: list[Deletion] = []
    later: list[datetime.datetime] = []
    histories: dict[tuple[store_mod.Key, str], list[tuple[datetime.datetime, str, Any]]] = {}
    for run in runs:
        phase = _finished_phase(run)
        if phase is None:
            continue
        done = completed_at(run)
        counted_until = _counted_until(run, done)
        ttl = _ttl_seconds(run, defaults)
        if ttl is not None and done is not None:
            expiry = max(done + datetime.timedelta(seconds=ttl), counted_until)
            if expiry <= now:
                message = f"Finished at {conditions.stamp(done)}; ttlSecondsAfterFinished={ttl}"
                deletions.append(deletion_of(run, TTL_EXPIRED, message))
                continue
            later.append(expiry)
        kind = _HISTORY_KINDS.get(phase)
        if kind is not None:
            created = str(run["metadata"].get("creationTimestamp") or "")
            order = (done or conditions.parse(created) or _EPOCH, created, run)
            histories.setdefault((store_mod.agent_key_of(run), kind), []).append(order)
    for (agent_key, kind), finished in histories.items():
        limit = _history_limit(agents.get(agent_key), kind, defaults)
        if limit is None or len(finished) <= limit:
            continue
        finished.sort(key=lambda entry: (entry[0], entry[1], entry[2]["metadata"]["name"]))
        for done, _created, run in finished[: len(finished) - limit]:
            counted_until = _counted_until(run, done)
            if counted_until > now:
                later.append(counted_until)
                continue
            message = f"Agent {agent_key[1]} keeps the newest {limit} {kind} Runs"
            deletions.append(deletion_of(run, HISTORY_LIMIT, message))
    return Sweep(tuple(deletions), min(later, default=None))


def _counted_until(run: Mapping[str, Any], done: datetime.datetime | None) -> datetime.datetime:
    """When the Run stops counting in its Agent's hourly usage (``usage.tally``)."""
    started = conditions.parse((run.get("status") or {}).get("startTime"))
    moments = [m for m in (started, done) if m is not None]
    return max(moments, default=_EPOCH) + usage.WINDOW


def _finished_phase(run: Mapping[str, Any]) -> str | None:
    """The final phase of a Run that may be deleted; None for any Run that must be kept."""
    meta = run["metadata"]
    if meta.get("deletionTimestamp"):
        return None
    status = run.get("status") or {}
    phase = runstatus.phase_of(status.get("conditions") or ())
    if phase not in runstatus.TERMINAL_PHASES or status.get("phase") not in (phase, None):
        return None
    attempts = status.get("attempts") or ()
    if attempts and not attempts[-1].get("endTime"):
        return None  # an attempt may still be running: never delete under it
    token = (meta.get("annotations") or {}).get(constants.ANNOTATION_REDRIVE)
    if token and token != status.get("redrive"):
        return None  # a redrive the operator has not acted on yet
    return phase


def _ttl_seconds(run: Mapping[str, Any], defaults: Defaults) -> int | None:
    own = (run.get("spec") or {}).get("ttlSecondsAfterFinished")
    return defaults.ttl_seconds if own is None else int(own)


def _history_limit(agent: Mapping[str, Any] | None, kind: str, defaults: Defaults) -> int | None:
    own = (((agent or {}).get("spec") or {}).get("history") or {}).get(kind)
    if own is not None:
        return int(own)
    return defaults.succeeded if kind == SUCCEEDED else defaults.failed


def deletion_of(run: Mapping[str, Any], reason: str, message: str) -> Deletion:
    """The Deletion of ``run`` as it is now."""
    meta = run["metadata"]
    return Deletion(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        reason=reason,
        message=message,
    )


# --- the sweep -----------------------------------------------------------------------------


DELETERS = 4
"""Deletions in flight at once when a sweep chooses many (say, the first after an upgrade)."""


class Retention:
    """Sweeps the store's finished Runs and deletes what ``sweep`` chooses."""

    def __init__(
        self, store: store_mod.Store, rest: kube.Rest, settings: settings_mod.Settings
    ) -> None:
        self.store = store
        self.rest = rest
        self.defaults = Defaults.of(settings)

    def run_once(self, now: datetime.datetime | None = None) -> Sweep:
        """Decide over the store and delete; return the decision."""
        now = now or conditions.now()
        agents = {store_mod.key_of(agent): agent for agent in self.store.agents.values()}
        decided = sweep(self.store.runs.values(), agents, self.defaults, now)
        if decided.deletions:
            with concurrent.futures.ThreadPoolExecutor(DELETERS, "retention-delete") as pool:
                list(pool.map(self._delete, decided.deletions))  # re-raises a failure
        return decided

    def _delete(self, deletion: Deletion) -> None:
        delete(self.store, self.rest, deletion)


def delete(store: store_mod.Store, rest: kube.Rest, deletion: Deletion) -> None:
    """Delete the Run ``deletion`` names if it is still exactly as decided (its UID and
    resourceVersion), and drop it from ``store``; one that changed is left for the next
    decision. Retention's sweeps and a Schedule's history limits delete this way."""
    preconditions = {"uid": deletion.uid, "resourceVersion": deletion.resource_version}
    body = {"propagationPolicy": "Background", "preconditions": preconditions}
    path = kube.object_path(constants.API_VERSION, "runs", deletion.namespace, deletion.name)
    try:
        rest.request("DELETE", path, body)
    except kube.NotFound:
        return
    except kube.Conflict:
        # Changed or re-created since the decision: the next sweep decides again.
        log.info(
            "Kept run=%s/%s reason=%s: it changed since the decision",
            deletion.namespace,
            deletion.name,
            deletion.reason,
        )
        return
    found = store.runs.get((deletion.namespace, deletion.name))
    if found is not None and found["metadata"].get("uid") == deletion.uid:
        store.runs.delete(found)
    metrics.RUNS_DELETED.labels(deletion.reason).inc()
    log.info(
        "Deleted run=%s/%s reason=%s message=%r",
        deletion.namespace,
        deletion.name,
        deletion.reason,
        deletion.message,
    )
