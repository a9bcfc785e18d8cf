"""The governance engine: deny by default, precedence, CEL, budgets, limits, fail closed."""

from __future__ import annotations

from typing import Any

import pytest

from bosun import cel
from bosun.api import policy as policy_api
from bosun.runner import governance

from . import fakes

EVALUATOR = cel.Evaluator()
ALLOW_ALL = fakes.policy("allow", [{"name": "all", "tools": ["*"], "action": "Allow"}])


def _decide(
    policies: list[policy_api.Policy],
    tool_name: str = "refund",
    args: dict[str, Any] | None = None,
    *,
    tools: list[str] | None = None,
    counters: governance.Counters | None = None,
    args_error: str | None = None,
    **agent: Any,
) -> governance.Decision:
    listed = tools if tools is not None else ["refund", "charge", "lookup"]
    return governance.decide_tool_call(
        agent=fakes.agent(listed, **agent),
        policies=policies,
        tool_name=tool_name,
        tool=fakes.tool(tool_name),
        args=args or {},
        args_error=args_error,
        counters=counters or governance.Counters(),
        context={"agent": fakes.agent_obj(listed, **agent), "run": fakes.run_obj()},
        evaluator=EVALUATOR,
    )


def test_no_policy_means_no_call() -> None:
    decision = _decide([])
    assert (decision.action, decision.reason) == ("Deny", "NoRuleAllows")


def test_an_allow_rule_allows_and_is_named() -> None:
    decision = _decide([ALLOW_ALL])
    assert (decision.action, decision.policy, decision.rule) == ("Allow", "allow", "all")


def test_an_unlisted_tool_is_denied_even_when_a_policy_allows_everything() -> None:
    decision = _decide([ALLOW_ALL], "secret")
    assert (decision.action, decision.reason, decision.rule) == (
        "Deny",
        "ToolNotListed",
        "Agent.spec.tools",
    )


def test_a_missing_tool_and_invalid_arguments_are_denied() -> None:
    missing = governance.decide_tool_call(
        agent=fakes.agent(["refund"]),
        policies=[ALLOW_ALL],
        tool_name="refund",
        tool=None,
        args={},
        args_error=None,
        counters=governance.Counters(),
        context={},
        evaluator=EVALUATOR,
    )
    assert missing.reason == "ToolNotFound"
    assert _decide([ALLOW_ALL], args_error="amount: bad").reason == "InvalidArguments"


def test_deny_beats_require_approval_beats_allow_across_policies() -> None:
    allow = fakes.policy("a", [{"tools": ["*"], "action": "Allow"}])
    ask = fakes.policy(
        "b",
        [
            {
                "name": "ask",
                "tools": ["ref*"],
                "action": "RequireApproval",
                "approvalTimeoutSeconds": 600,
            }
        ],
    )
    deny = fakes.policy("c", [{"name": "no", "tools": ["refund"], "action": "Deny"}])
    assert _decide([allow, ask]).action == "RequireApproval"
    assert _decide([allow, ask]).approval_timeout_seconds == 600
    assert (_decide([allow, ask, deny]).action, _decide([deny, allow]).rule) == ("Deny", "no")
    assert _decide([ask, allow]).rule == "ask"
    assert _decide([allow]).rule == "rules[0]"


def test_globs_select_tools() -> None:
    policies = [fakes.policy("p", [{"tools": ["ch?rge", "[l]ook*"], "action": "Allow"}])]
    assert _decide(policies, "charge").allowed
    assert _decide(policies, "lookup").allowed
    assert _decide(policies, "refund").denied


def test_cel_when_matches_on_arguments_agent_and_run() -> None:
    policies = [
        fakes.policy(
            "p",
            [
                {
                    "name": "big",
                    "tools": ["refund"],
                    "when": "double(args.amount) > 100.0",
                    "action": "RequireApproval",
                },
                {
                    "name": "team",
                    "tools": ["refund"],
                    "when": "agent.metadata.labels.team == 'billing' && run.spec.input == 'go'",
                    "action": "Allow",
                },
            ],
        )
    ]
    assert _decide(policies, args={"amount": 500}, labels={"team": "billing"}).rule == "big"
    assert _decide(policies, args={"amount": 5}, labels={"team": "billing"}).rule == "team"
    assert _decide(policies, args={"amount": 5}, labels={"team": "sales"}).reason == (
        "NoRuleAllows"
    )


