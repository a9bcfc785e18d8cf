"""``bosun gateway``: the HTTP server in front of ``Receiver``, its probes, metrics and counts.

Stateless, so every replica serves: deliveries go to whichever replica the Service picks, and
the Run's name (from the delivery id) makes the API server the one place that decides whether a
delivery is new. ``/healthz`` is liveness; ``/readyz`` is ready once the API server answered.
At most ``Settings.concurrency`` deliveries are worked on at once; more get 503 at once rather
than queue behind the API server. SIGTERM stops accepting, finishes the deliveries in flight
and flushes the counts, so a rolling update answers every request it took.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import prometheus_client

from bosun import kube
from bosun.gateway import deliveries, tallies

__all__ = [
    "BODY_BUDGET_BYTES",
    "BODY_SECONDS",
    "CONNECTIONS_PER_SLOT",
    "LATENCY",
    "REGISTRY",
    "REQUESTS",
    "Settings",
    "run",
    "serve",
]

log = logging.getLogger("bosun.gateway")

BODY_SECONDS = 30.0
"""The longest a delivery's body may take to arrive (408 after it)."""
BODY_BUDGET_BYTES = 64 * 1024 * 1024
"""Body bytes held at once by all the deliveries in flight (503 beyond it)."""
CONNECTIONS_PER_SLOT = 4
"""Open connections per delivery slot (keep-alive ones included); more are closed at once."""

