"""The ways an attempt can stop early, each mapped to the exit code the operator reads.

Every part of the runner raises one of these to end the attempt; ``app`` turns the exception
into ``contract.ExitCode``. Failures are classified by type here, never by message text.
"""

from __future__ import annotations

from bosun import contract

__all__ = [
    "AttemptEnded",
    "Cancelled",
    "Fenced",
    "JournalUntrusted",
    "LeaseLost",
    "NeedsHuman",
    "PermanentFailure",
    "RetryableFailure",
]


class AttemptEnded(Exception):
    """Base of every early end of an attempt; ``reason`` is a CamelCase constant."""

    exit_code: contract.ExitCode = contract.ExitCode.FAILED_RETRYABLE

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class PermanentFailure(AttemptEnded):
    """Retrying cannot help: an invalid spec, a rejected model request, a limit reached."""

    exit_code = contract.ExitCode.FAILED_PERMANENT


class JournalUntrusted(PermanentFailure):
    """An object named like a chunk of this Run's journal was not written for this Run by
    Bosun (forged, or copied from another Run). It is never read; the attempt ends so a human
    can remove it, rather than act on records nobody vouches for."""


class RetryableFailure(AttemptEnded):
    """Another attempt may succeed: the model stayed unavailable, the API server failed."""

    exit_code = contract.ExitCode.FAILED_RETRYABLE


class LeaseLost(AttemptEnded):
    """This runner no longer owns the Run; it must not call a tool or write the journal."""

    exit_code = contract.ExitCode.LEASE_LOST


class Fenced(LeaseLost):
    """The journal was claimed by a runner with a newer fencing epoch."""


class Cancelled(AttemptEnded):
    """The Run was cancelled, suspended or deleted, or the pod is being stopped."""

    exit_code = contract.ExitCode.CANCELLED


class NeedsHuman(AttemptEnded):
    """A call's outcome is unknown and its Tool is not idempotent: a human must decide."""

    exit_code = contract.ExitCode.NEEDS_HUMAN
