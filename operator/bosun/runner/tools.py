"""Calling tools: argument validation, the model's view of a Tool, and transport dispatch.

``validate_args`` checks arguments against a Tool's ``inputSchema`` before anything is sent
(invalid arguments go back to the model as a tool error). ``Executor.call`` resolves headers
from Secret-backed environment variables, sends the call over HTTP (``tool_http``) or MCP
(``tool_mcp``), retries what is safe to retry, and bounds the result the model will read:
the transports read at most ``max_response_bytes`` of a response, and every Secret value the
runner holds (a header's among them) is blanked from results and failures before they are
shortened, logged or returned for the journal (``redaction``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from bosun import contract, httpclients, retry
from bosun.api import tool as tool_api
from bosun.runner import config, conversation, redaction, tool_http, toolresults

__all__ = [
    "ANY_OBJECT",
    "Attempted",
    "Caller",
    "Executor",
    "Send",
    "ToolResult",
    "bounded",
    "definition",
    "resolve_headers",
    "validate_args",
]

ToolResult = toolresults.ToolResult
Attempted = toolresults.Attempted

log = logging.getLogger("bosun.runner.tools")

ANY_OBJECT: dict[str, Any] = {"type": "object"}
_FAILURE_CHARS = 300


class Caller(Protocol):
    """What the loop asks of tool execution."""

    def call(
        self, tool: tool_api.Tool, args: dict[str, Any], idempotency_key: str
    ) -> ToolResult: ...

    def close(self) -> None: ...


def definition(tool: tool_api.Tool) -> conversation.ToolDefinition:
    return conversation.ToolDefinition(
        name=tool.metadata.name or "",
        description=tool.spec.description,
        input_schema=tool.spec.input_schema or ANY_OBJECT,
    )


def validate_args(schema: dict[str, Any] | None, args: dict[str, Any]) -> str | None:
    """None when ``args`` satisfy ``schema``; otherwise a message for the model (checked in
    linear time: ``argschema``)."""
    # Deliberate: jsonschema and RE2 cost ~50 ms at start-up and are needed only at a call.
    from bosun.runner import argschema  # noqa: PLC0415

    return argschema.validate(schema or ANY_OBJECT, args)


def bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated {len(text) - limit} characters]"


def resolve_headers(
    headers: list[tool_api.Header], env: Mapping[str, str]
) -> tuple[dict[str, str], str | None]:
    """Header values, literal or from injected Secrets; an error names a missing Secret."""
    resolved: dict[str, str] = {}
    for header in headers:
        if header.value is not None:
            resolved[header.name] = header.value
            continue
        assert header.value_from is not None
        ref = header.value_from.secret_key_ref
        variable = contract.secret_env_name(ref.name, ref.key)
        if variable not in env:
            return {}, f"header {header.name}: Secret {ref.name}/{ref.key} was not injected"
        resolved[header.name] = env[variable]
    return resolved, None


Send = Callable[[tool_api.Tool, dict[str, Any], dict[str, str]], Attempted]


class Executor:
    """Sends tool calls; one instance per attempt."""

    def __init__(
        self,
        env: Mapping[str, str],
        max_result_chars: int,
        sleep: Callable[[float], None] = time.sleep,
        http_transport: httpx.BaseTransport | None = None,
        max_response_bytes: int = config.RESPONSE_MAX_BYTES,
    ) -> None:
        self.env = env
        self.max_result_chars = max_result_chars
        self.max_response_bytes = max_response_bytes
        self.secrets = redaction.secrets(env)
        self.sleep = sleep
        self._transport = http_transport
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """One connection pool for every HTTP tool (each call sets its own timeout), made at
        the first call: a run that calls no HTTP tool never builds it."""
        if self._http is None:
            self._http = httpclients.sync_client(30.0, transport=self._transport)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _send(self, tool: tool_api.Tool) -> Send:
        if tool.spec.http is not None:
            return lambda t, a, h: tool_http.send(self.http, t, a, h, self.max_response_bytes)
        # Deliberate lazy import: the MCP SDK is heavy; only runs with an MCP tool pay for it.
        from bosun.runner import tool_mcp  # noqa: PLC0415

        return lambda t, a, h: tool_mcp.send(t, a, h, self.max_response_bytes)

    def call(self, tool: tool_api.Tool, args: dict[str, Any], idempotency_key: str) -> ToolResult:
        transport = tool.spec.http or tool.spec.mcp
        assert transport is not None
        headers, problem = resolve_headers(transport.headers, self.env)
        if problem is not None:
            return ToolResult(problem, is_error=True)
        if tool.spec.idempotent:
            headers["Idempotency-Key"] = idempotency_key
        pacing = retry.layered(
            retry.TOOL_CALL_DEFAULTS, tool.spec.retry.layers() if tool.spec.retry else None
        )
        send = self._send(tool)
        tries = 0
        while True:
            tries += 1
            outcome = send(tool, args, headers)
            if outcome.result is not None:
                result = outcome.result
                # Blanked before it is shortened: a secret cut in half would survive blanking.
                content = redaction.blank(result.content, self.secrets)
                return dataclasses.replace(result, content=bounded(content, self.max_result_chars))
            failure = redaction.shorten(outcome.failure or "", _FAILURE_CHARS, self.secrets)
            # Resending is safe when the request never left, or when the Tool is idempotent.
            safe = outcome.retryable and (tool.spec.idempotent or not outcome.maybe_sent)
            if not safe or pacing.exhausted(tries):
                unknown = outcome.maybe_sent and not tool.spec.idempotent
                suffix = " (the call may or may not have taken effect)" if unknown else ""
                return ToolResult(f"tool call failed: {failure}{suffix}", is_error=True)
            delay = pacing.delay(tries, retry_after=outcome.retry_after, uniform=random.uniform)
            log.warning(
                "Retrying tool call",
                extra={
                    "fields": {
                        "tool": tool.metadata.name,
                        "failure": failure,
                        "retry": tries,
                        "delaySeconds": round(delay, 3),
                    }
                },
            )
            self.sleep(delay)
