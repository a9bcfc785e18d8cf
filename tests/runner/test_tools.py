"""Argument validation and the HTTP transport, over httpx MockTransport."""

from __future__ import annotations

import json

import httpx

from bosun import contract, retry
from bosun.runner import tools

from . import fakes

SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "number", "minimum": 0}, "note": {"type": "string"}},
    "required": ["amount"],
    "additionalProperties": False,
}


def test_validation_accepts_good_arguments_and_explains_bad_ones() -> None:
    assert tools.validate_args(SCHEMA, {"amount": 3}) is None
    problem = tools.validate_args(SCHEMA, {"amount": -1, "extra": True})
    assert problem is not None
    assert problem.startswith("invalid arguments:")
    assert "amount" in problem and "extra" in problem
    assert tools.validate_args(None, {"anything": 1}) is None
    assert "inputSchema is invalid" in (tools.validate_args({"type": 5}, {}) or "")


def _executor(
    handler: httpx.MockTransport,
    env: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
) -> tools.Executor:
    record = sleeps if sleeps is not None else []
    return tools.Executor(env or {}, 50, sleep=record.append, http_transport=handler)


def test_post_sends_json_secret_headers_and_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "echo": json.loads(request.content)})

    env = {contract.secret_env_name("payments", "token"): "Bearer s3cret"}
    tool = fakes.tool(
        "charge",
        idempotent=True,
        http={
            "headers": [
                {
                    "name": "Authorization",
                    "valueFrom": {"secretKeyRef": {"name": "payments", "key": "token"}},
                },
                {"name": "X-Team", "value": "billing"},
            ]
        },
    )
    result = _executor(httpx.MockTransport(handler), env).call(tool, {"amount": 3}, "key-1")
    assert result == tools.ToolResult('{"ok":true,"echo":{"amount":3}}', False, 200)
    [request] = seen
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-team"] == "billing"
    assert request.headers["idempotency-key"] == "key-1"


def test_get_sends_arguments_as_query_and_no_key_when_not_idempotent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="plain " * 20)

    tool = fakes.tool("lookup", http={"method": "GET"})
    result = _executor(httpx.MockTransport(handler)).call(tool, {"q": "x", "n": 2, "f": [1]}, "key")
    assert dict(seen[0].url.params) == {"q": "x", "n": "2", "f": "[1]"}
    assert "idempotency-key" not in seen[0].headers
    assert result.content.startswith("plain plain")
    assert "[truncated" in result.content


def test_a_missing_secret_is_a_tool_error_and_nothing_is_sent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("must not be called")

    tool = fakes.tool(
        "charge",
        http={
            "headers": [
                {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ]
        },
    )
    result = _executor(httpx.MockTransport(handler)).call(tool, {}, "key")
    assert result.is_error and "Secret s/k was not injected" in result.content


def test_client_errors_are_results_the_model_sees() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(422, json={"error": "amount"}))
    result = _executor(transport).call(fakes.tool("charge"), {}, "key")
    assert (result.is_error, result.status) == (True, 422)
    assert result.content == 'HTTP 422: {"error":"amount"}'


def test_idempotent_tools_are_retried_on_server_errors_with_the_same_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) < 3:
            return httpx.Response(503, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"done": 1})

    sleeps: list[float] = []
    tool = fakes.tool("charge", idempotent=True)
    result = _executor(httpx.MockTransport(handler), sleeps=sleeps).call(tool, {}, "k-7")
    assert not result.is_error
    assert keys == ["k-7", "k-7", "k-7"]
    assert len(sleeps) == 2 and all(s >= 1 for s in sleeps)


def test_non_idempotent_tools_are_not_resent_after_a_timeout_but_are_after_connect_errors() -> None:
    attempts: list[str] = []

    def timeout(request: httpx.Request) -> httpx.Response:
        attempts.append("read")
        raise httpx.ReadTimeout("slow", request=request)

    result = _executor(httpx.MockTransport(timeout)).call(fakes.tool("charge"), {}, "k")
    assert attempts == ["read"]
    assert result.is_error and "may or may not have taken effect" in result.content

    def refused(request: httpx.Request) -> httpx.Response:
        attempts.append("connect")
        raise httpx.ConnectError("refused", request=request)

    result = _executor(httpx.MockTransport(refused)).call(fakes.tool("charge"), {}, "k")
    assert attempts.count("connect") == retry.TOOL_CALL_DEFAULTS.max_attempts
    assert result.is_error and "ConnectError" in result.content
