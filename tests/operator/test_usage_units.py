"""Unit tests of hourly usage accounting across an Agent's Runs and of runsPerHour budgets."""

from __future__ import annotations

import datetime
from typing import Any

from bosun.api import agent as agent_api
from bosun.controller import conditions, usage
from bosun.runner import governance

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.UTC)


def _ago(minutes: float) -> str:
    return conditions.stamp(NOW - datetime.timedelta(minutes=minutes))


def _run(
    name: str,
    phase: str,
    *,
    started: float | None,
    finished: float | None = None,
    tokens: int = 0,
    tool_calls: int = 0,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "usage": {"totalTokens": tokens, "toolCalls": tool_calls},
    }
    if started is not None:
        status["startTime"] = _ago(started)
    if finished is not None:
        status["completionTime"] = _ago(finished)
    return {"metadata": {"name": name, "namespace": "ns"}, "status": status}


def test_tally_counts_unfinished_runs_and_runs_finished_within_the_hour() -> None:
    runs = [
        _run("live", "Running", started=5, tokens=100, tool_calls=2),
        _run("recent", "Succeeded", started=90, finished=30, tokens=40, tool_calls=1),
        _run("old", "Succeeded", started=120, finished=61, tokens=1000, tool_calls=50),
        _run("queued", "Queued", started=None),
        _run("retrying", "Retrying", started=10),
        _run("failed", "DeadLettered", started=20, finished=10, tokens=7),
    ]
    counted = usage.tally(runs, NOW)
    assert (counted.runs, counted.tokens, counted.tool_calls) == (3, 147, 3)
    assert counted.active == [{"name": "live", "tokens": 100, "toolCalls": 2}]
    # The first figure to drop: "recent" leaves the window 30 minutes from now.
    assert counted.next_change == NOW + datetime.timedelta(minutes=30)
    assert counted.status() == {
        "windowSeconds": 3600,
        "runs": 3,
        "tokens": 147,
        "toolCalls": 3,
        "activeRuns": [{"name": "live", "tokens": 100, "toolCalls": 2}],
    }


def test_tally_of_nothing_has_nothing_to_expire() -> None:
    counted = usage.tally([_run("never", "Queued", started=None)], NOW)
    assert (counted.runs, counted.tokens, counted.next_change) == (0, 0, None)


def test_a_terminal_run_without_completion_time_is_not_counted_forever() -> None:
    counted = usage.tally([_run("odd", "Failed", started=200, tokens=9)], NOW)
    assert counted.tokens == 0 and counted.runs == 0


def _agent(labels: dict[str, str], namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": namespace, "labels": labels}}


def _policy(name: str, budgets: dict[str, Any], selector: Any = None, ns: str = "ns") -> Any:
    spec: dict[str, Any] = {"budgets": budgets}
    if selector is not None:
        spec["agentSelector"] = selector
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_runs_budget_is_the_tightest_of_the_selecting_policies_in_the_namespace() -> None:
    policies = [
        _policy("loose", {"runsPerHour": 10}),
        _policy("tight", {"runsPerHour": 2}, {"matchLabels": {"team": "a"}}),
        _policy("other-team", {"runsPerHour": 1}, {"matchLabels": {"team": "b"}}),
        _policy("elsewhere", {"runsPerHour": 0}, ns="other"),
        _policy("tokens-only", {"tokensPerHour": 5}),
        _policy(
            "expr",
            {"runsPerHour": 3},
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "c"]}]},
        ),
    ]
    assert usage.runs_budget(_agent({"team": "a"}), policies) == usage.RunsBudget(2, "tight")
    assert usage.runs_budget(_agent({"team": "c"}), policies) == usage.RunsBudget(3, "expr")
    assert usage.runs_budget(_agent({}), policies) == usage.RunsBudget(10, "loose")
    assert usage.runs_budget(_agent({}), [_policy("t", {"tokensPerHour": 1})]) is None


def test_a_selector_that_cannot_be_read_selects_fail_closed() -> None:
    broken = _policy("broken", {"runsPerHour": 1}, {"matchExpressions": [{"key": "x"}]})
    assert usage.runs_budget(_agent({"team": "a"}), [broken]) == usage.RunsBudget(1, "broken")


def test_started_within_and_the_next_slot() -> None:
    stamps = [_ago(70), _ago(50), _ago(10), _ago(30)]
    starts = usage.started_within(stamps, NOW)
    assert starts == [NOW - datetime.timedelta(minutes=m) for m in (50, 30, 10)]
    budget = usage.RunsBudget(2, "hourly")
    message, event = usage.over_budget(budget, "triage", starts)
    assert message == (
        "Policy hourly allows 2 Runs of Agent triage per hour, "
        "and that many started within the last hour"
    )
    # Three started, two allowed: the next starts once the two oldest have left the window.
    slot = conditions.stamp(NOW + datetime.timedelta(minutes=30))
    assert event == f"{message}; the next may start at {slot}"
    # The condition's message does not move as Runs start: held Runs are not rewritten.
    assert usage.over_budget(budget, "triage", [*starts, NOW])[0] == message
    closed = usage.over_budget(usage.RunsBudget(0, "off"), "triage", starts)
    assert (
        closed[0]
        == closed[1]
        == (
            "Policy off allows 0 Runs of Agent triage per hour, "
            "and that many started within the last hour"
        )
    )


def test_runner_adds_its_own_figures_to_the_other_runs_of_its_agent() -> None:
    published = agent_api.AgentUsage.model_validate(
        {
            "runs": 3,
            "tokens": 500,
            "toolCalls": 9,
            "activeRuns": [
                {"name": "me", "tokens": 120, "toolCalls": 4},
                {"name": "you", "tokens": 80, "toolCalls": 1},
            ],
        }
    )
    assert governance.other_runs_usage(published, "me", NOW) == (380, 5)
    assert governance.other_runs_usage(published, "new", NOW) == (500, 9)
    assert governance.other_runs_usage(None, "me", NOW) == (0, 0)
    # Published two hours ago and never changed since (the operator was away): the finished
    # Runs it counted have left the window; the unfinished ones' shares still count.
    stale = published.model_copy(update={"update_time": NOW - datetime.timedelta(hours=2)})
    assert governance.other_runs_usage(stale, "me", NOW) == (80, 1)
    fresh = published.model_copy(update={"update_time": NOW - datetime.timedelta(minutes=59)})
    assert governance.other_runs_usage(fresh, "me", NOW) == (380, 5)
