"""Schedule expressions: parsing, errors that name the problem, @every, jitter, Run names, and
the daylight-saving tables (a daily 02:30 and an hourly schedule in Europe/Berlin)."""

from __future__ import annotations

import datetime

import pytest

from bosun import contract
from bosun.api import schedule
from bosun.controller import cadence

UTC = datetime.UTC


def _utc(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)


def _first(expression: str, zone: str | None, start: datetime.datetime, n: int) -> list[str]:
    times = cadence.parse(expression, zone).times(start)
    return [next(times).strftime("%Y-%m-%dT%H:%M:%SZ") for _ in range(n)]


# (expression, zone, start, the first fires in UTC)
TABLE = [
    # Spring forward in Berlin, 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that
    # day and fires once, at the first minute after the jump (03:00 CEST = 01:00 UTC).
    (
        "30 2 * * *",
        "Europe/Berlin",
        _utc(2026, 3, 27, 12),
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    # Fall back, 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice and fires once, at
    # its first occurrence (CEST).
    (
        "30 2 * * *",
        "Europe/Berlin",
        _utc(2026, 10, 23, 12),
        ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    # Hourly across the repeated hour: each of the two 02:00s is a real hour, and fires.
    (
        "@hourly",
        "Europe/Berlin",
        _utc(2026, 10, 24, 22, 30),
        [
            "2026-10-24T23:00:00Z",  # 01:00 CEST
            "2026-10-25T00:00:00Z",  # 02:00 CEST
            "2026-10-25T01:00:00Z",  # 02:00 CET
            "2026-10-25T02:00:00Z",  # 03:00 CET
        ],
    ),
    # Hourly across the skipped hour: 02:00 does not exist, so 01:00 CET is followed by 03:00.
    (
        "0 * * * *",
        "Europe/Berlin",
        _utc(2026, 3, 28, 23, 30),
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
    ),
    # UTC by default; names of days and months.
    ("0 9 * * mon-fri", None, _utc(2026, 12, 4, 10), ["2026-12-07T09:00:00Z"]),
    ("15 6 1 jan *", "", _utc(2026, 6, 1), ["2027-01-01T06:15:00Z"]),
    ("@daily", None, _utc(2026, 1, 1), ["2026-01-02T00:00:00Z"]),
    ("@weekly", None, _utc(2026, 12, 1), ["2026-12-06T00:00:00Z"]),
    # @every: multiples of the interval since the epoch, strictly after the start.
    (
        "@every 2s",
        None,
        _utc(2026, 1, 1, 0, 0, 0),
        ["2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z"],
    ),
    ("@every 1h30m", "Europe/Berlin", _utc(2026, 1, 1, 0, 10), ["2026-01-01T01:30:00Z"]),
]


@pytest.mark.parametrize(("expression", "zone", "start", "expected"), TABLE)
def test_fire_times(
    expression: str, zone: str | None, start: datetime.datetime, expected: list[str]
) -> None:
    assert _first(expression, zone, start, len(expected)) == expected


def _fires_on_local_day(expression: str, zone: str, day: datetime.date) -> int:
    local = datetime.datetime(
        day.year, day.month, day.day, tzinfo=cadence.parse("@daily", zone).zone
    )
    start = local.astimezone(UTC) - datetime.timedelta(seconds=1)
    end = (local + datetime.timedelta(days=1)).astimezone(UTC) - datetime.timedelta(seconds=1)
    return len(list(cadence.parse(expression, zone).between(start, end)))


def test_an_hourly_schedule_fires_once_per_real_hour_on_change_days() -> None:
    # The day of 23 real hours, an ordinary day, and the day of 25.
    assert _fires_on_local_day("@hourly", "Europe/Berlin", datetime.date(2026, 3, 29)) == 23
    assert _fires_on_local_day("@hourly", "Europe/Berlin", datetime.date(2026, 6, 1)) == 24
    assert _fires_on_local_day("@hourly", "Europe/Berlin", datetime.date(2026, 10, 25)) == 25


def test_a_daily_schedule_fires_exactly_once_on_change_days() -> None:
    for day in (datetime.date(2026, 3, 29), datetime.date(2026, 10, 25)):
        assert _fires_on_local_day("30 2 * * *", "Europe/Berlin", day) == 1


def test_a_fire_exactly_at_the_start_is_not_repeated() -> None:
    every = cadence.parse("@every 10s")
    at = _utc(2026, 1, 1, 0, 0, 10)
    assert every.after(at) == _utc(2026, 1, 1, 0, 0, 20)
    cron = cadence.parse("*/5 * * * *")
    assert cron.after(_utc(2026, 1, 1, 0, 5)) == _utc(2026, 1, 1, 0, 10)
    assert list(cron.between(_utc(2026, 1, 1, 0, 5), _utc(2026, 1, 1, 0, 15))) == [
        _utc(2026, 1, 1, 0, 10),
        _utc(2026, 1, 1, 0, 15),
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "says"),
    [
        ("* * * *", None, "has 4 fields; a cron expression has 5"),
        ("61 * * * *", None, "is not a valid cron expression"),
        ("* * * * * *", None, "has 6 fields"),
        ("@fortnightly", None, "unknown macro '@fortnightly'"),
        ("@every", None, "is not @every <duration>"),
        ("@every 5 minutes", None, "is not @every <duration>"),
        ("@every 0s", None, "must be at least 1s"),
        ("@daily", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("@daily", "../etc/passwd", "unknown time zone"),
    ],
)
def test_errors_name_the_problem(expression: str, zone: str | None, says: str) -> None:
    with pytest.raises(cadence.CadenceError) as caught:
        cadence.parse(expression, zone)
    assert says in str(caught.value)


def test_jitter_is_fixed_per_schedule_and_within_bounds() -> None:
    offsets = {cadence.jitter(f"uid-{i}", 30) for i in range(200)}
    assert offsets <= set(range(31)) and len(offsets) > 10
    assert cadence.jitter("uid-1", 30) == cadence.jitter("uid-1", 30)
    assert cadence.jitter("uid-1", 0) == 0


def test_run_names_come_from_the_nominal_time() -> None:
    name = contract.schedule_run_name("nightly-report", _utc(2026, 12, 1, 2, 30))
    assert name == "nightly-report-1796092200"
    longest = contract.schedule_run_name("x" * schedule.NAME_MAX, _utc(2286, 11, 20))
    assert len(longest) <= 63


def test_an_unknown_time_zone_is_told_apart_from_a_bad_expression() -> None:
    with pytest.raises(cadence.UnknownTimeZone):
        cadence.parse("@daily", "Mars/Olympus_Mons")
    with pytest.raises(cadence.CadenceError) as bad:
        cadence.parse("61 * * * *", "Europe/Berlin")
    assert not isinstance(bad.value, cadence.UnknownTimeZone)
