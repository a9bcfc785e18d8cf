"""Names shared by every part of Bosun: the API group, labels, annotations, condition types,
reasons and phases.

One place for every string that two parts of the system must agree on, so that the operator,
the runner, the chart and the dev tooling never drift apart.
"""

from __future__ import annotations

__all__ = [
    "ANNOTATION_DEFAULT_RUNNER_CLASS",
    "ANNOTATION_EMULATOR_FAULT",
    "ANNOTATION_REDRIVE",
    "API_VERSION",
    "CATEGORY",
    "CONDITION_AWAITING_APPROVAL",
    "CONDITION_DEAD_LETTERED",
    "CONDITION_FAILED",
    "CONDITION_QUEUED",
    "CONDITION_READY",
    "CONDITION_RUNNER_FIELDS_IGNORED",
    "CONDITION_RUNNING",
    "CONDITION_SUCCEEDED",
    "EMULATOR_NODE_NAME",
    "EMULATOR_SERVICEACCOUNT_DIR_ENV",
    "EMULATOR_TERMINATION_LOG_ENV",
    "ENV_SCHEMA_DESCRIPTIONS",
    "EVENT_DEAD_LETTERED",
    "EVENT_LEASE_LOST",
    "GROUP",
    "JOURNAL_MAX_CHUNKS",
    "KINDS",
    "LABEL_AGENT",
    "LABEL_ATTEMPT",
    "LABEL_DEAD_LETTER",
    "LABEL_MANAGED_BY",
    "LABEL_POOL_WORKER",
    "LABEL_RUN",
    "LABEL_SCHEDULE",
    "LABEL_WEBHOOK",
    "OUTCOME_CANCELLED",
    "OUTCOME_FAILED",
    "OUTCOME_HANDED_BACK",
    "OUTCOME_LOST",
    "OUTCOME_SUCCEEDED",
    "OUTCOME_TIMED_OUT",
    "PHASE_AWAITING_APPROVAL",
    "PHASE_CANCELLED",
    "PHASE_DEAD_LETTERED",
    "PHASE_DUPLICATE",
    "PHASE_FAILED",
    "PHASE_PENDING",
    "PHASE_QUEUED",
    "PHASE_RETRYING",
    "PHASE_RUNNING",
    "PHASE_SUCCEEDED",
    "PHASE_SUSPENDED",
    "REASON_ADMITTED",
    "REASON_AGENT_NOT_FOUND",
    "REASON_AGENT_NOT_READY",
    "REASON_ATTEMPT_RUNNING",
    "REASON_BUDGET_EXCEEDED",
    "REASON_CANCELLED",
    "REASON_DEADLINE_EXCEEDED",
    "REASON_DUPLICATE",
    "REASON_FIRED",
    "REASON_FIRE_MISSED",
    "REASON_FIRE_SKIPPED",
    "REASON_HANDED_BACK",
    "REASON_INVALID_RESOURCES",
    "REASON_INVALID_SCHEDULE",
    "REASON_INVALID_TIME_ZONE",
    "REASON_JOB_NOT_OWNED",
    "REASON_LEASE_EXPIRED",
    "REASON_MOVED_TO_RUNNER_CLASS",
    "REASON_PRIORITY_CLASS_NOT_ALLOWED",
    "REASON_RECONCILING",
    "REASON_REDRIVEN",
    "REASON_RESOURCES_EXCEED_CLASS",
    "REASON_RETRIES_EXHAUSTED",
    "REASON_RETRY_SCHEDULED",
    "REASON_RUNNER_CLASS_NOT_FOUND",
    "REASON_RUNNER_NEVER_STARTED",
    "REASON_RUNNER_NOT_STARTING",
    "REASON_RUN_REJECTED",
    "REASON_SCHEDULED",
    "REASON_SUCCEEDED",
    "REASON_SUSPENDED",
    "REASON_WAITING_FOR_CAPACITY",
    "VERSION",
]

GROUP = "bosun.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KINDS = (
    "Agent",
    "Tool",
    "Policy",
    "Run",
    "Approval",
    "RunnerClass",
    "RunJournal",
    "ClusterPolicy",
    "Schedule",
    "Webhook",
)
JOURNAL_MAX_CHUNKS = 64
"""Most chunks a Run's journal may have (the runner's Role names each one)."""
CATEGORY = "bosun"

# Labels and annotations.
LABEL_DEAD_LETTER = f"{GROUP}/dead-letter"
LABEL_RUN = f"{GROUP}/run"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_AGENT = f"{GROUP}/agent"
"""On a pooled Run's Lease and journal chunks, its pool's Deployment, pods and worker Leases:
the Agent they serve (what the pool-worker admission policy holds a worker to)."""
LABEL_SCHEDULE = f"{GROUP}/schedule"
"""On each Run a Schedule created: the Schedule's name."""
LABEL_WEBHOOK = f"{GROUP}/webhook"
"""On each Run a Webhook's delivery created: the Webhook's name."""
LABEL_POOL_WORKER = f"{GROUP}/pool-worker"
"""``"true"`` on a pool worker's own Lease (its liveness, one for all the Runs it holds)."""
ANNOTATION_REDRIVE = f"{GROUP}/redrive"
"""Set by ``bosun redrive``: a new value starts a DeadLettered or Failed Run again."""
ANNOTATION_DEFAULT_RUNNER_CLASS = f"runnerclass.{GROUP}/is-default-class"
"""``"true"`` on the RunnerClass serving Agents that name none (IngressClass's convention)."""

