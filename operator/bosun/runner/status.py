"""What the runner reports on its Run: status fields it owns, and Events.

The runner owns ``usage``, ``output``, ``steps``, ``pendingApprovals`` and the
``AwaitingApproval`` condition, written by server-side apply as ``bosun-runner`` (the operator
owns the rest). Each apply carries all of them, since apply removes owned fields left out.
``render`` and ``event`` are pure; ``Reporter`` sends them and never lets a failed report
end the attempt (the journal, not the status, is the record of truth).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from bosun import constants, kube
from bosun.runner import kubeapi

__all__ = [
    "AWAITING_APPROVAL",
    "REPORTING_COMPONENT",
    "Pending",
    "Report",
    "Reporter",
    "event",
    "render",
]

log = logging.getLogger("bosun.runner.status")

AWAITING_APPROVAL = "AwaitingApproval"
REPORTING_COMPONENT = "bosun-runner"


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Pending:
    """One tool call waiting for a human decision."""

    call_hash: str
    tool: str
    args: dict[str, Any]
    policy: str | None
    rule: str | None
    requested: datetime.datetime
    expires: datetime.datetime
    step: int | None = None
    call_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "callHash": self.call_hash,
            "tool": self.tool,
            "args": self.args,
            "requestedTime": _stamp(self.requested),
            "expiryTime": _stamp(self.expires),
        }
        if self.step is not None:
            entry["step"] = self.step
        if self.call_id:
            entry["callID"] = self.call_id
        if self.policy:
            entry["policy"] = self.policy
        if self.rule:
            entry["rule"] = self.rule
        return entry


@dataclasses.dataclass(frozen=True)
class Report:
    """The runner-owned part of a Run's status."""

    usage: dict[str, int]
    steps: int
    output: str | None = None
    pending: tuple[Pending, ...] = ()
    reason: str = "NoApprovalPending"
    message: str = ""


def render(
    run: str,
    report: Report,
    transition_time: datetime.datetime,
) -> dict[str, Any]:
    """The apply configuration for ``report``; ``transition_time`` is when the
    AwaitingApproval condition last changed status."""
    awaiting = bool(report.pending)
    status: dict[str, Any] = {
        "usage": dict(report.usage),
        "steps": report.steps,
        "pendingApprovals": [p.to_json() for p in report.pending],
        "conditions": [
            {
                "type": AWAITING_APPROVAL,
                "status": "True" if awaiting else "False",
                "reason": report.reason,
                "message": report.message,
                "lastTransitionTime": _stamp(transition_time),
            }
        ],
    }
    if report.output is not None:
        status["output"] = report.output
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {"name": run},
        "status": status,
    }


def event(
    run: str,
    namespace: str,
    *,
    run_uid: str,
    reason: str,
    message: str,
    warning: bool,
    instance: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A core/v1 Event about the Run."""
    stamp = _stamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{run}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": constants.API_VERSION,
            "kind": "Run",
            "name": run,
            "namespace": namespace,
            "uid": run_uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": REPORTING_COMPONENT, "host": instance},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": instance,
    }


class Reporter:
    """Sends status and Events for one Run, best effort.

    A report that changes nothing is not sent. Progress (usage and steps) is sent at most
    every ``interval`` seconds; what a human waits for is sent at once: the AwaitingApproval
    condition coming or going, pending approvals changing, and the output. ``flush`` sends the
    progress held back (when the attempt ends without an output)."""

    def __init__(
        self,
        cluster: kubeapi.ClusterAPI,
        run: str,
        run_uid: str,
        instance: str,
        *,
        awaiting: tuple[str, datetime.datetime] | None = None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        may_write: Callable[[], bool] = lambda: True,
        interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.run = run
        self.run_uid = run_uid
        self.instance = instance
        self.now = now
        self.may_write = may_write
        self.interval = interval
        self.clock = clock
        # The AwaitingApproval condition as found on the Run: (status, lastTransitionTime).
        self.awaiting = awaiting
        self.last: Report | None = None
        self.held: Report | None = None
        """The newest report not sent yet (progress within the interval)."""
        self._sent_at = clock()
        self.writes = 0

    def status(self, report: Report) -> None:
        if report == self.last:
            self.held = None
            return
        wanted = "True" if report.pending else "False"
        awaiting_changes = (self.awaiting[0] if self.awaiting else "False") != wanted
        pending_changes = self.last is not None and report.pending != self.last.pending
        urgent = report.output is not None or awaiting_changes or pending_changes
        if not urgent and self.clock() - self._sent_at < self.interval:
            self.held = report
            return
        self._send(report)

    def flush(self) -> None:
        """Send the progress held back, if any."""
        if self.held is not None:
            self._send(self.held)

    def _send(self, report: Report) -> None:
        self.held = None
        if not self.may_write():
            return
        wanted = "True" if report.pending else "False"
        if self.awaiting is None or self.awaiting[0] != wanted:
            self.awaiting = (wanted, self.now())
        try:
            self.cluster.apply_run_status(self.run, render(self.run, report, self.awaiting[1]))
            self.last = report
            self._sent_at = self.clock()
            self.writes += 1
        except kube.ApiError as err:
            log.warning(
                "Failed to update run status",
                extra={"fields": {"status": err.status, "error": str(err)[:300]}},
            )

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        body = event(
            self.run,
            self.cluster.namespace,
            run_uid=self.run_uid,
            reason=reason,
            message=message,
            warning=warning,
            instance=self.instance,
            now=self.now(),
        )
        try:
            self.cluster.create_event(body)
        except kube.ApiError as err:
            log.warning(
                "Failed to create event",
                extra={"fields": {"reason": reason, "status": err.status}},
            )
