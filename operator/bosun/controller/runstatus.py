"""The part of a Run's status the operator owns, as a value it edits and then applies.

Pure: it reads the Run as stored, lets the lifecycle change conditions and attempts, derives
``phase`` from the conditions (here and nowhere else: the conditions are the state, the phase
is their summary for printer columns), and renders the server-side-apply body of exactly the
fields the operator owns (the runner owns AwaitingApproval, usage, output and pending
approvals).
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants
from bosun.controller import conditions

__all__ = [
    "FAILED_OUTCOMES",
    "OPERATOR_CONDITIONS",
    "OWNED_FIELDS",
    "TERMINAL_PHASES",
    "WAITING_REASONS",
    "Obj",
    "RunStatus",
    "apply_body",
    "phase_of",
    "waiting_reason",
]

Obj = dict[str, Any]

OPERATOR_CONDITIONS = (
    constants.CONDITION_QUEUED,
    constants.CONDITION_RUNNING,
    constants.CONDITION_SUCCEEDED,
    constants.CONDITION_FAILED,
    constants.CONDITION_DEAD_LETTERED,
)
OWNED_FIELDS = (
    "phase",
    "attempts",
    "nextRetryTime",
    "lease",
    "startTime",
    "completionTime",
    "observedGeneration",
    "duplicateOf",
    "attemptBudgetStart",
    "redrive",
)
TERMINAL_PHASES = (
    constants.PHASE_SUCCEEDED,
    constants.PHASE_FAILED,
    constants.PHASE_CANCELLED,
    constants.PHASE_DEAD_LETTERED,
    constants.PHASE_DUPLICATE,
)
FAILED_OUTCOMES = (constants.OUTCOME_FAILED, constants.OUTCOME_LOST, constants.OUTCOME_TIMED_OUT)

# What the Queued condition says, by (status, reason), about a Run that has not finished.
_WHILE_QUEUED_FALSE = {
    constants.REASON_ADMITTED: constants.PHASE_RUNNING,
    constants.REASON_SUSPENDED: constants.PHASE_SUSPENDED,
    constants.REASON_DUPLICATE: constants.PHASE_DUPLICATE,
}
_WHILE_QUEUED_TRUE = {
    constants.REASON_RETRY_SCHEDULED: constants.PHASE_RETRYING,
    constants.REASON_AGENT_NOT_FOUND: constants.PHASE_PENDING,
}


def phase_of(operator_conditions: Iterable[Mapping[str, Any]]) -> str | None:
    """The phase the operator's conditions describe (None before the first reconcile).

    A finished Run is what its final condition says: DeadLettered, Succeeded, or Failed (which
    shows as Cancelled when its reason is Cancelled). A Run whose Running condition is True is
    Running. Otherwise the Queued condition decides: False with Admitted is an admitted attempt
    (Running, also while its Job waits for a vanished Agent), with Suspended or
    DuplicateIdempotencyKey those phases, with any other reason Pending; True is Queued for
    admission, except RetryScheduled (Retrying: the backoff runs) and AgentNotFound (Pending);
    Unknown is Pending (the first reconcile is under way).
    """
    found = list(operator_conditions)
    if conditions.is_true(found, constants.CONDITION_DEAD_LETTERED):
        return constants.PHASE_DEAD_LETTERED
    if conditions.is_true(found, constants.CONDITION_SUCCEEDED):
        return constants.PHASE_SUCCEEDED
    failed = conditions.find(found, constants.CONDITION_FAILED)
    if failed is not None and failed.get("status") == "True":
        cancelled = failed.get("reason") == constants.REASON_CANCELLED
        return constants.PHASE_CANCELLED if cancelled else constants.PHASE_FAILED
    if conditions.is_true(found, constants.CONDITION_RUNNING):
        return constants.PHASE_RUNNING
    queued = conditions.find(found, constants.CONDITION_QUEUED)
    if queued is None:
        return None
    reason = str(queued.get("reason") or "")
    if queued.get("status") == "False":
        return _WHILE_QUEUED_FALSE.get(reason, constants.PHASE_PENDING)
    if queued.get("status") == "True":
        return _WHILE_QUEUED_TRUE.get(reason, constants.PHASE_QUEUED)
    return constants.PHASE_PENDING


class RunStatus:
    """The operator's fields of one Run's status, being edited."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = run
        status = run.get("status") or {}
        # phase is rendered from the conditions, never carried over.
        self.fields: Obj = {
            k: copy.deepcopy(status[k]) for k in OWNED_FIELDS if k in status and k != "phase"
        }
        self.conditions: list[Obj] = [
            copy.deepcopy(c)
            for c in status.get("conditions") or ()
            if c.get("type") in OPERATOR_CONDITIONS
        ]
        self.foreign_conditions = [
            c for c in status.get("conditions") or () if c.get("type") not in OPERATOR_CONDITIONS
        ]
        self._original = self.render()
        self._stored_phase = status.get("phase")

    # --- conditions and phase -------------------------------------------------------------

    def set(
        self,
        kind: str,
        value: bool | None,
        reason: str,
        message: str = "",
        *,
        at: datetime.datetime | None = None,
    ) -> None:
        """Set condition ``kind``; a flip of its status is stamped ``at`` (default: now)."""
        generation = self.run["metadata"].get("generation")
        new = conditions.make(
            self.conditions, kind, value, reason, message, generation=generation, at=at
        )
        self.conditions = [c for c in self.conditions if c.get("type") != kind] + [new]

    def is_true(self, kind: str) -> bool:
        return conditions.is_true(self.conditions, kind)

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        return conditions.find(self.conditions, kind)

    @property
    def phase(self) -> str | None:
        """The phase the operator's conditions describe (see ``phase_of``)."""
        return phase_of(self.conditions)

    def displayed_phase(self) -> str | None:
        """The phase shown to users: the runner's AwaitingApproval shows over Running."""
        phase = self.phase
        if phase == constants.PHASE_RUNNING and conditions.is_true(
            self.foreign_conditions, constants.CONDITION_AWAITING_APPROVAL
        ):
            return constants.PHASE_AWAITING_APPROVAL
        return phase

    # --- attempts ------------------------------------------------------------------------

    @property
    def attempts(self) -> list[Obj]:
        attempts: list[Obj] = self.fields.setdefault("attempts", [])
        return attempts

    def active_attempt(self) -> Obj | None:
        """The latest attempt while it has not ended."""
        if self.attempts and not self.attempts[-1].get("endTime"):
            return self.attempts[-1]
        return None

    def next_attempt_number(self) -> int:
        return int(self.attempts[-1]["number"]) + 1 if self.attempts else 1

    def failures(self) -> int:
        """Failed attempts counted against the retry budget (since the last redrive)."""
        start = int(self.fields.get("attemptBudgetStart") or 0)
        return sum(
            1
            for a in self.attempts
            if int(a["number"]) > start and a.get("outcome") in FAILED_OUTCOMES
        )

    def end_attempt(
        self, at: datetime.datetime, outcome: str, reason: str, message: str = ""
    ) -> Obj:
        attempt = self.active_attempt()
        assert attempt is not None, "no active attempt to end"
        attempt.update({"endTime": conditions.stamp(at), "outcome": outcome, "reason": reason})
        if message:
            attempt["message"] = message[:1024]
        return attempt

    # --- rendering -----------------------------------------------------------------------

    def render(self) -> Obj:
        status: Obj = {k: v for k, v in self.fields.items() if v is not None}
        if status.get("attempts") == []:
            del status["attempts"]
        generation = self.run["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        status["conditions"] = sorted(
            self.conditions, key=lambda c: OPERATOR_CONDITIONS.index(c["type"])
        )
        displayed = self.displayed_phase()
        if displayed:
            status["phase"] = displayed
        return status

    def changed(self) -> bool:
        """Whether the operator must write: its fields changed, or the phase users see is not
        the stored one (the runner's AwaitingApproval came or went; only the operator writes
        ``phase``)."""
        rendered = self.render()
        return rendered != self._original or rendered.get("phase") != self._stored_phase

    def apply_body(self) -> Obj:
        return apply_body(self.run, self.render())


