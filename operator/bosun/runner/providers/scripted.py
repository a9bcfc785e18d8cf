"""The scripted provider: deterministic replies from ``spec.model.script``.

A real provider for demos and tests: the n-th model call of a Run returns the n-th turn; past
the end it returns the last reply (or an empty reply). Tokens are estimated at four characters
per token, so limits and budgets behave as they would with a remote model.
"""

from __future__ import annotations

import json

from bosun.api import agent as agent_api
from bosun.runner import conversation

__all__ = ["ScriptedProvider", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _request_text(request: conversation.ModelRequest) -> str:
    parts = [request.system]
    for message in request.messages:
        if isinstance(message, conversation.UserMessage):
            parts.append(message.text)
        elif isinstance(message, conversation.AssistantTurn):
            parts.append(message.text)
            parts.extend(json.dumps(c.args, sort_keys=True) for c in message.tool_calls)
        else:
            parts.extend(o.content for o in message.outcomes)
    return "\n".join(parts)


class ScriptedProvider:
    """Replies from the Agent's script."""

    provider = "scripted"

    def __init__(self, spec: agent_api.ModelSpec) -> None:
        self.model = spec.name or "scripted"
        self.script = list(spec.script or ())

    def turn(self, index: int) -> tuple[str, tuple[conversation.ToolCall, ...]]:
        if index < len(self.script):
            entry = self.script[index]
            if entry.tool_calls is not None:
                calls = tuple(
                    conversation.ToolCall(id=f"call-{index + 1}-{n + 1}", name=c.tool, args=c.args)
                    for n, c in enumerate(entry.tool_calls)
                )
                return "", calls
            return entry.reply or "", ()
        replies = [t.reply for t in self.script if t.reply is not None]
        return (replies[-1] if replies else ""), ()

    def complete(self, request: conversation.ModelRequest) -> conversation.AssistantTurn:
        text, calls = self.turn(request.call_index)
        produced = text + "".join(json.dumps(c.args, sort_keys=True) for c in calls)
        return conversation.AssistantTurn(
            text=text,
            tool_calls=calls,
            usage=conversation.TokenUsage(
                estimate_tokens(_request_text(request)), estimate_tokens(produced)
            ),
            model=self.model,
            stop_reason="tool_calls" if calls else "stop",
        )

    def close(self) -> None:
        return None