# The node emulator (dev tooling) reads this annotation on pods as its fault hook.
ANNOTATION_EMULATOR_FAULT = f"emulator.{GROUP}/fault"
EMULATOR_NODE_NAME = "bosun-emulator"
EMULATOR_SERVICEACCOUNT_DIR_ENV = "BOSUN_SERVICEACCOUNT_DIR"
EMULATOR_TERMINATION_LOG_ENV = "BOSUN_TERMINATION_LOG"
"""Where the emulator's container writes its termination message (a kubelet mounts
``terminationMessagePath``, /dev/termination-log, instead)."""

# Run condition types (metav1.Condition ``type``). The runner owns AwaitingApproval; the
# operator owns the others.
CONDITION_READY = "Ready"
"""Of Agents, Tools and Policies: whether the operator found them usable."""
CONDITION_QUEUED = "Queued"
CONDITION_RUNNING = "Running"
CONDITION_AWAITING_APPROVAL = "AwaitingApproval"
CONDITION_SUCCEEDED = "Succeeded"
CONDITION_FAILED = "Failed"
CONDITION_DEAD_LETTERED = "DeadLettered"
CONDITION_RUNNER_FIELDS_IGNORED = "RunnerFieldsIgnored"
"""Of Agents: True while a stored Agent still sets runner fields that moved to RunnerClass."""

# Reasons of the Run's conditions (CamelCase, API conventions).
REASON_RECONCILING = "Reconciling"
REASON_AGENT_NOT_FOUND = "AgentNotFound"
REASON_AGENT_NOT_READY = "AgentNotReady"
# A queued Run naming a priority class that does not exist or its namespace may not use.
REASON_PRIORITY_CLASS_NOT_ALLOWED = "PriorityClassNotAllowed"
REASON_WAITING_FOR_CAPACITY = "WaitingForCapacity"
REASON_BUDGET_EXCEEDED = "BudgetExceeded"
REASON_ADMITTED = "Admitted"
REASON_ATTEMPT_RUNNING = "AttemptRunning"
REASON_RETRY_SCHEDULED = "RetryScheduled"
REASON_RETRIES_EXHAUSTED = "RetriesExhausted"
REASON_SUSPENDED = "Suspended"
REASON_CANCELLED = "Cancelled"
REASON_DUPLICATE = "DuplicateIdempotencyKey"
REASON_DEADLINE_EXCEEDED = "DeadlineExceeded"
REASON_SUCCEEDED = "Succeeded"
REASON_REDRIVEN = "Redriven"

# Reasons of a Schedule's Ready condition and Events.
REASON_SCHEDULED = "Scheduled"
REASON_INVALID_SCHEDULE = "InvalidSchedule"
REASON_INVALID_TIME_ZONE = "InvalidTimeZone"
REASON_RUN_REJECTED = "RunRejected"
REASON_FIRED = "Fired"
REASON_FIRE_SKIPPED = "FireSkipped"
REASON_FIRE_MISSED = "FireMissed"

# Reasons the operator gives an attempt it ends itself (the runner's exit gives the others).
REASON_LEASE_EXPIRED = "LeaseExpired"
REASON_JOB_NOT_OWNED = "JobNotOwned"
REASON_RUNNER_NEVER_STARTED = "RunnerNeverStarted"
# The Running condition while the attempt's pod says it cannot start its runner (a Secret it
# references is missing, its image cannot be pulled): the kubelet keeps trying.
REASON_RUNNER_NOT_STARTING = "RunnerNotStarting"
REASON_HANDED_BACK = "HandedBack"
"""A draining pool worker handed the attempt back; the next one starts at once."""

# Reasons of an Agent's Ready condition about its RunnerClass, and of RunnerClass readiness.
REASON_RUNNER_CLASS_NOT_FOUND = "RunnerClassNotFound"
REASON_RESOURCES_EXCEED_CLASS = "ResourcesExceedRunnerClass"
REASON_INVALID_RESOURCES = "InvalidResources"
REASON_MOVED_TO_RUNNER_CLASS = "MovedToRunnerClass"

# Event reasons that are not condition reasons.
EVENT_LEASE_LOST = "LeaseLost"
EVENT_DEAD_LETTERED = "DeadLettered"

# A Run's phases, derived from its conditions (bosun.controller.runstatus) for printer columns.
PHASE_PENDING = "Pending"
PHASE_QUEUED = "Queued"
PHASE_RUNNING = "Running"
PHASE_AWAITING_APPROVAL = "AwaitingApproval"
PHASE_RETRYING = "Retrying"
PHASE_SUSPENDED = "Suspended"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_CANCELLED = "Cancelled"
PHASE_DEAD_LETTERED = "DeadLettered"
PHASE_DUPLICATE = "Duplicate"

# How an attempt ended (status.attempts[].outcome).
OUTCOME_SUCCEEDED = "Succeeded"
OUTCOME_FAILED = "Failed"
OUTCOME_LOST = "Lost"
OUTCOME_CANCELLED = "Cancelled"
OUTCOME_TIMED_OUT = "TimedOut"
OUTCOME_HANDED_BACK = "HandedBack"
"""A pool worker gave the attempt back while draining: the next attempt starts at once from the
journal and the retry budget is not spent."""

ENV_SCHEMA_DESCRIPTIONS = "BOSUN_SCHEMA_DESCRIPTIONS"
"""``0`` builds the API models without their field descriptions (read from the source at import,
~50 ms): what the runner does, since it validates objects and never renders a schema."""
