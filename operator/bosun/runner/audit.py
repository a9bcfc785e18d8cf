"""The audit trail's record of a governance decision, built from what governance decided.

Every decision (allowed, denied, approval asked, granted, expired or ignored) is journaled with
the policy and rule that decided, the call it was about (its id, tool and call hash) and who
approved it, if anyone; the loop writes the record and logs it.
"""

from __future__ import annotations

from bosun.api import approval as approval_api
from bosun.runner import approvals, governance, records, replay

__all__ = ["decision_record"]


def decision_record(
    step: int,
    call: replay.CallState | None,
    decision: governance.Decision,
    outcome: records.Outcome,
    *,
    approval: approval_api.Approval | None = None,
    decision_micros: int | None = None,
) -> records.Decision:
    """The journal record of one decision at ``step`` on ``call`` (None: the model call)."""
    return records.Decision(
        step=step,
        kind="tool" if call is not None else "model",
        outcome=outcome,
        action=decision.action,
        reason=decision.reason,
        message=decision.message,
        policy=decision.policy,
        rule=decision.rule,
        call_id=call.call.id if call is not None else None,
        tool=call.call.name if call is not None else None,
        call_hash=approvals.call_hash(call.call.name, call.call.args) if call is not None else None,
        decision_micros=decision_micros,
        approval=approval.metadata.name if approval is not None else None,
        approved_by=approval.spec.approved_by if approval is not None else None,
        approval_reason=approval.spec.reason if approval is not None else None,
    )
