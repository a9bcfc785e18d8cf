"""The part of a Run's status the operator owns, as a value it edits and then applies.

Pure: it reads the Run as stored, lets the reconciler change conditions and attempts, derives
``phase`` from the conditions, and renders the server-side-apply body of exactly the fields
the operator owns (the runner owns AwaitingApproval, usage, output and pending approvals).
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import Any

from bosun import constants
from bosun.controller import conditions

Obj = dict[str, Any]

OPERATOR_CONDITIONS = ("Queued", "Running", "Succeeded", "Failed", "DeadLettered")
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
TERMINAL_PHASES = ("Succeeded", "Failed", "Cancelled", "DeadLettered", "Duplicate")
FAILED_OUTCOMES = ("Failed", "Lost", "TimedOut")


class RunStatus:
    """The operator's fields of one Run's status, being edited."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = run
        status = run.get("status") or {}
        self.fields: Obj = {k: copy.deepcopy(status[k]) for k in OWNED_FIELDS if k in status}
        self.conditions: list[Obj] = [
            copy.deepcopy(c)
            for c in status.get("conditions") or ()
            if c.get("type") in OPERATOR_CONDITIONS
        ]
        self.foreign_conditions = [
            c for c in status.get("conditions") or () if c.get("type") not in OPERATOR_CONDITIONS
        ]
        self._original = self.render()

    # --- conditions and phase -------------------------------------------------------------

    def set(self, kind: str, value: bool | None, reason: str, message: str = "") -> None:
        generation = self.run["metadata"].get("generation")
        new = conditions.make(self.conditions, kind, value, reason, message, generation=generation)
        self.conditions = [c for c in self.conditions if c.get("type") != kind] + [new]

    def is_true(self, kind: str) -> bool:
        return conditions.is_true(self.conditions, kind)

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        return conditions.find(self.conditions, kind)

    @property
    def phase(self) -> str | None:
        value = self.fields.get("phase")
        if value == "AwaitingApproval":
            return "Running"
        return str(value) if value else None

    @phase.setter
    def phase(self, value: str) -> None:
        self.fields["phase"] = value

    def displayed_phase(self) -> str | None:
        """The phase shown to users: the runner's AwaitingApproval shows over Running."""
        if self.phase == "Running" and conditions.is_true(
            self.foreign_conditions, "AwaitingApproval"
        ):
            return "AwaitingApproval"
        return self.phase

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

    def mark_written(self) -> None:
        """What is rendered now is what the API server has."""
        self._original = self.render()

    def changed(self) -> bool:
        return self.render() != self._original

    def apply_body(self) -> Obj:
        meta = self.run["metadata"]
        return {
            "apiVersion": constants.API_VERSION,
            "kind": "Run",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": self.render(),
        }
