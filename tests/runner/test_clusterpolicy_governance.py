"""ClusterPolicies in governance: merged with the namespace's Policies, selected by namespace and
Agent labels, namespace budgets summed across Agents, fail closed when they cannot be read."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from bosun import cel, kube
from bosun.api import agent as agent_api
from bosun.api import clusterpolicy as clusterpolicy_api
from bosun.api import policy as policy_api
from bosun.runner import config, errors, governance, governing, world

from . import fakes

EVALUATOR = cel.Evaluator()
NOW = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=datetime.UTC)
ALLOW_ALL = fakes.policy("allow", [{"name": "all", "tools": ["*"], "action": "Allow"}])
TEAM = {"kubernetes.io/metadata.name": "team-a", "tier": "prod"}


def cluster_obj(name: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": rules, **spec},
    }


def cluster(name: str, rules: list[dict[str, Any]], **spec: Any) -> clusterpolicy_api.ClusterPolicy:
    return clusterpolicy_api.ClusterPolicy.from_dict(cluster_obj(name, rules, **spec))


def _set(
    policies: list[policy_api.Policy],
    clusters: list[clusterpolicy_api.ClusterPolicy],
    labels: dict[str, str] | None = TEAM,
    **fields: Any,
) -> governing.PolicySet:
    return governing.PolicySet(
        policies=tuple(policies),
        cluster_policies=tuple(clusters),
        namespace_labels=labels,
        **fields,
    )


def _decide(
    policy_set: governing.PolicySet,
    tool_name: str = "refund",
    *,
    counters: governance.Counters | None = None,
    labels: dict[str, str] | None = None,
) -> governance.Decision:
    listed = ["refund", "charge", "lookup"]
    return governance.decide_tool_call(
        agent=fakes.agent(listed, labels=labels),
        policies=policy_set,
        tool_name=tool_name,
        tool=fakes.tool(tool_name),
        args={"amount": 5},
        args_error=None,
        counters=counters or governance.Counters(),
        context={"agent": fakes.agent_obj(listed, labels=labels), "run": fakes.run_obj()},
        evaluator=EVALUATOR,
    )


def _model(
    policy_set: governing.PolicySet, counters: governance.Counters | None = None
) -> governance.Decision:
    return governance.decide_model_call(
        agent=fakes.agent(["refund"]),
        policies=policy_set,
        model="gpt-4o",
        counters=counters or governance.Counters(),
    )


def test_a_cluster_deny_beats_a_namespace_allow_and_is_named() -> None:
    guard = cluster("no-refunds", [{"name": "refunds", "tools": ["refund"], "action": "Deny"}])
    decision = _decide(_set([ALLOW_ALL], [guard]))
    assert (decision.action, decision.reason, decision.policy, decision.rule) == (
        "Deny",
        "PolicyDenied",
        "ClusterPolicy/no-refunds",
        "refunds",
    )
    assert _decide(_set([ALLOW_ALL], [guard]), "lookup").allowed


def test_a_namespace_deny_beats_a_cluster_allow() -> None:
    allow = cluster("allow", [{"tools": ["*"], "action": "Allow"}])
    deny = fakes.policy("deny", [{"tools": ["refund"], "action": "Deny"}])
    decision = _decide(_set([deny], [allow]))
    assert (decision.action, decision.policy) == ("Deny", "deny")


@pytest.mark.parametrize("from_cluster", [True, False], ids=["cluster", "namespace"])
def test_require_approval_from_either_beats_allow(from_cluster: bool) -> None:
    ask = [{"name": "ask", "tools": ["refund"], "action": "RequireApproval"}]
    if from_cluster:
        policy_set = _set([ALLOW_ALL], [cluster("ask", ask)])
    else:
        policy_set = _set([ALLOW_ALL, fakes.policy("ask", ask)], [cluster("c", [])])
    decision = _decide(policy_set)
    assert decision.action == "RequireApproval"
    assert decision.policy == ("ClusterPolicy/ask" if from_cluster else "ask")


def test_a_cluster_allow_alone_allows_and_nothing_allows_nothing() -> None:
    allow = cluster("allow", [{"name": "all", "tools": ["*"], "action": "Allow"}])
    assert _decide(_set([], [allow])).policy == "ClusterPolicy/allow"
    assert _decide(_set([], [cluster("empty", [])])).reason == "NoRuleAllows"


def test_namespace_selector_picks_namespaces_by_their_labels() -> None:
    deny = [{"tools": ["refund"], "action": "Deny"}]
    prod = cluster("prod", deny, namespaceSelector={"matchLabels": {"tier": "prod"}})
    other = cluster(
        "other",
        deny,
        namespaceSelector={
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-b"]}
            ]
        },
    )
    assert _decide(_set([ALLOW_ALL], [prod])).policy == "ClusterPolicy/prod"
    assert _decide(_set([ALLOW_ALL], [other])).allowed
    assert _decide(_set([ALLOW_ALL], [prod], labels={"tier": "dev"})).allowed


def test_agent_selector_picks_agents_and_relabeling_escapes_only_an_agent_selector() -> None:
    deny = [{"tools": ["refund"], "action": "Deny"}]
    by_agent = cluster("risky", deny, agentSelector={"matchLabels": {"risk": "high"}})
    by_namespace = cluster("prod", deny, namespaceSelector={"matchLabels": {"tier": "prod"}})
    assert _decide(_set([ALLOW_ALL], [by_agent]), labels={"risk": "high"}).denied
    assert _decide(_set([ALLOW_ALL], [by_agent]), labels={"risk": "low"}).allowed
    for labels in ({}, {"risk": "low"}, {"tier": "dev"}):
        assert _decide(_set([ALLOW_ALL], [by_namespace]), labels=labels).denied


def test_unknown_namespace_labels_deny_when_a_cluster_policy_selects_by_them() -> None:
    prod = cluster(
        "prod",
        [{"tools": ["*"], "action": "Allow"}],
        namespaceSelector={"matchLabels": {"tier": "prod"}},
    )
    decision = _decide(_set([ALLOW_ALL], [prod], labels=None))
    assert (decision.action, decision.reason) == ("Deny", "GovernanceError")
    assert "namespace's labels" in decision.message
    assert _model(_set([ALLOW_ALL], [prod], labels=None)).denied
    # A ClusterPolicy over every namespace needs no labels.
    everywhere = cluster("all", [{"tools": ["refund"], "action": "Deny"}])
    assert _decide(_set([ALLOW_ALL], [everywhere], labels=None)).reason == "PolicyDenied"


def test_unreadable_cluster_policies_deny_every_call() -> None:
    policy_set = _set([ALLOW_ALL], [], unreadable="clusterpolicies is forbidden")
    for decision in (_decide(policy_set), _model(policy_set)):
        assert (decision.action, decision.reason) == ("Deny", "GovernanceError")
        assert "forbidden" in decision.message


def test_cluster_models_allowed_and_agent_budgets_apply() -> None:
    models = cluster("models", [], models={"allowed": ["claude-*"]})
    decision = _model(_set([ALLOW_ALL], [models]))
    assert (decision.reason, decision.policy) == ("ModelNotAllowed", "ClusterPolicy/models")
    budget = cluster("budget", [], budgets={"tokensPerHour": 100, "toolCallsPerHour": 2})
    spent = governance.Counters(tokens_last_hour=100, tool_calls_last_hour=2)
    assert _model(_set([ALLOW_ALL], [budget]), spent).rule == "budgets.tokensPerHour"
    assert _decide(_set([ALLOW_ALL], [budget]), counters=spent).rule == "budgets.toolCallsPerHour"
    room = governance.Counters(tokens_last_hour=99, tool_calls_last_hour=1)
    assert _model(_set([ALLOW_ALL], [budget]), room).allowed
    assert _decide(_set([ALLOW_ALL], [budget]), counters=room).allowed


def test_namespace_budgets_count_the_other_agents_too() -> None:
    rail = cluster("team", [], namespaceBudgets={"tokensPerHour": 100, "toolCallsPerHour": 5})
    mine = governance.Counters(tokens_last_hour=60, tool_calls_last_hour=3)
    alone = _set([ALLOW_ALL], [rail], namespace_tokens=39, namespace_tool_calls=1)
    assert _model(alone, mine).allowed
    assert _decide(alone, counters=mine).allowed
    crowded = _set([ALLOW_ALL], [rail], namespace_tokens=40, namespace_tool_calls=2)
    model = _model(crowded, mine)
    assert (model.reason, model.policy, model.rule) == (
        "BudgetExceeded",
        "ClusterPolicy/team",
        "namespaceBudgets.tokensPerHour",
    )
    assert "used 100" in model.message
    tool = _decide(crowded, counters=mine)
    assert (tool.reason, tool.rule) == ("BudgetExceeded", "namespaceBudgets.toolCallsPerHour")


def _usage(tokens: int, tool_calls: int, **fields: Any) -> agent_api.AgentUsage:
    return agent_api.AgentUsage.model_validate(
        {"tokens": tokens, "toolCalls": tool_calls, "updateTime": NOW.isoformat(), **fields}
    )


def test_namespace_usage_sums_every_other_agent() -> None:
    agents = [
        ("agent", _usage(1000, 100)),  # the Run's own Agent: already in Counters
        ("b", _usage(30, 3)),
        ("c", _usage(12, 1)),
        ("d", None),
    ]
    assert governance.namespace_usage(agents, "agent", "run", NOW) == (42, 4)
    # Stale figures keep only the unfinished Runs' shares.
    stale = _usage(50, 5, activeRuns=[{"name": "x", "tokens": 7, "toolCalls": 1}])
    stale = stale.model_copy(update={"update_time": NOW - datetime.timedelta(hours=2)})
    assert governance.namespace_usage([("b", stale)], "agent", "run", NOW) == (7, 1)


# --- reading: world.read_policies ------------------------------------------------------------


def _settings(labels: dict[str, str] | None = TEAM) -> config.Settings:
    return config.Settings(
        run_name="run",
        namespace="team-a",
        run_uid="run-uid",
        attempt=1,
        pod_name="pod",
        lease_name="lease",
        namespace_labels=labels,
    )


def test_read_policies_reads_cluster_policies_labels_and_namespace_usage() -> None:
    api = fakes.FakeCluster("team-a")
    api.put(fakes.policy_obj("allow", [{"tools": ["*"], "action": "Allow"}]))
    api.put(cluster_obj("team", [], namespaceBudgets={"tokensPerHour": 10}))
    other = fakes.agent_obj(["refund"])
    other["metadata"]["name"] = "other"
    other["status"] = {"usage": {"tokens": 8, "toolCalls": 2, "updateTime": NOW.isoformat()}}
    api.put(other)
    api.put(fakes.agent_obj(["refund"]))
    read = world.read_policies(api, _settings(), fakes.agent(["refund"]), NOW)
    assert [p.metadata.name for p in read.policies] == ["allow"]
    assert [c.metadata.name for c in read.cluster_policies] == ["team"]
    assert read.namespace_labels == TEAM
    assert (read.namespace_tokens, read.namespace_tool_calls) == (8, 2)
    assert read.unreadable is None


@pytest.mark.parametrize(
    "error",
    [
        kube.Forbidden(403, "Forbidden", "clusterpolicies is forbidden"),
        kube.NotFound(404, "NotFound", "the server could not find the requested resource"),
    ],
    ids=["forbidden", "no-crd"],
)
def test_read_policies_fails_closed_when_cluster_policies_cannot_be_listed(
    error: kube.ApiError,
) -> None:
    api = fakes.FakeCluster("team-a")
    api.put(fakes.policy_obj("allow", [{"tools": ["*"], "action": "Allow"}]))
    api.fail_clusterpolicies = error
    read = world.read_policies(api, _settings(), fakes.agent(["refund"]), NOW)
    assert read.unreadable is not None
    decision = _decide(read)
    assert (decision.action, decision.reason) == ("Deny", "GovernanceError")


def test_a_cluster_policy_that_does_not_parse_ends_the_attempt() -> None:
    api = fakes.FakeCluster("team-a")
    api.put(cluster_obj("broken", [{"tools": ["*"], "action": "Maybe"}]))
    with pytest.raises(errors.PermanentFailure) as raised:
        world.read_policies(api, _settings(), fakes.agent(["refund"]), NOW)
    assert raised.value.reason == "InvalidClusterPolicy"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [(None, None), ("", None), ('{"tier": "prod"}', {"tier": "prod"})],
)
def test_namespace_labels_setting(raw: str | None, parsed: dict[str, str] | None) -> None:
    env = {
        "BOSUN_RUN_NAME": "r",
        "BOSUN_RUN_NAMESPACE": "ns",
        "BOSUN_RUN_UID": "u",
        "BOSUN_ATTEMPT": "1",
    }
    if raw is not None:
        env["BOSUN_NAMESPACE_LABELS"] = raw
    assert config.Settings.from_env(env).namespace_labels == parsed


@pytest.mark.parametrize("raw", ["{", '["a"]', '{"a": 1}'])
def test_namespace_labels_that_do_not_parse_are_a_config_error(raw: str) -> None:
    env = {
        "BOSUN_RUN_NAME": "r",
        "BOSUN_RUN_NAMESPACE": "ns",
        "BOSUN_RUN_UID": "u",
        "BOSUN_ATTEMPT": "1",
        "BOSUN_NAMESPACE_LABELS": raw,
    }
    with pytest.raises(config.ConfigError):
        config.Settings.from_env(env)
