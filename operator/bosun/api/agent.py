"""The Agent Kind: which model an agent uses, what it is told, and what it may touch.

An Agent is configuration only; each execution is a Run. The operator reports Ready=False with
a reason while a listed Tool or a referenced Secret is missing.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal, Self

import pydantic

from bosun.api import common

__all__ = [
    "DEFAULT_MAX_OUTPUT_RETRIES",
    "DEFAULT_MAX_STEPS",
    "KIND",
    "MOVED_RUNNER_FIELDS",
    "POOL_NAME_MAX",
    "USAGE_WINDOW_SECONDS",
    "ActiveRunUsage",
    "Agent",
    "AgentSpec",
    "AgentStatus",
    "AgentUsage",
    "Concurrency",
    "History",
    "Limits",
    "ModelSpec",
    "OutputSchema",
    "PoolSpec",
    "PoolStatus",
    "Provider",
    "ResourceRequirements",
    "RunnerSpec",
    "ScriptToolCall",
    "ScriptTurn",
    "Toleration",
]

DEFAULT_MAX_STEPS = 20
"""Model calls per Run when `limits.maxSteps` is unset."""
DEFAULT_MAX_OUTPUT_RETRIES = 2
"""Answers returned to the model for not satisfying `outputSchema`, when
`limits.maxOutputRetries` is unset."""

Provider = Literal["openai", "anthropic", "scripted"]


class ScriptToolCall(common.Model):
    """A tool call the scripted model asks for."""

    tool: common.DNSLabel
    """Name of the Tool to call; the Agent must list it in `tools`."""
    args: common.FreeForm = pydantic.Field(default_factory=dict)
    """Arguments of the call, a JSON object checked against the Tool's inputSchema."""


class ScriptTurn(common.Model):
    """One scripted model reply: either tool calls or a final text reply, never both."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.toolCalls) != has(self.reply)",
                "each script turn needs exactly one of toolCalls or reply",
            )
        )
    )

    tool_calls: list[ScriptToolCall] | None = pydantic.Field(
        default=None, min_length=1, max_length=16
    )
    """Tool calls the model asks for in this turn; their results feed the next turn."""
    reply: str | None = pydantic.Field(default=None, max_length=32768)
    """Final text answer of the model; it ends the Run successfully."""

    @pydantic.model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.tool_calls is None) == (self.reply is None):
            raise ValueError("each script turn needs exactly one of toolCalls or reply")
        return self


class ModelSpec(common.Model):
    """Every provider but scripted needs a name; scripted needs a script and makes no network
    calls."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "self.provider != 'scripted' || has(self.script)",
                "script is required when provider is scripted",
                field_path=".script",
                reason="FieldValueRequired",
            ),
            common.cel(
                "self.provider == 'scripted' || !has(self.script)",
                "script is only allowed when provider is scripted",
                field_path=".script",
                reason="FieldValueForbidden",
            ),
            common.cel(
                "self.provider == 'scripted' || has(self.name)",
                "name is required unless provider is scripted",
                field_path=".name",
                reason="FieldValueRequired",
            ),
        )
    )

    provider: Provider
    """API family: `openai` (any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, LiteLLM),
    `anthropic`, or `scripted` (deterministic replies from `script`, for demos and tests)."""
    name: str | None = pydantic.Field(default=None, min_length=1, max_length=256)
    """Model name as the endpoint knows it, such as `gpt-4o-mini`. Required unless scripted."""
    base_url: str | None = pydantic.Field(
        default=None, alias="baseURL", max_length=2048, pattern=r"^https?://[^\s]+$"
    )
    """Base URL of the API (http or https). Unset: the provider's public endpoint."""
    api_key_secret_ref: common.SecretKeySelector | None = None
    """Secret key holding the API key; injected into the runner, never read through the API."""
    temperature: float | None = pydantic.Field(default=None, ge=0, le=2)
    """Sampling temperature, 0 to 2. Unset: the provider's default."""
    top_p: float | None = pydantic.Field(default=None, ge=0, le=1)
    """Nucleus sampling probability mass, 0 to 1. Unset: the provider's default."""
    max_output_tokens: int | None = pydantic.Field(default=None, ge=1, le=1_000_000)
    """Most tokens the model may produce in one call. Unset: the provider's default."""
    timeout_seconds: int | None = pydantic.Field(default=None, ge=1, le=3600)
    """Timeout of one model call, in seconds; a timed-out call is retried. Unset: 120."""
    script: list[ScriptTurn] | None = pydantic.Field(default=None, min_length=1, max_length=100)
    """Replies of the scripted provider: the n-th model call of a Run returns the n-th turn;
    past the end it returns the last reply (or an empty reply). Only for `scripted`."""

    @pydantic.model_validator(mode="after")
    def _provider_needs(self) -> Self:
        if self.provider == "scripted" and self.script is None:
            raise ValueError("script is required when provider is scripted")
        if self.provider != "scripted" and self.script is not None:
            raise ValueError("script is only allowed when provider is scripted")
        if self.provider != "scripted" and self.name is None:
            raise ValueError("name is required unless provider is scripted")
        return self


