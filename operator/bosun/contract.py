"""The contract between the operator and the runner: names, environment, exit codes, ownership.

The operator creates one Job per attempt of a Run; the runner inside it reads this module to
know where it is and how to report. Both sides derive every name from here, so they can never
disagree on a Job, Lease, journal or Secret variable name.

Who writes what on a Run's status (server-side apply, one field manager each):
- the operator (``bosun-operator``): conditions Queued, Running, Succeeded, Failed, DeadLettered
  and Ready-like ones; ``phase``, ``attempts``, ``nextRetryTime``, ``lease``, ``startTime``,
  ``completionTime``, ``observedGeneration``, ``duplicateOf``;
- the runner (``bosun-runner``): the AwaitingApproval condition, ``usage``, ``output``,
  ``steps``, ``pendingApprovals``.

How a runner ends (its process exit code, read by the operator from the pod's status):
``ExitCode`` below; any other code, or a killed process, is a pod failure and retryable.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from bosun import constants

__all__ = [
    "ANNOTATION_CLAIM",
    "ANNOTATION_DELIVERY",
    "ANNOTATION_DELIVERY_IDENTITY",
    "ANNOTATION_OUTCOME",
    "ANNOTATION_SCHEDULED_TIME",
    "ANNOTATION_TRIGGER",
    "CLUSTERPOLICY_READER_RULES",
    "ENV_ATTEMPT",
    "ENV_LEASE_DURATION",
    "ENV_LEASE_NAME",
    "ENV_MODEL_API_KEY",
    "ENV_NAMESPACE_LABELS",
    "ENV_POD_NAME",
    "ENV_POD_UID",
    "ENV_POOL_AGENT",
    "ENV_POOL_RUNS_PER_WORKER",
    "ENV_RUN_NAME",
    "ENV_RUN_NAMESPACE",
    "ENV_RUN_UID",
    "FIELD_MANAGER_OPERATOR",
    "FIELD_MANAGER_RUNNER",
    "FIELD_MANAGER_USAGE",
    "JOURNAL_MAX_CHUNKS",
    "LEASE_DURATION_SECONDS",
    "LEASE_RENEW_SECONDS",
    "POOL_ACCOUNT_PREFIX",
    "SECRET_ENV_PREFIX",
    "ExitCode",
    "job_name",
    "journal_name",
    "lease_name",
    "lease_note",
    "owned_by_run",
    "pod_labels",
    "pool_name",
    "pool_rules",
    "run_deadline",
    "runner_account_name",
    "runner_rules",
    "schedule_run",
    "schedule_run_name",
    "secret_env_name",
    "webhook_run",
    "webhook_run_name",
    "worker_lease_name",
]

# Environment the operator gives every runner container.
ENV_RUN_NAME = "BOSUN_RUN_NAME"
ENV_RUN_NAMESPACE = "BOSUN_RUN_NAMESPACE"
ENV_RUN_UID = "BOSUN_RUN_UID"
ENV_ATTEMPT = "BOSUN_ATTEMPT"
ENV_POD_NAME = "BOSUN_POD_NAME"
ENV_LEASE_NAME = "BOSUN_LEASE_NAME"
ENV_LEASE_DURATION = "BOSUN_LEASE_DURATION_SECONDS"
ENV_MODEL_API_KEY = "BOSUN_MODEL_API_KEY"
ENV_POOL_AGENT = "BOSUN_POOL_AGENT"
"""Set on a pool worker instead of the Run variables: the Agent whose attempts it claims."""
ENV_POOL_RUNS_PER_WORKER = "BOSUN_POOL_RUNS_PER_WORKER"
ENV_POD_UID = "BOSUN_POD_UID"
ENV_NAMESPACE_LABELS = "BOSUN_NAMESPACE_LABELS"
"""The labels of the Run's namespace as a JSON object, when the operator created the attempt:
what ClusterPolicies' namespaceSelectors match (the runner may not read Namespaces)."""

