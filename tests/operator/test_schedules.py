"""Schedules on the real control plane: `@every 2s` fires on time under each overlap policy,
catch-up after the operator was killed across several fire times, a second replica taking
over, history limits, and expressions rejected at apply or reported not Ready.

Every test checks the accounting that makes "never doubled, never lost" concrete: each nominal
time since the Schedule's creation up to ``lastScheduleTime`` was handled exactly once, as a
Run (named after the time), a skip or a miss."""

from __future__ import annotations

import datetime
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import constants, contract, kube, scheduling
from bosun.controller import cadence, conditions
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION


@pytest.fixture
def rest(
    control_plane: testing.ControlPlaneHandle, bosun_crds: testing.ControlPlaneHandle
) -> kube.Rest:
    return control_plane.rest()


@pytest.fixture
def operators(control_plane: testing.ControlPlaneHandle) -> Iterator[list[testing.OperatorProcess]]:
    """Operators a test starts, stopped afterwards, whatever happens."""
    started: list[testing.OperatorProcess] = []
    try:
        yield started
    finally:
        for each in started:
            each.stop()


def _start(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> testing.OperatorProcess:
    process = testing.start_operator(control_plane, namespace)
    operators.append(process)
    return process


def _agent(rest: kube.Rest, namespace: str) -> None:
    rest.create(
        {
            "apiVersion": API,
            "kind": "Agent",
            "metadata": {"name": "clock", "namespace": namespace},
            "spec": {"model": {"provider": "scripted", "script": [{"reply": "done"}]}},
        }
    )


def _schedule(
    rest: kube.Rest, namespace: str, name: str, *, sleep: float = 0.2, **spec: Any
) -> dict[str, Any]:
    body = {
        "schedule": "@every 2s",
        "runTemplate": {
            "metadata": {"labels": {"team": "ops"}},
            "spec": {
                "agentRef": {"name": "clock"},
                "input": json.dumps({"standin": {"sleepSeconds": sleep}}),
            },
        },
        **spec,
    }
    created = rest.create(
        {
            "apiVersion": API,
            "kind": "Schedule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )
    assert created is not None
    return created


def _get(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    found = rest.get(API, "schedules", namespace, name)
    assert found is not None
    return found


def _runs(rest: kube.Rest, namespace: str, schedule: str) -> list[dict[str, Any]]:
    found = rest.list(
        API, "runs", namespace, label_selector=f"{constants.LABEL_SCHEDULE}={schedule}"
    )
    return sorted(found, key=lambda r: r["metadata"]["name"])


def _nominal(run: dict[str, Any]) -> datetime.datetime:
    stamp = run["metadata"]["annotations"][contract.ANNOTATION_SCHEDULED_TIME]
    moment = conditions.parse(stamp)
    assert moment is not None
    return moment


def _accounting(rest: kube.Rest, namespace: str, name: str) -> tuple[dict[str, Any], str]:
    """The Schedule's status, and what is wrong with its accounting ("" when nothing is): every
    nominal time up to lastScheduleTime handled exactly once, as a Run of its own, a skip, a
    miss or the one waiting fire."""
    schedule = _get(rest, namespace, name)
    status = schedule.get("status") or {}
    created = conditions.parse(schedule["metadata"]["creationTimestamp"])
    last = conditions.parse(status.get("lastScheduleTime"))
    if created is None or last is None:
        return status, "no lastScheduleTime yet"
    due = list(cadence.parse(schedule["spec"]["schedule"]).between(created, last))
    runs = _runs(rest, namespace, name)
    fired = [_nominal(r) for r in runs]
    if len(set(fired)) != len(fired):
        return status, f"two Runs for one fire: {sorted(fired)}"
    if not set(fired) <= set(due):
        return (
            status,
            f"a Run for a time not (yet) recorded as due: {sorted(set(fired) - set(due))}",
        )
    for run in runs:
        if run["metadata"]["name"] != contract.schedule_run_name(name, _nominal(run)):
            return status, f"Run {run['metadata']['name']} is not named after its time"
        owner = run["metadata"]["ownerReferences"][0]
        if (owner["kind"], owner["uid"]) != ("Schedule", schedule["metadata"]["uid"]):
            return status, f"Run {run['metadata']['name']} is not owned by the Schedule"
    counted = status.get("fired", 0) + status.get("skipped", 0) + status.get("missed", 0)
    waiting = 1 if status.get("bufferedTime") else 0
    if counted + waiting != len(due):
        return status, f"{counted} counted + {waiting} waiting for {len(due)} due times: {status}"
    return status, ""


def _accounted(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    """The status once the accounting holds (the Runs and the status are written one after
    the other, so a check between the two waits for the second)."""
    found: list[str] = []

    def holds() -> dict[str, Any] | None:
        status, problem = _accounting(rest, namespace, name)
        found[:] = [problem]
        return status if not problem else None

    try:
        return testing.until(holds, timeout=20, what=f"the accounting of Schedule {name}")
    except AssertionError as err:
        raise AssertionError(f"{err}: {found[0] if found else ''}") from err


def _explain(control_plane: testing.ControlPlaneHandle, namespace: str) -> Any:
    return lambda: control_plane.explain_namespace(namespace)


def _until_runs(
    control_plane: testing.ControlPlaneHandle,
    rest: kube.Rest,
    namespace: str,
    schedule: str,
    *,
    count: int,
    what: str,
    timeout: float = 60,
) -> None:
    """Wait until Schedule ``schedule`` has at least ``count`` Runs."""
    testing.until(
        lambda: len(_runs(rest, namespace, schedule)) >= count,
        timeout=timeout,
        what=what,
        explain=_explain(control_plane, namespace),
    )


def _intervals(rest: kube.Rest, namespace: str, schedule: str) -> list[tuple[float, float]]:
    """(start, end) of each finished Run's attempt, in seconds since the epoch."""
    spans = []
    for run in _runs(rest, namespace, schedule):
        status = run.get("status") or {}
        started = conditions.parse(status.get("startTime"))
        ended = conditions.parse(status.get("completionTime"))
        if started and ended:
            spans.append((started.timestamp(), ended.timestamp()))
    return sorted(spans)


def test_an_every_schedule_fires_on_time_and_counts_every_fire(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    _start(control_plane, namespace, operators)
    # A catch-up window, so an operator slow to start on a loaded machine fires late rather
    # than misses: the test is about no fire being lost or doubled.
    _schedule(rest, namespace, "tick", catchupWindowSeconds=30, historyLimits={"succeeded": 10})
    _until_runs(control_plane, rest, namespace, "tick", count=4, what="four fires of @every 2s")
    status = _accounted(rest, namespace, "tick")
    assert status["missed"] == 0 and status["skipped"] == 0
    fired = [_nominal(r) for r in _runs(rest, namespace, "tick")]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fired)}
    assert gaps == {2.0}, "a fire was lost between two others"
    ready = conditions.find(status["conditions"], "Ready")
    assert ready is not None and ready["status"] == "True"
    nxt = conditions.parse(status["nextScheduleTime"])
    last = conditions.parse(status["lastScheduleTime"])
    assert nxt is not None and last is not None and (nxt - last).total_seconds() == 2
    run = _runs(rest, namespace, "tick")[0]
    assert run["metadata"]["labels"]["team"] == "ops"
    testing.until(
        lambda: all(
            (r.get("status") or {}).get("phase") == "Succeeded"
            for r in _runs(rest, namespace, "tick")[:3]
        ),
        timeout=60,
        what="the first Runs to succeed",
        explain=_explain(control_plane, namespace),
    )


@pytest.mark.parametrize("policy", ["Forbid", "BufferOne"])
def test_forbid_and_buffer_one_never_run_two_at_once(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
    policy: str,
) -> None:
    _agent(rest, namespace)
    _start(control_plane, namespace, operators)
    _schedule(
        rest,
        namespace,
        "slow",
        sleep=3.0,
        overlapPolicy=policy,
        historyLimits={"succeeded": 20},
    )
    testing.until(
        lambda: len(_intervals(rest, namespace, "slow")) >= 3,
        timeout=90,
        what=f"three Runs to finish under {policy}",
        explain=_explain(control_plane, namespace),
    )
    spans = _intervals(rest, namespace, "slow")
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end - 0.001, f"two Runs at once under {policy}: {spans}"
    status = _accounted(rest, namespace, "slow")
    assert status["skipped"] >= 1  # a fire every 2 s, a Run takes 3 s


def test_cancel_other_cancels_the_running_run_for_the_new_fire(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    _start(control_plane, namespace, operators)
    _schedule(
        rest,
        namespace,
        "latest",
        sleep=60.0,
        overlapPolicy="CancelOther",
        historyLimits={"failed": 10},
    )

    def cancelled() -> list[dict[str, Any]]:
        runs = _runs(rest, namespace, "latest")
        return [r for r in runs if (r.get("status") or {}).get("phase") == "Cancelled"]

    testing.until(
        lambda: len(cancelled()) >= 2,
        timeout=60,
        what="two Runs cancelled by newer fires",
        explain=_explain(control_plane, namespace),
    )
    status = _accounted(rest, namespace, "latest")
    assert len(status["active"]) <= 2  # the newest, and one being cancelled at most


def test_catch_up_after_the_operator_was_killed_creates_exactly_the_missed_runs_in_the_window(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    first = _start(control_plane, namespace, operators)
    _schedule(
        rest,
        namespace,
        "catchup",
        catchupWindowSeconds=10,
        historyLimits={"succeeded": 50},
    )
    _until_runs(
        control_plane, rest, namespace, "catchup", count=2, what="two fires before the kill"
    )
    first.kill()
    killed_at = datetime.datetime.now(datetime.UTC)
    before = {r["metadata"]["name"] for r in _runs(rest, namespace, "catchup")}
    # Away across ten fire times (polled, not slept: the clock must move 20 s).
    testing.until(
        lambda: (datetime.datetime.now(datetime.UTC) - killed_at).total_seconds() >= 20,
        timeout=40,
        what="20 s to pass",
    )
    back_at = datetime.datetime.now(datetime.UTC)
    _start(control_plane, namespace, operators)
    testing.until(
        lambda: (
            (s := _get(rest, namespace, "catchup").get("status") or {}).get("missed", 0) > 0
            and conditions.parse(s.get("lastScheduleTime")) is not None
            and conditions.parse(s["lastScheduleTime"]) >= back_at - datetime.timedelta(seconds=2)
        ),
        timeout=60,
        what="the restarted operator to catch up",
        explain=_explain(control_plane, namespace),
    )
    status = _accounted(rest, namespace, "catchup")
    caught = [
        _nominal(r)
        for r in _runs(rest, namespace, "catchup")
        if r["metadata"]["name"] not in before
    ]
    # Inside the window: fired; older: missed, and counted.
    assert status["missed"] >= 2
    for moment in caught:
        if moment < back_at:
            assert (back_at - moment).total_seconds() <= 10, (moment, back_at)
    assert any(m < back_at for m in caught), "nothing inside the window was caught up"


def test_a_second_replica_takes_over_and_no_fire_is_doubled_or_lost(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    leader = _start(control_plane, namespace, operators)
    _start(control_plane, namespace, operators)  # a standby replica (leader election)
    _schedule(rest, namespace, "ha", catchupWindowSeconds=30, historyLimits={"succeeded": 50})
    _until_runs(control_plane, rest, namespace, "ha", count=2, what="two fires")
    leader.kill()
    count = len(_runs(rest, namespace, "ha"))
    takeover = "the standby to take over and fire"
    _until_runs(control_plane, rest, namespace, "ha", count=count + 4, what=takeover, timeout=90)
    status = _accounted(rest, namespace, "ha")
    assert status["missed"] == 0, "the takeover fell outside a 30 s catch-up window"


def test_history_limits_keep_the_newest_finished_runs(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    _start(control_plane, namespace, operators)
    _schedule(rest, namespace, "short", historyLimits={"succeeded": 2})
    testing.until(
        lambda: _get(rest, namespace, "short").get("status", {}).get("fired", 0) >= 5,
        timeout=60,
        what="five fires",
        explain=_explain(control_plane, namespace),
    )

    def kept() -> bool:
        runs = _runs(rest, namespace, "short")
        done = [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]
        return len(done) <= 2 and len(done) >= 1

    testing.until(kept, timeout=30, what="at most two Succeeded Runs kept")


def test_bad_expressions_are_rejected_at_apply_and_bad_zones_are_not_ready(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    for bad in ("* * *", "@fortnightly", "@every 5 minutes"):
        with pytest.raises(kube.Invalid) as refused:
            _schedule(rest, namespace, "bad", schedule=bad)
        assert "schedule must be five cron fields" in str(refused.value)
    with pytest.raises(kube.Invalid) as long_name:
        _schedule(rest, namespace, "x" * 53)
    assert "at most 52 characters" in str(long_name.value)
    _start(control_plane, namespace, operators)
    _schedule(rest, namespace, "mars", schedule="@daily", timeZone="Mars/Olympus_Mons")
    _schedule(rest, namespace, "range", schedule="61 * * * *")

    def reason(name: str) -> str | None:
        ready = conditions.find(
            (_get(rest, namespace, name).get("status") or {}).get("conditions"), "Ready"
        )
        return str(ready["reason"]) if ready and ready["status"] == "False" else None

    assert (
        testing.until(lambda: reason("mars"), timeout=30, what="mars not Ready")
        == "InvalidTimeZone"
    )
    assert (
        testing.until(lambda: reason("range"), timeout=30, what="range not Ready")
        == "InvalidSchedule"
    )
    assert _runs(rest, namespace, "mars") == [] and _runs(rest, namespace, "range") == []


def test_a_suspended_schedule_fires_nothing_and_misses_what_passes(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    _start(control_plane, namespace, operators)
    _schedule(rest, namespace, "paused", suspend=True)
    testing.until(
        lambda: conditions.find(
            (_get(rest, namespace, "paused").get("status") or {}).get("conditions"), "Ready"
        ),
        timeout=30,
        what="the Schedule's status",
    )
    created_at = datetime.datetime.now(datetime.UTC)
    testing.until(
        lambda: (datetime.datetime.now(datetime.UTC) - created_at).total_seconds() >= 6,
        timeout=20,
        what="6 s to pass",
    )
    assert _runs(rest, namespace, "paused") == []
    rest.merge_patch(API, "schedules", namespace, "paused", {"spec": {"suspend": False}})
    testing.until(
        lambda: (_get(rest, namespace, "paused").get("status") or {}).get("fired", 0) >= 1,
        timeout=30,
        what="a fire after resuming",
        explain=_explain(control_plane, namespace),
    )
    status = _accounted(rest, namespace, "paused")
    assert status["missed"] >= 2


def test_backfill_twice_creates_each_run_once_and_applies_the_overlap_policy(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    operators: list[testing.OperatorProcess],
) -> None:
    _agent(rest, namespace)
    _schedule(rest, namespace, "past", schedule="0 3 * * *", historyLimits={"succeeded": 10})
    start = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2026, 11, 5, 3, tzinfo=datetime.UTC)  # included
    first = list(scheduling.backfill_schedule(rest, namespace, "past", start, end))
    again = list(scheduling.backfill_schedule(rest, namespace, "past", start, end))
    days = [datetime.datetime(2026, 11, d, 3, tzinfo=datetime.UTC) for d in range(1, 6)]
    names = [contract.schedule_run_name("past", day) for day in days]
    assert first == [(name, True) for name in names]
    assert again == [(name, False) for name in names]
    assert [r["metadata"]["name"] for r in _runs(rest, namespace, "past")] == names

    # Under Forbid, one after another: each starts once the one before has finished.
    _schedule(rest, namespace, "serial", schedule="0 3 * * *", overlapPolicy="Forbid", sleep=1.0)
    _start(control_plane, namespace, operators)
    two_days = start + datetime.timedelta(days=2)
    made = list(
        scheduling.backfill_schedule(rest, namespace, "serial", start, two_days, timeout=120)
    )
    assert [created for _, created in made] == [True, True]
    spans = _intervals(rest, namespace, "serial")
    assert len(spans) == 2 and spans[1][0] >= spans[0][1] - 0.001, spans