class Limits(common.Model):
    """Hard limits on one Run; the runner checks them before each call, not after."""

    max_steps: int | None = pydantic.Field(default=None, ge=1, le=1000)
    """Most model calls in one Run. Unset: 20."""
    max_tokens_per_run: int | None = pydantic.Field(default=None, ge=1, le=100_000_000)
    """Most tokens (input plus output) one Run may use. Unset: no limit."""
    max_tool_calls_per_run: int | None = pydantic.Field(default=None, ge=0, le=10_000)
    """Most tool calls one Run may make. Unset: no limit."""
    run_timeout_seconds: int | None = pydantic.Field(default=None, ge=1, le=604_800)
    """Longest one attempt of a Run may take, in seconds. Unset: no limit."""
    max_output_retries: int | None = pydantic.Field(default=None, ge=0, le=10)
    """How many times a final answer that does not satisfy `outputSchema` goes back to the
    model with the validation errors before the Run fails (`OutputInvalid`). Unset:
    `DEFAULT_MAX_OUTPUT_RETRIES` (2)."""


class Concurrency(common.Model):
    """Runs over the limit wait in the queue, by priority and then age."""

    max_concurrent_runs: int = pydantic.Field(ge=1, le=1000)
    """Most Runs of this Agent executing at the same time (1 to 1000)."""


class History(common.Model):
    """How many finished Runs of this Agent the operator keeps, deleting the oldest first (as
    a CronJob's successfulJobsHistoryLimit and failedJobsHistoryLimit). DeadLettered Runs
    wait for `bosun redrive` and are not counted: only their ttlSecondsAfterFinished deletes
    them. Unfinished Runs are never deleted."""

    succeeded: int | None = pydantic.Field(default=None, ge=0, le=100_000)
    """Succeeded Runs kept; 0 keeps none. Unset: the operator's default (the chart's
    retention.history.succeeded)."""
    failed: int | None = pydantic.Field(default=None, ge=0, le=100_000)
    """Failed, Cancelled and Duplicate Runs kept; 0 keeps none. Unset: the operator's default
    (the chart's retention.history.failed)."""


class ResourceRequirements(common.Model):
    """Requests and limits, as in a pod container's resources."""

    limits: dict[str, common.Quantity] = pydantic.Field(default_factory=dict, max_length=16)
    """Most of each resource the container may use, such as `cpu: 500m`."""
    requests: dict[str, common.Quantity] = pydantic.Field(default_factory=dict, max_length=16)
    """Resources reserved for the container, such as `memory: 256Mi`."""


class Toleration(common.Model):
    """Lets the runner pod schedule onto nodes with a matching taint."""

    key: str | None = pydantic.Field(default=None, max_length=317)
    """Taint key to tolerate; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """`Equal` (the default) matches key and value; `Exists` matches the key alone."""
    value: str | None = pydantic.Field(default=None, max_length=63)
    """Taint value to match with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches every effect."""
    toleration_seconds: int | None = pydantic.Field(default=None, ge=0)
    """How long a NoExecute taint is tolerated before eviction, in seconds."""


MOVED_RUNNER_FIELDS = (
    "image",
    "imagePullPolicy",
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
)
"""Runner fields that change privilege: they moved to RunnerClass. Stored Agents may still
carry them; the operator ignores them and says so in the Agent's status."""


def _moved(field: str) -> dict[str, Any]:
    """The rule that rejects a moved field on create and on any change, while an old object
    that keeps its value unchanged still passes (so stored Agents stay writable). With
    optionalOldSelf the rule runs on create too, where oldSelf has no value."""
    rule = common.cel(
        f"!has(self.{field}) || (oldSelf.hasValue() && has(oldSelf.value().{field})"
        f" && oldSelf.value().{field} == self.{field})",
        f"runner.{field} moved to RunnerClass: an administrator sets it in a RunnerClass and"
        " the Agent names the class in runner.className (an unchanged old value is kept but"
        " ignored)",
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )
    rule["optionalOldSelf"] = True
    return rule


