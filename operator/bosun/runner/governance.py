"""Governance: the pure decision whether a tool call or a model call may happen.

Deny by default. A tool call runs only if the Agent lists the Tool, the Tool exists, the
arguments validate, no matching rule denies it, some matching rule allows it (or asks for an
approval, which ``approvals`` then settles), and the Agent's limits and every selecting
Policy's and ClusterPolicy's budgets (per Agent and per namespace) still hold for one more
call. Across all Policies that select the Agent and all ClusterPolicies that select its
namespace and it (``governing``), Deny beats RequireApproval beats Allow. A rule's ``when`` is
CEL over ``args``, ``agent`` and ``run``; an expression that fails makes its rule deny. Any
other error while deciding is a denial too (fail closed), and so is a set of ClusterPolicies
that could not be read. Every ``Decision`` names the policy (``ClusterPolicy/<name>`` for a
ClusterPolicy) and rule that made it.

Nothing here does I/O: callers read Policies and ClusterPolicies fresh before each call and
pass them in.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from bosun import cel
from bosun.api import agent as agent_api
from bosun.api import common
from bosun.api import policy as policy_api
from bosun.api import tool as tool_api
from bosun.runner import governing

__all__ = [
    "APPROVAL_REQUIRED",
    "BUDGET_EXCEEDED",
    "CEL_ERROR",
    "GOVERNANCE_ERROR",
    "INVALID_ARGUMENTS",
    "LIMIT_REACHED",
    "MODEL_CALL_ALLOWED",
    "MODEL_NOT_ALLOWED",
    "NO_RULE_ALLOWS",
    "POLICY_ALLOWED",
    "POLICY_DENIED",
    "TOOL_NOT_FOUND",
    "TOOL_NOT_LISTED",
    "Action",
    "Counters",
    "Decision",
    "counters",
    "decide_model_call",
    "decide_tool_call",
    "namespace_usage",
    "other_runs_usage",
    "rule_label",
    "selected_policies",
    "selects",
]

Action = Literal["Allow", "Deny", "RequireApproval"]
_RANK: dict[str, int] = {"Allow": 0, "RequireApproval": 1, "Deny": 2}

# Reasons (CamelCase, as in conditions and Events).
TOOL_NOT_LISTED = "ToolNotListed"
TOOL_NOT_FOUND = "ToolNotFound"
INVALID_ARGUMENTS = "InvalidArguments"
POLICY_DENIED = "PolicyDenied"
POLICY_ALLOWED = "PolicyAllowed"
APPROVAL_REQUIRED = "ApprovalRequired"
NO_RULE_ALLOWS = "NoRuleAllows"
CEL_ERROR = "CELError"
LIMIT_REACHED = "LimitReached"
BUDGET_EXCEEDED = "BudgetExceeded"
MODEL_NOT_ALLOWED = "ModelNotAllowed"
GOVERNANCE_ERROR = "GovernanceError"
MODEL_CALL_ALLOWED = "ModelCallAllowed"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The verdict on one call and who gave it."""

    action: Action
    reason: str
    message: str
    policy: str | None = None
    rule: str | None = None
    approval_timeout_seconds: int | None = None

    @property
    def allowed(self) -> bool:
        return self.action == "Allow"

    @property
    def denied(self) -> bool:
        return self.action == "Deny"


@dataclasses.dataclass(frozen=True)
class Counters:
    """What the Run has consumed in total, and what its Agent consumed within the last hour
    across all its Runs (this one included)."""

    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0
    tool_calls_last_hour: int = 0
    tokens_last_hour: int = 0


def other_runs_usage(
    usage: agent_api.AgentUsage | None, run_name: str, now: datetime.datetime
) -> tuple[int, int]:
    """Tokens and tool calls the Agent's other Runs used within the hour, from the Agent's
    ``status.usage`` (the operator's count, which lists this Run's share while it runs).

    Figures last changed more than a window ago (the operator has been away) keep only the
    unfinished Runs' shares: every finished Run they counted has left the window since."""
    if usage is None:
        return 0, 0
    changed = usage.update_time
    if changed is not None and now - changed > datetime.timedelta(seconds=usage.window_seconds):
        others = [entry for entry in usage.active_runs if entry.name != run_name]
        return sum(e.tokens for e in others), sum(e.tool_calls for e in others)
    mine = [entry for entry in usage.active_runs if entry.name == run_name]
    tokens = usage.tokens - sum(e.tokens for e in mine)
    tool_calls = usage.tool_calls - sum(e.tool_calls for e in mine)
    return max(0, tokens), max(0, tool_calls)