FIELD_MANAGER_OPERATOR = "bosun-operator"
FIELD_MANAGER_RUNNER = "bosun-runner"
FIELD_MANAGER_USAGE = "bosun-operator-usage"
"""The operator's manager for Agent ``status.usage``, apart from its readiness fields."""

LEASE_DURATION_SECONDS = 15
LEASE_RENEW_SECONDS = 5

_DNS_LABEL_MAX = 63
_NAME_MAX = 253


class ExitCode(enum.IntEnum):
    """How a runner process tells the operator what became of its attempt."""

    SUCCEEDED = 0
    # Invalid spec, a denial that ends the run, a limit hit: retrying cannot help.
    FAILED_PERMANENT = 10
    # Model 429/5xx or timeouts after the runner's own retries: another attempt may succeed.
    FAILED_RETRYABLE = 11
    # The runner could not renew its Lease and stopped before its next tool call.
    LEASE_LOST = 12
    # The run was cancelled or suspended while the runner worked.
    CANCELLED = 13
    # A call's outcome is unknown and its Tool is not idempotent: a human must decide.
    NEEDS_HUMAN = 14
    # A draining pool worker gave the attempt back at a step boundary (never a pod's exit).
    HANDED_BACK = 15


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _bounded(base: str, suffix: str, limit: int) -> str:
    """``base`` + ``suffix`` within ``limit`` characters, hashing ``base`` when it must shrink."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    keep = limit - len(suffix) - 7
    return f"{base[:keep].rstrip('-.')}-{_short_hash(base)}{suffix}"


def job_name(run: str, attempt: int) -> str:
    """The Job of attempt ``attempt`` (1-based) of Run ``run``; a valid DNS label."""
    return _bounded(run, f"-a{attempt}", _DNS_LABEL_MAX)


def lease_name(run: str) -> str:
    """The Lease that makes exactly one runner own Run ``run``."""
    return _bounded(f"bosun-run-{run}", "", _NAME_MAX)


ANNOTATION_SCHEDULED_TIME = f"{constants.GROUP}/scheduled-time"
"""On each Run of a Schedule: the nominal time of its fire (RFC 3339)."""
ANNOTATION_TRIGGER = f"{constants.GROUP}/trigger"
"""On a Run of a Schedule that ``bosun schedule`` made rather than a fire: ``manual`` or
``backfill``."""


def schedule_run_name(schedule: str, nominal: datetime.datetime) -> str:
    """The Run of Schedule ``schedule``'s fire at ``nominal``: ``<schedule>-<Unix seconds>``
    (a Schedule's name has at most 52 characters, so this is a DNS label)."""
    return f"{schedule}-{int(nominal.astimezone(datetime.UTC).timestamp())}"


def _templated_run(
    owner: Mapping[str, Any],
    kind: str,
    *,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    spec: Mapping[str, Any],
    controller: bool,
) -> dict[str, Any]:
    """A Run from ``owner``'s ``spec.runTemplate`` (a Schedule's or a Webhook's), owned by it:
    the template's labels and annotations with ``labels`` and ``annotations`` over them, and
    its spec with ``spec`` over it."""
    meta = owner["metadata"]
    template = (owner.get("spec") or {}).get("runTemplate") or {}
    template_meta = template.get("metadata") or {}
    reference: dict[str, Any] = {
        "apiVersion": constants.API_VERSION,
        "kind": kind,
        "name": meta["name"],
        "uid": meta.get("uid"),
    }
    if controller:
        reference["controller"] = True
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), **labels},
            "annotations": {**(template_meta.get("annotations") or {}), **annotations},
            "ownerReferences": [reference],
        },
        "spec": {**(template.get("spec") or {}), **spec},
    }


def schedule_run(schedule: Mapping[str, Any], nominal: datetime.datetime) -> dict[str, Any]:
    """The Run of ``schedule``'s fire at ``nominal``: its template's, named after the time,
    labelled ``bosun.dev/schedule``, annotated with the time and owned by the Schedule."""
    name = schedule["metadata"]["name"]
    stamp = nominal.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _templated_run(
        schedule,
        "Schedule",
        name=schedule_run_name(name, nominal),
        labels={constants.LABEL_SCHEDULE: name},
        annotations={ANNOTATION_SCHEDULED_TIME: stamp},
        spec={},
        controller=True,
    )


