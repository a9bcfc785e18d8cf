"""The ClusterPolicy Kind: the platform team's guard rails over namespaces and their Agents.

A ClusterPolicy is cluster-scoped and admin-owned: it selects namespaces by their labels (which
tenants cannot change) and, optionally, Agents by theirs, and its rules, allowed models and
per-Agent budgets are evaluated together with every namespace Policy in the same decision:
Deny beats RequireApproval beats Allow across all of them, deny by default. Its
`namespaceBudgets` count across every Agent of each selected namespace.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from bosun.api import common, policy

__all__ = [
    "KIND",
    "ClusterPolicy",
    "ClusterPolicySpec",
    "ClusterPolicyStatus",
    "NamespaceBudgets",
]


class NamespaceBudgets(common.Model):
    """Rolling one-hour budgets for each selected namespace, counted across every Agent in it
    (the sum of their `status.usage`); a call or Run that would exceed one is not made."""

    tokens_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most model tokens (input plus output) all the namespace's Agents may use per hour; once
    reached, the next model call of any Run in the namespace is denied and that Run fails.
    Unset: no limit."""
    tool_calls_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most tool calls all the namespace's Agents may make per hour; a call beyond it is denied
    and returned to the model. Unset: no limit."""
    runs_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most Runs started in the namespace per hour; further Runs stay queued with reason
    BudgetExceeded until the window has room. Retries of a started Run do not count.
    Unset: no limit."""


class ClusterPolicySpec(common.Model):
    """Which namespaces and Agents the ClusterPolicy governs, and how. Evaluated with the
    namespace's Policies: Deny beats RequireApproval beats Allow across all of them."""

    namespace_selector: common.LabelSelector | None = None
    """Labels of the namespaces the ClusterPolicy governs (every namespace carries
    `kubernetes.io/metadata.name`). Empty or unset: every namespace. A relabeled namespace is
    governed accordingly from the next attempt of a Run."""
    agent_selector: common.LabelSelector | None = None
    """Labels of the Agents in the selected namespaces it governs. Empty or unset: every Agent.
    Agent labels are written by tenants: select by namespace for a rail they cannot escape."""
    rules: list[policy.PolicyRule] = pydantic.Field(default_factory=list, max_length=128)
    """Rules deciding tool calls, as in a Policy. A Deny here beats an Allow of any Policy."""
    budgets: policy.Budgets | None = None
    """Hourly budgets for each selected Agent, as in a Policy."""
    namespace_budgets: NamespaceBudgets | None = None
    """Hourly budgets for each selected namespace, across all its Agents."""
    models: policy.ModelPolicy | None = None
    """Models the selected Agents may use. Unset: any model."""


class ClusterPolicyStatus(common.Status):
    """The observed state of a ClusterPolicy; Ready is False while a `when` expression does not
    compile."""

    rule_count: int | None = pydantic.Field(default=None, ge=0)
    """Number of rules, for `kubectl get`."""


class ClusterPolicy(common.Resource):
    """Cluster-wide governance for tool and model calls, managed by administrators: which
    namespaces and Agents it covers, rules, budgets per Agent and per namespace, and allowed
    models."""

    kind: Literal["ClusterPolicy"] = "ClusterPolicy"
    """Kind of the object: ClusterPolicy."""
    spec: ClusterPolicySpec
    """Which namespaces and Agents the ClusterPolicy governs and how."""
    status: ClusterPolicyStatus = pydantic.Field(default_factory=ClusterPolicyStatus)
    """What the operator observed: whether every rule compiles."""


KIND = common.KindInfo(
    model=ClusterPolicy,
    plural="clusterpolicies",
    short_names=("bcpol",),
    columns=(
        common.PrinterColumn("Rules", ".status.ruleCount", "integer", "Number of rules"),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
    scope="Cluster",
)