REGISTRY = prometheus_client.CollectorRegistry()
REQUESTS = prometheus_client.Counter(
    "bosun_webhook_requests_total",
    "Requests to the gateway, by outcome (accepted, duplicate, filtered, or why refused).",
    ["outcome"],
    registry=REGISTRY,
)
LATENCY = prometheus_client.Histogram(
    "bosun_webhook_request_duration_seconds",
    "Seconds from a delivery's headers read to its answer sent.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)


@dataclasses.dataclass(frozen=True)
class Settings:
    port: int = 8080
    """Port of the deliveries and the probes (BOSUN_GATEWAY_PORT)."""
    metrics_port: int = 9090
    """Port of /metrics, 0 to disable (BOSUN_METRICS_PORT)."""
    namespaces: tuple[str, ...] = ()
    """Namespaces whose Webhooks are served; empty: all (BOSUN_NAMESPACES, comma-separated)."""
    concurrency: int = 64
    """Deliveries worked on at once (BOSUN_GATEWAY_CONCURRENCY)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        namespaces = tuple(n.strip() for n in env.get("BOSUN_NAMESPACES", "").split(",") if n)
        return cls(
            port=int(env.get("BOSUN_GATEWAY_PORT", cls.port)),
            metrics_port=int(env.get("BOSUN_METRICS_PORT", cls.metrics_port)),
            namespaces=tuple(n for n in namespaces if n),
            concurrency=int(env.get("BOSUN_GATEWAY_CONCURRENCY", cls.concurrency)),
        )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the deliveries in flight
    block_on_close = True
    request_queue_size = 256  # the listen backlog: a burst of new connections is not refused

    receiver: deliveries.Receiver
    slots: threading.BoundedSemaphore
    ready: threading.Event
    stopping: threading.Event
    budget: _Budget
    connections: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        # Each connection is a thread: past the cap, a new one is closed at once.
        if not self.connections.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


class _Budget:
    """Bytes of request bodies held at once, over all deliveries: a flood of large bodies is
    refused (503) instead of outgrowing the pod's memory."""

    def __init__(self, total: int) -> None:
        self.left = total
        self._lock = threading.Lock()

    def take(self, amount: int) -> bool:
        with self._lock:
            if amount > self.left:
                return False
            self.left -= amount
            return True

    def give(self, amount: int) -> None:
        with self._lock:
            self.left += amount


class _Busy(Exception):
    """The gateway holds as many body bytes as it may: the sender should retry."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # The headers and the body go out as two writes: without TCP_NODELAY, Nagle's algorithm
    # holds the body until the sender's delayed ACK, 40 ms on every keep-alive answer.
    disable_nagle_algorithm = True
    # Seconds a connection may sit between bytes (headers, body, or the next keep-alive
    # request); a whole body must arrive within BODY_SECONDS.
    timeout = 10

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/livez"):
            self._plain(200, "ok\n")
        elif path == "/readyz":
            ok = self.server.ready.is_set()
            self._plain(200 if ok else 503, "ok\n" if ok else "not ready\n")
        else:
            self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        answer = self._framing_problem()
        if answer is not None:
            pass
        elif not self.server.slots.acquire(blocking=False):
            answer = deliveries.Answer(
                503, {"error": "the gateway is busy; retry"}, "busy", {"Retry-After": "1"}
            )
        else:
            try:
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = self.server.receiver.receive(method, self.path, headers, self._read)
            except TimeoutError:  # the body did not arrive in time: nothing was created
                answer = deliveries.Answer(408, {"error": "the body did not arrive"}, "timeout")
            except _Busy:
                answer = deliveries.Answer(
                    503, {"error": "the gateway is busy; retry"}, "busy", {"Retry-After": "1"}
                )
            except Exception:  # a bug must still answer, and never as a 2xx
                log.exception("Delivery failed path=%s", self.path)
                answer = deliveries.Answer(500, {"error": "internal error"}, "error")
            finally:
                self.server.slots.release()
        if answer.status >= 300 or self.server.stopping.is_set():
            self.close_connection = True  # an unread body may remain: never read it as a request
        self._answer(answer)
        REQUESTS.labels(answer.outcome).inc()
        LATENCY.observe(time.perf_counter() - started)

    def _framing_problem(self) -> deliveries.Answer | None:
        """A request whose body's length is ambiguous is refused, and its connection closed,
        so a proxy and the gateway can never disagree about where the next request starts."""
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get_all("Transfer-Encoding"):
            message = "Transfer-Encoding is not accepted: send a Content-Length"
        elif len(lengths) > 1:
            message = "more than one Content-Length"
        elif lengths and not (lengths[0].isascii() and lengths[0].strip().isdigit()):
            message = "Content-Length is not a number"
        else:
            return None
        return deliveries.Answer(400, {"error": message}, "bad_request")

    def _read(self, length: int) -> bytes:
        """The body, within BODY_SECONDS and the gateway's byte budget."""
        if not self.server.budget.take(length):
            raise _Busy
        try:
            deadline = time.monotonic() + BODY_SECONDS
            chunks: list[bytes] = []
            left = length
            while left > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break  # the sender closed early: a short body fails its signature
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            self.server.budget.give(length)

    def _answer(self, answer: deliveries.Answer) -> None:
        data = b"" if answer.body is None else json.dumps(answer.body).encode() + b"\n"
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if answer.status != 204:
            self.wfile.write(data)

    def _plain(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def serve(rest: kube.Rest, settings: Settings) -> _Server:
    """Start serving in background threads; ``shutdown()`` and ``server_close()`` stop it."""
    server = _Server(("0.0.0.0", settings.port), _Handler)
    server.receiver = deliveries.Receiver(rest, settings.namespaces)
    server.slots = threading.BoundedSemaphore(settings.concurrency)
    server.ready = threading.Event()
    server.stopping = threading.Event()
    server.budget = _Budget(BODY_BUDGET_BYTES)
    server.connections = threading.BoundedSemaphore(settings.concurrency * CONNECTIONS_PER_SLOT)
    server.receiver.warm()
    threading.Thread(target=server.serve_forever, name="gateway", daemon=True).start()
    return server


def _watch_api(rest: kube.Rest, server: _Server, stop: threading.Event) -> None:
    """Ready while the API server answers; and the counts flushed every few seconds."""
    while not stop.is_set():
        try:
            rest.request("GET", "/version")
            server.ready.set()
        except kube.ApiError as err:
            server.ready.clear()
            log.warning("The API server does not answer: %s", err)
        server.receiver.tallies.flush(rest)
        stop.wait(tallies.FLUSH_SECONDS)


def run(kubeconfig: str | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings.from_env()
    rest = kube.connect(kubeconfig, timeout=10.0)
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, registry=REGISTRY)
    server = serve(rest, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watcher = threading.Thread(target=_watch_api, args=(rest, server, stop), daemon=True)
    watcher.start()
    log.info(
        "Started gateway port=%d namespaces=%s",
        settings.port,
        ",".join(settings.namespaces) or "*",
    )
    while not stop.wait(1.0):
        pass
    log.info("Stopping: finishing the deliveries in flight")
    server.stopping.set()
    server.shutdown()
    server.server_close()
    watcher.join(timeout=15)
    server.receiver.tallies.flush(rest)
    return 0
