"""OpenAI-compatible chat completions with tool calling (OpenAI, vLLM, Ollama, LiteLLM).

``baseURL`` is the API root including its version, such as ``https://api.openai.com/v1`` or
``http://vllm:8000/v1``; requests go to ``{baseURL}/chat/completions``.
"""

from __future__ import annotations

import json
from typing import Any

from bosun.api import agent as agent_api
from bosun.runner import conversation
from bosun.runner.providers import base

__all__ = [
    "DEFAULT_BASE_URL",
    "endpoint",
    "parse_response",
    "render_messages",
    "render_request",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def render_messages(request: conversation.ModelRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        if isinstance(message, conversation.UserMessage):
            messages.append({"role": "user", "content": message.text})
        elif isinstance(message, conversation.AssistantTurn):
            rendered: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            if message.tool_calls:
                rendered["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": json.dumps(call.args, separators=(",", ":")),
                        },
                    }
                    for call in message.tool_calls
                ]
            messages.append(rendered)
        else:
            messages.extend(
                {"role": "tool", "tool_call_id": outcome.call_id, "content": outcome.content}
                for outcome in message.outcomes
            )
    return messages


def render_request(spec: agent_api.ModelSpec, request: conversation.ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": spec.name, "messages": render_messages(request)}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools
        ]
    if request.output_schema is not None:
        # Native structured output; the runner still validates the answer itself.
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": dict(request.output_schema)},
        }
    if spec.temperature is not None:
        body["temperature"] = spec.temperature
    if spec.top_p is not None:
        body["top_p"] = spec.top_p
    if spec.max_output_tokens is not None:
        body["max_tokens"] = spec.max_output_tokens
    return body


def _arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    if isinstance(raw, dict):
        return raw, None
    if raw is None or raw == "":
        return {}, None
    try:
        parsed = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as err:
        return {}, f"arguments are not valid JSON: {err}"
    if not isinstance(parsed, dict):
        return {}, "arguments must be a JSON object"
    return parsed, None


def parse_response(data: dict[str, Any], model: str) -> conversation.AssistantTurn:
    """An ``AssistantTurn`` from a chat-completions response body."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as err:
        raise base.ModelUnavailable("ModelBadResponse", "no choices[0].message") from err
    calls = []
    for index, raw in enumerate(message.get("tool_calls") or ()):
        function = raw.get("function") or {}
        args, problem = _arguments(function.get("arguments"))
        calls.append(
            conversation.ToolCall(
                id=str(raw.get("id") or f"call_{index}"),
                name=str(function.get("name") or ""),
                args=args,
                args_error=problem,
            )
        )
    usage = data.get("usage")
    return conversation.AssistantTurn(
        text=str(message.get("content") or ""),
        tool_calls=tuple(calls),
        usage=conversation.TokenUsage(
            base.token_count(usage, "prompt_tokens"), base.token_count(usage, "completion_tokens")
        ),
        model=str(data.get("model") or model),
        stop_reason=str(choice.get("finish_reason") or ""),
    )


def endpoint(spec: agent_api.ModelSpec, api_key: str) -> tuple[str, dict[str, str]]:
    """The URL of chat completions under the Agent's ``baseURL``, and the key's header."""
    url = (spec.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
    return url, ({"Authorization": f"Bearer {api_key}"} if api_key else {})
