"""Hourly budgets across Runs: what each Agent consumed in the last hour, and runsPerHour.

A Run's own RBAC sees only itself, so the operator is the accountant. From the Runs in its
store it publishes each Agent's consumption over the rolling hour in ``status.usage``: Runs
started, tokens and tool calls. A Run's tokens and tool calls count while it is unfinished and
for one hour after it finished (its whole usage: a Run's status has no finer timeline, so this
errs on the side of counting too much). Unfinished Runs are listed with their share, so a
runner adds its own latest figures to everyone else's instead of counting itself twice; the
runner checks ``tokensPerHour`` and ``toolCallsPerHour`` against that sum before each call.
``runsPerHour`` is enforced here, at admission: a Run's first attempt starts only while fewer
Runs of its Agent started within the hour than every selecting Policy and ClusterPolicy allows,
and fewer Runs of its namespace than every selecting ClusterPolicy's ``namespaceBudgets``
allows (``RunsBudgets``). A namespace whose labels the operator has not seen counts as selected
by every ClusterPolicy (fail closed: its Runs wait rather than overrun a budget).

The figures are as fresh as the operator's last look (``BOSUN_USAGE_INTERVAL_SECONDS``): Runs
of one Agent running at the same moment can together pass a token or tool-call budget by what
they use within that interval. Deleting a Run removes its usage from the count.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from bosun import contract, kube
from bosun.api import agent as agent_api
from bosun.api import common
from bosun.controller import conditions, runstatus
from bosun.controller import store as store_mod

__all__ = [
    "WINDOW",
    "Obj",
    "RunsBudget",
    "RunsBudgets",
    "Tally",
    "UsageReconciler",
    "namespace_runs_budget",
    "over_budget",
    "runs_budget",
    "started_within",
    "tally",
]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]
WINDOW = datetime.timedelta(seconds=agent_api.USAGE_WINDOW_SECONDS)


@dataclasses.dataclass
class Tally:
    """One Agent's consumption within the window ending at ``now``."""

    runs: int = 0
    tokens: int = 0
    tool_calls: int = 0
    active: list[Obj] = dataclasses.field(default_factory=list)
    next_change: datetime.datetime | None = None
    """When a Run next leaves the window (the figures drop then), if any Run is in it."""

    def status(self) -> Obj:
        """The ``status.usage`` object, without its ``updateTime``."""
        return {
            "windowSeconds": int(WINDOW.total_seconds()),
            "runs": self.runs,
            "tokens": self.tokens,
            "toolCalls": self.tool_calls,
            "activeRuns": sorted(self.active, key=lambda entry: entry["name"]),
        }

    def _expires(self, moment: datetime.datetime) -> None:
        leaves = moment + WINDOW
        if self.next_change is None or leaves < self.next_change:
            self.next_change = leaves


def tally(runs: Iterable[Mapping[str, Any]], now: datetime.datetime) -> Tally:
    """Count ``runs`` (all of one Agent) over the hour ending at ``now``."""
    since = now - WINDOW
    result = Tally()
    for run in runs:
        status = run.get("status") or {}
        started = conditions.parse(status.get("startTime"))
        if started is None:
            continue  # never admitted: consumed nothing
        if started > since:
            result.runs += 1
            result._expires(started)
        usage = status.get("usage") or {}
        tokens = int(usage.get("totalTokens") or 0)
        tool_calls = int(usage.get("toolCalls") or 0)
        if status.get("phase") in runstatus.TERMINAL_PHASES:
            finished = conditions.parse(status.get("completionTime"))
            if finished is None or finished <= since:
                continue
            result._expires(finished)
        elif tokens or tool_calls:
            name = str(run["metadata"]["name"])
            result.active.append({"name": name, "tokens": tokens, "toolCalls": tool_calls})
        result.tokens += tokens
        result.tool_calls += tool_calls
    return result


@dataclasses.dataclass(frozen=True)
class RunsBudget:
    """The tightest ``runsPerHour`` among the Policies and ClusterPolicies selecting one Agent
    (or, with ``namespace``, among the ClusterPolicies budgeting its namespace)."""

    limit: int
    policy: str
    kind: str = "Policy"
    """Kind of the object that sets it: Policy or ClusterPolicy."""
    namespace: str | None = None
    """The namespace, for a ClusterPolicy's ``namespaceBudgets.runsPerHour``."""