ANNOTATION_DELIVERY = f"{constants.GROUP}/delivery"
"""On each Run of a Webhook: the delivery id (its ``deliveryIdHeader``) that created it."""
ANNOTATION_DELIVERY_IDENTITY = f"{constants.GROUP}/delivery-identity"
"""On each Run of a Webhook: what its name was made from (``gateway.auth.identity``): the
delivery id, or ``sha256:<hex>`` of the body when only the body was signed."""


def webhook_run_name(webhook: str, identity: str) -> str:
    """The Run of Webhook ``webhook``'s delivery of identity ``identity``: ``<webhook>-<16 hex
    digits of its SHA-256>`` (a Webhook's name has at most 46 characters: a DNS label)."""
    return f"{webhook}-{_short_hash(identity, 16)}"


def webhook_run(
    webhook: Mapping[str, Any], delivery: str, text: str, *, identity: str | None = None
) -> dict[str, Any]:
    """The Run of ``webhook``'s delivery ``delivery`` with input ``text``: its template's,
    named after ``identity`` (default: the delivery id), keyed by the delivery id
    (``spec.idempotencyKey``), labelled ``bosun.dev/webhook``, annotated with both and owned
    by the Webhook."""
    identity = delivery if identity is None else identity
    name = webhook["metadata"]["name"]
    return _templated_run(
        webhook,
        "Webhook",
        name=webhook_run_name(name, identity),
        labels={constants.LABEL_WEBHOOK: name},
        annotations={ANNOTATION_DELIVERY: delivery, ANNOTATION_DELIVERY_IDENTITY: identity},
        spec={"input": text, "idempotencyKey": f"webhook/{name}/{delivery}"},
        controller=False,
    )


def journal_name(run: str, chunk: int) -> str:
    """The RunJournal (a ConfigMap, for a journal begun before that Kind) holding chunk
    ``chunk`` (0-based) of a Run's journal."""
    return _bounded(f"bosun-journal-{run}", f"-{chunk}", _NAME_MAX)


def runner_account_name(run: str) -> str:
    """The ServiceAccount (and Role, RoleBinding) scoped to the single Run it serves."""
    return _bounded(f"bosun-runner-{run}", "", _NAME_MAX)


POOL_ACCOUNT_PREFIX = "bosun-pool-"
"""Pool objects (Deployment, ServiceAccount, Role, RoleBinding) are this plus the Agent's full
name; the pool-worker admission policy reads the Agent back from the ServiceAccount's name."""


def pool_name(agent: str) -> str:
    """The Deployment, ServiceAccount, Role and RoleBinding of Agent ``agent``'s worker pool
    (an Agent with a pool has a name of at most ``api.agent.POOL_NAME_MAX`` characters)."""
    return POOL_ACCOUNT_PREFIX + agent


def worker_lease_name(pod: str) -> str:
    """The Lease a pool worker renews for all the Runs it holds (its liveness)."""
    return _bounded(f"bosun-worker-{pod}", "", _NAME_MAX)


ANNOTATION_CLAIM = f"{constants.GROUP}/claim"
"""On a pooled Run's Lease, written with the claim: JSON ``{"attempt", "worker",
"workerLease"}``. The claim holds while that worker's own Lease is renewed."""
ANNOTATION_OUTCOME = f"{constants.GROUP}/outcome"
"""On a pooled Run's Lease, written when the worker releases it: JSON ``{"attempt", "epoch",
"exitCode", "reason", "message"}``, what a Job's exit code and termination message say."""


