"""The Policy Kind: governance the runner evaluates before every tool call, deny by default.

A tool call runs only if the Agent lists the Tool, some rule allows it, no matching rule denies
it, a required approval was given, budgets hold and the arguments validate. Across all
Policies that select an Agent, Deny beats RequireApproval beats Allow.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

import pydantic

from bosun.api import common

__all__ = [
    "KIND",
    "TOOL_GLOB_PATTERN",
    "Action",
    "Budgets",
    "ModelGlob",
    "ModelPolicy",
    "Policy",
    "PolicyRule",
    "PolicySpec",
    "PolicyStatus",
    "ToolGlob",
]

# A tool-name glob: name characters, `*`, `?` and bracket classes such as `[a-c]` or `[!x]`.
TOOL_GLOB_PATTERN = r"^([a-z0-9*?-]|\[!?[a-z0-9-]+\])+$"

ToolGlob = Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=TOOL_GLOB_PATTERN)]
ModelGlob = Annotated[str, pydantic.Field(min_length=1, max_length=256, pattern=r"^[^\s]+$")]

Action = Literal["Allow", "Deny", "RequireApproval"]


class PolicyRule(common.Model):
    """Decides tool calls whose tool name matches one of `tools` and whose `when` holds."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "!has(self.approvalTimeoutSeconds) || self.action == 'RequireApproval'",
                "approvalTimeoutSeconds is only allowed when action is RequireApproval",
                field_path=".approvalTimeoutSeconds",
                reason="FieldValueForbidden",
            )
        )
    )

    name: common.DNSLabel | None = None
    """Name of the rule, recorded in the audit trail of every decision it makes."""
    tools: list[ToolGlob] = pydantic.Field(min_length=1, max_length=64)
    """Globs over Tool names: `*` matches any run of characters, `?` one character,
    `[a-c]` or `[!x]` a class. `*` matches every tool."""
    when: str | None = pydantic.Field(default=None, min_length=1, max_length=4096)
    """Optional CEL expression that must be true for the rule to match, over `args` (the
    call's arguments), `agent` (the Agent object) and `run` (the Run object), such as
    `double(args.amount) > 100.0`. An expression that fails to evaluate denies the call."""
    action: Action
    """`Allow` the call, `Deny` it, or pause the Run until a human approves it
    (`RequireApproval`)."""
    approval_timeout_seconds: int | None = pydantic.Field(default=None, ge=60, le=604_800)
    """How long a RequireApproval pause waits for a decision before the call is denied,
    in seconds. Unset: 86400 (one day)."""
    message: str | None = pydantic.Field(default=None, max_length=1024)
    """Explanation given to the model and recorded when this rule denies a call."""

    @pydantic.model_validator(mode="after")
    def _timeout_needs_approval(self) -> Self:
        if self.approval_timeout_seconds is not None and self.action != "RequireApproval":
            raise ValueError(
                "approvalTimeoutSeconds is only allowed when action is RequireApproval"
            )
        return self


class Budgets(common.Model):
    """Rolling one-hour budgets for each selected Agent, counted across all its Runs (the
    Agent's `status.usage`); a call that would exceed one is not made."""

    tokens_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most model tokens (input plus output) per hour; once reached, the next model call of
    any Run of the Agent is denied and that Run fails. Unset: no limit."""
    tool_calls_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most tool calls per hour; a call beyond it is denied and returned to the model.
    Unset: no limit."""
    runs_per_hour: int | None = pydantic.Field(default=None, ge=0)
    """Most Runs started per hour; further Runs stay queued with reason BudgetExceeded until
    the window has room. Retries of a started Run do not count. Unset: no limit."""


class ModelPolicy(common.Model):
    """With several Policies selecting one Agent, its model must be allowed by each of them
    that lists models."""

    allowed: list[ModelGlob] = pydantic.Field(min_length=1, max_length=64)
    """Globs over model names (`*` and `?`); an Agent whose model matches none is not
    Ready and its Runs fail."""


class PolicySpec(common.Model):
    """Several Policies may select one Agent: across all of them, Deny beats RequireApproval
    beats Allow."""

    agent_selector: common.LabelSelector | None = None
    """Labels of the Agents in this namespace the Policy governs. Empty or unset: every Agent
    in the namespace."""
    rules: list[PolicyRule] = pydantic.Field(default_factory=list, max_length=128)
    """Rules deciding tool calls. A call no rule allows is denied."""
    budgets: Budgets | None = None
    """Hourly budgets for each selected Agent."""
    models: ModelPolicy | None = None
    """Models the selected Agents may use. Unset: any model."""


class PolicyStatus(common.Status):
    """The observed state of a Policy; Ready is False while a `when` expression does not
    compile."""

    rule_count: int | None = pydantic.Field(default=None, ge=0)
    """Number of rules, for `kubectl get`."""


class Policy(common.Resource):
    """Governance for tool calls: which Agents it covers, rules, budgets and allowed models."""

    kind: Literal["Policy"] = "Policy"
    """Kind of the object: Policy."""
    spec: PolicySpec
    """Which Agents the Policy governs and how."""
    status: PolicyStatus = pydantic.Field(default_factory=PolicyStatus)
    """What the operator observed: whether every rule compiles."""


KIND = common.KindInfo(
    model=Policy,
    plural="policies",
    short_names=("bpol",),
    columns=(
        common.PrinterColumn("Rules", ".status.ruleCount", "integer", "Number of rules"),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
)
