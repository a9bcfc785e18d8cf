"""How Bosun retries anything: one policy type, its defaults, layering, backoff and classification.

Every retry in Bosun goes through here: a Run's attempts (the operator), model calls and tool
calls (the runner, within one attempt), reconcile errors (the operator's work queue) and a
container's restarts (the node emulator). ``Policy.bound(n)`` is the upper bound of the wait
after the n-th failure, counted from 1 everywhere; ``Policy.delay(n)`` draws a full-jitter wait
below it, never shorter than what a server asked for in ``Retry-After``. ``layered`` puts a Run's
settings over its Agent's over the defaults, field by field. The defaults here are the ones the
CRD field descriptions print (``kubectl explain run.spec.retry``), so the two cannot drift.
Failures are classified by type (HTTP status code, exception class), never by message text.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import random
from collections.abc import Callable, Mapping
from typing import Any

import httpx

__all__ = [
    "API_THROTTLED",
    "CONTAINER_RESTART",
    "MODEL_CALL_DEFAULTS",
    "RECONCILE_ERRORS",
    "RUN_DEFAULTS",
    "TOOL_CALL_DEFAULTS",
    "WATCH_RESTART",
    "Policy",
    "TransportFailure",
    "Uniform",
    "layered",
    "retry_after_seconds",
    "retryable_status",
    "transport_failure",
]

Uniform = Callable[[float, float], float]
"""Draws a number between its two bounds (``random.uniform``; tests pass their own)."""

_MAX_EXPONENT = 64  # so huge failure counts cannot overflow a float


_FIELDS = {
    "maxAttempts": "max_attempts",
    "initialBackoffSeconds": "initial_backoff_seconds",
    "backoffMultiplier": "backoff_multiplier",
    "maxBackoffSeconds": "max_backoff_seconds",
}


@dataclasses.dataclass(frozen=True)
class Policy:
    """Exponential backoff with full jitter, and how many tries there are in all."""

    max_attempts: int
    """Tries in total, the first one included."""
    initial_backoff_seconds: float
    """Upper bound of the wait after the first failure."""
    backoff_multiplier: float
    """Factor by which the bound grows with each further failure."""
    max_backoff_seconds: float
    """Cap on the bound."""

    def bound(self, failures: int) -> float:
        """The upper bound of the wait after the ``failures``-th failure (counted from 1)."""
        exponent = min(max(0, failures - 1), _MAX_EXPONENT)
        raw = self.initial_backoff_seconds * self.backoff_multiplier**exponent
        return float(min(self.max_backoff_seconds, raw))

    def delay(
        self,
        failures: int,
        *,
        retry_after: float | None = None,
        uniform: Uniform = random.uniform,
    ) -> float:
        """Full jitter: a uniform draw in ``[0, bound(failures)]``, at least ``retry_after``."""
        jittered = uniform(0.0, self.bound(failures))
        return jittered if retry_after is None else max(retry_after, jittered)

    def fields(self) -> dict[str, float]:
        """The policy by the API's field names (``maxAttempts``, ``initialBackoffSeconds``, ...)."""
        return {key: getattr(self, name) for key, name in _FIELDS.items()}

    def exhausted(self, tries: int) -> bool:
        """True when ``tries`` tries used up every attempt this policy allows."""
        return tries >= self.max_attempts


RUN_DEFAULTS = Policy(
    max_attempts=3, initial_backoff_seconds=5, backoff_multiplier=2, max_backoff_seconds=300
)
"""A Run's attempts, where neither the Run nor its Agent sets ``retry``."""

TOOL_CALL_DEFAULTS = Policy(
    max_attempts=3, initial_backoff_seconds=0.5, backoff_multiplier=2, max_backoff_seconds=10
)
"""Sends of one tool call within an attempt, where the Tool sets no ``retry``."""

MODEL_CALL_DEFAULTS = Policy(
    max_attempts=9, initial_backoff_seconds=1, backoff_multiplier=2, max_backoff_seconds=30
)
"""Requests of one model call within an attempt (the runner's settings can change them)."""