def runs_budget(
    agent: Mapping[str, Any],
    policies: Iterable[Mapping[str, Any]],
    cluster_policies: Iterable[Mapping[str, Any]] = (),
    namespace_labels: Mapping[str, str] | None = None,
) -> RunsBudget | None:
    """The smallest ``budgets.runsPerHour`` of the Policies in the Agent's namespace and of the
    ClusterPolicies (selecting its namespace, whose labels are ``namespace_labels``: None when
    unknown) that select it; None when none sets one. A selector that cannot be read selects
    (fail closed)."""
    namespace = agent["metadata"].get("namespace")
    labels = agent["metadata"].get("labels") or {}
    best: RunsBudget | None = None
    for policy in sorted(policies, key=lambda p: str(p["metadata"]["name"])):
        if policy["metadata"].get("namespace") != namespace:
            continue
        spec = policy.get("spec") or {}
        limit = (spec.get("budgets") or {}).get("runsPerHour")
        if limit is None or not _selects(spec.get("agentSelector"), labels):
            continue
        if best is None or int(limit) < best.limit:
            best = RunsBudget(int(limit), str(policy["metadata"]["name"]))
    for cluster in _selecting(cluster_policies, namespace_labels):
        spec = cluster.get("spec") or {}
        limit = (spec.get("budgets") or {}).get("runsPerHour")
        if limit is None or not _selects(spec.get("agentSelector"), labels):
            continue
        if best is None or int(limit) < best.limit:
            best = RunsBudget(int(limit), str(cluster["metadata"]["name"]), "ClusterPolicy")
    return best


def namespace_runs_budget(
    namespace: str,
    cluster_policies: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, str] | None,
) -> RunsBudget | None:
    """The smallest ``namespaceBudgets.runsPerHour`` of the ClusterPolicies selecting the
    namespace (labels ``namespace_labels``, None when unknown); None when none sets one."""
    best: RunsBudget | None = None
    for cluster in _selecting(cluster_policies, namespace_labels):
        limit = ((cluster.get("spec") or {}).get("namespaceBudgets") or {}).get("runsPerHour")
        if limit is not None and (best is None or int(limit) < best.limit):
            name = str(cluster["metadata"]["name"])
            best = RunsBudget(int(limit), name, "ClusterPolicy", namespace)
    return best


def _selecting(
    cluster_policies: Iterable[Mapping[str, Any]], namespace_labels: Mapping[str, str] | None
) -> list[Mapping[str, Any]]:
    """The ClusterPolicies whose namespaceSelector matches (all of them for unknown labels), in
    name order."""
    chosen = [
        c
        for c in cluster_policies
        if namespace_labels is None
        or _selects((c.get("spec") or {}).get("namespaceSelector"), namespace_labels)
    ]
    return sorted(chosen, key=lambda c: str(c["metadata"]["name"]))


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return True
    try:
        return common.LabelSelector.model_validate(selector).matches(labels)
    except pydantic.ValidationError:
        return True


def started_within(start_times: Iterable[str], now: datetime.datetime) -> list[datetime.datetime]:
    """The start times (status.startTime stamps) within the hour ending at ``now``, oldest
    first."""
    since = now - WINDOW
    moments = (conditions.parse(stamp) for stamp in start_times)
    return sorted(moment for moment in moments if moment is not None and moment > since)


def over_budget(budget: RunsBudget, agent: str, starts: list[datetime.datetime]) -> tuple[str, str]:
    """Why a Run waits for ``runsPerHour``: for its condition (the same while the budget stays
    spent, so held Runs are not rewritten at every start) and for its Event, which also names
    when the next Run may start."""
    whose = f"in namespace {budget.namespace}" if budget.namespace else f"of Agent {agent}"
    message = (
        f"{budget.kind} {budget.policy} allows {budget.limit} Runs {whose} per hour, "
        "and that many started within the last hour"
    )
    if not starts or budget.limit <= 0:
        return message, message
    slot = starts[len(starts) - budget.limit] + WINDOW
    return message, f"{message}; the next may start at {conditions.stamp(slot)}"


