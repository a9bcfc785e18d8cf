"""What the ``bosun`` command line does to Runs: create, follow, redrive.

Every function takes a ``kube.Rest`` and raises ``OpsError`` with a message a user can act on
(a missing CRD, a missing Run or Agent) instead of an API stack trace.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from bosun import constants, contract, kube
from bosun.api import crdgen

Obj = dict[str, Any]
FINAL_PHASES = ("Succeeded", "Failed", "Cancelled", "DeadLettered", "Duplicate")
REDRIVE_ANNOTATION = f"{constants.GROUP}/redrive"


class OpsError(RuntimeError):
    """A user-facing failure of a CLI operation."""


def ensure_api(rest: kube.Rest) -> None:
    """Fail clearly when the cluster has no Bosun API (the CRDs are not installed)."""
    try:
        rest.request("GET", f"/apis/{constants.API_VERSION}")
    except kube.NotFound as err:
        raise OpsError(
            f"the Bosun CRDs ({constants.API_VERSION}) are not installed in this cluster: "
            "install the Helm chart, or run: bosun crds | kubectl apply --server-side -f -"
        ) from err
    except kube.Unavailable as err:
        raise OpsError(f"cannot reach the API server: {err.message}") from err
    except kube.ApiError as err:
        raise OpsError(f"the API server answered {err.status} {err.reason}") from err


def guard(what: str, call: Callable[[], Obj | None]) -> Obj | None:
    try:
        return call()
    except kube.Forbidden as err:
        raise OpsError(f"{what}: forbidden by RBAC ({message(err)})") from err
    except kube.Unavailable as err:
        raise OpsError(f"{what}: cannot reach the API server ({err.message})") from err
    except kube.ApiError as err:
        raise OpsError(f"{what}: the API server answered {err.status} {err.reason}") from err


def get_run(rest: kube.Rest, namespace: str, name: str) -> Obj:
    run = guard(f"get Run {name}", lambda: rest.get(constants.API_VERSION, "runs", namespace, name))
    if run is None:
        raise OpsError(f"Run {name} not found in namespace {namespace}")
    return run


def create_run(
    rest: kube.Rest,
    namespace: str,
    agent: str,
    text: str,
    *,
    name: str | None = None,
    idempotency_key: str | None = None,
    priority: int = 0,
) -> Obj:
    """Create a Run of ``agent`` on ``text``; warns nothing, fails clearly."""
    found = guard(
        f"get Agent {agent}", lambda: rest.get(constants.API_VERSION, "agents", namespace, agent)
    )
    if found is None:
        raise OpsError(f"Agent {agent} not found in namespace {namespace}")
    spec: Obj = {"agentRef": {"name": agent}, "input": text, "priority": priority}
    if idempotency_key:
        spec["idempotencyKey"] = idempotency_key
    body: Obj = {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {
            "name": name or f"{agent[:50]}-{uuid.uuid4().hex[:6]}",
            "namespace": namespace,
        },
        "spec": spec,
    }
    try:
        created = rest.create(body)
    except kube.ApiError as err:
        raise OpsError(f"the API server rejected the Run: {message(err)}") from err
    if created is None:
        raise OpsError(f"Run {body['metadata']['name']} already exists")
    return created


def message(err: kube.ApiError) -> str:
    """The API server's own explanation of a refusal, or its status."""
    return err.message or f"{err.status} {err.reason}"


def follow(
    rest: kube.Rest, namespace: str, name: str, timeout: float = 3600, interval: float = 0.5
) -> Iterator[Obj]:
    """Yield the Run each time its phase, attempts or usage change, until it is final."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        run = get_run(rest, namespace, name)
        status = run.get("status") or {}
        usage = status.get("usage") or {}
        attempts = status.get("attempts") or []
        signature = (
            status.get("phase"),
            len(attempts),
            attempts[-1].get("outcome") if attempts else None,
            usage.get("totalTokens"),
            usage.get("toolCalls"),
            tuple(p.get("callHash") for p in status.get("pendingApprovals") or ()),
        )
        if signature != last:
            last = signature
            yield run
        if status.get("phase") in FINAL_PHASES:
            return
        if time.monotonic() > deadline:
            raise OpsError(f"Run {name} did not finish within {timeout:.0f}s")
        time.sleep(interval)


def redrive(rest: kube.Rest, namespace: str, name: str) -> str:
    """Ask the operator to run a dead-lettered or failed Run again with a fresh attempt budget."""
    run = get_run(rest, namespace, name)
    phase = (run.get("status") or {}).get("phase")
    if phase not in ("DeadLettered", "Failed"):
        raise OpsError(f"Run {name} is {phase or 'new'}; only DeadLettered or Failed Runs redrive")
    spec = run.get("spec") or {}
    deadline = contract.run_deadline(run)
    if deadline is not None and datetime.datetime.now(datetime.UTC) >= deadline:
        raise OpsError(
            f"Run {name} passed its deadline ({spec['deadlineSeconds']}s after creation, at"
            f" {deadline.isoformat(timespec='seconds')}): a redrive would fail again at once."
            f" Create a new Run instead, e.g. bosun run {spec.get('agentRef', {}).get('name')}"
            f" -n {namespace} --input ..."
        )
    token = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
    rest.merge_patch(
        constants.API_VERSION,
        "runs",
        namespace,
        name,
        {"metadata": {"annotations": {REDRIVE_ANNOTATION: token}}},
    )
    return token


CLUSTERPOLICY_READER = "bosun-clusterpolicy-reader"


def grant_clusterpolicy_reads(rest: kube.Rest, *, manager: str) -> None:
    """Let every ServiceAccount read ClusterPolicies, as the chart's cluster-wide install does
    (runners read them before each call, and a Run's Role cannot grant a cluster-scoped read)."""
    rbac = "rbac.authorization.k8s.io/v1"
    meta = {"name": CLUSTERPOLICY_READER}
    rest.apply(
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": contract.CLUSTERPOLICY_READER_RULES,
        },
        manager=manager,
    )
    rest.apply(
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTERPOLICY_READER,
            },
            "subjects": [
                {
                    "kind": "Group",
                    "apiGroup": "rbac.authorization.k8s.io",
                    "name": "system:serviceaccounts",
                }
            ],
        },
        manager=manager,
    )


def install_crds(rest: kube.Rest, *, manager: str, timeout: float = 60.0) -> list[str]:
    """Server-side apply Bosun's CRDs (rendered from the models) and wait until each is
    Established; returns their names. Also lets runners read ClusterPolicies
    (``grant_clusterpolicy_reads``), which a Helm install does with its RBAC."""
    grant_clusterpolicy_reads(rest, manager=manager)
    names = []
    for info in crdgen.KINDS:
        rest.apply(crdgen.crd(info), manager=manager)
        names.append(crdgen.crd_name(info))
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting:
        crd = rest.get("apiextensions.k8s.io/v1", "customresourcedefinitions", None, waiting[0])
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            waiting.pop(0)
        elif time.monotonic() > deadline:
            raise OpsError(f"CRD {waiting[0]} was not Established within {timeout:.0f}s")
        else:
            time.sleep(0.1)
    return names


def current_namespace(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        return kube.load().namespace or "default"
    except (kube.ConfigError, OSError):
        return "default"


__all__ = [
    "CLUSTERPOLICY_READER",
    "FINAL_PHASES",
    "REDRIVE_ANNOTATION",
    "Obj",
    "OpsError",
    "create_run",
    "current_namespace",
    "ensure_api",
    "follow",
    "get_run",
    "grant_clusterpolicy_reads",
    "guard",
    "install_crds",
    "message",
    "redrive",
]