POOL_NAME_MAX = 52
"""The longest name of an Agent with a pool: its workers' ServiceAccount `bosun-pool-<agent>`
must spell the Agent out in full (the admission policy reads the Agent from it) and stay a
DNS label."""


class PoolSpec(common.Model):
    """Long-lived workers that claim this Agent's attempts instead of a Job per attempt: for
    many short or mostly-waiting Runs whose tools the platform trusts. A worker serves only
    this Agent (its Secrets reach only these pods); its pods are what the RunnerClass defines.
    Journal, replay, governance, approvals, budgets and retries are those of Job mode."""

    workers: int = pydantic.Field(default=1, ge=0, le=100)
    """Worker pods (Deployment replicas). 0 stops the pool: offered attempts then wait, and
    end as Lost after the start timeout. An autoscaler may own the number instead (see the
    README's autoscaling section)."""
    runs_per_worker: int = pydantic.Field(default=10, ge=1, le=1000)
    """Attempts one worker executes at once (most of them waiting on the model)."""


class RunnerSpec(common.Model):
    """Each attempt of a Run executes in one runner pod, created by a Job the operator owns,
    as the RunnerClass `className` defines it. What changes a runner's privileges (image,
    ServiceAccount, placement, security context) belongs to the class, never to the Agent."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(*(_moved(field) for field in MOVED_RUNNER_FIELDS))
    )

    class_name: common.DNSSubdomain | None = None
    """Name of the RunnerClass of this Agent's runner pods; its author needs verb `use` on
    it. Unset: the default class (annotated `runnerclass.bosun.dev/is-default-class`)."""
    resources: ResourceRequirements | None = None
    """CPU and memory of the runner container. Unset: the class's defaultResources. Each
    request and limit must stay within the class's maxResources."""
    image: str | None = pydantic.Field(default=None, min_length=1, max_length=1024)
    """Deprecated, ignored: moved to RunnerClass.spec.image. Rejected unless unchanged."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Deprecated, ignored: moved to RunnerClass.spec.imagePullPolicy."""
    service_account_name: common.DNSSubdomain | None = None
    """Deprecated, ignored: moved to RunnerClass.spec.serviceAccountName."""
    node_selector: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(
        default_factory=dict, max_length=32
    )
    """Deprecated, ignored: moved to RunnerClass.spec.nodeSelector."""
    tolerations: list[Toleration] = pydantic.Field(default_factory=list, max_length=32)
    """Deprecated, ignored: moved to RunnerClass.spec.tolerations."""
    pool: PoolSpec | None = None
    """Long-lived workers claim the attempts of this Agent's Runs. Unset: a Job (a fresh pod)
    per attempt, the stronger isolation."""


OutputSchema = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A JSON Schema for the final answer; the runner checks it is one (else `InvalidOutputSchema`)."""


class AgentSpec(common.Model):
    """The Agent's labels decide which Policies govern it."""

    model: ModelSpec
    """The language model: provider, name, endpoint, credentials and sampling settings."""
    instructions: str | None = pydantic.Field(default=None, max_length=65536)
    """System prompt given to the model at the start of every Run."""
    output_schema: OutputSchema | None = None
    """JSON Schema the final answer must satisfy: the answer must be JSON that validates
    (a surrounding ```json fence is accepted), and `status.output` holds it. An answer that
    does not validate goes back to the model with the errors, up to `limits.maxOutputRetries`
    times (default 2), and then the Run fails (`OutputInvalid`). Providers that support it
    (OpenAI-compatible `response_format`) get the schema in their request; others get it in
    the instructions. Unset: any text."""
    tools: list[common.DNSLabel] = pydantic.Field(
        default_factory=list, max_length=128, json_schema_extra=common.LIST_SET
    )
    """Names of the Tools in this namespace the agent may call. A Policy must still allow
    each call; a Tool that is not listed is never called."""
    limits: Limits | None = None
    """Limits on each Run: steps, tokens, tool calls and time."""
    retry: common.RetrySpec | None = None
    """Retry defaults for this Agent's Runs, used where a Run's own retry leaves a field unset.
    Only retryable failures are retried: model 429/5xx, timeouts, a lost lease, a failed pod."""
    concurrency: Concurrency | None = None
    """Limit on simultaneous Runs of this Agent. Unset: only the operator-wide limit."""
    history: History | None = None
    """How many finished Runs of this Agent are kept. Unset: the operator's defaults."""
    runner: RunnerSpec | None = None
    """The runner pods: which RunnerClass they are and their resources within its bounds."""

    @pydantic.field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[str]) -> list[str]:
        common.require_unique(tools, "tools")
        return tools


