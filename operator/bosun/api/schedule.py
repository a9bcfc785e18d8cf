"""The Schedule Kind: Runs of a template on a clock, with overlap and catch-up policies.

Each fire creates one Run named after the Schedule and the fire's nominal time
(`<schedule>-<Unix seconds>`), owned by the Schedule and labelled `bosun.dev/schedule`, so a
restarted operator, a second replica or a catch-up can never create it twice. The expression's
shape is checked when the Schedule is applied; what only a parser can tell (a field out of
range, an unknown time zone) makes the Schedule not Ready, with the reason.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from bosun.api import common

__all__ = [
    "KIND",
    "NAME_MAX",
    "SCHEDULE_SHAPE",
    "HistoryLimits",
    "OverlapPolicy",
    "RunTemplate",
    "RunTemplateFields",
    "RunTemplateMeta",
    "RunTemplateSpec",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
]

NAME_MAX = 52
"""The longest Schedule name: its Runs are `<schedule>-<10 digits>`, within 63 characters."""

SCHEDULE_SHAPE = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|@every [0-9]+h([0-9]+m)?([0-9]+s)?|@every [0-9]+m([0-9]+s)?|@every [0-9]+s"
    r"|[^ @]+ [^ @]+ [^ @]+ [^ @]+ [^ @]+)$"
)
"""What `schedule` may look like: a macro, `@every <duration>`, or five cron fields."""

OverlapPolicy = Literal["Allow", "Forbid", "BufferOne", "CancelOther"]


class RunTemplateMeta(common.Model):
    """Labels and annotations every Run of the Schedule gets (besides `bosun.dev/schedule`)."""

    labels: dict[str, str] | None = None
    """Labels of each Run."""
    annotations: dict[str, str] | None = None
    """Annotations of each Run."""


class RunTemplateFields(common.Model):
    """A Run's spec but for its input and what identifies or controls one Run: what a trigger
    (a Schedule, a Webhook) fills in for each Run it creates."""

    agent_ref: common.LocalObjectReference
    """The Agent, in this namespace, that each Run executes."""
    priority: int = pydantic.Field(default=0, ge=-1000, le=1000)
    """Each Run's order among the namespace's queued Runs (higher first)."""
    priority_class_name: common.DNSLabel | None = None
    """The admin-defined priority class of each Run (see Run.spec.priorityClassName)."""
    deadline_seconds: int | None = pydantic.Field(default=None, ge=1, le=2_592_000)
    """Seconds after its creation by which each Run must have finished."""
    retry: common.RetrySpec | None = None
    """Each Run's retry policy (see Run.spec.retry)."""
    ttl_seconds_after_finished: int | None = pydantic.Field(default=None, ge=0, le=315_360_000)
    """Seconds after it finished at which each Run is deleted (see Run.spec)."""


class RunTemplateSpec(RunTemplateFields):
    """What each Run is: a Run's spec but for what identifies or controls one Run."""

    input: str = pydantic.Field(min_length=1, max_length=65536)
    """The input each Run gives the Agent."""


class RunTemplate(common.Model):
    """The Run each fire creates."""

    metadata: RunTemplateMeta | None = None
    """Labels and annotations of each Run."""
    spec: RunTemplateSpec
    """Each Run's spec."""


class HistoryLimits(common.Model):
    """How many of its finished Runs the Schedule keeps; older ones are deleted."""

    succeeded: int = pydantic.Field(default=3, ge=0, le=1000)
    """Succeeded Runs kept."""
    failed: int = pydantic.Field(default=1, ge=0, le=1000)
    """Failed, Cancelled and dead-lettered Runs kept."""


