"""The node emulator's sense of time, injectable so tests can move it without sleeping.

Every timer of the emulator (restart backoff, the deletion grace period, ``activeDeadlineSeconds``,
token refresh, heartbeats) reads one ``Clock``, which gives an ``Instant``: monotonic seconds for
timers and wall time for the stamps a pod's status carries. ``SystemClock`` is the real one.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Protocol

__all__ = ["Clock", "Instant", "SystemClock", "stamp"]


@dataclasses.dataclass(frozen=True)
class Instant:
    """One reading of the clock."""

    mono: float
    """Monotonic seconds, for timers."""
    wall: datetime.datetime
    """Wall time (UTC), for stamps and for the pod's active deadline."""


class Clock(Protocol):
    """Anything that tells the time."""

    def now(self) -> Instant: ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> Instant:
        return Instant(time.monotonic(), datetime.datetime.now(datetime.UTC))


def stamp(moment: datetime.datetime) -> str:
    """A time as the API writes it, to the second."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