def lease_note(lease: Mapping[str, Any], annotation: str) -> dict[str, Any] | None:
    """A Run Lease's claim or outcome annotation (``ANNOTATION_CLAIM``, ``ANNOTATION_OUTCOME``)
    as a JSON object; None when absent or unreadable."""
    raw = ((lease.get("metadata") or {}).get("annotations") or {}).get(annotation)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def owned_by_run(obj: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
    """Whether ``obj`` (a Run's Lease) belongs to ``run``: an owner reference names its UID
    (a Lease left by a deleted Run of the same name does not)."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or ()
    uid = run["metadata"].get("uid")
    return any(o.get("kind") == "Run" and o.get("uid") == uid for o in owners)


SECRET_ENV_PREFIX = "BOSUN_SECRET_"


def secret_env_name(secret: str, key: str) -> str:
    """The environment variable a Secret key is injected as (``secretKeyRef``, never the API)."""
    return f"{SECRET_ENV_PREFIX}{_short_hash(f'{secret}/{key}', 12).upper()}"


def pod_labels(run: str, attempt: int) -> dict[str, str]:
    safe = run if len(run) <= _DNS_LABEL_MAX else run[:56] + _short_hash(run)
    return {
        constants.LABEL_RUN: re.sub(r"[^A-Za-z0-9_.-]", "-", safe),
        constants.LABEL_ATTEMPT: str(attempt),
        constants.LABEL_MANAGED_BY: "bosun",
    }


JOURNAL_MAX_CHUNKS = constants.JOURNAL_MAX_CHUNKS


CLUSTERPOLICY_READER_RULES: list[dict[str, object]] = [
    {
        "apiGroups": [constants.GROUP],
        "resources": ["clusterpolicies"],
        "verbs": ["get", "list", "watch"],
    }
]
"""What every runner holds cluster-wide besides its Role: reading ClusterPolicies (a Role cannot
grant a cluster-scoped read). The chart's ``<fullname>-clusterpolicy-reader``."""


def runner_rules(run: str) -> list[dict[str, object]]:
    """The RBAC rules of the Role that the runner of Run ``run`` gets, and nothing more.

    Names are pinned wherever RBAC allows (create cannot be restricted by name). The operator
    creates the Lease before the first attempt, so the runner never creates one. No Secrets:
    they reach the runner as environment variables through ``secretKeyRef``.
    """
    journals = [journal_name(run, chunk) for chunk in range(JOURNAL_MAX_CHUNKS)]
    return [
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runs"],
            "resourceNames": [run],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runs/status"],
            "resourceNames": [run],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [constants.GROUP],
            "resources": ["agents", "tools", "policies", "approvals"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease_name(run)],
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": [constants.GROUP], "resources": ["runjournals"], "verbs": ["create"]},
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runjournals"],
            "resourceNames": journals,
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


def pool_rules() -> list[dict[str, object]]:
    """The RBAC rules of a pool's Role: what its workers need for any Run of the namespace.

    RBAC cannot name objects that do not exist yet, so writes are namespace-wide here and the
    chart's pool-worker ValidatingAdmissionPolicy holds them to the Agent the pool serves (its
    Runs' status, the Leases and journal chunks labelled with it, Events about Runs). Reads
    of Runs and journals are namespace-wide: Agents whose Runs must stay apart from each other
    belong in separate namespaces, or in Job mode. No Secrets: they reach the pods through
    ``secretKeyRef``.
    """
    return [
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runs"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runs/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [constants.GROUP],
            "resources": ["agents", "tools", "policies", "approvals"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update", "patch"],
        },
        {
            "apiGroups": [constants.GROUP],
            "resources": ["runjournals"],
            "verbs": ["get", "create", "update", "patch"],
        },
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


def run_deadline(run: Mapping[str, Any]) -> datetime.datetime | None:
    """When Run ``run`` must have finished: ``spec.deadlineSeconds`` after its creation, across
    every attempt (None without a deadline). The operator enforces it; ``bosun redrive`` refuses
    a Run past it."""
    seconds = (run.get("spec") or {}).get("deadlineSeconds")
    created = (run.get("metadata") or {}).get("creationTimestamp")
    if not seconds or not created:
        return None
    start = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    return start.astimezone(datetime.UTC) + datetime.timedelta(seconds=int(seconds))