def apply_body(run: Mapping[str, Any], status: Mapping[str, Any]) -> Obj:
    """The server-side-apply body that sets the operator's ``status`` fields of ``run``."""
    meta = run["metadata"]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "status": dict(status),
    }


WAITING_REASONS = (
    constants.REASON_AGENT_NOT_FOUND,
    constants.REASON_AGENT_NOT_READY,
    constants.REASON_WAITING_FOR_CAPACITY,
    constants.REASON_BUDGET_EXCEEDED,
    constants.REASON_PRIORITY_CLASS_NOT_ALLOWED,
    constants.REASON_RETRY_SCHEDULED,
    constants.REASON_RECONCILING,
)
"""Why a Run waits, as ``bosun_queue_depth`` counts it (a bounded set of label values)."""


def waiting_reason(run: Mapping[str, Any]) -> str | None:
    """Why a Run waits for its next attempt (one of ``WAITING_REASONS``), or None when it does
    not wait: it runs, has finished, or is suspended, cancelled or a duplicate (nothing will
    start it until a person acts)."""
    spec = run.get("spec") or {}
    if spec.get("suspend") or spec.get("cancel"):
        return None
    status = run.get("status") or {}
    phase = status.get("phase")
    if phase is None:
        return constants.REASON_RECONCILING  # created, not yet seen by the operator
    if phase not in (constants.PHASE_PENDING, constants.PHASE_QUEUED, constants.PHASE_RETRYING):
        return None
    queued = conditions.find(status.get("conditions"), constants.CONDITION_QUEUED) or {}
    reason = str(queued.get("reason") or "")
    if reason in WAITING_REASONS:
        return reason
    return constants.REASON_RECONCILING if phase == constants.PHASE_PENDING else None
