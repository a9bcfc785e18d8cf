"""Which rules govern one Run's Agent: the namespace's Policies and the selecting ClusterPolicies.

A ``PolicySet`` is what the runner read before one call: the namespace's Policies, every
ClusterPolicy, the namespace's labels (passed by the operator when it created the attempt) and
what the namespace's other Agents used within the hour. ``sources`` turns it into the list of
``Source``s that governance evaluates for one Agent: each ClusterPolicy whose
``namespaceSelector`` matches the namespace's labels and whose ``agentSelector`` matches the
Agent's (named ``ClusterPolicy/<name>`` in decisions), then each Policy whose ``agentSelector``
matches, each group in name order. Namespace labels that are unknown while a ClusterPolicy
selects by them raise ``Undecidable``: governance then denies (fail closed). Pure, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from bosun.api import agent as agent_api
from bosun.api import clusterpolicy as clusterpolicy_api
from bosun.api import common
from bosun.api import policy as policy_api

__all__ = [
    "CLUSTER_PREFIX",
    "PolicySet",
    "Source",
    "Undecidable",
    "as_set",
    "selects",
    "sources",
]

CLUSTER_PREFIX = "ClusterPolicy/"
"""How decisions name a ClusterPolicy, so audit records tell it from a namespace Policy."""


class Undecidable(Exception):
    """What governs the Agent cannot be known; every decision is then a denial."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One Policy or ClusterPolicy, as governance evaluates it."""

    name: str
    """The Policy's name, or ``ClusterPolicy/<name>``."""
    rules: Sequence[policy_api.PolicyRule] = ()
    budgets: policy_api.Budgets | None = None
    models: policy_api.ModelPolicy | None = None
    namespace_budgets: clusterpolicy_api.NamespaceBudgets | None = None


@dataclasses.dataclass(frozen=True)
class PolicySet:
    """Everything read before one call that decides which rules and budgets apply."""

    policies: tuple[policy_api.Policy, ...] = ()
    cluster_policies: tuple[clusterpolicy_api.ClusterPolicy, ...] = ()
    namespace_labels: Mapping[str, str] | None = None
    """The Run's namespace's labels when its attempt was created; None: not known."""
    unreadable: str | None = None
    """Why the ClusterPolicies could not be read, if they could not: every call is denied."""
    namespace_tokens: int = 0
    """Tokens the namespace's other Agents used within the hour (their ``status.usage``)."""
    namespace_tool_calls: int = 0
    """Tool calls the namespace's other Agents made within the hour."""


def as_set(policies: PolicySet | Sequence[policy_api.Policy]) -> PolicySet:
    """``policies`` as a PolicySet: a plain sequence is the namespace's Policies alone."""
    if isinstance(policies, PolicySet):
        return policies
    return PolicySet(policies=tuple(policies))


def selects(selector: common.LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches ``labels``; unset or empty selects everything."""
    return selector is None or selector.matches(labels)


def _empty(selector: common.LabelSelector | None) -> bool:
    return selector is None or not (selector.match_labels or selector.match_expressions)


def sources(agent: agent_api.Agent, policy_set: PolicySet) -> list[Source]:
    """What governs ``agent``: the selecting ClusterPolicies, then the selecting Policies."""
    if policy_set.unreadable is not None:
        raise Undecidable(f"ClusterPolicies could not be read: {policy_set.unreadable}")
    labels = agent.metadata.labels or {}
    chosen: list[Source] = []
    for cluster in sorted(policy_set.cluster_policies, key=lambda p: p.metadata.name or ""):
        spec = cluster.spec
        if policy_set.namespace_labels is None:
            if not _empty(spec.namespace_selector):
                raise Undecidable(
                    f"ClusterPolicy {cluster.metadata.name} selects namespaces by label and "
                    "this attempt was started without its namespace's labels"
                )
        elif not selects(spec.namespace_selector, policy_set.namespace_labels):
            continue
        if not selects(spec.agent_selector, labels):
            continue
        chosen.append(
            Source(
                f"{CLUSTER_PREFIX}{cluster.metadata.name}",
                spec.rules,
                spec.budgets,
                spec.models,
                spec.namespace_budgets,
            )
        )
    for policy in sorted(policy_set.policies, key=lambda p: p.metadata.name or ""):
        if selects(policy.spec.agent_selector, labels):
            spec_ = policy.spec
            chosen.append(
                Source(policy.metadata.name or "", spec_.rules, spec_.budgets, spec_.models)
            )
    return chosen
