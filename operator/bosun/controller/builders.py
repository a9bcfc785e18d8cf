"""Pure functions that render the children of a Run: Job, Lease, the runner's RBAC and its
NetworkPolicy.

Every child carries an owner reference to its Run (so deleting the Run deletes them) and a
deterministic name from ``bosun.contract`` (so a replayed reconcile creates nothing twice).
Objects come in and go out as plain dicts in the API's JSON shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants, contract
from bosun.controller import runnerclasses
from bosun.controller import settings as settings_mod

__all__ = [
    "Obj",
    "job",
    "lease",
    "network_policy",
    "owner_reference",
    "role",
    "role_binding",
    "runner_env",
    "runner_pod",
    "secret_env",
    "secret_refs",
    "service_account",
]

Obj = Mapping[str, Any]


def owner_reference(run: Obj) -> dict[str, Any]:
    meta = run["metadata"]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(run: Obj, name: str, attempt: int | None = None) -> dict[str, Any]:
    labels = {constants.LABEL_MANAGED_BY: "bosun", constants.LABEL_RUN: run["metadata"]["name"]}
    if attempt is not None:
        labels = contract.pod_labels(run["metadata"]["name"], attempt)
    return {
        "name": name,
        "namespace": run["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(run)],
    }


def _runner_object(run: Obj, api_version: str, kind: str, **fields: Any) -> dict[str, Any]:
    """One of the objects named after the Run's runner account, owned by the Run."""
    name = contract.runner_account_name(run["metadata"]["name"])
    return {"apiVersion": api_version, "kind": kind, "metadata": _meta(run, name), **fields}


def service_account(run: Obj) -> dict[str, Any]:
    return _runner_object(run, "v1", "ServiceAccount", automountServiceAccountToken=True)


def role(run: Obj) -> dict[str, Any]:
    rules = contract.runner_rules(run["metadata"]["name"])
    return _runner_object(run, "rbac.authorization.k8s.io/v1", "Role", rules=rules)


def role_binding(run: Obj) -> dict[str, Any]:
    name = contract.runner_account_name(run["metadata"]["name"])
    account = {"kind": "ServiceAccount", "name": name, "namespace": run["metadata"]["namespace"]}
    return _runner_object(
        run,
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        subjects=[account],
    )


def lease(run: Obj, duration_seconds: int, agent: str | None = None) -> dict[str, Any]:
    """The Run's Lease, created free: the first runner acquires it (epoch 1). Given the
    ``agent`` of a pool, it carries the Agent's label, which lets that pool's workers claim it."""
    meta = _meta(run, contract.lease_name(run["metadata"]["name"]))
    if agent is not None:
        meta["labels"][constants.LABEL_AGENT] = agent
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"leaseDurationSeconds": duration_seconds, "leaseTransitions": 0},
    }


def _secret_env(name: str, secret: Obj) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["key"]}},
    }


