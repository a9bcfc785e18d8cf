"""ClusterPolicies in the operator: runsPerHour per Agent and per namespace at admission, the
namespace's labels passed to the runner."""

from __future__ import annotations

import datetime
import json
from typing import Any

from bosun import contract
from bosun.controller import builders, conditions, settings, store, usage

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.UTC)
TEAM = {"kubernetes.io/metadata.name": "ns", "tier": "prod"}


def _ago(minutes: float) -> str:
    return conditions.stamp(NOW - datetime.timedelta(minutes=minutes))


def _agent(name: str, labels: dict[str, str] | None = None, ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}}


def _cluster(name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "ClusterPolicy", "metadata": {"name": name}, "spec": spec}


def _namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_a_cluster_policy_budgets_each_selected_agent() -> None:
    clusters = [
        _cluster("prod", budgets={"runsPerHour": 3}, namespaceSelector={"matchLabels": TEAM}),
        _cluster("dev", budgets={"runsPerHour": 1}, namespaceSelector={"matchLabels": {"x": "y"}}),
        _cluster("risky", budgets={"runsPerHour": 2}, agentSelector={"matchLabels": {"r": "1"}}),
    ]
    plain, risky = _agent("a"), _agent("b", {"r": "1"})
    assert usage.runs_budget(plain, [], clusters, TEAM) == usage.RunsBudget(
        3, "prod", "ClusterPolicy"
    )
    assert usage.runs_budget(risky, [], clusters, TEAM) == usage.RunsBudget(
        2, "risky", "ClusterPolicy"
    )
    # Unknown namespace labels: every namespaceSelector selects (the Run waits, not overruns).
    assert usage.runs_budget(plain, [], clusters, None) == usage.RunsBudget(
        1, "dev", "ClusterPolicy"
    )


def test_the_namespace_budget_is_the_tightest_of_the_selecting_cluster_policies() -> None:
    clusters = [
        _cluster("loose", namespaceBudgets={"runsPerHour": 10}),
        _cluster(
            "prod", namespaceBudgets={"runsPerHour": 4}, namespaceSelector={"matchLabels": TEAM}
        ),
        _cluster(
            "elsewhere",
            namespaceBudgets={"runsPerHour": 1},
            namespaceSelector={"matchLabels": {"tier": "dev"}},
        ),
        _cluster("agent-only", budgets={"runsPerHour": 1}),
    ]
    assert usage.namespace_runs_budget("ns", clusters, TEAM) == usage.RunsBudget(
        4, "prod", "ClusterPolicy", "ns"
    )
    assert usage.namespace_runs_budget("ns", clusters, {"tier": "dev"}) == usage.RunsBudget(
        1, "elsewhere", "ClusterPolicy", "ns"
    )
    assert usage.namespace_runs_budget("ns", clusters[3:], TEAM) is None


def _store(*clusters: dict[str, Any], labels: dict[str, str] | None = TEAM) -> store.Store:
    found = store.Store()
    for cluster in clusters:
        found.clusterpolicies.put(cluster)
    if labels is not None:
        found.namespaces.put(_namespace("ns", labels))
    return found


def test_the_namespace_window_counts_runs_of_every_agent_and_names_the_cluster_policy() -> None:
    rail = _cluster("team", namespaceBudgets={"runsPerHour": 3})
    starts = {("ns", "a"): [_ago(10), _ago(90)], ("ns", "b"): [], ("other", "a"): [_ago(5)]}
    budgets = usage.RunsBudgets(starts, _store(rail), NOW)
    assert budgets.take(_agent("b")) is None  # a's one in the hour, and this: 2 of 3
    assert budgets.take(_agent("a")) is None  # 3 of 3
    spent = budgets.take(_agent("b"))
    assert spent is not None
    assert spent[0] == (
        "ClusterPolicy team allows 3 Runs in namespace ns per hour, "
        "and that many started within the last hour"
    )
    # Another namespace has a window of its own.
    assert budgets.take(_agent("a", ns="other")) is None


def test_an_agent_window_that_is_spent_takes_no_namespace_slot() -> None:
    rail = _cluster("team", namespaceBudgets={"runsPerHour": 2}, budgets={"runsPerHour": 1})
    budgets = usage.RunsBudgets({("ns", "a"): [_ago(1)]}, _store(rail), NOW)
    spent = budgets.take(_agent("a"))
    assert spent is not None and "of Agent a" in spent[0]
    assert budgets.take(_agent("b")) is None
    assert budgets.take(_agent("c")) is not None


def test_a_namespace_the_operator_has_not_seen_is_budgeted_by_every_cluster_policy() -> None:
    rail = _cluster(
        "prod", namespaceBudgets={"runsPerHour": 0}, namespaceSelector={"matchLabels": TEAM}
    )
    assert usage.RunsBudgets({}, _store(rail, labels=None), NOW).take(_agent("a")) is not None
    assert usage.RunsBudgets({}, _store(rail, labels={}), NOW).take(_agent("a")) is None


def _run() -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u-1"},
        "spec": {"agentRef": {"name": "a"}},
    }


def test_the_job_passes_the_namespace_labels_when_known() -> None:
    agent = {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"model": {}}}
    job = builders.job(_run(), agent, [], 1, settings.Settings(), namespace_labels=TEAM)
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env[contract.ENV_NAMESPACE_LABELS]) == TEAM
    unknown = builders.job(_run(), agent, [], 1, settings.Settings())
    names = [e["name"] for e in unknown["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert contract.ENV_NAMESPACE_LABELS not in names
