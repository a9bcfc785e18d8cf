"""The provider-neutral conversation: what was said, what was asked for, what it cost.

Providers translate these types to and from their wire formats; the journal stores them as
plain JSON (``to_json``/``from_json``) so a later attempt rebuilds the same conversation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AssistantTurn",
    "Message",
    "ModelRequest",
    "TokenUsage",
    "ToolCall",
    "ToolDefinition",
    "ToolOutcome",
    "ToolResults",
    "UserMessage",
]


@dataclasses.dataclass(frozen=True)
class TokenUsage:
    """Tokens one model call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for. ``args_error`` is set when its arguments did not
    parse as a JSON object; ``args`` is then empty."""

    id: str
    name: str
    args: dict[str, Any]
    args_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "args": self.args}
        if self.args_error is not None:
            data["argsError"] = self.args_error
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            args=dict(data.get("args") or {}),
            args_error=data.get("argsError"),
        )


@dataclasses.dataclass(frozen=True)
class AssistantTurn:
    """One model response: text, tool calls (possibly none), usage and the model that spoke."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage = TokenUsage()
    model: str = ""
    stop_reason: str = ""

    @property
    def is_final(self) -> bool:
        return not self.tool_calls

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "toolCalls": [c.to_json() for c in self.tool_calls],
            "usage": {
                "inputTokens": self.usage.input_tokens,
                "outputTokens": self.usage.output_tokens,
            },
            "model": self.model,
            "stopReason": self.stop_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AssistantTurn:
        usage = data.get("usage") or {}
        return cls(
            text=str(data.get("text") or ""),
            tool_calls=tuple(ToolCall.from_json(c) for c in data.get("toolCalls") or ()),
            usage=TokenUsage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))),
            model=str(data.get("model") or ""),
            stop_reason=str(data.get("stopReason") or ""),
        )


@dataclasses.dataclass(frozen=True)
class ToolOutcome:
    """What a tool call produced for the model: a result, an error, or a denial."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclasses.dataclass(frozen=True)
class UserMessage:
    text: str


@dataclasses.dataclass(frozen=True)
class ToolResults:
    """The outcomes of every call of one assistant turn, in the turn's order."""

    outcomes: tuple[ToolOutcome, ...]


Message = UserMessage | AssistantTurn | ToolResults


@dataclasses.dataclass(frozen=True)
class ToolDefinition:
    """A tool as the model sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    """Everything one model call needs; ``call_index`` counts model calls of the run from 0."""

    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolDefinition]
    call_index: int
    output_schema: Mapping[str, Any] | None = None
    """The JSON Schema the final answer must satisfy (the Agent's ``outputSchema``)."""
