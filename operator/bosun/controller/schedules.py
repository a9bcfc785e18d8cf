"""Schedules: create the Run of each fire, apply the overlap policy, keep the history, report.

``ScheduleReconciler.reconcile`` parses the Schedule (``cadence``; a bad expression or time
zone makes it not Ready), asks ``firing.decide`` what is due since ``status.lastScheduleTime``
(else its creation), creates the Run of each fire (``contract.schedule_run``: named after the
time, owned by the Schedule, labelled ``bosun.dev/schedule``; one that exists already and is the
Schedule's own was made by an earlier pass), cancels
the Runs ``CancelOther`` replaces, deletes finished Runs beyond ``historyLimits``, and only then
records the fires in status: a pass that fails half way is redone and creates nothing twice.
A suspended Schedule decides nothing, so the times that pass are caught up (within the window)
or missed when it resumes. It answers when to look again: the next fire's moment.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bosun import constants, contract, kube
from bosun.controller import cadence, conditions, events, firing, metrics, retention, runstatus
from bosun.controller import store as store_mod

__all__ = ["ScheduleReconciler", "runs_of"]

log = logging.getLogger("bosun.operator")

_Obj = dict[str, Any]

_FINISHED_FAILED = (
    constants.PHASE_FAILED,
    constants.PHASE_CANCELLED,
    constants.PHASE_DEAD_LETTERED,
    constants.PHASE_DUPLICATE,
)


def _owned_by(run: Mapping[str, Any], schedule: Mapping[str, Any]) -> bool:
    owners = (run.get("metadata") or {}).get("ownerReferences") or ()
    return any(o.get("uid") == schedule["metadata"].get("uid") for o in owners)


def runs_of(store: store_mod.Store, schedule: Mapping[str, Any]) -> list[_Obj]:
    """The Runs this Schedule created (its label, and an owner reference to its UID)."""
    meta = schedule["metadata"]
    found = []
    for run in store.runs.values():
        run_meta = run["metadata"]
        if run_meta.get("namespace") != meta["namespace"]:
            continue
        if (run_meta.get("labels") or {}).get(constants.LABEL_SCHEDULE) != meta["name"]:
            continue
        if _owned_by(run, schedule):
            found.append(run)
    return found


def _phase(run: Mapping[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or "")


class ScheduleReconciler:
    def __init__(self, store: store_mod.Store, rest: kube.Rest) -> None:
        self.store = store
        self.rest = rest

    def reconcile(self, key: store_mod.Key) -> float | None:
        """Act on the Schedule ``key``; seconds until it should be looked at again."""
        schedule = self.store.schedules.get(key)
        if schedule is None or schedule["metadata"].get("deletionTimestamp"):
            return None
        spec = schedule.get("spec") or {}
        status = schedule.get("status") or {}
        try:
            when = cadence.parse(str(spec.get("schedule") or ""), spec.get("timeZone"))
        except cadence.CadenceError as err:
            zone = isinstance(err, cadence.UnknownTimeZone)
            reason = (
                constants.REASON_INVALID_TIME_ZONE if zone else constants.REASON_INVALID_SCHEDULE
            )
            self._write(schedule, {"nextScheduleTime": None}, False, reason, str(err))
            return None
        runs = runs_of(self.store, schedule)
        running = sorted(
            r["metadata"]["name"] for r in runs if _phase(r) not in runstatus.TERMINAL_PHASES
        )
        if spec.get("suspend"):
            fields: _Obj = {"active": running, "nextScheduleTime": None}
            message = "spec.suspend is true: no fires until it is set back"
            self._write(schedule, fields, True, constants.REASON_SUSPENDED, message)
            return None
        now = conditions.now()
        created = conditions.parse(schedule["metadata"].get("creationTimestamp")) or now
        since = conditions.parse(status.get("lastScheduleTime")) or created
        rules = firing.Rules(
            policy=spec.get("overlapPolicy") or "Allow",
            catchup_window_seconds=float(spec.get("catchupWindowSeconds") or 0),
            starting_deadline_seconds=(
                float(spec["startingDeadlineSeconds"])
                if spec.get("startingDeadlineSeconds")
                else None
            ),
            jitter_seconds=cadence.jitter(
                str(schedule["metadata"].get("uid") or ""), int(spec.get("jitterSeconds") or 0)
            ),
        )
        decision = firing.decide(
            when,
            rules,
            since=since,
            now=now,
            running=running,
            buffered=conditions.parse(status.get("bufferedTime")),
        )
        made, rejected = self._create(schedule, decision.create)
        for name in decision.cancel:
            self._cancel(schedule, name)
        self._trim(schedule, runs)
        active = sorted((set(running) - set(decision.cancel)) | set(made))
        fields = {
            "active": active,
            "nextScheduleTime": conditions.stamp(decision.next_time)
            if decision.next_time
            else None,
            "bufferedTime": conditions.stamp(decision.buffered) if decision.buffered else None,
            "fired": int(status.get("fired") or 0) + len(made),
            "skipped": int(status.get("skipped") or 0) + decision.skipped,
            "missed": int(status.get("missed") or 0) + decision.missed + len(rejected),
        }
        if decision.last is not None:
            fields["lastScheduleTime"] = conditions.stamp(decision.last)
        else:
            fields["lastScheduleTime"] = status.get("lastScheduleTime")
        fields["lastRun"] = made[-1] if made else status.get("lastRun")
        if rejected:
            self._write(schedule, fields, False, constants.REASON_RUN_REJECTED, rejected[-1])
        else:
            nxt = fields["nextScheduleTime"]
            self._write(schedule, fields, True, constants.REASON_SCHEDULED, f"Next fire at {nxt}")
        self._tell(schedule, decision, made)
        if decision.wake is None:
            return None
        return max(0.05, (decision.wake - conditions.now()).total_seconds())

    # --- acting --------------------------------------------------------------------------------

    def _create(
        self, schedule: Mapping[str, Any], times: Sequence[datetime.datetime]
    ) -> tuple[list[str], list[str]]:
        """Create the Run of each fire at ``times``: the names made (or made before), and the
        API server's refusals of a template it will never take (the fire is then missed)."""
        made: list[str] = []
        rejected: list[str] = []
        for nominal in times:
            run = contract.schedule_run(schedule, nominal)
            name = run["metadata"]["name"]
            try:
                stored = self.rest.create(run) or self._own(schedule, name)  # None: exists
                if stored is None:
                    raise kube.AlreadyExists(409, "AlreadyExists", f"Run {name} is not its own")
                # Into the store at once: the next fire must see it running (Forbid,
                # BufferOne), even before the watch brings it.
                self.store.runs.put(stored)
            except (kube.Invalid, kube.Forbidden, kube.AlreadyExists) as err:
                message = f"The API server refused Run {name}: {err}"[:1024]
                events.emit(
                    self.rest, schedule, constants.REASON_RUN_REJECTED, message, warning=True
                )
                rejected.append(message)
                metrics.SCHEDULE_FIRES.labels("Missed").inc()
                continue
            made.append(name)
            log.info(
                "Fired schedule=%s/%s run=%s time=%s",
                schedule["metadata"]["namespace"],
                schedule["metadata"]["name"],
                name,
                conditions.stamp(nominal),
            )
        return made, rejected

    def _own(self, schedule: Mapping[str, Any], name: str) -> _Obj | None:
        """The existing Run ``name`` if it is this Schedule's (an earlier pass created it and
        stopped before recording the fire); None when it is another one of that name."""
        found = self.rest.get(
            constants.API_VERSION, "runs", schedule["metadata"]["namespace"], name
        )
        return found if found is not None and _owned_by(found, schedule) else None

    def _cancel(self, schedule: Mapping[str, Any], name: str) -> None:
        namespace = schedule["metadata"]["namespace"]
        try:
            self.rest.merge_patch(
                constants.API_VERSION, "runs", namespace, name, {"spec": {"cancel": True}}
            )
        except kube.NotFound:
            return
        message = f"Cancelled Run {name}: a newer fire replaces it (overlapPolicy CancelOther)"
        events.emit(self.rest, schedule, constants.REASON_CANCELLED, message)

    def _trim(self, schedule: Mapping[str, Any], runs: Sequence[_Obj]) -> None:
        """Delete this Schedule's finished Runs beyond its history limits, oldest first."""
        limits = (schedule.get("spec") or {}).get("historyLimits") or {}
        for kind, phases, keep in (
            (retention.SUCCEEDED, (constants.PHASE_SUCCEEDED,), int(limits.get("succeeded", 3))),
            (retention.FAILED, _FINISHED_FAILED, int(limits.get("failed", 1))),
        ):
            finished = [r for r in runs if _phase(r) in phases]
            if len(finished) <= keep:
                continue
            finished.sort(
                key=lambda r: (
                    retention.completed_at(r) or datetime.datetime.min.replace(tzinfo=datetime.UTC),
                    r["metadata"]["name"],
                )
            )
            message = f"Schedule {schedule['metadata']['name']} keeps the newest {keep} {kind} Runs"
            for run in finished[: len(finished) - keep]:
                chosen = retention.deletion_of(run, retention.HISTORY_LIMIT, message)
                retention.delete(self.store, self.rest, chosen)

    # --- reporting -----------------------------------------------------------------------------

    def _write(
        self, schedule: Mapping[str, Any], fields: _Obj, ready: bool, reason: str, message: str
    ) -> None:
        meta = schedule["metadata"]
        status = schedule.get("status") or {}
        previous = status.get("conditions") or []
        generation = meta.get("generation")
        condition = conditions.make(
            previous, "Ready", ready, reason, message, generation=generation
        )
        desired: _Obj = {"observedGeneration": generation, "conditions": [condition], **fields}
        current = {k: status.get(k) for k in desired}
        current["conditions"] = [c for c in previous if c.get("type") == "Ready"]
        if current == desired:
            return
        body = {k: v for k, v in desired.items() if v is not None}
        updated = self.rest.apply_status(schedule, body, manager=contract.FIELD_MANAGER_OPERATOR)
        if updated is not None:
            self.store.schedules.put(updated)
        was = conditions.find(previous, "Ready")
        if not ready and (was is None or was.get("reason") != reason):
            events.emit(self.rest, schedule, reason, message, warning=True)

    def _tell(
        self, schedule: Mapping[str, Any], decision: firing.Decision, made: Sequence[str]
    ) -> None:
        metrics.SCHEDULE_FIRES.labels("Fired").inc(len(made))
        metrics.SCHEDULE_FIRES.labels("Skipped").inc(decision.skipped)
        metrics.SCHEDULE_FIRES.labels("Missed").inc(decision.missed)
        for name in made:
            events.emit(self.rest, schedule, constants.REASON_FIRED, f"Created Run {name}")
        if decision.skipped:
            policy = (schedule.get("spec") or {}).get("overlapPolicy") or "Allow"
            message = f"Skipped {decision.skipped} fire(s): overlapPolicy {policy}"
            events.emit(self.rest, schedule, constants.REASON_FIRE_SKIPPED, message)
        if decision.missed:
            message = (
                f"Missed {decision.missed} fire(s): too late to start (outside"
                " catchupWindowSeconds or past startingDeadlineSeconds)"
            )
            events.emit(self.rest, schedule, constants.REASON_FIRE_MISSED, message, warning=True)
