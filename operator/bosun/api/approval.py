"""The Approval Kind: a human decision on one paused tool call, bound to its arguments.

An Approval names a Run and the hash of the call (tool plus canonical arguments), so approving
one refund of 100 does not approve a refund of 10000. It also names the Run's UID and the call
itself (step and call id), and is owned by the Run: it decides that one call of that one Run
and nothing else, so a model repeating the call is asked about again and a Run re-created under
the same name inherits nothing. Approvals written before these fields existed (no `runUID`)
still decide a call, once each (the journal records which Approval a call used) and only for a
Run created before them. Its spec is immutable: a decision is changed by deleting the record
and creating a new one. `call_hash` defines the hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import pydantic

from bosun.api import common

__all__ = [
    "CALL_HASH_PATTERN",
    "KIND",
    "UID_PATTERN",
    "Approval",
    "ApprovalSpec",
    "ApprovalStatus",
    "Decision",
    "call_hash",
]

CALL_HASH_PATTERN = r"^[0-9a-f]{64}$"
UID_PATTERN = r"^[0-9a-fA-F-]{1,64}$"

Decision = Literal["Approved", "Denied"]


def call_hash(tool: str, args: dict[str, Any]) -> str:
    """The hash that binds an Approval to one call: SHA-256 over tool and canonical arguments.

    The arguments are canonical JSON (sorted keys, no insignificant whitespace, UTF-8), so the
    same call hashes the same in the runner and in the CLI.
    """
    canonical = json.dumps(
        {"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ApprovalSpec(common.Model):
    """Immutable: to change a decision, delete the Approval and create a new one."""

    model_config = pydantic.ConfigDict(json_schema_extra=common.immutable_fields())

    run_name: common.DNSSubdomain
    """Name of the Run, in this namespace, whose paused call is decided."""
    run_uid: str | None = pydantic.Field(
        default=None, alias="runUID", pattern=UID_PATTERN, max_length=64
    )
    """UID of that Run: a Run deleted and re-created under the same name is another Run.
    `bosun approve` sets it; an Approval without it is a legacy record (see the Kind)."""
    step: int | None = pydantic.Field(default=None, ge=1, le=1_000_000)
    """Model step of the paused call, as in the Run's status.pendingApprovals."""
    call_id: str | None = pydantic.Field(default=None, alias="callID", min_length=1, max_length=256)
    """Id the model gave the paused call, as in the Run's status.pendingApprovals. With
    `step`, it binds the Approval to that one call: an identical call later asks again."""
    call_hash: str = pydantic.Field(pattern=CALL_HASH_PATTERN, max_length=64)
    """Hash of the tool and its canonical arguments, as shown in the Run's
    status.pendingApprovals; 64 lowercase hex digits."""
    decision: Decision
    """`Approved` lets the call run; `Denied` refuses it."""
    reason: str | None = pydantic.Field(default=None, max_length=1024)
    """Why the decision was made; recorded in the Run's audit trail."""
    approved_by: str = pydantic.Field(min_length=1, max_length=256)
    """The user who decided. An admission policy shipped with the chart requires it to equal
    the user creating the Approval."""


class ApprovalStatus(common.Status):
    """The observed state of an Approval."""


class Approval(common.Resource):
    """A human decision on one paused tool call of a Run. Created by `bosun approve` and
    `bosun deny`; who may decide is ordinary RBAC on approvals."""

    kind: Literal["Approval"] = "Approval"
    """Kind of the object: Approval."""
    spec: ApprovalSpec
    """Which call of which Run is decided, and how."""
    status: ApprovalStatus = pydantic.Field(default_factory=ApprovalStatus)
    """What the operator observed."""


KIND = common.KindInfo(
    model=Approval,
    plural="approvals",
    short_names=("appr",),
    columns=(
        common.PrinterColumn("Run", ".spec.runName", description="The Run"),
        common.PrinterColumn("Decision", ".spec.decision", description="Approved or Denied"),
        common.PrinterColumn("By", ".spec.approvedBy", description="Who decided", priority=1),
        common.AGE_COLUMN,
    ),
)
