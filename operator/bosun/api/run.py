"""The Run Kind: one execution of an Agent on an input, and everything observed about it.

A Run's spec is fixed at creation except `suspend` and `cancel`; the API server enforces
that with transition rules. Status carries the conditions, a derived `phase` for printer
columns, one entry per attempt, the Lease that fences runners, the output and token usage.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from bosun.api import common

__all__ = [
    "KIND",
    "Attempt",
    "AttemptOutcome",
    "LeaseStatus",
    "PendingApproval",
    "Run",
    "RunPhase",
    "RunSpec",
    "RunStatus",
    "Usage",
]

RunPhase = Literal[
    "Pending",
    "Queued",
    "Running",
    "AwaitingApproval",
    "Retrying",
    "Suspended",
    "Succeeded",
    "Failed",
    "Cancelled",
    "DeadLettered",
    "Duplicate",
]
AttemptOutcome = Literal["Succeeded", "Failed", "Lost", "Cancelled", "TimedOut", "HandedBack"]


class RunSpec(common.Model):
    """The API server rejects any other change: create a new Run instead."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.immutable_fields(
            "suspend",
            "cancel",
            rules=[
                common.cel(
                    "!oldSelf.cancel || self.cancel",
                    "cancel cannot be set back to false",
                    field_path=".cancel",
                )
            ],
        )
    )

    agent_ref: common.LocalObjectReference
    """The Agent to run, in this namespace. A Run whose Agent is missing waits for it."""
    input: str = pydantic.Field(min_length=1, max_length=65536)
    """The task for the agent: the first user message of the conversation."""
    idempotency_key: str | None = pydantic.Field(default=None, min_length=1, max_length=256)
    """Deduplication key: a Run whose key matches a live or succeeded Run in the namespace is
    marked a duplicate of it (status.duplicateOf) and never executes."""
    priority: int = pydantic.Field(default=0, ge=-1000, le=1000)
    """Order among this namespace's own queued Runs of one priority class, from -1000 to 1000;
    higher runs first, equal priorities by age. It never moves a Run ahead of another
    namespace's: the operator-wide slots are shared fairly across namespaces."""
    priority_class_name: common.DNSLabel | None = None
    """Priority class of the Run, one the platform team defined for the operator (the chart's
    `operator.priorityClasses`). Runs of a higher class are admitted first, across namespaces;
    a class the Run's namespace may not use keeps it Queued, saying so. Unset: the default
    class, if one is configured."""
    deadline_seconds: int | None = pydantic.Field(default=None, ge=1, le=2_592_000)
    """Time budget for the whole Run across all attempts, counted from creation, in seconds.
    Past it the Run fails. Unset: no deadline."""
    retry: common.RetrySpec | None = None
    """Retry overrides for this Run, field by field over the Agent's retry. Only retryable
    failures are retried: model 429/5xx, timeouts, a lost lease, a failed pod."""
    suspend: bool = False
    """True pauses the Run: its running Job is stopped and no new attempt starts until it is
    set back to false. May change at any time."""
    cancel: bool = False
    """True cancels the Run for good: its Job is stopped and it ends as Cancelled. Cannot be
    set back to false."""
    ttl_seconds_after_finished: int | None = pydantic.Field(default=None, ge=0, le=315_360_000)
    """Seconds after the Run finished (status.completionTime) until the operator deletes it,
    and with it its Jobs, Lease, journal and RBAC; 0 deletes it as soon as it finishes.
    Finished is Succeeded, Failed, Cancelled, Duplicate or DeadLettered. Unset: the
    operator's default (the chart's retention.ttlSecondsAfterFinished, 7 days unless changed).
    A Run is never deleted within the hour its Agent's usage counts it."""


class Attempt(common.Model):
    """One attempt of a Run: one Job and its pod, or a claim by a worker of its Agent's pool."""

    number: int = pydantic.Field(ge=1)
    """Attempt number, counting from 1."""
    job: str | None = None
    """Name of the attempt's Job (unset for an attempt offered to a pool)."""
    pool: str | None = None
    """Name of the pool's Deployment the attempt was offered to, instead of a Job."""
    pod: str | None = None
    """Name of the pod that ran the attempt (in a pool: the worker that claimed it)."""
    start_time: datetime.datetime | None = None
    """When the attempt started."""
    end_time: datetime.datetime | None = None
    """When the attempt ended; unset while it runs."""
    outcome: AttemptOutcome | None = None
    """How the attempt ended: Succeeded, Failed, Lost (its lease expired), Cancelled,
    TimedOut or HandedBack (a draining pool worker gave it back; not counted as a failure);
    unset while it runs."""
    reason: str | None = None
    """CamelCase reason for the outcome, such as ModelUnavailable or PodFailed."""
    message: str | None = None
    """Human-readable details of the outcome."""
    exit_code: int | None = None
    """Exit code of the runner process, when it exited on its own."""
    epoch: int | None = pydantic.Field(default=None, ge=0)
    """The Lease's fencing epoch (leaseTransitions) while this attempt's runner held it."""
    backoff_seconds: float | None = pydantic.Field(default=None, ge=0)
    """The jittered wait chosen after this attempt failed, before the next one may start."""


