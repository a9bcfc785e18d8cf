"""``bosun gateway`` as a real process for tests and benches, and a sender of signed deliveries.

``GatewayProcess`` starts the gateway on free ports with a kubeconfig (a test gives it one of a
user bound to the chart's gateway rules), waits for ``/readyz`` and stops it, SIGKILL included.
``Sender`` posts deliveries the way GitHub or any signing sender does: the raw JSON body, its
``sha256=`` HMAC and a delivery id, over one HTTP client per thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import httpx

from bosun.dev import cluster
from bosun.gateway import auth

__all__ = ["GatewayProcess", "Sender"]


@dataclasses.dataclass
class GatewayProcess:
    kubeconfig: pathlib.Path
    namespaces: tuple[str, ...]
    log_path: pathlib.Path
    port: int = dataclasses.field(default_factory=cluster.free_port)
    metrics_port: int = dataclasses.field(default_factory=cluster.free_port)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    process: cluster.Component | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc if self.process is not None else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, wait: float = 60.0) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "BOSUN_GATEWAY_PORT": str(self.port),
            "BOSUN_METRICS_PORT": str(self.metrics_port),
            "BOSUN_NAMESPACES": ",".join(self.namespaces),
            **self.env,
        }
        argv = [sys.executable, "-m", "bosun", "gateway"]
        self.process = cluster.Component("gateway", argv, self.log_path, env)
        self.process.start()
        proc = self.process.proc
        assert proc is not None
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited ({proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway was not ready within {wait:.0f}s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crashed pod or a lost node would end it."""
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=20)


class Sender:
    """Signed deliveries to one hook, safe to use from many threads."""

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        signature_header: str = "X-Bosun-Signature-256",
        delivery_header: str = "X-Bosun-Delivery",
        timeout: float = 30.0,
    ) -> None:
        self.url, self.key = url, key
        self.signature_header, self.delivery_header = signature_header, delivery_header
        self.timeout = timeout
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def connect(self) -> None:
        """Make this thread's HTTP client now (a benchmark keeps its cost out of latencies)."""
        self._client()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(timeout=self.timeout)
            with self._lock:
                self._clients.append(client)
        return client

    def send(
        self,
        payload: Any,
        delivery: str | None = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: bytes | None = None,
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            self.signature_header: auth.sign(self.key if key is None else key, body),
            self.delivery_header: delivery or uuid.uuid4().hex,
            **(headers or {}),
        }
        return self._client().post(self.url, content=body, headers=sent)
