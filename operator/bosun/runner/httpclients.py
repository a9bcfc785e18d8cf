"""The one place the runner builds HTTP clients: httpx for models and HTTP tools, and the
httpx2 client the ``mcp`` SDK's streamable-HTTP transport takes.

Callers pass a ``transport`` in unit tests (httpx ``MockTransport``) instead of patching.
"""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import httpx2

__all__ = ["USER_AGENT", "mcp_client", "prepare", "sync_client"]

USER_AGENT = "bosun-runner/0.1"


def sync_client(
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A client for JSON-over-HTTP calls; redirects are not followed (a tool or model
    endpoint that redirects is misconfigured, and a POST must not be replayed elsewhere)."""
    merged = {"User-Agent": USER_AGENT}
    merged.update(headers or {})
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers=merged,
        follow_redirects=False,
        transport=transport,
        verify=_tls(),
    )


def prepare() -> None:
    """Load the trust store now (the first client would otherwise wait for it)."""
    _tls()


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings of every model and tool client: the system's trust store, loaded once
    per process (each load costs tens of milliseconds at start-up)."""
    return ssl.create_default_context()


def mcp_client(timeout_seconds: float, headers: dict[str, str] | None = None) -> httpx2.AsyncClient:
    """The client the MCP transport uses for one session with a server."""
    import httpx2  # noqa: PLC0415 - deliberate: only runs with an MCP tool load httpx2

    merged = {"User-Agent": USER_AGENT}
    merged.update(headers or {})
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds)),
        headers=merged,
    )
