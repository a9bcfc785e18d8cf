"""An MCP server built with the ``mcp`` SDK, served over streamable HTTP by uvicorn.

``ServedMCP`` serves any ``mcp.server.MCPServer`` app in a thread, on a socket bound to a free
port before start, so there is no port race. ``CurrencyMCP`` offers ``convert_currency``; every
call is recorded in ``calls``.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Self

import uvicorn
from mcp.server import MCPServer

__all__ = ["CurrencyMCP", "ServedMCP"]


class ServedMCP:
    """An MCP app served over streamable HTTP at ``url`` between ``start`` and ``stop``."""

    def __init__(self, app: MCPServer) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app.streamable_http_app(), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> Self:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(200):
            if self.server.started:
                return self
            deadline.wait(0.05)
        raise RuntimeError("the MCP test server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class CurrencyMCP(ServedMCP):
    """``convert_currency`` at fixed test rates."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        app = MCPServer("bosun-test-currency")
        calls = self.calls

        @app.tool()
        def convert_currency(amount: float, source: str, target: str) -> str:
            """Convert an amount between currencies at a fixed test rate."""
            calls.append({"amount": amount, "source": source, "target": target})
            rate = 0.5 if (source, target) == ("EUR", "GBP") else 2.0
            return f"{amount * rate:.2f} {target}"

        super().__init__(app)
