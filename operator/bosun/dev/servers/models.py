"""OpenAI-compatible and Anthropic-compatible model servers driven by a script.

Which turn a request gets is decided by the conversation it carries (the number of assistant
messages so far), so a replaying runner gets the same answers. Each server checks the
provider's documented request shape (tool results answer the previous turn's tool calls) and
answers 400 otherwise; ``rate_limit(n, retry_after)`` makes the next ``n`` requests fail with 429.
Every successful response's usage is recorded in ``reported``.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from typing import Any

from . import base

__all__ = ["AnthropicServer", "OpenAIServer", "ScriptedModelServer", "Turn"]

Turn = dict[str, Any]  # {"toolCalls": [{"tool", "args"}]} or {"reply": text}


class ScriptedModelServer(base.JSONServer):
    path = ""

    def __init__(self, script: list[Turn], model: str = "test-model") -> None:
        super().__init__()
        self.script = script
        self.model = model
        self.reported: list[dict[str, int]] = []
        self.pending_429: list[str] = []
        self.ids = itertools.count(1)
        self.fail_ratio = 0.0
        self.rng = random.Random(0)
        self.failures = 0
        self.delay_seconds = 0.0
        """How long each answer takes: a slow model endpoint (the request waits, not a thread
        of the caller's)."""

    def fail_randomly(self, ratio: float, seed: int = 0) -> None:
        """Fail this share of requests, alternating 429 (Retry-After: 0) and 500."""
        self.fail_ratio, self.rng = ratio, random.Random(seed)

    def rate_limit(self, count: int, retry_after: str = "0") -> None:
        self.pending_429.extend([retry_after] * count)

    def turn(self, index: int) -> Turn:
        if index < len(self.script):
            return self.script[index]
        replies = [t for t in self.script if "reply" in t]
        return replies[-1] if replies else {"reply": ""}

    def handle(self, request: base.Request) -> base.Reply:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if request.method != "POST" or request.path != self.path:
            return base.Reply(404, {"error": {"message": f"no route {request.path}"}})
        with self.lock:
            if self.fail_ratio and self.rng.random() < self.fail_ratio:
                self.failures += 1
                if self.failures % 2:
                    return base.Reply(429, self.error_body("rate limited"), {"Retry-After": "0"})
                return base.Reply(500, self.error_body("internal error"))
            if self.pending_429:
                retry_after = self.pending_429.pop(0)
                return base.Reply(
                    429, self.error_body("rate limited"), {"Retry-After": retry_after}
                )
        problem = self.check(request)
        if problem:
            return base.Reply(400, self.error_body(problem))
        index = self.assistant_turns(request.body)
        usage = {"input": 100 + 7 * len(request.body.get("messages", [])), "output": 20 + index}
        with self.lock:
            self.reported.append(usage)
        return base.Reply(200, self.render(self.turn(index), usage, index))

    def error_body(self, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error"}}

    def check(self, request: base.Request) -> str | None:
        raise NotImplementedError

    def assistant_turns(self, body: dict[str, Any]) -> int:
        return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")

    def render(self, turn: Turn, usage: dict[str, int], index: int) -> dict[str, Any]:
        raise NotImplementedError


class OpenAIServer(ScriptedModelServer):
    """``POST /v1/chat/completions``."""

    path = "/v1/chat/completions"

    def check(self, request: base.Request) -> str | None:
        body = request.body
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return "model and messages are required"
        expected: list[str] = []
        for message in body["messages"]:
            role = message.get("role")
            if role == "tool":
                if not expected or message.get("tool_call_id") != expected.pop(0):
                    return "tool message does not answer a pending tool call"
                if not isinstance(message.get("content"), str):
                    return "tool content must be a string"
                continue
            if expected:
                return "tool calls were not all answered"
            if role == "assistant":
                for call in message.get("tool_calls") or ():
                    if not isinstance(call["function"]["arguments"], str):
                        return "tool call arguments must be a JSON string"
                    expected.append(call["id"])
        for tool in body.get("tools") or ():
            if tool.get("type") != "function" or "parameters" not in tool.get("function", {}):
                return "tools must be functions with parameters"
        return None

    def render(self, turn: Turn, usage: dict[str, int], index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.get("reply")}
        if "toolCalls" in turn:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}_{n}",
                    "type": "function",
                    "function": {
                        "name": c["tool"],
                        # rawArgs lets a script send malformed arguments, as models sometimes do.
                        "arguments": c.get("rawArgs", json.dumps(c.get("args", {}))),
                    },
                }
                for n, c in enumerate(turn["toolCalls"])
            ]
        return {
            "id": f"chatcmpl-{next(self.ids)}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if "toolCalls" in turn else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage["input"],
                "completion_tokens": usage["output"],
                "total_tokens": usage["input"] + usage["output"],
            },
        }


class AnthropicServer(ScriptedModelServer):
    """``POST /v1/messages``."""

    path = "/v1/messages"

    def error_body(self, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}

    def check(self, request: base.Request) -> str | None:
        if not request.headers.get("x-api-key"):
            return "x-api-key header is required"
        if not request.headers.get("anthropic-version"):
            return "anthropic-version header is required"
        body = request.body
        if not isinstance(body, dict) or not body.get("max_tokens") or "messages" not in body:
            return "model, max_tokens and messages are required"
        pending: list[str] = []
        for message in body["messages"]:
            content = message.get("content")
            if message.get("role") == "assistant":
                if pending:
                    return "tool_use blocks were not answered"
                pending = [b["id"] for b in content if b.get("type") == "tool_use"]
            elif pending:
                results = [b for b in content if b.get("type") == "tool_result"]
                if [b.get("tool_use_id") for b in results] != pending:
                    return "tool_result blocks must answer every tool_use in order"
                pending = []
        for tool in body.get("tools") or ():
            if "input_schema" not in tool:
                return "tools need input_schema"
        return None

    def render(self, turn: Turn, usage: dict[str, int], index: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if turn.get("reply"):
            content.append({"type": "text", "text": turn["reply"]})
        for n, call in enumerate(turn.get("toolCalls") or ()):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{index}_{n}",
                    "name": call["tool"],
                    "input": call.get("args", {}),
                }
            )
        return {
            "id": f"msg_{next(self.ids)}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": "tool_use" if "toolCalls" in turn else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage["input"], "output_tokens": usage["output"]},
        }