def counters(
    usage: Mapping[str, int],
    window: Mapping[str, int],
    published: agent_api.AgentUsage | None,
    run_name: str,
    now: datetime.datetime,
) -> Counters:
    """The counters budgets are checked against: this Run's ``usage`` and hour ``window`` from
    its journal, plus the Agent's other Runs' within the hour from its ``published`` usage."""
    tokens, tool_calls = other_runs_usage(published, run_name, now)
    return Counters(
        model_calls=usage["modelCalls"],
        tool_calls=usage["toolCalls"],
        tokens=usage["totalTokens"],
        tool_calls_last_hour=window["toolCalls"] + tool_calls,
        tokens_last_hour=window["tokens"] + tokens,
    )


def namespace_usage(
    agents: Sequence[tuple[str, agent_api.AgentUsage | None]],
    agent_name: str,
    run_name: str,
    now: datetime.datetime,
) -> tuple[int, int]:
    """Tokens and tool calls the namespace's Agents other than ``agent_name`` used within the
    hour, from their (name, ``status.usage``) pairs: the Agent's own share is in ``Counters``."""
    tokens = tool_calls = 0
    for name, published in agents:
        if name == agent_name:
            continue
        used = other_runs_usage(published, run_name, now)
        tokens, tool_calls = tokens + used[0], tool_calls + used[1]
    return tokens, tool_calls


def rule_label(index: int, rule: policy_api.PolicyRule) -> str:
    return rule.name or f"rules[{index}]"


