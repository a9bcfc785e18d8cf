"""The MCP tool transport: one streamable-HTTP session per call, through the ``mcp`` SDK.

The result's text content (or its structured content) is what the model reads; an MCP result
with ``isError`` is a tool error. Failing to reach the server is a retryable failure.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import mcp
from mcp.client import streamable_http
from mcp.shared import exceptions as mcp_exceptions

from bosun import httpclients
from bosun.api import tool as tool_api
from bosun.runner import toolresults

__all__ = ["send"]


def _text(result: Any) -> str:
    parts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
    if parts:
        return "\n".join(parts)
    if result.structured_content is not None:
        return toolresults.render_content(result.structured_content)
    return json.dumps([block.model_dump(mode="json") for block in result.content])


async def _call(
    url: str, name: str, args: dict[str, Any], headers: dict[str, str], timeout: float
) -> toolresults.ToolResult:
    client = _client(timeout, headers)
    async with client:
        transport = streamable_http.streamable_http_client(url, http_client=client)
        with anyio.fail_after(timeout):
            async with mcp.Client(transport, read_timeout_seconds=timeout) as session:
                result = await session.call_tool(name, args, read_timeout_seconds=timeout)
    return toolresults.ToolResult(_text(result), is_error=bool(result.is_error))


def _client(timeout_seconds: float, headers: dict[str, str]) -> httpx2.AsyncClient:
    """The httpx2 client of one MCP session (the SDK's streamable-HTTP transport takes it)."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers={"User-Agent": httpclients.USER_AGENT, **headers},
    )


def _leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for inner in err.exceptions for leaf in _leaves(inner)]
    return [err]


def send(
    tool: tool_api.Tool, args: dict[str, Any], headers: dict[str, str]
) -> toolresults.Attempted:
    spec = tool.spec.mcp
    assert spec is not None
    try:
        result = anyio.run(
            _call, spec.url, spec.tool_name, args, headers, float(spec.timeout_seconds)
        )
    except Exception as err:
        leaves = _leaves(err)
        for leaf in leaves:
            if isinstance(leaf, mcp_exceptions.MCPError):
                # The server answered with a protocol error: a result, not a transport failure.
                return toolresults.Attempted(
                    result=toolresults.ToolResult(f"MCP error: {leaf}", is_error=True)
                )
        names = ", ".join(sorted({type(leaf).__name__ for leaf in leaves}))
        never_sent = all(isinstance(leaf, httpx2.ConnectError) for leaf in leaves)
        return toolresults.Attempted(failure=names, retryable=True, maybe_sent=not never_sent)
    return toolresults.Attempted(result=result)
