"""Which finished Runs retention deletes, given TTLs, history limits and the clock (no cluster)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import retention_runs as r

from bosun import constants
from bosun.controller import conditions, retention, settings, store

NO_DEFAULTS = retention.Defaults()
NOW, HOUR, DAY, run, agent = r.NOW, r.HOUR, r.DAY, r.run, r.agent


def deleted(
    runs: list[dict[str, Any]],
    defaults: retention.Defaults = NO_DEFAULTS,
    agents: list[dict[str, Any]] = (),  # type: ignore[assignment]
    now: datetime.datetime = NOW,
) -> dict[str, str]:
    by_key = {store.key_of(a): a for a in agents}
    decided = retention.sweep(runs, by_key, defaults, now)
    return {d.name: d.reason for d in decided.deletions}


# --- TTL ---------------------------------------------------------------------------------------


def test_a_run_is_deleted_once_its_own_ttl_has_passed_since_it_finished() -> None:
    runs = [
        run("old", ttl=3 * 3600, finished=NOW - 4 * HOUR),
        run("young", ttl=3 * 3600, finished=NOW - 2 * HOUR),
    ]
    assert deleted(runs) == {"old": retention.TTL_EXPIRED}


def test_the_operator_default_ttl_applies_when_the_run_sets_none() -> None:
    runs = [run("old", finished=NOW - 8 * DAY), run("young", finished=NOW - 6 * DAY)]
    assert deleted(runs, retention.Defaults(ttl_seconds=7 * 86400)) == {
        "old": retention.TTL_EXPIRED
    }
    assert deleted(runs) == {}  # no default: kept forever


def test_a_runs_own_ttl_beats_the_default_both_ways() -> None:
    runs = [
        run("keeps-longer", ttl=30 * 86400, finished=NOW - 8 * DAY),
        run("goes-sooner", ttl=0, finished=NOW - 2 * HOUR),
    ]
    assert deleted(runs, retention.Defaults(ttl_seconds=7 * 86400)) == {
        "goes-sooner": retention.TTL_EXPIRED
    }


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled", "DeadLettered", "Duplicate"])
def test_every_finished_phase_has_a_ttl(phase: str) -> None:
    assert deleted([run("r", phase, ttl=60)]) == {"r": retention.TTL_EXPIRED}


def test_no_run_leaves_before_the_hour_its_agents_budgets_count_it() -> None:
    # ttl 0, finished 10 minutes ago: it still counts in the Agent's hourly usage.
    runs = [run("recent", ttl=0, finished=NOW - datetime.timedelta(minutes=10))]
    decided = retention.sweep(runs, {}, NO_DEFAULTS, NOW)
    assert decided.deletions == ()
    assert decided.next_expiry == NOW + datetime.timedelta(minutes=50)


def test_the_next_expiry_is_the_earliest_ttl_of_the_runs_kept() -> None:
    runs = [run("a", ttl=3 * 3600, finished=NOW - 2 * HOUR), run("b", ttl=2 * 86400)]
    decided = retention.sweep(runs, {}, NO_DEFAULTS, NOW)
    assert decided.deletions == ()
    assert decided.next_expiry == NOW + HOUR


def test_completion_falls_back_to_the_final_conditions_transition() -> None:
    old = run("old", ttl=3600, finished=NOW - 3 * HOUR)
    del old["status"]["completionTime"]
    assert retention.completed_at(old) == NOW - 3 * HOUR
    assert deleted([old]) == {"old": retention.TTL_EXPIRED}
    unknown = run("unknown", ttl=0, finished=NOW - 3 * HOUR)
    del unknown["status"]["completionTime"]
    unknown["status"]["conditions"][0]["lastTransitionTime"] = ""
    assert deleted([unknown]) == {}  # never guessed


# --- never deleted -----------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["Running", "Queued"])
def test_unfinished_runs_are_never_deleted(phase: str) -> None:
    runs = [run(f"r{i}", phase, ttl=0, finished=NOW - 30 * DAY) for i in range(3)]
    assert deleted(runs, retention.Defaults(1, 1, 1), [agent(succeeded=0, failed=0)]) == {}


def test_an_unfinished_run_with_a_leftover_completion_time_is_kept() -> None:
    stale = conditions.stamp(NOW - 30 * DAY)
    runs = [run(f"r-{p}", p, ttl=0, status__completionTime=stale) for p in ("Running", "Queued")]
    assert deleted(runs) == {}


def test_a_stored_phase_that_disagrees_with_the_conditions_keeps_the_run() -> None:
    odd = run("odd", ttl=0, finished=NOW - DAY)
    odd["status"]["phase"] = "Running"
    assert deleted([odd]) == {}


def test_an_attempt_without_an_end_keeps_the_run() -> None:
    busy = run("busy", ttl=0, status__attempts=[{"number": 1, "job": "busy-a1"}])
    ended = run("ended", ttl=0, status__attempts=[{"number": 1, "endTime": "2026-01-01T00:00:00Z"}])
    assert deleted([busy, ended]) == {"ended": retention.TTL_EXPIRED}


def test_a_run_being_deleted_or_waiting_for_its_redrive_is_kept() -> None:
    going = run("going", ttl=0, metadata__deletionTimestamp="2026-06-01T00:00:00Z")
    redriven = run(
        "redriven", "DeadLettered", ttl=0, metadata__annotations={constants.ANNOTATION_REDRIVE: "2"}
    )
    acted_on = run(
        "acted-on", "Failed", ttl=0, metadata__annotations={constants.ANNOTATION_REDRIVE: "1"}
    )
    acted_on["status"]["redrive"] = "1"
    assert deleted([going, redriven, acted_on]) == {"acted-on": retention.TTL_EXPIRED}


# --- history limits ----------------------------------------------------------------------------


def test_history_keeps_the_newest_of_each_kind_and_deletes_the_oldest_first() -> None:
    runs = [run(f"ok-{i}", finished=NOW - (10 - i) * HOUR * 2) for i in range(5)]
    runs += [run(f"bad-{i}", "Failed", finished=NOW - (10 - i) * HOUR * 2) for i in range(3)]
    result = deleted(runs, agents=[agent(succeeded=2, failed=1)])
    assert result == {
        "ok-0": retention.HISTORY_LIMIT,
        "ok-1": retention.HISTORY_LIMIT,
        "ok-2": retention.HISTORY_LIMIT,
        "bad-0": retention.HISTORY_LIMIT,
        "bad-1": retention.HISTORY_LIMIT,
    }


def test_cancelled_and_duplicate_runs_count_as_failed_and_dead_letters_do_not_count() -> None:
    runs = [
        run("cancelled", "Cancelled", finished=NOW - 5 * HOUR),
        run("duplicate", "Duplicate", finished=NOW - 4 * HOUR),
        run("failed", "Failed", finished=NOW - 3 * HOUR),
        run("dead-1", "DeadLettered", finished=NOW - 9 * HOUR),
        run("dead-2", "DeadLettered", finished=NOW - 8 * HOUR),
        run("ok", finished=NOW - 9 * HOUR),
    ]
    result = deleted(runs, agents=[agent(succeeded=1, failed=1)])
    assert result == {"cancelled": retention.HISTORY_LIMIT, "duplicate": retention.HISTORY_LIMIT}


def test_a_limit_of_zero_keeps_none_and_defaults_apply_to_agents_without_history() -> None:
    runs = [run("mine", agent="strict"), run("theirs-1", agent="lax"), run("theirs-2", agent="lax")]
    runs.append(run("theirs-3", agent="lax", finished=NOW - 2 * DAY))
    agents = [agent("strict", succeeded=0), agent("lax")]
    result = deleted(runs, retention.Defaults(succeeded=2), agents)
    assert result == {"mine": retention.HISTORY_LIMIT, "theirs-3": retention.HISTORY_LIMIT}


def test_history_is_per_agent_and_namespace_and_a_missing_agent_gets_the_defaults() -> None:
    runs = [
        run("a1", finished=NOW - 3 * HOUR),
        run("a2", finished=NOW - 2 * HOUR),
        run("other-ns", namespace="m", finished=NOW - 9 * HOUR),
        run("other-agent", agent="b", finished=NOW - 9 * HOUR),
        run("gone-1", agent="gone", finished=NOW - 9 * HOUR),
        run("gone-2", agent="gone", finished=NOW - 8 * HOUR),
    ]
    agents = [agent(succeeded=1), agent("a", "m", succeeded=5), agent("b", succeeded=5)]
    result = deleted(runs, retention.Defaults(succeeded=1), agents)
    assert result == {"a1": retention.HISTORY_LIMIT, "gone-1": retention.HISTORY_LIMIT}


def test_history_waits_for_runs_still_counted_in_the_hourly_usage() -> None:
    runs = [
        run("recent-1", finished=NOW - datetime.timedelta(minutes=20)),
        run("recent-2", finished=NOW - datetime.timedelta(minutes=10)),
    ]
    decided = retention.sweep(runs, {}, retention.Defaults(succeeded=1), NOW)
    assert decided.deletions == ()
    assert decided.next_expiry == NOW + datetime.timedelta(minutes=40)


def test_a_run_past_its_ttl_is_not_also_counted_in_the_history() -> None:
    runs = [run("expired", ttl=60, finished=NOW - 3 * DAY), run("kept", finished=NOW - 2 * DAY)]
    assert deleted(runs, retention.Defaults(succeeded=1)) == {"expired": retention.TTL_EXPIRED}


def test_a_deletion_names_the_exact_object_decided_on() -> None:
    decided = retention.sweep([run("r", ttl=0)], {}, NO_DEFAULTS, NOW)
    (deletion,) = decided.deletions
    assert (deletion.namespace, deletion.name, deletion.uid, deletion.resource_version) == (
        "n",
        "r",
        "uid-r",
        "7",
    )


# --- defaults ----------------------------------------------------------------------------------


def test_the_settings_defaults_and_zero_as_keep_everything() -> None:
    defaults = retention.Defaults.of(settings.Settings())
    assert defaults == retention.Defaults(ttl_seconds=7 * 86400, succeeded=1000, failed=1000)
    env = {
        "BOSUN_RUN_TTL_SECONDS": "0",
        "BOSUN_RUN_HISTORY_SUCCEEDED": "0",
        "BOSUN_RUN_HISTORY_FAILED": "5",
    }
    assert retention.Defaults.of(settings.Settings.from_env(env)) == retention.Defaults(failed=5)
    with pytest.raises(ValueError, match="BOSUN_RUN_TTL_SECONDS must be 0 or more"):
        settings.Settings.from_env({"BOSUN_RUN_TTL_SECONDS": "-1"})
