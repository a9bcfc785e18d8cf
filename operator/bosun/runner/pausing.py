"""Pausing one tool call for a human decision, and resuming when an Approval settles it.

A ``RequireApproval`` decision journals the request (with its time and expiry, so a later
attempt resumes the same wait), shows the call in the Run's status with the command that
decides it, and polls the namespace's Approvals until one bound to exactly this call
(``approvals.Binding``) approves or denies it, or the wait expires (a denial). Approvals that
name the Run but not this call are journaled as ignored, with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any, Protocol

from bosun.api import approval as approval_api
from bosun.runner import approvals, config, governance, kubeapi, records, replay, status

__all__ = ["Gate", "await_approval"]


class _Record(Protocol):
    def __call__(
        self,
        step: int,
        call: replay.CallState | None,
        decision: governance.Decision,
        outcome: records.Outcome,
        approval: approval_api.Approval | None = None,
    ) -> records.Decision: ...


class _Report(Protocol):
    def __call__(
        self,
        output: str | None = None,
        pending: tuple[status.Pending, ...] = (),
        reason: str = "NoApprovalPending",
        message: str = "",
    ) -> None: ...


@dataclasses.dataclass(frozen=True)
class Gate:
    """What a paused call needs from the attempt: where to read Approvals, how to journal,
    report and check (the lease, a cancel) while it waits."""

    cluster: kubeapi.ClusterAPI
    reporter: status.Reporter
    settings: config.Settings
    audit: Callable[[records.Decision], None]
    record: _Record
    report: _Report
    check: Callable[[], None]
    sleep: Callable[[float], None]
    now: Callable[[], datetime.datetime]


def _window(
    gate: Gate, call: replay.CallState, decision: governance.Decision
) -> tuple[datetime.datetime, datetime.datetime, bool]:
    """When approval was requested and when it expires; True when it is asked for now."""
    previous = call.approval_requested
    if previous is not None:
        # records.read ensures an approvalRequested record carries both times.
        assert previous.requested_time is not None and previous.expiry_time is not None
        return previous.requested_time, previous.expiry_time, False
    requested = gate.now()
    timeout = decision.approval_timeout_seconds or approvals.DEFAULT_TIMEOUT_SECONDS
    expires = requested + datetime.timedelta(seconds=timeout)
    asked = gate.record(call.step, call, decision, records.Outcome.APPROVAL_REQUESTED)
    gate.audit(dataclasses.replace(asked, requested_time=requested, expiry_time=expires))
    return requested, expires, True


def await_approval(
    gate: Gate,
    state: replay.State,
    run: dict[str, Any],
    call: replay.CallState,
    decision: governance.Decision,
) -> approval_api.Approval | None:
    """Pause until a human decides call ``call`` of Run ``run``; the Approval that approved
    it, or None when it was denied or expired (journaled as a denial)."""
    hash_ = approvals.call_hash(call.call.name, call.call.args)
    requested, expires, new = _window(gate, call, decision)
    settings = gate.settings
    pending = status.Pending(
        hash_,
        call.call.name,
        call.call.args,
        decision.policy,
        decision.rule,
        requested,
        expires,
        step=call.step,
        call_id=call.call.id,
    )
    approve = approvals.command("approve", settings.namespace, settings.run_name, hash_)
    gate.report(
        pending=(pending,),
        reason="ApprovalRequested",
        message=f"tool {call.call.name} needs approval: {approve}",
    )
    if new:
        gate.reporter.event(
            "ApprovalRequested",
            f"Call of tool {call.call.name} at step {call.step} waits for approval: "
            f"callHash {hash_} (policy {decision.policy or '-'}, rule {decision.rule or '-'});"
            f" decide with: {approve}",
        )

    def ignored(other: approval_api.Approval, why: str) -> None:
        record = gate.record(call.step, call, decision, records.Outcome.APPROVAL_IGNORED)
        gate.audit(
            dataclasses.replace(
                record,
                approval=other.metadata.name,
                approval_call_hash=other.spec.call_hash,
                message=why,
            )
        )

    binding = approvals.Binding(
        settings.run_name,
        settings.run_uid,
        approvals.created(run),
        call.step,
        call.call.id,
        hash_,
        used=state.approvals_used(besides=call),
    )
    waiter = approvals.Waiter(
        gate.cluster,
        binding,
        poll_seconds=settings.approval_poll_seconds,
        check=gate.check,
        on_ignored=ignored,
        sleep=gate.sleep,
        now=gate.now,
    )
    verdict, found = waiter.wait(expires)
    approved_by = found.spec.approved_by if found else None
    if verdict == "Approved":
        gate.report(reason="ApprovalGranted", message=f"approved by {approved_by}")
        gate.reporter.event(
            "ApprovalGranted",
            f"Call of tool {call.call.name} at step {call.step} was approved by {approved_by}",
        )
        return found
    outcome, message = approvals.refusal(verdict, found)
    refused = dataclasses.replace(
        decision, action="Deny", reason=f"Approval{verdict}", message=message
    )
    gate.audit(gate.record(call.step, call, refused, outcome, found))
    gate.report(reason=f"Approval{verdict}", message=message)
    gate.reporter.event(
        f"Approval{verdict}",
        f"Call of tool {call.call.name} at step {call.step}: {message}",
        warning=True,
    )
    return None
