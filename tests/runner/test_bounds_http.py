"""Capped reads against real servers: HTTP that never stops, compresses a bomb or drips; MCP."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from mcp.server import MCPServer

from bosun import retry
from bosun.api import agent as agent_api
from bosun.api import tool as tool_api
from bosun.dev.servers import mcp_server
from bosun.runner import conversation, providers, tool_mcp, tools

from . import fakes

BOMB = gzip.compress(b" " * (32 * 1024 * 1024))


class _Hostile(http.server.ThreadingHTTPServer):
    """``/endless`` streams forever, ``/bomb`` sends gzip that expands 1000-fold, ``/drip``
    sends a byte every 0.2 s. ``sent`` counts the body bytes that left the server."""

    daemon_threads = True

    def __init__(self) -> None:
        self.sent = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                with outer.lock:
                    outer.sent += len(data)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                if "bomb" in self.path:
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                try:
                    if "bomb" in self.path:
                        self._chunk(BOMB)
                    elif "drip" in self.path:
                        for _ in range(300):
                            self._chunk(b" ")
                            time.sleep(0.2)
                    else:
                        self._chunk(b'{"choices": [{"message": {"content": "')
                        for _ in range(100_000):
                            self._chunk(b"x" * 16384)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

            do_GET = do_POST = _serve

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def hostile() -> Iterator[_Hostile]:
    server = _Hostile()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def _model(base_url: str, max_bytes: int) -> providers.Provider:
    spec = agent_api.ModelSpec.model_validate(
        {"provider": "openai", "name": "m", "baseURL": base_url, "timeoutSeconds": 10}
    )
    policy = providers.RetryPolicy(pacing=retry.Policy(3, 0, 2, 0), sleep=lambda s: None)
    return providers.build(spec, "sk", policy, max_response_bytes=max_bytes)


REQUEST = conversation.ModelRequest("", [conversation.UserMessage("hi")], [], 0)


@pytest.mark.timeout(60)
def test_an_endless_model_response_is_read_up_to_the_cap_and_fails_once(
    hostile: _Hostile,
) -> None:
    provider = _model(f"{hostile.url}/v1", 256 * 1024)
    with pytest.raises(providers.ModelResponseInvalid) as caught:
        provider.complete(REQUEST)
    provider.close()
    assert caught.value.reason == "ModelResponseTooLarge"
    time.sleep(0.5)  # let the server notice the closed connection
    assert hostile.sent < 8 * 1024 * 1024  # of the 1.6 GB it would have sent


@pytest.mark.timeout(60)
def test_a_compressed_bomb_is_stopped_at_the_decoded_cap(hostile: _Hostile) -> None:
    provider = _model(f"{hostile.url}/bomb/v1", 64 * 1024)
    with pytest.raises(providers.ModelResponseInvalid) as caught:
        provider.complete(REQUEST)
    provider.close()
    assert "more than 65536 bytes" in caught.value.message
    executor = tools.Executor({}, 1000, max_response_bytes=64 * 1024)
    result = executor.call(fakes.tool("bomb", url=f"{hostile.url}/bomb"), {}, "k")
    executor.close()
    assert result.content.startswith(" " * 900)
    assert "[truncated" in result.content


@pytest.mark.timeout(60)
def test_an_endless_tool_response_is_a_truncated_result(hostile: _Hostile) -> None:
    executor = tools.Executor({}, 2000, max_response_bytes=100_000)
    result = executor.call(fakes.tool("endless", url=f"{hostile.url}/endless"), {}, "k")
    executor.close()
    assert not result.is_error and result.status == 200
    assert "[truncated" in result.content
    time.sleep(0.5)
    assert hostile.sent < 8 * 1024 * 1024


@pytest.mark.timeout(60)
def test_a_tool_that_drips_its_body_times_out_within_its_timeout(hostile: _Hostile) -> None:
    executor = tools.Executor({}, 2000, sleep=lambda s: None)
    started = time.monotonic()
    tool = fakes.tool("drip", url=f"{hostile.url}/drip", http={"timeoutSeconds": 1})
    result = executor.call(tool, {}, "k")
    executor.close()
    # Each byte arrives well within the read timeout; only the body's total budget stops it.
    assert time.monotonic() - started < 10
    assert result.is_error and "ReadTimeout" in result.content


@pytest.mark.timeout(60)
def test_an_mcp_result_over_the_cap_is_a_tool_error_that_says_so() -> None:
    server = _BigMCP().start()
    try:
        tool = tool_api.Tool.from_dict(
            {
                "apiVersion": "bosun.dev/v1alpha1",
                "kind": "Tool",
                "metadata": {"name": "big"},
                "spec": {
                    "description": "big",
                    "mcp": {"url": server.url, "toolName": "big", "timeoutSeconds": 20},
                },
            }
        )
        small = tool_mcp.send(tool, {"size": 100}, {}, 64 * 1024)
        big = tool_mcp.send(tool, {"size": 500_000}, {}, 64 * 1024)
    finally:
        server.stop()
    assert small.result is not None and small.result.content == "y" * 100
    assert big.result is not None and big.result.is_error
    assert "longer than 65536 bytes" in big.result.content


class _BigMCP(mcp_server.ServedMCP):
    """An MCP server whose ``big`` tool answers ``size`` characters."""

    def __init__(self) -> None:
        app = MCPServer("bosun-test-big")

        @app.tool()
        def big(size: int) -> str:
            """Answer size characters."""
            return "y" * size

        super().__init__(app)
