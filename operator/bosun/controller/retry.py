"""Retry policy: effective settings, exponential backoff with full jitter, and classification.

Pure functions: what the next wait may be, and whether an attempt's end deserves another try.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Mapping
from typing import Any

from bosun import contract

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INITIAL_BACKOFF = 5.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_BACKOFF = 300.0


@dataclasses.dataclass(frozen=True)
class Policy:
    """The effective retry settings of one Run."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_backoff_seconds: float = DEFAULT_INITIAL_BACKOFF
    backoff_multiplier: float = DEFAULT_MULTIPLIER
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF

    def bound(self, failures: int) -> float:
        """The upper bound of the wait after the ``failures``-th failed attempt (1-based)."""
        exponent = max(0, failures - 1)
        # Cap the exponent so huge attempt counts cannot overflow a float.
        raw = self.initial_backoff_seconds * self.backoff_multiplier ** min(exponent, 64)
        return min(self.max_backoff_seconds, raw)

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Full jitter: a uniformly random wait between 0 and ``bound(failures)``."""
        return (rng or random).uniform(0.0, self.bound(failures))


def effective(run_retry: Mapping[str, Any] | None, agent_retry: Mapping[str, Any] | None) -> Policy:
    """The Run's retry over the Agent's, field by field, over the built-in defaults."""
    merged: dict[str, Any] = {}
    for layer in (agent_retry or {}, run_retry or {}):
        merged.update({k: v for k, v in layer.items() if v is not None})
    initial = float(merged.get("initialBackoffSeconds", DEFAULT_INITIAL_BACKOFF))
    maximum = float(merged.get("maxBackoffSeconds", max(DEFAULT_MAX_BACKOFF, initial)))
    return Policy(
        max_attempts=int(merged.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)),
        initial_backoff_seconds=initial,
        backoff_multiplier=float(merged.get("backoffMultiplier", DEFAULT_MULTIPLIER)),
        max_backoff_seconds=max(maximum, 0.0),
    )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What an ended attempt means for its Run."""

    outcome: str  # Succeeded | Failed | Lost | Cancelled | TimedOut
    reason: str
    retryable: bool
    message: str = ""


_BY_EXIT_CODE = {
    contract.ExitCode.SUCCEEDED: Verdict("Succeeded", "RunnerSucceeded", False),
    contract.ExitCode.FAILED_PERMANENT: Verdict("Failed", "RunnerFailed", False),
    contract.ExitCode.FAILED_RETRYABLE: Verdict("Failed", "RunnerRetryableFailure", True),
    contract.ExitCode.LEASE_LOST: Verdict("Lost", "RunnerLostLease", True),
    contract.ExitCode.CANCELLED: Verdict("Cancelled", "RunnerCancelled", False),
    contract.ExitCode.NEEDS_HUMAN: Verdict("Failed", "NeedsHumanDecision", False),
}


_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def explained(verdict: Verdict, termination_message: str | None) -> Verdict:
    """``verdict`` with the runner's own reason and message, from the termination message it
    left (JSON ``{"reason", "message"}``), when it left a readable one. The exit code still
    decides the outcome and whether to retry; a success needs no explaining."""
    if verdict.outcome == "Succeeded" or not termination_message:
        return verdict
    try:
        report = json.loads(termination_message)
    except ValueError:
        return verdict
    if not isinstance(report, dict):
        return verdict
    reason, message = report.get("reason"), report.get("message")
    if not isinstance(reason, str) or len(reason) > 128 or not _REASON.match(reason):
        return verdict
    detail = message[:1024] if isinstance(message, str) else verdict.message
    return dataclasses.replace(verdict, reason=reason, message=detail)


def failed_attempt(
    exit_code: int | None,
    pod_reason: str | None,
    job_reason: str | None,
    termination_message: str | None,
) -> Verdict:
    """The verdict on a failed attempt's Job: what ended the pod (its own reason, or the Job's
    deadline) comes first; otherwise the runner's exit code, explained in its own words."""
    ended_by = pod_reason or ("DeadlineExceeded" if job_reason == "DeadlineExceeded" else None)
    verdict = classify_exit(exit_code, ended_by)
    if ended_by is None and exit_code is not None:
        verdict = explained(verdict, termination_message)
    return verdict


def classify_exit(exit_code: int | None, pod_reason: str | None = None) -> Verdict:
    """Classify a finished runner by its exit code; unknown codes and kills are pod failures."""
    if pod_reason == "DeadlineExceeded":
        return Verdict("TimedOut", "AttemptTimedOut", True, "the attempt exceeded its timeout")
    if exit_code is None:
        detail = f" ({pod_reason})" if pod_reason else ""
        return Verdict("Failed", "PodFailed", True, f"the runner pod failed{detail}")
    try:
        return _BY_EXIT_CODE[contract.ExitCode(exit_code)]
    except ValueError:
        return Verdict(
            "Failed", "PodFailed", True, f"the runner exited with unexpected code {exit_code}"
        )