@pytest.mark.parametrize(
    "expression", ["args.missing == 1", "args.amount", "1 +", "args.amount / 0 > 1"]
)
def test_a_failing_cel_expression_denies_and_names_its_rule(expression: str) -> None:
    policies = [
        ALLOW_ALL,
        fakes.policy(
            "strict", [{"name": "guard", "tools": ["*"], "when": expression, "action": "Deny"}]
        ),
    ]
    decision = _decide(policies, args={"amount": 5})
    assert (decision.action, decision.reason, decision.policy, decision.rule) == (
        "Deny",
        "CELError",
        "strict",
        "guard",
    )


def test_agent_selector_limits_which_policies_apply() -> None:
    scoped = fakes.policy(
        "scoped",
        [{"tools": ["*"], "action": "Allow"}],
        agentSelector={
            "matchLabels": {"team": "billing"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["prod"]}],
        },
    )
    assert _decide([scoped], labels={"team": "billing"}).allowed
    assert _decide([scoped], labels={"team": "billing", "tier": "prod"}).denied
    assert _decide([scoped], labels={"team": "sales"}).denied


def test_budgets_and_limits_deny_the_call_that_would_cross_them() -> None:
    hourly = fakes.policy(
        "budget", [{"tools": ["*"], "action": "Allow"}], budgets={"toolCallsPerHour": 2}
    )
    assert _decide([hourly], counters=governance.Counters(tool_calls_last_hour=1)).allowed
    over = _decide([hourly], counters=governance.Counters(tool_calls_last_hour=2))
    assert (over.reason, over.policy, over.rule) == (
        "BudgetExceeded",
        "budget",
        "budgets.toolCallsPerHour",
    )
    capped = _decide(
        [ALLOW_ALL], counters=governance.Counters(tool_calls=3), limits={"maxToolCallsPerRun": 3}
    )
    assert (capped.reason, capped.rule) == ("LimitReached", "Agent.spec.limits.maxToolCallsPerRun")


def test_a_denying_rule_wins_before_budgets_are_considered() -> None:
    policies = [
        fakes.policy(
            "p", [{"name": "no", "tools": ["*"], "action": "Deny"}], budgets={"toolCallsPerHour": 0}
        )
    ]
    assert _decide(policies).reason == "PolicyDenied"


def test_any_error_while_deciding_is_a_denial() -> None:
    class Broken(cel.Evaluator):
        def evaluate(self, source: str, values: Any) -> bool:
            raise RuntimeError("boom")

    decision = governance.decide_tool_call(
        agent=fakes.agent(["refund"]),
        policies=[fakes.policy("p", [{"tools": ["*"], "when": "true", "action": "Allow"}])],
        tool_name="refund",
        tool=fakes.tool("refund"),
        args={},
        args_error=None,
        counters=governance.Counters(),
        context={},
        evaluator=Broken(),
    )
    assert (decision.action, decision.reason) == ("Deny", "GovernanceError")


def test_model_calls_respect_allowed_models_steps_tokens_and_hourly_tokens() -> None:
    def decide(
        counters: governance.Counters,
        model: str = "gpt-4o-mini",
        policies: list[policy_api.Policy] | None = None,
    ) -> governance.Decision:
        return governance.decide_model_call(
            agent=fakes.agent([], limits={"maxSteps": 3, "maxTokensPerRun": 1000}),
            policies=policies or [],
            model=model,
            counters=counters,
        )

    assert decide(governance.Counters(model_calls=2, tokens=999)).allowed
    assert decide(governance.Counters(model_calls=3)).rule == "Agent.spec.limits.maxSteps"
    assert decide(governance.Counters(tokens=1000)).rule == "Agent.spec.limits.maxTokensPerRun"
    models = [
        fakes.policy("models", [], models={"allowed": ["gpt-4o*"]}, budgets={"tokensPerHour": 500})
    ]
    assert decide(governance.Counters(), "gpt-4o-mini", models).allowed
    assert decide(governance.Counters(), "claude-x", models).reason == "ModelNotAllowed"
    assert decide(governance.Counters(tokens_last_hour=500), policies=models).rule == (
        "budgets.tokensPerHour"
    )
    default_steps = governance.decide_model_call(
        agent=fakes.agent([]),
        policies=[],
        model="m",
        counters=governance.Counters(model_calls=20),
    )
    assert default_steps.denied


def test_a_compile_error_says_where_it_is() -> None:
    with pytest.raises(cel.CELError) as caught:
        cel.Evaluator().program("double(args.amount) > > 1")
    assert caught.value.where("double(args.amount) > > 1") == " at line 1, column 23 (near '> 1')"
    assert cel.CELError("x").where("anything") == ""
