"""Anthropic Messages with tool use.

``baseURL`` is the API root such as ``https://api.anthropic.com``; requests go to
``{baseURL}/v1/messages`` (a base ending in ``/v1`` is accepted too).
"""

from __future__ import annotations

import json
from typing import Any

from bosun.api import agent as agent_api
from bosun.runner import conversation
from bosun.runner.providers import base

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "endpoint",
    "parse_response",
    "render_messages",
    "render_request",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def render_messages(request: conversation.ModelRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if isinstance(message, conversation.UserMessage):
            messages.append({"role": "user", "content": message.text})
        elif isinstance(message, conversation.AssistantTurn):
            blocks: list[dict[str, Any]] = []
            if message.text:
                blocks.append({"type": "text", "text": message.text})
            blocks.extend(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.args}
                for call in message.tool_calls
            )
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": outcome.call_id,
                            "content": outcome.content,
                            "is_error": outcome.is_error,
                        }
                        for outcome in message.outcomes
                    ],
                }
            )
    return messages


def render_request(spec: agent_api.ModelSpec, request: conversation.ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": spec.name,
        "max_tokens": spec.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": render_messages(request),
    }
    system = request.system
    if request.output_schema is not None:  # said in the instructions; the runner validates
        schema = json.dumps(request.output_schema, separators=(",", ":"), sort_keys=True)
        system = (
            f"{system}\n\n" if system else ""
        ) + f"Give your final answer as only a JSON value satisfying this JSON Schema: {schema}"
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
    if spec.temperature is not None:
        body["temperature"] = spec.temperature
    if spec.top_p is not None:
        body["top_p"] = spec.top_p
    return body


def parse_response(data: dict[str, Any], model: str) -> conversation.AssistantTurn:
    """An ``AssistantTurn`` from a Messages response body."""
    content = data.get("content")
    if not isinstance(content, list):
        raise base.ModelUnavailable("ModelBadResponse", "no content list")
    texts: list[str] = []
    calls: list[conversation.ToolCall] = []
    for block in content:
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            raw = block.get("input")
            calls.append(
                conversation.ToolCall(
                    id=str(block.get("id") or f"toolu_{len(calls)}"),
                    name=str(block.get("name") or ""),
                    args=raw if isinstance(raw, dict) else {},
                    args_error=None if isinstance(raw, dict) else "input must be a JSON object",
                )
            )
    usage = data.get("usage")
    # Cached prompt tokens are input tokens too; the provider reports them apart.
    input_tokens = sum(
        base.token_count(usage, key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return conversation.AssistantTurn(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=conversation.TokenUsage(input_tokens, base.token_count(usage, "output_tokens")),
        model=str(data.get("model") or model),
        stop_reason=str(data.get("stop_reason") or ""),
    )


def endpoint(spec: agent_api.ModelSpec, api_key: str) -> tuple[str, dict[str, str]]:
    """The Messages URL under the Agent's ``baseURL``, and the version and key headers."""
    root = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
    url = root + ("/messages" if root.endswith("/v1") else "/v1/messages")
    headers = {"anthropic-version": API_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    return url, headers