class ScheduleSpec(common.Model):
    """When the Schedule fires, what each fire creates, and what happens when fires meet."""

    schedule: str = pydantic.Field(
        min_length=1,
        max_length=256,
        json_schema_extra=common.validations(
            common.cel(
                f"self.matches('{SCHEDULE_SHAPE}')",
                "schedule must be five cron fields (minute hour day-of-month month"
                " day-of-week), a macro (@yearly, @monthly, @weekly, @daily, @hourly) or"
                " @every <duration> such as @every 30s or @every 1h30m",
            )
        ),
    )
    """Five cron fields (`30 2 * * *`), a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`,
    `@yearly`) or `@every <duration>` (at least `1s`; `90s`, `5m`, `1h30m`)."""
    time_zone: str | None = pydantic.Field(
        default=None, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
    )
    """IANA time zone of the cron fields, such as `Europe/Berlin` (default UTC). Across
    daylight-saving changes a skipped time fires at the first minute after the jump and a
    repeated time fires once, except that an hourly expression fires in each real hour."""
    jitter_seconds: int = pydantic.Field(default=0, ge=0, le=3600)
    """Create each Run up to this many seconds after its time, a fixed delay per Schedule, to
    spread a fleet's fires. The Run's name keeps the nominal time."""
    run_template: RunTemplate
    """The Run each fire creates."""
    overlap_policy: OverlapPolicy = "Allow"
    """What a fire does while a Run of this Schedule is still running: `Allow` starts another;
    `Forbid` skips the fire (counted); `BufferOne` starts it when the running one ends (at most
    one waits; later fires are skipped); `CancelOther` cancels the running one and starts the
    new one."""
    catchup_window_seconds: int = pydantic.Field(default=0, ge=0, le=31 * 24 * 3600)
    """After the operator was away, fire the missed times this recent (the overlap policy
    applied), and count the older ones as missed. 0: only a fire at most a few seconds late."""
    starting_deadline_seconds: int | None = pydantic.Field(default=None, ge=1, le=31 * 24 * 3600)
    """A fire that cannot start within this many seconds of its time (a catch-up, or one that
    waited under `BufferOne`) is missed."""
    suspend: bool = False
    """No fires while true; the times that pass meanwhile are missed (or caught up, within
    catchupWindowSeconds, when it is set back)."""
    history_limits: HistoryLimits = pydantic.Field(default_factory=HistoryLimits)
    """How many finished Runs of this Schedule to keep."""


class ScheduleStatus(common.Status):
    """What the operator observed and did: the Ready condition, the fires and their counts."""

    last_schedule_time: datetime.datetime | None = None
    """The newest fire time handled (fired, skipped or missed)."""
    next_schedule_time: datetime.datetime | None = None
    """The next fire time."""
    active: list[str] = pydantic.Field(default_factory=list, json_schema_extra=common.LIST_SET)
    """Names of this Schedule's Runs that have not finished."""
    last_run: str | None = None
    """Name of the last Run a fire created."""
    buffered_time: datetime.datetime | None = None
    """The fire waiting for the running Run to end (`BufferOne`)."""
    fired: int = pydantic.Field(default=0, ge=0)
    """Fires that created a Run."""
    skipped: int = pydantic.Field(default=0, ge=0)
    """Fires the overlap policy dropped."""
    missed: int = pydantic.Field(default=0, ge=0)
    """Fires too late to start: the operator away (outside the catch-up window), suspended, or
    past startingDeadlineSeconds."""


class Schedule(common.Resource):
    """Runs of a template on a clock: cron, macros or @every, with overlap and catch-up."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                f"size(self.metadata.name) <= {NAME_MAX}",
                f"metadata.name of a Schedule must be at most {NAME_MAX} characters (its Runs"
                " are named <schedule>-<Unix seconds>)",
            )
        )
    )

    kind: Literal["Schedule"] = "Schedule"
    """Kind of the object: Schedule."""
    spec: ScheduleSpec
    """When to fire and what each fire creates."""
    status: ScheduleStatus = pydantic.Field(default_factory=ScheduleStatus)
    """What the operator observed and did."""


KIND = common.KindInfo(
    model=Schedule,
    plural="schedules",
    short_names=("bsched",),
    columns=(
        common.PrinterColumn("Schedule", ".spec.schedule", description="When it fires"),
        common.PrinterColumn("Suspend", ".spec.suspend", "boolean", "Whether fires are paused"),
        common.PrinterColumn(
            "Active", ".status.active[*]", description="Runs not finished", priority=0
        ),
        common.PrinterColumn("Last", ".status.lastScheduleTime", "date", "The last fire"),
        common.PrinterColumn("Next", ".status.nextScheduleTime", "string", "The next fire"),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
)
