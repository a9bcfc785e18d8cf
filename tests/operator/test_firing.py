"""A Schedule's firing decision: on time, catch-up and missed fires, the four overlap policies,
the starting deadline, jitter, and every due time handled once."""

from __future__ import annotations

import datetime

import pytest

from bosun.controller import cadence, firing

UTC = datetime.UTC
T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = cadence.parse("* * * * *")


def _at(minutes: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def _decide(now: float, *, since: float = 0, **kwargs: object) -> firing.Decision:
    rules = kwargs.pop("rules", firing.Rules())
    assert isinstance(rules, firing.Rules)
    return firing.decide(EVERY_MINUTE, rules, since=_at(since), now=_at(now), **kwargs)  # type: ignore[arg-type]


def test_a_fire_on_time_creates_its_run_and_says_when_the_next_is() -> None:
    found = _decide(1 + 2 / 60)  # 2 s after 12:01
    assert found.create == (_at(1),)
    assert (found.last, found.next_time, found.wake) == (_at(1), _at(2), _at(2))
    assert (found.skipped, found.missed) == (0, 0)


def test_nothing_is_due_before_the_first_time() -> None:
    found = _decide(0.5)
    assert found.create == () and found.last is None and found.next_time == _at(1)


def test_after_an_absence_without_catch_up_only_a_timely_newest_fire_runs() -> None:
    # Away from 12:00 to 12:10:05: 10 fires due; the newest (12:10) is 5 s late and runs.
    found = _decide(10 + 5 / 60)
    assert found.create == (_at(10),)
    assert found.missed == 9 and found.last == _at(10)
    # Back 30 s after 12:10: even the newest is too late.
    late = _decide(10.5)
    assert late.create == () and late.missed == 10 and late.last == _at(10)


def test_catch_up_fires_the_missed_times_inside_the_window_and_counts_the_rest() -> None:
    rules = firing.Rules(catchup_window_seconds=5 * 60)
    found = _decide(10.5, rules=rules)  # 12:05:30 back to 12:10 are within 5 minutes
    assert found.create == tuple(_at(m) for m in (6, 7, 8, 9, 10))
    assert found.missed == 5  # 12:01 .. 12:05


def test_the_starting_deadline_caps_any_fire() -> None:
    rules = firing.Rules(catchup_window_seconds=600, starting_deadline_seconds=90)
    found = _decide(10.5, rules=rules)
    assert found.create == (_at(9), _at(10))  # 90 s and 30 s late
    assert found.missed == 8


@pytest.mark.parametrize(
    ("policy", "created", "skipped", "buffered"),
    [
        ("Allow", (8, 9, 10), 0, None),
        ("Forbid", (), 3, None),
        ("BufferOne", (), 2, 8),
        ("CancelOther", (10,), 2, None),
    ],
)
def test_overlap_policies_while_a_run_is_running(
    policy: firing.OverlapPolicy, created: tuple[int, ...], skipped: int, buffered: int | None
) -> None:
    rules = firing.Rules(policy=policy, catchup_window_seconds=180)
    found = _decide(10.1, since=7, rules=rules, running=("active-run",))
    assert found.create == tuple(_at(m) for m in created)
    assert found.skipped == skipped
    assert found.buffered == (None if buffered is None else _at(buffered))
    assert found.cancel == (("active-run",) if policy == "CancelOther" else ())
    assert found.last == _at(10) and found.missed == 0


@pytest.mark.parametrize(("policy", "created"), [("Forbid", (8,)), ("BufferOne", (8,))])
def test_with_nothing_running_forbid_and_buffer_one_start_the_oldest_and_skip_or_keep(
    policy: firing.OverlapPolicy, created: tuple[int, ...]
) -> None:
    rules = firing.Rules(policy=policy, catchup_window_seconds=180)
    found = _decide(10.1, since=7, rules=rules)
    assert found.create == tuple(_at(m) for m in created)
    if policy == "Forbid":
        assert (found.skipped, found.buffered) == (2, None)
    else:  # 12:09 waits for 12:08's Run, 12:10 is skipped: at most one waits
        assert (found.skipped, found.buffered) == (1, _at(9))


def test_a_buffered_fire_starts_once_nothing_runs_if_still_within_its_deadline() -> None:
    rules = firing.Rules(policy="BufferOne", starting_deadline_seconds=120)
    found = _decide(10.2, since=10, rules=rules, buffered=_at(9))
    assert found.create == (_at(9),) and found.buffered is None
    stale = _decide(12.2, since=12, rules=rules, buffered=_at(9))
    assert stale.create == () and stale.missed == 1 and stale.buffered is None
    still_busy = _decide(10.2, since=10, rules=rules, buffered=_at(9), running=("r",))
    assert still_busy.create == () and still_busy.buffered == _at(9)


def test_jitter_delays_the_moment_but_not_the_fire() -> None:
    rules = firing.Rules(jitter_seconds=20)
    early = _decide(1 + 10 / 60, rules=rules)  # 12:01:10, before 12:01 + 20 s
    assert early.create == () and early.wake == _at(1) + datetime.timedelta(seconds=20)
    found = _decide(1 + 25 / 60, rules=rules)
    assert found.create == (_at(1),)


def test_deciding_again_after_recording_the_decision_creates_nothing_more() -> None:
    rules = firing.Rules(catchup_window_seconds=600)
    first = _decide(10.1, rules=rules)
    assert first.last is not None
    again = firing.decide(EVERY_MINUTE, rules, since=first.last, now=_at(10.1))
    assert again.create == () and again.missed == 0 and again.skipped == 0


def test_a_very_long_absence_is_counted_within_a_bound() -> None:
    every_second = cadence.parse("@every 1s")
    found = firing.decide(
        every_second, firing.Rules(), since=T0, now=T0 + datetime.timedelta(days=3)
    )
    assert found.create == (T0 + datetime.timedelta(days=3),)
    assert found.missed >= firing.COUNT_LIMIT
    assert found.last == T0 + datetime.timedelta(days=3)