class RunsBudgets:
    """The ``runsPerHour`` windows of one admission pass: per Agent and per namespace, each
    filled from the Runs' start times and by every Run this pass admits."""

    def __init__(
        self,
        start_times: Mapping[store_mod.Key, Sequence[str]],
        store: store_mod.Store,
        now: datetime.datetime,
    ) -> None:
        self._starts = start_times
        self._store = store
        self._now = now
        self._agents: dict[store_mod.Key, tuple[RunsBudget, list[datetime.datetime]] | None] = {}
        self._namespaces: dict[str, tuple[RunsBudget, list[datetime.datetime]] | None] = {}

    def _labels(self, namespace: str) -> Mapping[str, str] | None:
        found = self._store.namespaces.get(("", namespace))
        return None if found is None else dict(found["metadata"].get("labels") or {})

    def _windows(
        self, agent: Mapping[str, Any]
    ) -> list[tuple[RunsBudget, list[datetime.datetime]]]:
        key = store_mod.key_of(agent)
        namespace = key[0]
        clusters = self._store.clusterpolicies.values()
        if key not in self._agents:
            labels = self._labels(namespace)
            budget = runs_budget(agent, self._store.policies.values(), clusters, labels)
            self._agents[key] = (
                None
                if budget is None
                else (budget, started_within(self._starts.get(key, ()), self._now))
            )
        if namespace not in self._namespaces:
            budget = namespace_runs_budget(namespace, clusters, self._labels(namespace))
            stamps = [s for k, times in self._starts.items() if k[0] == namespace for s in times]
            self._namespaces[namespace] = (
                None if budget is None else (budget, started_within(stamps, self._now))
            )
        return [w for w in (self._agents[key], self._namespaces[namespace]) if w is not None]

    def take(self, agent: Mapping[str, Any]) -> tuple[str, str] | None:
        """Take a slot for a first attempt of a Run of ``agent``: None when every window has
        room (the slot is then counted, even if capacity stops the Run later in the pass, so
        the Runs behind it stay held), else (condition message, Event message) of the first
        spent budget."""
        windows = self._windows(agent)
        for budget, starts in windows:
            if len(starts) >= budget.limit:
                return over_budget(budget, str(agent["metadata"]["name"]), starts)
        for _, starts in windows:
            starts.append(self._now)
        return None


class UsageReconciler:
    """Publishes ``status.usage`` of Agents, writing only when a figure changed."""

    def __init__(self, store: store_mod.Store, rest: kube.Rest) -> None:
        self.store = store
        self.rest = rest

    def reconcile(self, key: store_mod.Key) -> float | None:
        """Bring one Agent's usage up to date; return in how many seconds it changes by
        itself (a Run leaving the window), if it will."""
        agent = self.store.agents.get(key)
        if agent is None:
            return None
        now = conditions.now()
        counted = tally(self.store.runs_of(key), now)
        desired = counted.status()
        published = (agent.get("status") or {}).get("usage")
        current = dict(published or {})
        current.pop("updateTime", None)
        current.setdefault("activeRuns", [])
        idle = counted.runs == counted.tokens == counted.tool_calls == 0
        if current != desired and (published or not idle):
            self._write(agent, {**desired, "updateTime": conditions.stamp(now)})
        if counted.next_change is None:
            return None
        return max(1.0, (counted.next_change - now).total_seconds() + 0.5)

    def _write(self, agent: Obj, usage: Obj) -> None:
        meta = agent["metadata"]
        manager = contract.FIELD_MANAGER_USAGE
        updated = self.rest.apply_status(agent, {"usage": usage}, manager=manager)
        if updated is None:
            return
        self.store.agents.put(updated)
        log.debug(
            "Updated usage agent=%s/%s runs=%d tokens=%d tool_calls=%d",
            meta["namespace"],
            meta["name"],
            usage["runs"],
            usage["tokens"],
            usage["toolCalls"],
        )