class LeaseStatus(common.Model):
    """The coordination.k8s.io Lease that fences the runners of this Run."""

    name: str | None = None
    """Name of the Lease object."""
    holder: str | None = None
    """Identity of the runner holding the Lease."""
    transitions: int = pydantic.Field(default=0, ge=0)
    """How often the Lease changed hands: the fencing epoch."""


class Usage(common.Model):
    """What the Run consumed so far, across attempts."""

    input_tokens: int = pydantic.Field(default=0, ge=0)
    """Tokens sent to the model."""
    output_tokens: int = pydantic.Field(default=0, ge=0)
    """Tokens produced by the model."""
    total_tokens: int = pydantic.Field(default=0, ge=0)
    """Input plus output tokens."""
    model_calls: int = pydantic.Field(default=0, ge=0)
    """Model calls made."""
    tool_calls: int = pydantic.Field(default=0, ge=0)
    """Tool calls executed."""
    denied_calls: int = pydantic.Field(default=0, ge=0)
    """Tool calls denied by governance."""


class PendingApproval(common.Model):
    """A tool call paused until a human approves or denies it."""

    call_hash: str
    """Hash of the tool and its canonical arguments; name it in `bosun approve RUN CALL`."""
    step: int | None = None
    """Model step of the call (an Approval names it)."""
    call_id: str | None = pydantic.Field(default=None, alias="callID")
    """Id the model gave the call (an Approval names it)."""
    tool: str
    """Tool the model wants to call."""
    args: common.FreeForm = pydantic.Field(default_factory=dict)
    """Arguments of the call."""
    policy: str | None = None
    """Policy whose rule asked for approval."""
    rule: str | None = None
    """Rule that asked for approval (its name, or its index)."""
    requested_time: datetime.datetime | None = None
    """When approval was requested."""
    expiry_time: datetime.datetime | None = None
    """When the call is denied if nobody decides."""


class RunStatus(common.Status):
    """The observed state of a Run.

    Condition types: Queued, Running, AwaitingApproval, Succeeded, Failed, DeadLettered.
    """

    phase: RunPhase | None = None
    """Summary of the conditions for `kubectl get`; read the conditions for decisions."""
    attempts: list[Attempt] = pydantic.Field(
        default_factory=list, json_schema_extra=common.list_map("number")
    )
    """Every attempt so far, oldest first."""
    next_retry_time: datetime.datetime | None = None
    """When the next attempt may start, while the Run waits out a backoff."""
    lease: LeaseStatus | None = None
    """The Lease that fences the runners."""
    output: str | None = None
    """The agent's final answer."""
    usage: Usage | None = None
    """Tokens and calls used so far."""
    steps: int | None = pydantic.Field(default=None, ge=0)
    """Steps of the agent loop (model call plus its tool calls) completed so far."""
    pending_approvals: list[PendingApproval] = pydantic.Field(
        default_factory=list, json_schema_extra=common.list_map("callHash")
    )
    """Tool calls waiting for `bosun approve` or `bosun deny`."""
    start_time: datetime.datetime | None = None
    """When the first attempt started."""
    completion_time: datetime.datetime | None = None
    """When the Run reached a final phase."""
    duplicate_of: str | None = None
    """Name of the Run with the same idempotencyKey that this Run duplicates."""
    attempt_budget_start: int | None = pydantic.Field(default=None, ge=0)
    """Attempts numbered up to this one do not count against retry.maxAttempts: the number
    of the last attempt before the latest redrive."""
    redrive: str | None = pydantic.Field(default=None, max_length=256)
    """The last `bosun.dev/redrive` annotation value the operator acted on."""


class Run(common.Resource):
    """One execution of an Agent on an input, with retries, a deadline and full accounting."""

    kind: Literal["Run"] = "Run"
    """Kind of the object: Run."""
    spec: RunSpec
    """Which Agent runs on what input, and how. Fixed at creation except suspend and cancel."""
    status: RunStatus = pydantic.Field(default_factory=RunStatus)
    """What the operator and runner observed: conditions, attempts, output and usage."""


KIND = common.KindInfo(
    model=Run,
    plural="runs",
    short_names=("brun",),
    selectable_fields=(".spec.agentRef.name",),
    columns=(
        common.PrinterColumn("Agent", ".spec.agentRef.name", description="The Agent"),
        common.PrinterColumn("Phase", ".status.phase", description="Derived phase"),
        common.PrinterColumn(
            "Attempt", ".status.attempts[-1:].number", "integer", "Latest attempt number"
        ),
        common.PrinterColumn("Tokens", ".status.usage.totalTokens", "integer", "Tokens used"),
        common.AGE_COLUMN,
    ),
)
