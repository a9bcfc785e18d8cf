"""Rebuilding a Run's state from its journal: conversation, call outcomes and usage.

Pure: ``State.build(records)`` folds the records of every attempt so far. A later attempt uses
it to resume exactly where the last one stopped: recorded model responses are not requested
again, recorded tool results and denials are reused, and a call that was started without a
recorded result is reported as ``unknown`` so the loop can decide whether to re-send it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from bosun.runner import conversation, journal

__all__ = ["DENIALS", "CallState", "State"]

# Decision outcomes recorded in the journal.
ALLOWED = "allowed"
DENIED = "denied"
APPROVAL_REQUESTED = "approvalRequested"
APPROVAL_GRANTED = "approvalGranted"
APPROVAL_DENIED = "approvalDenied"
APPROVAL_EXPIRED = "approvalExpired"
APPROVAL_IGNORED = "approvalIgnored"
RESENT = "resent"
OUTCOME_UNKNOWN = "outcomeUnknown"
DENIALS = frozenset({DENIED, APPROVAL_DENIED, APPROVAL_EXPIRED})


def call_key(step: int, call_id: str) -> str:
    return f"{step}:{call_id}"


@dataclasses.dataclass
class CallState:
    """What the journal says about one tool call."""

    step: int
    call: conversation.ToolCall
    denial: journal.Record | None = None
    approval_requested: journal.Record | None = None
    started: journal.Record | None = None
    result: journal.Record | None = None

    @property
    def resolved(self) -> bool:
        return self.result is not None or self.denial is not None

    @property
    def unknown(self) -> bool:
        """Sent (maybe) but no result recorded: the runner died or lost its lease mid-call."""
        return self.started is not None and self.result is None

    def outcome(self) -> conversation.ToolOutcome:
        if self.result is not None:
            return conversation.ToolOutcome(
                self.call.id,
                self.call.name,
                str(self.result.get("content", "")),
                bool(self.result.get("isError", False)),
            )
        assert self.denial is not None
        return conversation.ToolOutcome(
            self.call.id, self.call.name, denial_text(self.denial), is_error=True
        )


def denial_text(record: journal.Record) -> str:
    """What the model is told about a denied call."""
    who = ", ".join(f"{k} {record[k]}" for k in ("policy", "rule") if record.get(k))
    text = f"call denied ({record.get('reason', 'Denied')}): {record.get('message', '')}"
    return f"{text} [{who}]" if who else text


def _time(record: journal.Record) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None


@dataclasses.dataclass
class State:
    """A Run as its journal tells it."""

    turns: list[tuple[int, conversation.AssistantTurn]] = dataclasses.field(default_factory=list)
    calls: dict[str, CallState] = dataclasses.field(default_factory=dict)
    finished: journal.Record | None = None
    records: list[journal.Record] = dataclasses.field(default_factory=list)

    @classmethod
    def build(cls, records: Iterable[journal.Record]) -> State:
        state = cls()
        state.apply(records)
        return state

    def apply(self, records: Iterable[journal.Record]) -> None:
        for record in records:
            self.records.append(record)
            kind = record.get("type")
            if kind == journal.MODEL_RESPONSE:
                step = int(record["step"])
                turn = conversation.AssistantTurn.from_json(record["turn"])
                self.turns.append((step, turn))
                for requested in turn.tool_calls:
                    self.calls[call_key(step, requested.id)] = CallState(step, requested)
                continue
            if kind == journal.RUN_FINISHED:
                self.finished = record
                continue
            key = call_key(int(record.get("step", 0)), str(record.get("callId", "")))
            call = self.calls.get(key)
            if call is None:
                continue
            if kind == journal.DECISION:
                outcome = record.get("outcome")
                if outcome in DENIALS:
                    call.denial = record
                elif outcome == APPROVAL_REQUESTED and call.approval_requested is None:
                    call.approval_requested = record
            elif kind == journal.TOOL_STARTED:
                call.started = call.started or record
            elif kind == journal.TOOL_RESULT:
                call.result = record

    # --- the conversation ---------------------------------------------------------------------

    @property
    def model_calls(self) -> int:
        return len(self.turns)

    def last_turn(self) -> tuple[int, conversation.AssistantTurn] | None:
        return self.turns[-1] if self.turns else None

    def open_calls(self) -> list[CallState]:
        """The unresolved calls of the latest turn, in the model's order."""
        last = self.last_turn()
        if last is None:
            return []
        step, turn = last
        return [
            self.calls[call_key(step, c.id)]
            for c in turn.tool_calls
            if not self.calls[call_key(step, c.id)].resolved
        ]

    def messages(self, user_input: str) -> list[conversation.Message]:
        """The conversation so far, ready for the next model call."""
        messages: list[conversation.Message] = [conversation.UserMessage(user_input)]
        for step, turn in self.turns:
            messages.append(turn)
            if turn.tool_calls:
                outcomes = [
                    self.calls[call_key(step, c.id)]
                    for c in turn.tool_calls
                    if self.calls[call_key(step, c.id)].resolved
                ]
                messages.append(conversation.ToolResults(tuple(c.outcome() for c in outcomes)))
        return messages

    # --- accounting ----------------------------------------------------------------------------

    def usage(self) -> dict[str, int]:
        """The Run's ``status.usage``, across every attempt so far."""
        input_tokens = sum(t.usage.input_tokens for _, t in self.turns)
        output_tokens = sum(t.usage.output_tokens for _, t in self.turns)
        return {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
            "modelCalls": len(self.turns),
            "toolCalls": sum(1 for c in self.calls.values() if c.started is not None),
            "deniedCalls": sum(1 for c in self.calls.values() if c.denial is not None),
        }

    def window(self, now: datetime.datetime, seconds: float = 3600.0) -> dict[str, int]:
        """Tool calls and tokens recorded within the last ``seconds``."""
        since = now - datetime.timedelta(seconds=seconds)
        tool_calls = tokens = 0
        for record in self.records:
            moment = _time(record)
            if moment is None or moment < since:
                continue
            if record.get("type") == journal.TOOL_STARTED:
                tool_calls += 1
            elif record.get("type") == journal.MODEL_RESPONSE:
                usage: dict[str, Any] = record["turn"].get("usage") or {}
                tokens += int(usage.get("inputTokens", 0)) + int(usage.get("outputTokens", 0))
        return {"toolCalls": tool_calls, "tokens": tokens}
