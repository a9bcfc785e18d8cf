"""A threaded JSON-over-HTTP server on a free local port, stopped reliably.

Subclasses implement ``handle(method, path, headers, body) -> Reply``. Every request is
recorded; ``gate(n)`` holds the n-th request (1-based) until ``release`` so tests can stop a
runner at an exact point without sleeping.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from typing import Any

__all__ = ["JSONServer", "Reply", "Request"]


@dataclasses.dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Server(http.server.ThreadingHTTPServer):
    # A thousand clients may connect at once (the density benchmark): the default backlog of 5
    # would refuse some of them.
    request_queue_size = 1024


class JSONServer:
    """Base of the test servers."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.gates: dict[int, threading.Event] = {}
        self.arrived: dict[int, threading.Event] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with outer.lock:
                    outer.requests.append(request)
                    number = len(outer.requests)
                    gate = outer.gates.get(number)
                    arrived = outer.arrived.get(number)
                if arrived is not None:
                    arrived.set()
                if gate is not None:
                    gate.wait(120)
                reply = outer.handle(request)
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> JSONServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    def gate(self, number: int) -> tuple[threading.Event, threading.Event]:
        """Hold request ``number``: returns (arrived, release) events."""
        with self.lock:
            self.gates[number] = threading.Event()
            self.arrived[number] = threading.Event()
            return self.arrived[number], self.gates[number]

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError
