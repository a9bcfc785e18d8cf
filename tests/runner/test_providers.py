"""Providers against httpx MockTransport: wire formats, usage, retries and classification."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bosun import retry
from bosun.api import agent as agent_api
from bosun.runner import conversation, providers
from bosun.runner.providers import anthropic, base, openai, scripted

CALL = conversation.ToolCall("call_1", "weather", {"city": "Oslo"})
REQUEST = conversation.ModelRequest(
    system="Be brief.",
    messages=[
        conversation.UserMessage("What is the weather?"),
        conversation.AssistantTurn("", (CALL,)),
        conversation.ToolResults(
            (conversation.ToolOutcome("call_1", "weather", '{"celsius":-3}'),)
        ),
    ],
    tools=[conversation.ToolDefinition("weather", "Weather", {"type": "object"})],
    call_index=1,
)


def _spec(provider: str, **extra: object) -> agent_api.ModelSpec:
    return agent_api.ModelSpec.model_validate(
        {"provider": provider, "name": "m1", "baseURL": "http://model.test/v1", **extra}
    )


class Recorder:
    def __init__(self, responses: list[httpx.Response]) -> None:
        self.responses = responses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


def _build(
    provider: str,
    recorder: Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
    **extra: object,
) -> providers.Provider:
    policy = providers.RetryPolicy(
        pacing=retry.Policy(
            max_attempts=4, initial_backoff_seconds=1, backoff_multiplier=2, max_backoff_seconds=8
        ),
        sleep=sleeps.append,
        uniform=lambda low, high: high,
    )
    return providers.build(_spec(provider, **extra), "sk-1", policy, httpx.MockTransport(recorder))


OPENAI_OK = {
    "model": "m1-2025",
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "notes", "arguments": '{"text": "cold"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38},
}


def test_openai_renders_the_conversation_and_parses_tool_calls_and_usage() -> None:
    recorder = Recorder([httpx.Response(200, json=OPENAI_OK)])
    provider = _build("openai", recorder, [], temperature=0.2)
    turn = provider.complete(REQUEST)
    [request] = recorder.requests
    assert request.url == "http://model.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-1"
    body = json.loads(request.content)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius":-3}'},
    ]
    assert body["tools"][0]["function"]["parameters"] == {"type": "object"}
    assert body["temperature"] == 0.2
    assert turn.tool_calls == (conversation.ToolCall("call_9", "notes", {"text": "cold"}),)
    assert turn.usage == conversation.TokenUsage(31, 7)
    assert turn.model == "m1-2025"


def test_openai_arguments_that_are_not_json_become_an_args_error() -> None:
    data = json.loads(json.dumps(OPENAI_OK))
    data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{oops"
    turn = openai.parse_response(data, "m1")
    assert turn.tool_calls[0].args == {}
    assert "not valid JSON" in (turn.tool_calls[0].args_error or "")


def test_anthropic_renders_tool_use_and_results_and_sums_cached_input() -> None:
    reply = {
        "model": "m1",
        "content": [{"type": "text", "text": "Cold."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 50, "cache_read_input_tokens": 10, "output_tokens": 4},
    }
    recorder = Recorder([httpx.Response(200, json=reply)])
    provider = _build("anthropic", recorder, [])
    turn = provider.complete(REQUEST)
    [request] = recorder.requests
    assert request.url == "http://model.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-1"
    assert request.headers["anthropic-version"] == anthropic.API_VERSION
    body = json.loads(request.content)
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == anthropic.DEFAULT_MAX_TOKENS
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
        ],
    }
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": '{"celsius":-3}',
        "is_error": False,
    }
    assert body["tools"] == [
        {"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}
    ]
    assert turn.text == "Cold." and turn.is_final
    assert turn.usage == conversation.TokenUsage(60, 4)


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after() -> None:
    recorder = Recorder(
        [
            httpx.Response(429, headers={"Retry-After": "5"}),
            httpx.Response(503),
            httpx.Response(200, json=OPENAI_OK),
        ]
    )
    sleeps: list[float] = []
    turn = _build("openai", recorder, sleeps).complete(REQUEST)
    assert turn.usage.total == 38
    assert sleeps == [5.0, 2.0]


def test_timeouts_are_retried_then_reported_as_retryable() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    sleeps: list[float] = []
    with pytest.raises(providers.ModelUnavailable) as caught:
        _build("openai", timeout, sleeps).complete(REQUEST)
    assert caught.value.reason == "ModelTimeout"
    assert caught.value.exit_code == 11
    assert sleeps == [1.0, 2.0, 4.0]


def test_a_rejected_request_fails_at_once_and_permanently() -> None:
    recorder = Recorder([httpx.Response(400, json={"error": {"message": "bad"}})])
    sleeps: list[float] = []
    with pytest.raises(providers.ModelRejected) as caught:
        _build("openai", recorder, sleeps).complete(REQUEST)
    assert caught.value.exit_code == 10
    assert sleeps == []


def test_a_retry_after_beyond_the_limit_gives_up_for_a_later_attempt() -> None:
    recorder = Recorder([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(providers.ModelUnavailable):
        base.post_json(
            httpx.Client(transport=httpx.MockTransport(recorder)),
            "http://model.test/x",
            {},
            {},
            providers.RetryPolicy(max_retry_after_seconds=60, sleep=lambda s: None),
        )


def test_scripted_turns_then_the_last_reply_forever() -> None:
    spec = agent_api.ModelSpec.model_validate(
        {
            "provider": "scripted",
            "script": [
                {"toolCalls": [{"tool": "a", "args": {"x": 1}}]},
                {"reply": "first"},
                {"toolCalls": [{"tool": "b"}]},
            ],
        }
    )
    provider = scripted.ScriptedProvider(spec)

    def at(index: int) -> conversation.AssistantTurn:
        return provider.complete(conversation.ModelRequest("", [], [], index))

    assert at(0).tool_calls == (conversation.ToolCall("call-1-1", "a", {"x": 1}),)
    assert at(1).text == "first" and at(1).is_final
    assert at(2).tool_calls[0].name == "b"
    assert at(3).text == "first" and at(7).text == "first"
    assert at(0).usage.output_tokens > 0
