"""The choice of provider: which implementation serves an Agent's ``spec.model``."""

from __future__ import annotations

import httpx

from bosun import httpclients
from bosun.api import agent as agent_api
from bosun.runner.providers import anthropic, base, openai, scripted

__all__ = ["build"]


def build(
    spec: agent_api.ModelSpec,
    api_key: str,
    policy: base.RetryPolicy,
    transport: httpx.BaseTransport | None = None,
    max_response_bytes: int = base.DEFAULT_MAX_RESPONSE_BYTES,
) -> base.Provider:
    """The provider an Agent's ``spec.model`` names; a remote one reads at most
    ``max_response_bytes`` of a response, and its body within the model's timeout."""
    if spec.provider == "scripted":
        return scripted.ScriptedProvider(spec)
    timeout = float(spec.timeout_seconds or base.DEFAULT_TIMEOUT_SECONDS)
    client = httpclients.sync_client(timeout, transport=transport)
    api = openai if spec.provider == "openai" else anthropic
    endpoint = api.endpoint(spec, api_key)
    return base.HTTPProvider(
        spec,
        client,
        policy,
        endpoint,
        render=api.render_request,
        parse=api.parse_response,
        max_response_bytes=max_response_bytes,
        body_seconds=timeout,
    )