def selects(selector: common.LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches ``labels``; unset or empty selects everything."""
    return governing.selects(selector, labels)


def selected_policies(
    agent: agent_api.Agent, policies: Sequence[policy_api.Policy]
) -> list[policy_api.Policy]:
    """The Policies that govern ``agent``, in name order (so decisions are deterministic)."""
    labels = agent.metadata.labels or {}
    chosen = [p for p in policies if selects(p.spec.agent_selector, labels)]
    return sorted(chosen, key=lambda p: p.metadata.name or "")


def _fail_closed(decide: Callable[..., Decision]) -> Callable[..., Decision]:
    def guarded(*args: Any, **kwargs: Any) -> Decision:
        try:
            return decide(*args, **kwargs)
        except governing.Undecidable as err:
            return Decision("Deny", GOVERNANCE_ERROR, f"governance failed: {err}")
        except Exception as err:
            return Decision("Deny", GOVERNANCE_ERROR, f"governance failed: {err!r}")

    guarded.__doc__ = decide.__doc__
    guarded.__name__ = decide.__name__
    return guarded


@_fail_closed
def decide_tool_call(
    *,
    agent: agent_api.Agent,
    policies: governing.PolicySet | Sequence[policy_api.Policy],
    tool_name: str,
    tool: tool_api.Tool | None,
    args: dict[str, Any],
    args_error: str | None,
    counters: Counters,
    context: Mapping[str, Any],
    evaluator: cel.Evaluator,
) -> Decision:
    """Decide one tool call. ``policies`` is what was read (a plain sequence: the namespace's
    Policies alone); ``context`` holds the ``agent`` and ``run`` objects for CEL;
    ``args_error`` is why the arguments did not parse or validate, if they did not."""
    if tool_name not in agent.spec.tools:
        return Decision(
            "Deny",
            TOOL_NOT_LISTED,
            f"tool {tool_name!r} is not in the Agent's tools",
            rule="Agent.spec.tools",
        )
    if tool is None:
        return Decision(
            "Deny", TOOL_NOT_FOUND, f"Tool {tool_name!r} does not exist", rule="Agent.spec.tools"
        )
    if args_error is not None:
        return Decision("Deny", INVALID_ARGUMENTS, args_error, rule="Tool.spec.inputSchema")
    policy_set = governing.as_set(policies)
    sources = governing.sources(agent, policy_set)
    verdict = _rules_verdict(sources, tool_name, args, context, evaluator)
    if verdict.denied:
        return verdict
    limited = _tool_budgets(agent, sources, counters, policy_set)
    return limited or verdict


def _rules_verdict(
    sources: Sequence[governing.Source],
    tool_name: str,
    args: dict[str, Any],
    context: Mapping[str, Any],
    evaluator: cel.Evaluator,
) -> Decision:
    best: Decision | None = None
    values: dict[str, Any] | None = None
    # One decision sees one set of values: an expression repeated across rules runs once.
    seen: dict[str, bool | cel.CELError] = {}
    for source in sources:
        name = source.name
        for index, rule in enumerate(source.rules):
            if not any(fnmatch.fnmatchcase(tool_name, glob) for glob in rule.tools):
                continue
            label = rule_label(index, rule)
            if rule.when is not None:
                if values is None:
                    values = cel.activation({"args": args, **context})
                if rule.when not in seen:
                    try:
                        seen[rule.when] = evaluator.evaluate(rule.when, values)
                    except cel.CELError as err:
                        seen[rule.when] = err
                matched = seen[rule.when]
                if isinstance(matched, cel.CELError):
                    return Decision("Deny", CEL_ERROR, f"when {matched}", name, label)
                if not matched:
                    continue
            candidate = _from_rule(rule, name, label)
            if candidate.denied:
                return candidate
            if best is None or _RANK[candidate.action] > _RANK[best.action]:
                best = candidate
    if best is None:
        return Decision("Deny", NO_RULE_ALLOWS, f"no Policy rule allows tool {tool_name!r}")
    return best


def _from_rule(rule: policy_api.PolicyRule, policy: str | None, label: str) -> Decision:
    if rule.action == "Deny":
        return Decision("Deny", POLICY_DENIED, rule.message or "denied by policy", policy, label)
    if rule.action == "RequireApproval":
        return Decision(
            "RequireApproval",
            APPROVAL_REQUIRED,
            rule.message or "a human must approve this call",
            policy,
            label,
            rule.approval_timeout_seconds,
        )
    return Decision("Allow", POLICY_ALLOWED, rule.message or "allowed by policy", policy, label)


def _tool_budgets(
    agent: agent_api.Agent,
    sources: Sequence[governing.Source],
    counters: Counters,
    policy_set: governing.PolicySet,
) -> Decision | None:
    limits = agent.spec.limits
    cap = limits.max_tool_calls_per_run if limits is not None else None
    if cap is not None and counters.tool_calls + 1 > cap:
        return Decision(
            "Deny",
            LIMIT_REACHED,
            f"the Run may make at most {cap} tool calls",
            rule="Agent.spec.limits.maxToolCallsPerRun",
        )
    for source in sources:
        budgets = source.budgets
        if budgets is None or budgets.tool_calls_per_hour is None:
            continue
        if counters.tool_calls_last_hour + 1 > budgets.tool_calls_per_hour:
            return Decision(
                "Deny",
                BUDGET_EXCEEDED,
                f"the Agent may make at most {budgets.tool_calls_per_hour} tool calls per "
                f"hour and made {counters.tool_calls_last_hour}",
                source.name,
                "budgets.toolCallsPerHour",
            )
    made = counters.tool_calls_last_hour + policy_set.namespace_tool_calls
    for source in sources:
        limit = source.namespace_budgets.tool_calls_per_hour if source.namespace_budgets else None
        if limit is not None and made + 1 > limit:
            return Decision(
                "Deny",
                BUDGET_EXCEEDED,
                f"the namespace's Agents may make at most {limit} tool calls per hour and "
                f"made {made}",
                source.name,
                "namespaceBudgets.toolCallsPerHour",
            )
    return None


@_fail_closed
def decide_model_call(
    *,
    agent: agent_api.Agent,
    policies: governing.PolicySet | Sequence[policy_api.Policy],
    model: str,
    counters: Counters,
) -> Decision:
    """Decide whether the next model call may be made: allowed models, steps, tokens."""
    policy_set = governing.as_set(policies)
    sources = governing.sources(agent, policy_set)
    for source in sources:
        allowed = source.models.allowed if source.models is not None else None
        if allowed is not None and not any(fnmatch.fnmatchcase(model, g) for g in allowed):
            return Decision(
                "Deny",
                MODEL_NOT_ALLOWED,
                f"model {model!r} is not in models.allowed",
                source.name,
                "models.allowed",
            )
    limits = agent.spec.limits
    max_steps = (
        limits.max_steps if limits is not None and limits.max_steps else agent_api.DEFAULT_MAX_STEPS
    )
    if counters.model_calls + 1 > max_steps:
        return Decision(
            "Deny",
            LIMIT_REACHED,
            f"the Run may make at most {max_steps} model calls",
            rule="Agent.spec.limits.maxSteps",
        )
    token_cap = limits.max_tokens_per_run if limits is not None else None
    if token_cap is not None and counters.tokens >= token_cap:
        return Decision(
            "Deny",
            LIMIT_REACHED,
            f"the Run used {counters.tokens} of {token_cap} tokens",
            rule="Agent.spec.limits.maxTokensPerRun",
        )
    for source in sources:
        budgets = source.budgets
        if budgets is None or budgets.tokens_per_hour is None:
            continue
        if counters.tokens_last_hour >= budgets.tokens_per_hour:
            return Decision(
                "Deny",
                BUDGET_EXCEEDED,
                f"the Agent may use at most {budgets.tokens_per_hour} tokens per hour and "
                f"used {counters.tokens_last_hour}",
                source.name,
                "budgets.tokensPerHour",
            )
    used = counters.tokens_last_hour + policy_set.namespace_tokens
    for source in sources:
        limit = source.namespace_budgets.tokens_per_hour if source.namespace_budgets else None
        if limit is not None and used >= limit:
            return Decision(
                "Deny",
                BUDGET_EXCEEDED,
                f"the namespace's Agents may use at most {limit} tokens per hour and used {used}",
                source.name,
                "namespaceBudgets.tokensPerHour",
            )
    return Decision("Allow", MODEL_CALL_ALLOWED, "within limits and budgets")