USAGE_WINDOW_SECONDS = 3600
"""The rolling window of `status.usage` and of Policy budgets: one hour."""


class ActiveRunUsage(common.Model):
    """What one unfinished Run has consumed, as counted in the Agent's usage."""

    name: common.DNSSubdomain
    """Name of the Run."""
    tokens: int = pydantic.Field(default=0, ge=0)
    """Its tokens (input plus output) included in the Agent's `tokens`."""
    tool_calls: int = pydantic.Field(default=0, ge=0)
    """Its tool calls included in the Agent's `toolCalls`."""


class AgentUsage(common.Model):
    """The Agent's consumption over the last hour, across all its Runs, as the operator counts
    it for Policy budgets.

    A Run's usage counts while the Run is unfinished and for one hour after it finished; a Run
    counts towards `runs` for one hour after its first attempt started.
    """

    window_seconds: int = pydantic.Field(default=USAGE_WINDOW_SECONDS, ge=1)
    """Length of the window, in seconds."""
    runs: int = pydantic.Field(default=0, ge=0)
    """Runs whose first attempt started within the window (budgets.runsPerHour)."""
    tokens: int = pydantic.Field(default=0, ge=0)
    """Model tokens, input plus output, of the Runs counted (budgets.tokensPerHour)."""
    tool_calls: int = pydantic.Field(default=0, ge=0)
    """Tool calls of the Runs counted (budgets.toolCallsPerHour)."""
    active_runs: list[ActiveRunUsage] = pydantic.Field(
        default_factory=list, json_schema_extra=common.list_map("name")
    )
    """Unfinished Runs with usage, and how much of the totals is theirs, so a running Run can
    add its own latest figures instead of counting itself twice."""
    update_time: datetime.datetime | None = None
    """When the operator last changed these figures."""


class PoolStatus(common.Model):
    """The Agent's worker pool as the operator last saw it."""

    deployment: str | None = None
    """Name of the pool's Deployment."""
    workers: int = pydantic.Field(default=0, ge=0)
    """Worker pods asked for."""
    ready_workers: int = pydantic.Field(default=0, ge=0)
    """Worker pods ready to claim attempts."""
    free_slots: int = pydantic.Field(default=0, ge=0)
    """Attempts the ready workers could take on now."""


class AgentStatus(common.Status):
    """The observed state of an Agent. Ready is False while a listed Tool or a referenced
    Secret is missing."""

    usage: AgentUsage | None = None
    """Consumption over the last hour across the Agent's Runs, for Policy budgets."""
    runner_mode: Literal["Job", "Pool"] | None = None
    """How attempts run: a Job per attempt, or claimed by the pool's workers."""
    pool: PoolStatus | None = None
    """The worker pool, when the Agent has one."""


class Agent(common.Resource):
    """An AI agent: its model, instructions, the Tools it may call, limits and retry defaults.

    Each execution is a Run that references the Agent.
    """

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "!has(self.spec.runner) || !has(self.spec.runner.pool) ||"
                f" size(self.metadata.name) <= {POOL_NAME_MAX}",
                f"metadata.name of an Agent with spec.runner.pool must be at most {POOL_NAME_MAX}"
                " characters (its workers' ServiceAccount is bosun-pool-<name>)",
            )
        )
    )

    kind: Literal["Agent"] = "Agent"
    """Kind of the object: Agent."""
    spec: AgentSpec
    """What the agent is and what it may touch."""
    status: AgentStatus = pydantic.Field(default_factory=AgentStatus)
    """What the operator observed: readiness and its reason."""


KIND = common.KindInfo(
    model=Agent,
    plural="agents",
    short_names=("agt",),
    columns=(
        common.PrinterColumn("Provider", ".spec.model.provider", description="Model provider"),
        common.PrinterColumn("Model", ".spec.model.name", description="Model name"),
        common.READY_COLUMN,
        common.PrinterColumn("Mode", ".status.runnerMode", description="Job or Pool"),
        common.PrinterColumn(
            "Workers", ".status.pool.readyWorkers", "integer", "Ready pool workers"
        ),
        common.PrinterColumn(
            "Runs/h", ".status.usage.runs", "integer", "Runs started in the last hour"
        ),
        common.PrinterColumn(
            "Tokens/h", ".status.usage.tokens", "integer", "Model tokens in the last hour"
        ),
        common.AGE_COLUMN,
    ),
)
