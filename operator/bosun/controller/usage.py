"""Hourly budgets across Runs: what each Agent consumed in the last hour, and runsPerHour.

A Run's own RBAC sees only itself, so the operator is the accountant. From the Runs in its
store it publishes each Agent's consumption over the rolling hour in ``status.usage``: Runs
started, tokens and tool calls. A Run's tokens and tool calls count while it is unfinished and
for one hour after it finished (its whole usage: a Run's status has no finer timeline, so this
errs on the side of counting too much). Unfinished Runs are listed with their share, so a
runner adds its own latest figures to everyone else's instead of counting itself twice; the
runner checks ``tokensPerHour`` and ``toolCallsPerHour`` against that sum before each call.
``runsPerHour`` is enforced here, at admission: a Run's first attempt starts only while fewer
Runs of its Agent started within the hour than every selecting Policy allows.

The figures are as fresh as the operator's last look (``BOSUN_USAGE_INTERVAL_SECONDS``): Runs
of one Agent running at the same moment can together pass a token or tool-call budget by what
they use within that interval. Deleting a Run removes its usage from the count.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
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
    "Tally",
    "UsageReconciler",
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
    """The tightest ``runsPerHour`` among the Policies selecting one Agent."""

    limit: int
    policy: str


def runs_budget(
    agent: Mapping[str, Any], policies: Iterable[Mapping[str, Any]]
) -> RunsBudget | None:
    """The smallest ``budgets.runsPerHour`` of the Policies in the Agent's namespace that select
    it; None when none sets one. A selector that cannot be read selects (fail closed)."""
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
    return best


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
    message = (
        f"Policy {budget.policy} allows {budget.limit} Runs of Agent {agent} per hour, "
        "and that many started within the last hour"
    )
    if not starts or budget.limit <= 0:
        return message, message
    slot = starts[len(starts) - budget.limit] + WINDOW
    return message, f"{message}; the next may start at {conditions.stamp(slot)}"


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
