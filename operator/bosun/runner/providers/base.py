"""What every provider shares: the ``Provider`` protocol, the choice of provider, and the
retrying JSON POST that remote providers use.

Model calls retry 429, 408, 409 and 5xx responses, timeouts and transport errors with full
jitter, waiting at least what ``Retry-After`` asks. Other 4xx responses are the request's fault
and fail at once. Classification is by status code and exception class only.

What a provider answers is bounded before anything trusts it: the body is streamed and read up
to ``max_bytes`` (``bodies.read``), the turn parsed from it must fit one journal record
(``config.MODEL_TURN_MAX_BYTES``), and every token count must be a whole number from 0 to
``MAX_TOKEN_COUNT``. A response that breaks a bound fails the call with
``ModelResponseInvalid``, a permanent failure: repeating a paid call that answered too much, or
that reported a usage the budgets cannot count, would only pay for the same answer again.
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
from bosun.runner import bodies, config, conversation, errors

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT_SECONDS",
    "ERROR_BODY_BYTES",
    "MAX_TOKEN_COUNT",
    "HTTPProvider",
    "ModelRejected",
    "ModelResponseInvalid",
    "ModelUnavailable",
    "Provider",
    "RetryPolicy",
    "Sleep",
    "fit_for_journal",
    "post_json",
    "token_count",
]

log = logging.getLogger("bosun.runner.model")

DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_RESPONSE_BYTES = config.RESPONSE_MAX_BYTES
ERROR_BODY_BYTES = 16 * 1024
"""How much of an error response is read: enough for the provider's explanation."""
MAX_TOKEN_COUNT = 10**9
"""The largest token count one call may report; more is a provider bug, not a usage."""


class ModelRejected(errors.PermanentFailure):
    """The model endpoint refused the request itself (a 4xx other than rate limiting)."""


class ModelUnavailable(errors.RetryableFailure):
    """The model endpoint kept failing (429/5xx/timeouts) through every retry."""


class ModelResponseInvalid(errors.PermanentFailure):
    """The model answered outside the bounds: too large (``ModelResponseTooLarge``) or with
    token counts that are not counts (``ModelUsageInvalid``)."""


def token_count(usage: Any, key: str) -> int:
    """``usage[key]`` as a token count (absent is 0); anything but a whole number from 0 to
    ``MAX_TOKEN_COUNT`` fails the call, so no usage slips under a token budget."""
    if usage is None:
        return 0
    if not isinstance(usage, dict):
        raise ModelResponseInvalid("ModelUsageInvalid", f"usage is {type(usage).__name__}")
    value = usage.get(key)
    if value is None:
        return 0
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value <= MAX_TOKEN_COUNT:
        raise ModelResponseInvalid(
            "ModelUsageInvalid",
            f"usage.{key} is {value!r}: a token count is a whole number from 0 to "
            f"{MAX_TOKEN_COUNT}",
        )
    return int(value)


def _journal_form(turn: conversation.AssistantTurn) -> str:
    # The journal's own encoding of a record (journal_chunks.encode).
    return json.dumps(turn.to_json(), separators=(",", ":"), ensure_ascii=False)


def fit_for_journal(turn: conversation.AssistantTurn) -> conversation.AssistantTurn:
    """``turn`` as the journal can store it: text UTF-8 cannot encode made valid, and no larger
    than ``config.MODEL_TURN_MAX_BYTES`` (``ModelResponseInvalid`` otherwise)."""
    form = _journal_form(turn)
    valid = bodies.valid_text(form)
    if valid is not form:
        # Lone surrogates sit only inside JSON strings: replacing them keeps the JSON whole.
        turn = conversation.AssistantTurn.from_json(json.loads(valid))
    size = len(valid.encode("utf-8"))
    if size > config.MODEL_TURN_MAX_BYTES:
        raise ModelResponseInvalid(
            "ModelResponseTooLarge",
            f"the model's turn is {size} bytes as the journal stores it; the most one journal "
            f"record holds is {config.MODEL_TURN_MAX_BYTES}",
        )
    return turn


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


def _exchange(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    max_bytes: int,
    body_seconds: float | None,
) -> tuple[httpx.Response, bodies.Body]:
    """One POST: the response and at most ``max_bytes`` of its body (less for an error)."""
    with client.stream("POST", url, json=body, headers=headers) as response:
        limit = max_bytes if 200 <= response.status_code < 300 else ERROR_BODY_BYTES
        return response, bodies.read(response, limit, body_seconds)


def _json_object(got: bodies.Body) -> dict[str, Any] | str:
    """The body as a JSON object, or what is wrong with it."""
    try:
        data = json.loads(got.data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        return "response is not JSON"
    return data if isinstance(data, dict) else "response is not a JSON object"


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    policy: RetryPolicy,
    *,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    body_seconds: float | None = None,
) -> dict[str, Any]:
    """POST ``body`` and return the JSON response, retrying what is worth retrying. At most
    ``max_bytes`` of a response are read, within ``body_seconds`` once its headers arrived."""
    tries = 0
    while True:
        tries += 1
        retry_after: float | None = None
        try:
            response, got = _exchange(
                client, url, body, headers, max_bytes=max_bytes, body_seconds=body_seconds
            )
        except httpx.TransportError as err:
            failure = retry.transport_failure(err)
            timed_out = failure is not None and failure.timeout
            reason, detail = "ModelTimeout" if timed_out else "ModelUnreachable", type(err).__name__
        except bodies.TooSlow as err:
            reason, detail = "ModelTimeout", str(err)
        except bodies.UnsupportedEncoding as err:
            reason, detail = "ModelBadResponse", str(err)
        else:
            status = response.status_code
            if 200 <= status < 300:
                if got.truncated:
                    raise ModelResponseInvalid(
                        "ModelResponseTooLarge",
                        f"{url} answered more than {max_bytes} bytes; the rest was not read",
                    )
                data = _json_object(got)
                if isinstance(data, dict):
                    return data
                reason, detail = "ModelBadResponse", data
            elif retry.retryable_status(status, model=True):
                reason, detail = "ModelRateLimited" if status == 429 else "ModelError", str(status)
                retry_after = retry.retry_after_seconds(response.headers)
            else:
                # The whole (capped) explanation: the runner redacts it before shortening it.
                raise ModelRejected(
                    "ModelRequestRejected",
                    f"{url} answered {status}: {got.text(response.encoding)}",
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        body_seconds: float | None = None,
    ) -> None:
        self.provider: str = spec.provider
        self.spec = spec
        self.model = spec.name or ""
        self.client = client
        self.policy = policy
        self.url, self.headers = endpoint
        self._render, self._parse = render, parse
        self.max_response_bytes, self.body_seconds = max_response_bytes, body_seconds

    def complete(self, request: conversation.ModelRequest) -> conversation.AssistantTurn:
        body = self._render(self.spec, request)
        data = post_json(
            self.client,
            self.url,
            body,
            self.headers,
            self.policy,
            max_bytes=self.max_response_bytes,
            body_seconds=self.body_seconds,
        )
        return fit_for_journal(self._parse(data, self.model))

    def close(self) -> None:
        self.client.close()
