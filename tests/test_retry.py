"""The one retry policy: layering, backoff numbered from the first failure, Retry-After, and
classification; and the CRD descriptions, which must name the defaults the code uses."""

from __future__ import annotations

import datetime
import random
from typing import Any

import httpx
import pytest

from bosun import retry
from bosun.api import common, crdgen

RUN = retry.RUN_DEFAULTS


def _policy(attempts: int, initial: float, multiplier: float, cap: float) -> retry.Policy:
    return retry.Policy(
        max_attempts=attempts,
        initial_backoff_seconds=initial,
        backoff_multiplier=multiplier,
        max_backoff_seconds=cap,
    )


# (Run's retry, Agent's retry) -> the effective policy. The rows pin every layering rule.
LAYERING: list[tuple[dict[str, Any] | None, dict[str, Any] | None, retry.Policy]] = [
    (None, None, RUN),
    ({}, {}, RUN),
    ({"maxAttempts": 5}, {"maxAttempts": 2, "initialBackoffSeconds": 3}, _policy(5, 3, 2, 300)),
    (
        {"maxAttempts": 7},
        {"maxAttempts": 2, "initialBackoffSeconds": 1, "backoffMultiplier": 3},
        _policy(7, 1, 3, 300),
    ),
    ({"maxAttempts": None}, {"maxAttempts": 4}, _policy(4, 5, 2, 300)),
    # The cap never falls below the initial backoff, whichever layer each came from. The first
    # row is the case on which the operator and the API once disagreed (10 against 20).
    ({"initialBackoffSeconds": 20}, {"maxBackoffSeconds": 10}, _policy(3, 20, 2, 20)),
    ({"maxBackoffSeconds": 10}, {"initialBackoffSeconds": 60}, _policy(3, 60, 2, 60)),
    ({"initialBackoffSeconds": 400}, None, _policy(3, 400, 2, 400)),
    (None, {"maxBackoffSeconds": 0, "initialBackoffSeconds": 0}, _policy(3, 0, 2, 0)),
]


@pytest.mark.parametrize(("run_retry", "agent_retry", "expected"), LAYERING)
def test_layering_run_over_agent_over_defaults(
    run_retry: dict[str, Any] | None, agent_retry: dict[str, Any] | None, expected: retry.Policy
) -> None:
    assert retry.layered(RUN, run_retry, agent_retry) == expected


def test_layering_takes_the_api_models_as_layers() -> None:
    run_retry = common.RetrySpec(max_attempts=7)
    agent_retry = common.RetrySpec(max_attempts=2, initial_backoff_seconds=1, backoff_multiplier=3)
    assert retry.layered(RUN, run_retry.layers(), agent_retry.layers()) == _policy(7, 1, 3, 300)


def test_a_tool_without_retry_gets_the_tool_call_defaults() -> None:
    tool = retry.layered(retry.TOOL_CALL_DEFAULTS, common.ToolRetrySpec().layers())
    assert tool == retry.TOOL_CALL_DEFAULTS
    assert tool != RUN


def test_bound_grows_from_the_first_failure_up_to_the_cap() -> None:
    policy = _policy(10, 1, 2, 10)
    assert [policy.bound(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.bound(10_000) == 10
    assert policy.bound(0) == policy.bound(1) == 1


def test_full_jitter_draws_between_zero_and_the_bound() -> None:
    policy = _policy(10, 1, 2, 10)
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return high / 2

    assert policy.delay(3, uniform=uniform) == 2.0
    assert seen == [(0.0, 4.0)]


def test_full_jitter_uses_its_whole_range() -> None:
    policy = _policy(3, 4, 2, 100)
    rng = random.Random(1)
    delays = [policy.delay(2, uniform=rng.uniform) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 7.5
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_retry_after_is_a_floor_under_the_jitter() -> None:
    policy = _policy(10, 1, 2, 10)
    assert policy.delay(1, retry_after=3.0, uniform=lambda a, b: b) == 3.0
    assert policy.delay(4, retry_after=3.0, uniform=lambda a, b: b) == 8.0


def test_exhausted_counts_tries_including_the_first() -> None:
    policy = _policy(3, 1, 2, 10)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


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
    assert retry.retry_after_seconds(headers) == expected


def test_retry_after_http_date() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    headers = {"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}
    assert retry.retry_after_seconds(headers, now=now) == 30.0


@pytest.mark.parametrize(
    ("status", "for_tool", "for_model"),
    [
        (200, False, False),
        (400, False, False),
        (404, False, False),
        (408, True, True),
        (409, False, True),
        (425, True, True),
        (429, True, True),
        (500, True, True),
        (503, True, True),
        (529, True, True),
    ],
)
def test_retryable_status(status: int, for_tool: bool, for_model: bool) -> None:
    assert retry.retryable_status(status) is for_tool
    assert retry.retryable_status(status, model=True) is for_model


_REQUEST = httpx.Request("POST", "http://tool.test/")


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (httpx.ConnectError("refused", request=_REQUEST), retry.TransportFailure(False, False)),
        (httpx.ConnectTimeout("slow", request=_REQUEST), retry.TransportFailure(True, False)),
        (httpx.PoolTimeout("busy", request=_REQUEST), retry.TransportFailure(True, False)),
        (httpx.ReadTimeout("slow", request=_REQUEST), retry.TransportFailure(True, True)),
        (httpx.WriteTimeout("slow", request=_REQUEST), retry.TransportFailure(True, True)),
        (httpx.ReadError("reset", request=_REQUEST), retry.TransportFailure(False, True)),
        (httpx.RemoteProtocolError("eof", request=_REQUEST), retry.TransportFailure(False, True)),
        (ValueError("not a transport error"), None),
    ],
)
def test_transport_failures_are_classified_by_type(
    err: BaseException, expected: retry.TransportFailure | None
) -> None:
    assert retry.transport_failure(err) == expected


def _retry_schema(kind: str, *path: str) -> dict[str, Any]:
    crd = next(crdgen.crd(info) for info in crdgen.KINDS if info.kind == kind)
    node: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for name in path:
        node = node["properties"][name]
    return node["properties"]


@pytest.mark.parametrize(
    ("kind", "path", "defaults"),
    [
        ("Run", ("spec", "retry"), retry.RUN_DEFAULTS),
        ("Agent", ("spec", "retry"), retry.RUN_DEFAULTS),
        ("Tool", ("spec", "retry"), retry.TOOL_CALL_DEFAULTS),
    ],
)
def test_crd_descriptions_name_the_defaults_the_code_uses(
    kind: str, path: tuple[str, ...], defaults: retry.Policy
) -> None:
    fields = _retry_schema(kind, *path)
    expected = defaults.fields()
    for name, value in expected.items():
        assert fields[name]["description"].endswith(f"Built-in default: {value:g}."), name


def test_fields_name_the_policy_as_the_api_does() -> None:
    assert retry.TOOL_CALL_DEFAULTS.fields() == {
        "maxAttempts": 3,
        "initialBackoffSeconds": 0.5,
        "backoffMultiplier": 2,
        "maxBackoffSeconds": 10,
    }
    assert retry.layered(RUN, retry.TOOL_CALL_DEFAULTS.fields()) == retry.TOOL_CALL_DEFAULTS
