"""When a Schedule fires: its expression and time zone, parsed, and its nominal fire times.

Three forms: a standard 5-field cron expression (minute hour day-of-month month day-of-week,
with names, ranges, lists and steps), the macros (``@yearly`` / ``@annually``, ``@monthly``,
``@weekly``, ``@daily`` / ``@midnight``, ``@hourly``), and ``@every <duration>`` (``90s``,
``5m``, ``1h30m``; at least 1 s, whole seconds). Cron times are wall-clock times in the
Schedule's IANA time zone (UTC by default) and follow Debian cron across daylight-saving
changes, through the ``cronsim`` library: a time the clock skips fires once, at the first minute
after the jump; a time the clock repeats fires once, at its first occurrence, unless the
expression names every hour (an hourly schedule fires in each of the two repeated hours, as
each is a real hour). ``@every`` times are multiples of the interval since the Unix epoch, so
every replica and every restart computes the same times without remembering any.

A nominal time identifies a fire: the Run of each fire is named after it
(``contract.schedule_run_name``). The Schedule's ``jitterSeconds`` moves when that Run is
created (``jitter``), never which fire it is.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import zoneinfo
from collections.abc import Iterator

import cronsim

__all__ = [
    "MACROS",
    "Cadence",
    "CadenceError",
    "UnknownTimeZone",
    "jitter",
    "parse",
]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_EVERY = re.compile(r"^@every\s+(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_EVERY_MAX_SECONDS = 366 * 24 * 3600


class CadenceError(ValueError):
    """An expression or time zone that cannot be used, with a message naming what is wrong."""


class UnknownTimeZone(CadenceError):
    """A ``timeZone`` that is not an IANA name this machine knows."""


@dataclasses.dataclass(frozen=True)
class Cadence:
    """A parsed Schedule expression in its time zone."""

    expression: str
    zone: datetime.tzinfo
    every_seconds: int | None = None
    """Set for ``@every``; None for cron expressions and macros."""
    cron: str | None = None
    """The 5-field form of a cron expression or macro."""

    def after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first nominal time strictly after ``moment`` (an aware datetime), in UTC."""
        return next(self.times(moment))

    def times(self, moment: datetime.datetime) -> Iterator[datetime.datetime]:
        """Every nominal time strictly after ``moment``, ascending, in UTC (whole seconds)."""
        start = moment.astimezone(datetime.UTC)
        if self.every_seconds is not None:
            step = self.every_seconds
            epoch = int(start.timestamp())
            n = epoch // step + 1
            while True:
                yield datetime.datetime.fromtimestamp(n * step, datetime.UTC)
                n += 1
        assert self.cron is not None
        # cronsim steps from a local wall-clock time; a fire at exactly ``start`` is excluded.
        local = start.replace(microsecond=0).astimezone(self.zone)
        for found in cronsim.CronSim(self.cron, local):
            stamp = found.astimezone(datetime.UTC)
            if stamp > start:
                yield stamp

    def between(
        self, start: datetime.datetime, end: datetime.datetime
    ) -> Iterator[datetime.datetime]:
        """The nominal times in ``(start, end]``, ascending."""
        for stamp in self.times(start):
            if stamp > end:
                return
            yield stamp


def parse(expression: str, time_zone: str | None = None) -> Cadence:
    """The Cadence of ``expression`` in ``time_zone`` (an IANA name; None or "" for UTC)."""
    zone = _zone(time_zone)
    text = " ".join(expression.split())
    if text.startswith("@every"):
        return Cadence(text, zone, every_seconds=_every(text))
    cron = MACROS.get(text.lower(), text) if text.startswith("@") else text
    if cron.startswith("@"):
        known = ", ".join(sorted(MACROS))
        raise CadenceError(f"unknown macro {text!r}: use one of {known}, or @every <duration>")
    if len(cron.split(" ")) != 5:
        raise CadenceError(
            f"{text!r} has {len(cron.split(' '))} fields; a cron expression has 5"
            " (minute hour day-of-month month day-of-week)"
        )
    try:
        cronsim.CronSim(cron, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    except cronsim.CronSimError as err:
        raise CadenceError(f"{text!r} is not a valid cron expression: {err}") from err
    return Cadence(text, zone, cron=cron)


def _zone(name: str | None) -> datetime.tzinfo:
    if not name:
        return datetime.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise UnknownTimeZone(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        ) from err


def _every(text: str) -> int:
    match = _EVERY.match(text)
    if match is None or not any(match.groups()):
        raise CadenceError(
            f"{text!r} is not @every <duration>: write hours, minutes and seconds such as"
            " 30s, 5m or 1h30m"
        )
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total < 1:
        raise CadenceError(f"{text!r}: the interval must be at least 1s")
    if total > _EVERY_MAX_SECONDS:
        raise CadenceError(f"{text!r}: the interval must be at most 366 days")
    return total


def jitter(schedule_uid: str, jitter_seconds: int) -> int:
    """How many seconds after each nominal time this Schedule's Runs are created: fixed per
    Schedule (from its UID), so a fleet's fires spread out and every replica agrees."""
    if jitter_seconds <= 0:
        return 0
    digest = hashlib.sha256(schedule_uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % (jitter_seconds + 1)
