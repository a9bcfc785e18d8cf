"""The one place Bosun builds httpx clients: for the API server (``bosun.kube``), and for models
and HTTP tools (the runner). The MCP SDK brings its own HTTP library (httpx2); its client is
built where MCP is spoken, in ``runner.tool_mcp``.

Callers pass a ``transport`` in unit tests (httpx ``MockTransport``) instead of patching.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["USER_AGENT", "api_client", "prepare", "sync_client"]

USER_AGENT = "bosun/0.1"


def api_client(
    server: str,
    verify: ssl.SSLContext,
    timeout: httpx.Timeout,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A client for one Kubernetes API server, verified against its own CA (``verify``)."""
    return httpx.Client(
        base_url=server,
        verify=verify,
        trust_env=False,  # no proxy from the environment: the token goes to the API server only
        timeout=timeout,
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
    )


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
