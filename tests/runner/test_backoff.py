"""Backoff arithmetic and Retry-After parsing."""

from __future__ import annotations

import datetime

import pytest

from bosun.runner import backoff


def test_bound_grows_exponentially_up_to_the_cap() -> None:
    policy = backoff.Backoff(base_seconds=1, multiplier=2, cap_seconds=10)
    assert [policy.bound(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]


def test_full_jitter_draws_between_zero_and_the_bound() -> None:
    policy = backoff.Backoff(base_seconds=1, multiplier=2, cap_seconds=10)
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return high / 2

    assert policy.delay(2, uniform=uniform) == 2.0
    assert seen == [(0.0, 4.0)]


def test_retry_after_is_a_floor_under_the_jitter() -> None:
    policy = backoff.Backoff(base_seconds=1, multiplier=2, cap_seconds=10)
    assert policy.delay(0, retry_after=3.0, uniform=lambda a, b: b) == 3.0
    assert policy.delay(3, retry_after=3.0, uniform=lambda a, b: b) == 8.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert backoff.retry_after_seconds(headers) == expected


def test_retry_after_http_date() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    headers = {"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}
    assert backoff.retry_after_seconds(headers, now=now) == 30.0
