"""Rebuilding a Run's state from its journal: conversation, call outcomes and usage.

Pure: ``State.build(records)`` folds the typed records (``bosun.runner.records``) of every
attempt so far. A later attempt uses it to resume exactly where the last one stopped: recorded
model responses are not requested again, recorded tool results and denials are reused, and a
call that was started without a recorded result is reported as ``unknown`` so the loop can
decide whether to re-send it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable

from bosun.runner import conversation, records

__all__ = ["CallState", "State", "output_correction"]


def _call_key(step: int, call_id: str) -> str:
    return f"{step}:{call_id}"


@dataclasses.dataclass
class CallState:
    """What the journal says about one tool call."""

    step: int
    call: conversation.ToolCall
    denial: records.Decision | None = None
    approval_requested: records.Decision | None = None
    started: records.ToolStarted | None = None
    result: records.ToolResult | None = None

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
                self.call.id, self.call.name, self.result.content, self.result.is_error
            )
        assert self.denial is not None
        return conversation.ToolOutcome(
            self.call.id, self.call.name, _denial_text(self.denial), is_error=True
        )


def _denial_text(record: records.Decision) -> str:
    """What the model is told about a denied call."""
    named = (("policy", record.policy), ("rule", record.rule))
    who = ", ".join(f"{k} {v}" for k, v in named if v)
    text = f"call denied ({record.reason}): {record.message}"
    return f"{text} [{who}]" if who else text


def output_correction(problems: str) -> str:
    """What the model is told when its final answer did not satisfy the output schema."""
    return (
        "Your final answer must be only a JSON value that satisfies the required JSON Schema,"
        f" and it does not: {problems}. Answer again with the corrected JSON alone."
    )


@dataclasses.dataclass
class State:
    """A Run as its journal tells it."""

    turns: list[tuple[int, conversation.AssistantTurn]] = dataclasses.field(default_factory=list)
    calls: dict[str, CallState] = dataclasses.field(default_factory=dict)
    finished: records.RunFinished | None = None
    history: list[records.Record] = dataclasses.field(default_factory=list)
    rejected: dict[int, str] = dataclasses.field(default_factory=dict)
    """Steps whose final answer did not satisfy the output schema: the problems told."""

    @classmethod
    def build(cls, entries: Iterable[records.Record]) -> State:
        state = cls()
        state.apply(entries)
        return state

    def _call(self, step: int, call_id: str | None) -> CallState | None:
        return self.calls.get(_call_key(step, call_id)) if call_id is not None else None

    def apply(self, entries: Iterable[records.Record]) -> None:
        for record in entries:
            self.history.append(record)
            match record:
                case records.ModelResponse(step=step, turn=turn):
                    self.turns.append((step, turn))
                    for requested in turn.tool_calls:
                        self.calls[_call_key(step, requested.id)] = CallState(step, requested)
                case records.RunFinished():
                    self.finished = record
                case records.OutputRejected(step=step, problems=problems):
                    self.rejected[step] = problems
                case records.Decision(step=step, call_id=call_id):
                    call = self._call(step, call_id)
                    if call is None:
                        continue
                    if record.denial:
                        call.denial = record
                    elif (
                        record.outcome == records.Outcome.APPROVAL_REQUESTED
                        and call.approval_requested is None
                    ):
                        call.approval_requested = record
                case records.ToolStarted(step=step, call_id=call_id):
                    call = self._call(step, call_id)
                    if call is not None:
                        call.started = call.started or record
                case records.ToolResult(step=step, call_id=call_id):
                    call = self._call(step, call_id)
                    if call is not None:
                        call.result = record
                case records.AttemptStarted() | records.AttemptEnded():
                    pass

    # --- the conversation ---------------------------------------------------------------------

    @property
    def model_calls(self) -> int:
        return len(self.turns)

    def last_turn(self) -> tuple[int, conversation.AssistantTurn] | None:
        return self.turns[-1] if self.turns else None

    def approvals_used(self, besides: CallState) -> frozenset[str]:
        """Approvals that calls other than ``besides`` were granted by: an Approval decides
        one call, so none of these may decide another."""
        used = set()
        for record in self.history:
            if (
                isinstance(record, records.Decision)
                and record.approval
                and record.outcome in (records.Outcome.APPROVAL_GRANTED, records.Outcome.RESENT)
                and (record.step, record.call_id) != (besides.step, besides.call.id)
            ):
                used.add(record.approval)
        return frozenset(used)

    def open_calls(self) -> list[CallState]:
        """The unresolved calls of the latest turn, in the model's order."""
        last = self.last_turn()
        if last is None:
            return []
        step, turn = last
        return [
            self.calls[_call_key(step, c.id)]
            for c in turn.tool_calls
            if not self.calls[_call_key(step, c.id)].resolved
        ]

    def messages(self, user_input: str) -> list[conversation.Message]:
        """The conversation so far, ready for the next model call."""
        messages: list[conversation.Message] = [conversation.UserMessage(user_input)]
        for step, turn in self.turns:
            messages.append(turn)
            if turn.tool_calls:
                outcomes = [
                    self.calls[_call_key(step, c.id)]
                    for c in turn.tool_calls
                    if self.calls[_call_key(step, c.id)].resolved
                ]
                messages.append(conversation.ToolResults(tuple(c.outcome() for c in outcomes)))
            elif step in self.rejected:
                messages.append(conversation.UserMessage(output_correction(self.rejected[step])))
        return messages

    def answer(self) -> tuple[int, str] | None:
        """The latest turn's final answer not yet rejected, as (step, text), or None."""
        last = self.last_turn()
        if last is None or not last[1].is_final or last[0] in self.rejected:
            return None
        return last[0], last[1].text

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
        for record in self.history:
            if record.time is None or record.time < since:
                continue
            if isinstance(record, records.ToolStarted):
                tool_calls += 1
            elif isinstance(record, records.ModelResponse):
                tokens += record.turn.usage.total
        return {"toolCalls": tool_calls, "tokens": tokens}
