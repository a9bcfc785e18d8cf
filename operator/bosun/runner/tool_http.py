"""The HTTP tool transport: one JSON request per call.

GET and DELETE send the arguments as query parameters (non-string values JSON-encoded), the
other methods as a JSON body. A 2xx response is the result (JSON rendered compactly, otherwise
text); 408/425/429/5xx, timeouts and transport errors are retryable failures
(``retry.retryable_status``, ``retry.transport_failure``); other 4xx are results with an error.

The response is streamed and read up to ``max_bytes`` (``bodies.read``), and within the Tool's
``timeoutSeconds`` in total: a longer body is cut there, unread, and the result says so (a 2xx
result stays a result, since the call took effect); a body that keeps trickling past the
timeout is a timeout, like one that never started.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bosun import retry
from bosun.api import tool as tool_api
from bosun.runner import bodies, toolresults

__all__ = ["ERROR_BODY_BYTES", "send"]

ERROR_BODY_BYTES = 16 * 1024
"""How much of a retryable failure's body is read: it only explains the failure."""


def _query(args: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}


def _content(response: httpx.Response, got: bodies.Body) -> str:
    if got.truncated:
        text = got.text(response.encoding)
        return f"{text}\n[truncated: the response was longer than {len(got.data)} bytes]"
    if "json" in response.headers.get("content-type", ""):
        try:
            return toolresults.render_content(json.loads(got.data))
        except (ValueError, RecursionError):
            pass
    return bodies.valid_text(got.text(response.encoding))


def _exchange(
    client: httpx.Client,
    spec: tool_api.HTTPTransport,
    args: dict[str, Any],
    headers: dict[str, str],
    max_bytes: int,
) -> tuple[httpx.Response, bodies.Body]:
    seconds = float(spec.timeout_seconds)
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))
    if spec.method in ("GET", "DELETE"):
        request = client.build_request(
            spec.method, spec.url, params=_query(args), headers=headers, timeout=timeout
        )
    else:
        request = client.build_request(
            spec.method, spec.url, json=args, headers=headers, timeout=timeout
        )
    response = client.send(request, stream=True)
    try:
        status = response.status_code
        limit = ERROR_BODY_BYTES if retry.retryable_status(status) else max_bytes
        return response, bodies.read(response, limit, seconds)
    finally:
        response.close()


def send(
    client: httpx.Client,
    tool: tool_api.Tool,
    args: dict[str, Any],
    headers: dict[str, str],
    max_bytes: int,
) -> toolresults.Attempted:
    spec = tool.spec.http
    assert spec is not None
    try:
        response, got = _exchange(client, spec, args, headers, max_bytes)
    except httpx.TransportError as err:
        failure = retry.transport_failure(err)
        maybe_sent = failure is None or failure.maybe_sent
        return toolresults.Attempted(
            failure=type(err).__name__, retryable=True, maybe_sent=maybe_sent
        )
    except bodies.TooSlow as err:
        return toolresults.Attempted(failure=f"ReadTimeout: {err}", retryable=True)
    except bodies.UnsupportedEncoding as err:
        return toolresults.Attempted(
            result=toolresults.ToolResult(f"the response could not be read: {err}", True)
        )
    status = response.status_code
    if 200 <= status < 300:
        return toolresults.Attempted(
            result=toolresults.ToolResult(_content(response, got), status=status)
        )
    if retry.retryable_status(status):
        return toolresults.Attempted(
            failure=f"HTTP {status}: {got.text(response.encoding)}",
            retryable=True,
            retry_after=retry.retry_after_seconds(response.headers),
        )
    return toolresults.Attempted(
        result=toolresults.ToolResult(f"HTTP {status}: {_content(response, got)}", True, status)
    )