_FOREVER = 2**31 - 1
"""Tries of the policies below that never give up (only their ``bound`` is used)."""

RECONCILE_ERRORS = Policy(
    max_attempts=_FOREVER, initial_backoff_seconds=0.4, backoff_multiplier=2, max_backoff_seconds=30
)
"""The operator's wait before reconciling an object again after an error (its ``bound``)."""

API_THROTTLED = Policy(
    max_attempts=4, initial_backoff_seconds=0.5, backoff_multiplier=2, max_backoff_seconds=1
)
"""Requests the API server answered with 429 or 503 and a ``Retry-After`` (``bosun.kube``; the
server's wait is capped at the policy's): at most 3 s of waiting in all, well inside a runner's
Lease, so a throttled request never outlives the ownership it was sent under."""

WATCH_RESTART = Policy(
    max_attempts=_FOREVER, initial_backoff_seconds=1, backoff_multiplier=2, max_backoff_seconds=30
)
"""A pool worker's wait before it lists a kind again after its watch of it broke (``delay``)."""

CONTAINER_RESTART = Policy(
    max_attempts=_FOREVER, initial_backoff_seconds=1, backoff_multiplier=2, max_backoff_seconds=30
)
"""The node emulator's wait before restarting a container that exited (its ``bound``)."""


def layered(defaults: Policy, *layers: Mapping[str, Any] | None) -> Policy:
    """The effective policy: each field from the most specific layer that sets it (layers come
    most specific first, e.g. a Run's ``retry`` then its Agent's), else from ``defaults``.

    The cap never falls below the initial backoff, even when the two come from different
    layers: a Run's ``initialBackoffSeconds: 20`` over an Agent's ``maxBackoffSeconds: 10``
    gives a cap of 20. (Within one object the API server rejects such a pair.)
    """
    values: dict[str, Any] = dataclasses.asdict(defaults)
    for key, name in _FIELDS.items():
        values[name] = next(
            (layer[key] for layer in layers if layer and layer.get(key) is not None), values[name]
        )
    initial = float(values["initial_backoff_seconds"])
    return Policy(
        max_attempts=int(values["max_attempts"]),
        initial_backoff_seconds=initial,
        backoff_multiplier=float(values["backoff_multiplier"]),
        max_backoff_seconds=max(float(values["max_backoff_seconds"]), initial),
    )


# --- Classification ---------------------------------------------------------------------------

_TRANSIENT_STATUS = frozenset({408, 425, 429})
_MODEL_TRANSIENT_STATUS = _TRANSIENT_STATUS | {409}


def retryable_status(status: int, *, model: bool = False) -> bool:
    """Whether an HTTP answer is worth sending again: 408, 425, 429 and every 5xx. A model
    endpoint's 409 also is (the providers' own clients retry it); a tool's 409 is an answer."""
    transient = _MODEL_TRANSIENT_STATUS if model else _TRANSIENT_STATUS
    return status in transient or status >= 500


@dataclasses.dataclass(frozen=True)
class TransportFailure:
    """A request that got no HTTP answer, classified by the exception's type."""

    timeout: bool
    """The request timed out (else the connection failed otherwise)."""
    maybe_sent: bool
    """The server may have received the request (so resending is safe only when idempotent)."""


def transport_failure(err: BaseException) -> TransportFailure | None:
    """How an httpx exception failed, or None when it is not a transport failure."""
    if isinstance(err, httpx.ConnectError):
        return TransportFailure(timeout=False, maybe_sent=False)
    if isinstance(err, httpx.TimeoutException):
        never_sent = isinstance(err, httpx.ConnectTimeout | httpx.PoolTimeout)
        return TransportFailure(timeout=True, maybe_sent=not never_sent)
    if isinstance(err, httpx.TransportError):
        return TransportFailure(timeout=False, maybe_sent=True)
    return None


def retry_after_seconds(
    headers: Mapping[str, str], now: datetime.datetime | None = None
) -> float | None:
    """What the server asked us to wait, in seconds (``Retry-After`` as seconds or an HTTP
    date, or ``retry-after-ms``), or None when it did not say."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    raw = (lowered.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - current).total_seconds())
