"""What an ended attempt means for its Run: its outcome, its reason, and whether to retry.

Pure functions over what the Job, the pod and the runner's exit code and termination message
say. How long to wait before the next attempt, and how many there may be, is ``bosun.retry``'s.
"""

from __future__ import annotations

import dataclasses
import json
import re

from bosun import contract

__all__ = ["Verdict", "classify_exit", "explained", "failed_attempt"]


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
