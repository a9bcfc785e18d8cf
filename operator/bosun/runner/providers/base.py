"""What every provider shares: the ``Provider`` protocol, the choice of provider, and the
retrying JSON POST that remote providers use.

Model calls retry 429, 408, 409 and 5xx responses, timeouts and transport errors with full
jitter, waiting at least what ``Retry-After`` asks. Other 4xx responses are the request's fault
and fail at once. Classification is by status code and exception class only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from bosun import retry
from bosun.api import agent as agent_api
from bosun.runner import conversation, errors

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "HTTPProvider",
    "ModelRejected",
    "ModelUnavailable",
    "Provider",
    "RetryPolicy",
    "Sleep",
    "post_json",
]

log = logging.getLogger("bosun.runner.model")

DEFAULT_TIMEOUT_SECONDS = 120.0


class ModelRejected(errors.PermanentFailure):
    """The model endpoint refused the request itself (a 4xx other than rate limiting)."""


class ModelUnavailable(errors.RetryableFailure):
    """The model endpoint kept failing (429/5xx/timeouts) through every retry."""


class Provider(Protocol):
    """A language model behind some API."""

    provider: str
    model: str

    def complete(self, request: conversation.ModelRequest) -> conversation.AssistantTurn: ...

    def close(self) -> None: ...


Sleep = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a remote provider retries within one attempt: ``pacing`` (tries and backoff), the
    longest ``Retry-After`` it will wait out, and the clock it waits with."""

    pacing: retry.Policy = retry.MODEL_CALL_DEFAULTS
    max_retry_after_seconds: float = 300.0
    sleep: Sleep = time.sleep
    uniform: retry.Uniform = random.uniform


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    policy: RetryPolicy,
) -> dict[str, Any]:
    """POST ``body`` and return the JSON response, retrying what is worth retrying."""
    tries = 0
    while True:
        tries += 1
        retry_after: float | None = None
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.TransportError as err:
            failure = retry.transport_failure(err)
            timed_out = failure is not None and failure.timeout
            reason, detail = "ModelTimeout" if timed_out else "ModelUnreachable", type(err).__name__
        else:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    data = response.json()
                except json.JSONDecodeError:
                    reason, detail = "ModelBadResponse", "response is not JSON"
                else:
                    if isinstance(data, dict):
                        return data
                    reason, detail = "ModelBadResponse", "response is not a JSON object"
            elif retry.retryable_status(status, model=True):
                reason, detail = "ModelRateLimited" if status == 429 else "ModelError", str(status)
                retry_after = retry.retry_after_seconds(response.headers)
            else:
                raise ModelRejected(
                    "ModelRequestRejected", f"{url} answered {status}: {response.text[:500]}"
                )
        if policy.pacing.exhausted(tries):
            raise ModelUnavailable(reason, f"{url}: {detail} after {tries} tries")
        if retry_after is not None and retry_after > policy.max_retry_after_seconds:
            raise ModelUnavailable(reason, f"{url} asked to retry after {retry_after:.0f}s")
        delay = policy.pacing.delay(tries, retry_after=retry_after, uniform=policy.uniform)
        log.warning(
            "Retrying model call",
            extra={
                "fields": {
                    "reason": reason,
                    "detail": detail,
                    "retry": tries,
                    "delaySeconds": round(delay, 3),
                    "retryAfterSeconds": retry_after,
                }
            },
        )
        policy.sleep(delay)


class HTTPProvider:
    """A provider behind a JSON-over-HTTP API: one POST per model call, retried by
    ``post_json``; ``render`` and ``parse`` speak the API's own format."""

    def __init__(
        self,
        spec: agent_api.ModelSpec,
        client: httpx.Client,
        policy: RetryPolicy,
        endpoint: tuple[str, dict[str, str]],
        *,
        render: Callable[[agent_api.ModelSpec, conversation.ModelRequest], dict[str, Any]],
        parse: Callable[[dict[str, Any], str], conversation.AssistantTurn],
    ) -> None:
        self.provider: str = spec.provider
        self.spec = spec
        self.model = spec.name or ""
        self.client = client
        self.policy = policy
        self.url, self.headers = endpoint
        self._render, self._parse = render, parse

    def complete(self, request: conversation.ModelRequest) -> conversation.AssistantTurn:
        body = self._render(self.spec, request)
        data = post_json(self.client, self.url, body, self.headers, self.policy)
        return self._parse(data, self.model)

    def close(self) -> None:
        self.client.close()
