"""Every kind of journal record, as a frozen type with its JSON form and its format version.

This module alone decides what a journal record is. Each kind (``AttemptStarted``,
``ModelResponse``, ``Decision``, ``ToolStarted``, ``ToolResult``, ``RunFinished``,
``AttemptEnded``) is a frozen dataclass whose ``to_json`` writes the camelCase keys the
journal has always held, plus ``formatVersion``. ``read`` turns a stored dict back into its
type: a record written before records carried a version reads as version 1; a newer version
or an unknown type raises ``Unreadable`` with reason ``JournalFormatUnsupported``, and a record
with a missing or mistyped field raises it with ``JournalRecordInvalid``. ``Unreadable`` is a
permanent failure, so an attempt that cannot read its journal ends rather than misreading it.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, Literal, Self, cast

from bosun.runner import conversation, recordfields

__all__ = [
    "DENIALS",
    "FORMAT_UNSUPPORTED",
    "FORMAT_VERSION",
    "RECORD_INVALID",
    "AttemptEnded",
    "AttemptStarted",
    "Decision",
    "ModelResponse",
    "Outcome",
    "OutputRejected",
    "Record",
    "RunFinished",
    "ToolResult",
    "ToolStarted",
    "Unreadable",
    "read",
    "read_all",
]

FORMAT_VERSION: Final = 1
"""The format this runner writes and the newest it reads. Version 1 is the format of the
records written before they carried ``formatVersion``; bump it when a record's meaning changes,
and teach ``read`` to upgrade the older versions."""

FORMAT_UNSUPPORTED: Final = "JournalFormatUnsupported"
RECORD_INVALID: Final = recordfields.RECORD_INVALID


class Outcome(enum.StrEnum):
    """What became of a decision, as the journal spells it."""

    ALLOWED = "allowed"
    DENIED = "denied"
    APPROVAL_REQUESTED = "approvalRequested"
    APPROVAL_GRANTED = "approvalGranted"
    APPROVAL_DENIED = "approvalDenied"
    APPROVAL_EXPIRED = "approvalExpired"
    APPROVAL_IGNORED = "approvalIgnored"
    RESENT = "resent"
    OUTCOME_UNKNOWN = "outcomeUnknown"


DENIALS: Final = frozenset({Outcome.DENIED, Outcome.APPROVAL_DENIED, Outcome.APPROVAL_EXPIRED})
_KINDS = frozenset({"tool", "model"})


Unreadable = recordfields.Unreadable


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Record:
    """What every record carries: the stamp ``journal.Journal`` puts on it when it is written
    (sequence number, fencing epoch, attempt, time) and the format it was written in."""

    TYPE: ClassVar[str]

    seq: int = 0
    epoch: int = 0
    attempt: int = 0
    time: datetime.datetime | None = None
    format_version: int = FORMAT_VERSION

    def stamped(self, *, seq: int, epoch: int, attempt: int, time: datetime.datetime) -> Self:
        """This record as it is written now: stamped, in this runner's format."""
        return dataclasses.replace(
            self, seq=seq, epoch=epoch, attempt=attempt, time=time, format_version=FORMAT_VERSION
        )

    def body(self) -> dict[str, Any]:
        """The record's own fields in their JSON form, without its type and stamp."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.TYPE,
            "formatVersion": self.format_version,
            "seq": self.seq,
            "epoch": self.epoch,
            "attempt": self.attempt,
        }
        if self.time is not None:
            data["time"] = self.time.isoformat(timespec="milliseconds")
        data.update(self.body())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        record = read(data)
        if not isinstance(record, cls):
            raise Unreadable(RECORD_INVALID, f"a {record.TYPE} record is not a {cls.TYPE}")
        return record

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttemptStarted(_Record):
    """An attempt began, after replaying ``replayed_records`` records of the ones before."""

    TYPE: ClassVar[str] = "attemptStarted"

    pod: str = ""
    replayed_records: int = 0

    def body(self) -> dict[str, Any]:
        return {"pod": self.pod, "replayedRecords": self.replayed_records}

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(
            **stamp,
            pod=fields.optional_text("pod") or "",
            replayed_records=fields.optional_integer("replayedRecords") or 0,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelResponse(_Record):
    """What the model answered at ``step`` (numbered from 1), and how long it took."""

    TYPE: ClassVar[str] = "modelResponse"

    step: int
    turn: conversation.AssistantTurn
    duration_ms: float = 0.0

    def body(self) -> dict[str, Any]:
        return {"step": self.step, "turn": self.turn.to_json(), "durationMs": self.duration_ms}

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        turn = fields.mapping("turn")
        try:
            parsed = conversation.AssistantTurn.from_json(turn)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise Unreadable(
                RECORD_INVALID, f"{fields.what}: turn does not parse: {err!r}"
            ) from err
        return cls(
            **stamp,
            step=fields.integer("step"),
            turn=parsed,
            duration_ms=fields.number("durationMs", 0.0),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision(_Record):
    """One governance decision on a tool call (``kind="tool"``, with the call's id, tool and
    hash) or on a model call (``kind="model"``), with the policy and rule that made it.

    The optional fields belong to some outcomes: ``requested_time`` and ``expiry_time`` to
    ``approvalRequested``; ``approval``, ``approved_by`` and ``approval_reason`` to a human's
    decision; ``approval`` and ``approval_call_hash`` to an Approval that was ignored because it
    names another call; ``idempotency_key`` to a call that was re-sent."""

    TYPE: ClassVar[str] = "decision"

    step: int
    kind: Literal["tool", "model"]
    outcome: Outcome
    action: str
    reason: str
    message: str
    policy: str | None = None
    rule: str | None = None
    call_id: str | None = None
    tool: str | None = None
    call_hash: str | None = None
    decision_micros: int | None = None
    requested_time: datetime.datetime | None = None
    expiry_time: datetime.datetime | None = None
    approval: str | None = None
    approval_call_hash: str | None = None
    approved_by: str | None = None
    approval_reason: str | None = None
    idempotency_key: str | None = None

    @property
    def denial(self) -> bool:
        return self.outcome in DENIALS

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "step": self.step,
            "kind": self.kind,
            "outcome": str(self.outcome),
            "action": self.action,
            "reason": self.reason,
            "message": self.message,
            "policy": self.policy,
            "rule": self.rule,
        }
        optional: dict[str, Any] = {
            "callId": self.call_id,
            "tool": self.tool,
            "callHash": self.call_hash,
            "decisionMicros": self.decision_micros,
            "requestedTime": self.requested_time.isoformat() if self.requested_time else None,
            "expiryTime": self.expiry_time.isoformat() if self.expiry_time else None,
            "approval": self.approval,
            "approvalCallHash": self.approval_call_hash,
            "approvedBy": self.approved_by,
            "approvalReason": self.approval_reason,
            "idempotencyKey": self.idempotency_key,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        kind = fields.text("kind")
        if kind not in _KINDS:
            fields.fail("kind", "tool or model")
        try:
            outcome = Outcome(fields.text("outcome"))
        except ValueError:
            fields.fail("outcome", "a known decision outcome")
        record = cls(
            **stamp,
            step=fields.integer("step"),
            kind=cast(Literal["tool", "model"], kind),
            outcome=outcome,
            action=fields.text("action"),
            reason=fields.text("reason"),
            message=fields.text("message"),
            policy=fields.optional_text("policy"),
            rule=fields.optional_text("rule"),
            call_id=fields.text("callId") if kind == "tool" else fields.optional_text("callId"),
            tool=fields.text("tool") if kind == "tool" else fields.optional_text("tool"),
            call_hash=fields.optional_text("callHash"),
            decision_micros=fields.optional_integer("decisionMicros"),
            requested_time=fields.moment("requestedTime"),
            expiry_time=fields.moment("expiryTime"),
            approval=fields.optional_text("approval"),
            approval_call_hash=fields.optional_text("approvalCallHash"),
            approved_by=fields.optional_text("approvedBy"),
            approval_reason=fields.optional_text("approvalReason"),
            idempotency_key=fields.optional_text("idempotencyKey"),
        )
        if outcome == Outcome.APPROVAL_REQUESTED:
            if record.requested_time is None:
                fields.fail("requestedTime", "the time the approval was requested")
            if record.expiry_time is None:
                fields.fail("expiryTime", "the time the approval expires")
        return record


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolStarted(_Record):
    """A tool call is about to be sent with ``idempotency_key``; written before it is sent."""

    TYPE: ClassVar[str] = "toolStarted"

    step: int
    call_id: str
    tool: str
    idempotency_key: str

    def body(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "callId": self.call_id,
            "tool": self.tool,
            "idempotencyKey": self.idempotency_key,
        }

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(
            **stamp,
            step=fields.integer("step"),
            call_id=fields.text("callId"),
            tool=fields.text("tool"),
            idempotency_key=fields.text("idempotencyKey"),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolResult(_Record):
    """What a tool call returned (``status`` is the HTTP status, when there was one)."""

    TYPE: ClassVar[str] = "toolResult"

    step: int
    call_id: str
    tool: str
    content: str
    is_error: bool = False
    status: int | None = None
    duration_ms: float = 0.0

    def body(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "callId": self.call_id,
            "tool": self.tool,
            "content": self.content,
            "isError": self.is_error,
            "status": self.status,
            "durationMs": self.duration_ms,
        }

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(
            **stamp,
            step=fields.integer("step"),
            call_id=fields.text("callId"),
            tool=fields.text("tool"),
            content=fields.text("content"),
            is_error=fields.flag("isError", False),
            status=fields.optional_integer("status"),
            duration_ms=fields.number("durationMs", 0.0),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputRejected(_Record):
    """The final answer of ``step`` did not satisfy the Agent's ``outputSchema``: ``problems``
    went back to the model, which answers again. A journal without these records (written
    before ``outputSchema``) replays as before; a runner older than them refuses a journal
    that has one (``JournalFormatUnsupported``) rather than misread it."""

    TYPE: ClassVar[str] = "outputRejected"

    step: int
    problems: str

    def body(self) -> dict[str, Any]:
        return {"step": self.step, "problems": self.problems}

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(**stamp, step=fields.integer("step"), problems=fields.text("problems"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunFinished(_Record):
    """The Run's final answer; a later attempt only reports it."""

    TYPE: ClassVar[str] = "runFinished"

    output: str
    reason: str = "Answered"

    def body(self) -> dict[str, Any]:
        return {"output": self.output, "reason": self.reason}

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(
            **stamp,
            output=fields.text("output"),
            reason=fields.optional_text("reason") or "Answered",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttemptEnded(_Record):
    """An attempt ended early, with the reason and exit code the operator was given."""

    TYPE: ClassVar[str] = "attemptEnded"

    reason: str
    message: str = ""
    exit_code: int

    def body(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "exitCode": self.exit_code}

    @classmethod
    def _parse(cls, fields: recordfields.Fields, stamp: dict[str, Any]) -> Self:
        return cls(
            **stamp,
            reason=fields.text("reason"),
            message=fields.optional_text("message") or "",
            exit_code=fields.integer("exitCode"),
        )


Record = (
    AttemptStarted
    | ModelResponse
    | Decision
    | ToolStarted
    | ToolResult
    | OutputRejected
    | RunFinished
    | AttemptEnded
)

_TYPES: Final[dict[str, type[Record]]] = {cls.TYPE: cls for cls in typing.get_args(Record)}


def read(data: Mapping[str, Any]) -> Record:
    """The typed record stored as ``data``; ``Unreadable`` when this runner cannot read it."""
    if not isinstance(data, Mapping):
        raise Unreadable(RECORD_INVALID, f"a journal record should be an object, not {data!r}")
    seq = data.get("seq")
    what = f"journal record {seq}" if isinstance(seq, int) else "journal record"
    fields = recordfields.Fields(data, what)
    # Records written before they carried a version are version 1.
    version = 1 if data.get("formatVersion") is None else fields.integer("formatVersion")
    if version < 1:
        fields.fail("formatVersion", "1 or more")
    if version > FORMAT_VERSION:
        raise Unreadable(
            FORMAT_UNSUPPORTED,
            f"{what} has formatVersion {version}; this runner reads formats up to "
            f"{FORMAT_VERSION}: upgrade the runner image",
        )
    kind = data.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise Unreadable(FORMAT_UNSUPPORTED, f"{what} has an unknown type {kind!r}")
    fields.what = f"{what} ({kind})"
    stamp = {
        "seq": fields.optional_integer("seq") or 0,
        "epoch": fields.optional_integer("epoch") or 0,
        "attempt": fields.optional_integer("attempt") or 0,
        "time": fields.moment("time"),
        "format_version": version,
    }
    return cls._parse(fields, stamp)


def read_all(stored: Iterable[Mapping[str, Any]]) -> list[Record]:
    """Every stored record as its type, in order; ``Unreadable`` at the first that is not."""
    return [read(data) for data in stored]