def secret_refs(agent: Obj, tools: Iterable[Obj]) -> list[Obj]:
    """Every Secret key the runner of this Agent needs: model key and tool headers."""
    refs: list[Obj] = []
    model_key = agent.get("spec", {}).get("model", {}).get("apiKeySecretRef")
    if model_key:
        refs.append(model_key)
    for tool in tools:
        spec = tool.get("spec", {})
        for transport in ("http", "mcp"):
            for header in (spec.get(transport) or {}).get("headers") or ():
                ref = (header.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.append(ref)
    return refs


def runner_env(
    run: Obj, agent: Obj, tools: Iterable[Obj], attempt: int, lease_seconds: int
) -> list[dict[str, Any]]:
    meta = run["metadata"]
    env: list[dict[str, Any]] = [
        {"name": contract.ENV_RUN_NAME, "value": meta["name"]},
        {
            "name": contract.ENV_RUN_NAMESPACE,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": contract.ENV_RUN_UID, "value": meta["uid"]},
        {"name": contract.ENV_ATTEMPT, "value": str(attempt)},
        {"name": contract.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": contract.ENV_LEASE_NAME, "value": contract.lease_name(meta["name"])},
        {"name": contract.ENV_LEASE_DURATION, "value": str(lease_seconds)},
    ]
    return env + secret_env(agent, tools)


def secret_env(agent: Obj, tools: Iterable[Obj]) -> list[dict[str, Any]]:
    """The Agent's Secrets as ``secretKeyRef`` variables: its model key and tool headers."""
    env: list[dict[str, Any]] = []
    model_key = agent.get("spec", {}).get("model", {}).get("apiKeySecretRef")
    if model_key:
        env.append(_secret_env(contract.ENV_MODEL_API_KEY, model_key))
    seen = {contract.ENV_MODEL_API_KEY}
    for ref in secret_refs(agent, tools):
        name = contract.secret_env_name(ref["name"], ref["key"])
        if name not in seen:
            seen.add(name)
            env.append(_secret_env(name, ref))
    return env


def network_policy(run: Obj, runner_class: runnerclasses.Resolved) -> dict[str, Any]:
    """The Run's runner pods may send traffic only where their class allows, and never to a
    cloud metadata address (created with the Run's first attempt, owned by the Run)."""
    labels = contract.pod_labels(run["metadata"]["name"], 1)
    selector = {k: labels[k] for k in (constants.LABEL_RUN, constants.LABEL_MANAGED_BY)}
    return _runner_object(
        run,
        "networking.k8s.io/v1",
        "NetworkPolicy",
        spec={
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Egress"],
            "egress": runnerclasses.egress(runner_class),
        },
    )


def runner_pod(
    agent: Obj,
    env: list[dict[str, Any]],
    settings: settings_mod.Settings,
    runner_class: runnerclasses.Resolved,
    *,
    namespace_labels: Mapping[str, str] | None,
    service_account: str,
    args: Iterable[str] = (),
    restart_policy: str = "Never",
) -> dict[str, Any]:
    """The pod spec of a runner, a Job's or a pool worker's: what ``runner_class`` defines
    (None: the operator's built-in class, the configured runner image); of the Agent's runner
    only the resources count, within the class's bounds. The runner fields that moved to
    RunnerClass are ignored. The namespace's labels (``namespace_labels``; None: unknown, and
    then not passed) go to the runner for ClusterPolicies' namespaceSelectors."""
    spec = runner_class.spec
    container: dict[str, Any] = {
        "name": "runner",
        "image": spec.get("image") or settings.runner_image,
        "env": env,
        "resources": runnerclasses.resources(runner_class, agent),
        "securityContext": runnerclasses.container_security(runner_class),
    }
    if namespace_labels is not None:
        labels = json.dumps(dict(namespace_labels), sort_keys=True, separators=(",", ":"))
        container["env"].append({"name": contract.ENV_NAMESPACE_LABELS, "value": labels})
    container["env"] += [{"name": k, "value": v} for k, v in settings.runner_env]
    if spec.get("imagePullPolicy"):
        container["imagePullPolicy"] = spec["imagePullPolicy"]
    if settings.runner_command:
        container["command"] = list(settings.runner_command)
    if args:
        container["args"] = list(args)
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "serviceAccountName": spec.get("serviceAccountName") or service_account,
        "automountServiceAccountToken": True,
        "terminationGracePeriodSeconds": 30,
        "securityContext": runnerclasses.pod_security(runner_class),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(spec["nodeSelector"])
    if spec.get("tolerations"):
        pod_spec["tolerations"] = [dict(t) for t in spec["tolerations"]]
    return pod_spec


def job(
    run: Obj,
    agent: Obj,
    tools: Iterable[Obj],
    attempt: int,
    settings: settings_mod.Settings,
    *,
    runner_class: runnerclasses.Resolved | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job of one attempt: ``backoffLimit: 0`` (Bosun owns retries), owned by the Run,
    its pod a ``runner_pod``. A relabeled namespace counts from the next attempt."""
    name = run["metadata"]["name"]
    chosen = runner_class or runnerclasses.Resolved(None, None, False)
    limits = agent.get("spec", {}).get("limits") or {}
    pod_spec = runner_pod(
        agent,
        runner_env(run, agent, tools, attempt, settings.lease_duration_seconds),
        settings,
        chosen,
        namespace_labels=namespace_labels,
        service_account=contract.runner_account_name(name),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(run, contract.job_name(name, attempt), attempt),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(
                limits.get("runTimeoutSeconds") or settings.attempt_timeout_seconds
            ),
            "template": {
                "metadata": {"labels": contract.pod_labels(name, attempt)},
                "spec": pod_spec,
            },
        },
    }
