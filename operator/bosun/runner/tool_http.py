"""The HTTP tool transport: one JSON request per call.

GET and DELETE send the arguments as query parameters (non-string values JSON-encoded), the
other methods as a JSON body. A 2xx response is the result (JSON rendered compactly, otherwise
text); 408/425/429/5xx, timeouts and transport errors are retryable failures
(``retry.retryable_status``, ``retry.transport_failure``); other 4xx are results with an error.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bosun import retry
from bosun.api import tool as tool_api
from bosun.runner import toolresults

__all__ = ["send"]


def _query(args: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}


def _content(response: httpx.Response) -> str:
    if "json" in response.headers.get("content-type", ""):
        try:
            return toolresults.render_content(response.json())
        except json.JSONDecodeError:
            pass
    return response.text


def send(
    client: httpx.Client,
    tool: tool_api.Tool,
    args: dict[str, Any],
    headers: dict[str, str],
) -> toolresults.Attempted:
    spec = tool.spec.http
    assert spec is not None
    seconds = float(spec.timeout_seconds)
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))
    try:
        if spec.method in ("GET", "DELETE"):
            response = client.request(
                spec.method, spec.url, params=_query(args), headers=headers, timeout=timeout
            )
        else:
            response = client.request(
                spec.method, spec.url, json=args, headers=headers, timeout=timeout
            )
    except httpx.TransportError as err:
        failure = retry.transport_failure(err)
        maybe_sent = failure is None or failure.maybe_sent
        return toolresults.Attempted(
            failure=type(err).__name__, retryable=True, maybe_sent=maybe_sent
        )
    status = response.status_code
    if 200 <= status < 300:
        return toolresults.Attempted(
            result=toolresults.ToolResult(_content(response), status=status)
        )
    if retry.retryable_status(status):
        return toolresults.Attempted(
            failure=f"HTTP {status}: {response.text[:200]}",
            retryable=True,
            retry_after=retry.retry_after_seconds(response.headers),
        )
    return toolresults.Attempted(
        result=toolresults.ToolResult(f"HTTP {status}: {_content(response)}", True, status)
    )
