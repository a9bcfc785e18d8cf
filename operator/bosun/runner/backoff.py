"""Backoff arithmetic: exponential growth, full jitter, and the server's ``Retry-After``.

Pure functions, so unit tests can pin the randomness: the wait before retry ``n`` (0-based) is
uniform in ``[0, min(cap, base * multiplier**n)]``, and never shorter than what the server
asked for in ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import random
from collections.abc import Callable, Mapping

__all__ = ["Backoff", "retry_after_seconds"]


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter."""

    base_seconds: float = 1.0
    multiplier: float = 2.0
    cap_seconds: float = 30.0

    def bound(self, retry: int) -> float:
        """The upper bound of the wait before retry ``retry`` (0-based)."""
        return float(min(self.cap_seconds, self.base_seconds * self.multiplier**retry))

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """A jittered wait, at least ``retry_after`` when the server named one."""
        jittered = uniform(0.0, self.bound(retry))
        if retry_after is None:
            return jittered
        return max(retry_after, jittered)


def retry_after_seconds(
    headers: Mapping[str, str], now: datetime.datetime | None = None
) -> float | None:
    """What the server asked us to wait, in seconds, or None when it did not say."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
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
