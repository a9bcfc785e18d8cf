"""The MCP tool transport: one streamable-HTTP session per call, through the ``mcp`` SDK.

The result's text content (or its structured content) is what the model reads; an MCP result
with ``isError`` is a tool error. Failing to reach the server is a retryable failure.

Every HTTP response of the session is capped at ``max_bytes`` below the SDK, in the client's
transport (``_CappedTransport``): it asks for uncompressed bodies, refuses a compressed one
(whose decoded size the cap could not bound) and stops a body at the cap, which ends the call as
a tool error saying so. What this cannot cap: the SDK parses each JSON-RPC message whole, so one
message may take up to ``max_bytes`` of memory before the result text is bounded by the
executor, and the session's own bookkeeping is the SDK's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import mcp
from mcp.client import streamable_http
from mcp.shared import exceptions as mcp_exceptions

from bosun import httpclients
from bosun.api import tool as tool_api
from bosun.runner import toolresults

__all__ = ["ResponseTooLarge", "send"]


class ResponseTooLarge(Exception):
    """A response of the MCP session was longer than the cap, or compressed."""


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int) -> None:
        self.inner, self.max_bytes = inner, max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.max_bytes:
                raise ResponseTooLarge(
                    f"the MCP server's response was longer than {self.max_bytes} bytes"
                )
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CappedTransport(httpx2.AsyncBaseTransport):
    """Caps every response body of the session at ``max_bytes`` as it arrives."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self.inner, self.max_bytes = inner, max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = await self.inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await response.aclose()
            raise ResponseTooLarge(f"the MCP server sent a {encoding!r}-compressed response")
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(stream, self.max_bytes)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _text(result: Any) -> str:
    parts = [block.text for block in result.content if getattr(block, "type", "") == "text"]
    if parts:
        return "\n".join(parts)
    if result.structured_content is not None:
        return toolresults.render_content(result.structured_content)
    return json.dumps([block.model_dump(mode="json") for block in result.content])


async def _call(
    spec: tool_api.MCPTransport, args: dict[str, Any], headers: dict[str, str], max_bytes: int
) -> toolresults.ToolResult:
    url, name, timeout = spec.url, spec.tool_name, float(spec.timeout_seconds)
    client = _client(timeout, headers, max_bytes)
    async with client:
        transport = streamable_http.streamable_http_client(url, http_client=client)
        with anyio.fail_after(timeout):
            async with mcp.Client(transport, read_timeout_seconds=timeout) as session:
                result = await session.call_tool(name, args, read_timeout_seconds=timeout)
    return toolresults.ToolResult(_text(result), is_error=bool(result.is_error))


def _client(timeout_seconds: float, headers: dict[str, str], max_bytes: int) -> httpx2.AsyncClient:
    """The httpx2 client of one MCP session (the SDK's streamable-HTTP transport takes it)."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers={"User-Agent": httpclients.USER_AGENT, **headers},
        transport=_CappedTransport(httpx2.AsyncHTTPTransport(), max_bytes),
    )


def _leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for inner in err.exceptions for leaf in _leaves(inner)]
    return [err]


def send(
    tool: tool_api.Tool, args: dict[str, Any], headers: dict[str, str], max_bytes: int
) -> toolresults.Attempted:
    spec = tool.spec.mcp
    assert spec is not None
    try:
        result = anyio.run(_call, spec, args, headers, max_bytes)
    except Exception as err:
        leaves = _leaves(err)
        for leaf in leaves:
            if isinstance(leaf, ResponseTooLarge):
                # The call reached the server and may have taken effect: a result, not resent.
                return toolresults.Attempted(
                    result=toolresults.ToolResult(f"tool call failed: {leaf}", is_error=True)
                )
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
