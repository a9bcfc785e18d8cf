"""Worker pools: an Agent with ``spec.runner.pool`` gets a Deployment of long-lived workers.

``objects`` renders what the operator owns for a pooled Agent (each with an owner reference to
the Agent): the workers' ServiceAccount, their Role (``contract.pool_rules``) and RoleBinding,
the NetworkPolicy of their class's egress, and the Deployment. The Deployment's pods are
``builders.runner_pod``, the same pod a Job's runner gets from the Agent's RunnerClass, with the
Agent's Secrets as ``secretKeyRef`` variables: one Agent's credentials never share a process
with another's. ``PoolReconciler`` creates them, replaces the Deployment when what it renders
changed (a hash annotation tells), keeps an autoscaler's replica count unless the Agent's
``workers`` changed, and deletes the Deployment when the Agent drops its pool.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants, contract, kube
from bosun.controller import builders, runnerclasses
from bosun.controller import settings as settings_mod
from bosun.controller import store as store_mod

__all__ = [
    "ANNOTATION_SPEC_HASH",
    "ANNOTATION_WORKERS",
    "COMPONENT",
    "Obj",
    "PoolReconciler",
    "capacity",
    "claimed_by",
    "deployment",
    "figures",
    "objects",
    "pool_of",
    "selector",
]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]

ANNOTATION_SPEC_HASH = f"{constants.GROUP}/pool-spec-hash"
ANNOTATION_WORKERS = f"{constants.GROUP}/pool-workers"
"""The Agent's ``workers`` when the operator last set the Deployment's replicas: replicas are
set again only when it changes, so an autoscaler's count stands in between."""
COMPONENT = "pool-worker"
_COMPONENT_LABEL = "app.kubernetes.io/component"


def pool_of(agent: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The Agent's ``spec.runner.pool``; None for a Job per attempt."""
    if agent is None:
        return None
    pool = ((agent.get("spec") or {}).get("runner") or {}).get("pool")
    return pool if isinstance(pool, Mapping) else None


def selector(agent: str) -> dict[str, str]:
    """The labels of a pool's pods (and its Deployment's selector)."""
    return {
        constants.LABEL_MANAGED_BY: "bosun",
        constants.LABEL_AGENT: agent,
        _COMPONENT_LABEL: COMPONENT,
    }


def _owner(agent: Mapping[str, Any]) -> dict[str, Any]:
    meta = agent["metadata"]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Agent",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(agent: Mapping[str, Any]) -> dict[str, Any]:
    name = agent["metadata"]["name"]
    return {
        "name": contract.pool_name(name),
        "namespace": agent["metadata"]["namespace"],
        "labels": selector(name),
        "ownerReferences": [_owner(agent)],
    }


def deployment(
    agent: Mapping[str, Any],
    tools: Iterable[Mapping[str, Any]],
    settings: settings_mod.Settings,
    runner_class: runnerclasses.Resolved,
    namespace_labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The pool's Deployment: ``workers`` replicas of the Agent's runner pod running
    ``python -m bosun.runner pool``, rolled one surge pod at a time without going below the
    pool's size."""
    name = agent["metadata"]["name"]
    pool = pool_of(agent) or {}
    env: list[dict[str, Any]] = [
        {"name": contract.ENV_POOL_AGENT, "value": name},
        {
            "name": contract.ENV_RUN_NAMESPACE,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": contract.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": contract.ENV_POD_UID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": contract.ENV_POOL_RUNS_PER_WORKER, "value": str(pool.get("runsPerWorker", 10))},
        {"name": contract.ENV_LEASE_DURATION, "value": str(settings.lease_duration_seconds)},
        *builders.secret_env(agent, tools),
    ]
    pod_spec = builders.runner_pod(
        agent,
        env,
        settings,
        runner_class,
        namespace_labels=namespace_labels,
        service_account=contract.pool_name(name),
        args=("pool",),
        restart_policy="Always",
    )
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(agent),
        "spec": {
            "replicas": int(pool.get("workers", 1)),
            "selector": {"matchLabels": selector(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": selector(name)}, "spec": pod_spec},
        },
    }
    rendered = json.dumps(body["spec"]["template"], sort_keys=True).encode()
    body["metadata"]["annotations"] = {
        ANNOTATION_SPEC_HASH: hashlib.sha256(rendered).hexdigest()[:16],
        ANNOTATION_WORKERS: str(body["spec"]["replicas"]),
    }
    return body


def objects(
    agent: Mapping[str, Any],
    tools: Iterable[Mapping[str, Any]],
    settings: settings_mod.Settings,
    runner_class: runnerclasses.Resolved,
    namespace_labels: Mapping[str, str] | None,
) -> list[dict[str, Any]]:
    """Everything a pooled Agent's workers need, the Deployment last (so its pods find their
    account, Role and NetworkPolicy in place)."""
    name = contract.pool_name(agent["metadata"]["name"])
    account = {"kind": "ServiceAccount", "name": name, "namespace": agent["metadata"]["namespace"]}
    rbac = "rbac.authorization.k8s.io/v1"
    rendered_objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(agent),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": _meta(agent),
            "rules": contract.pool_rules(),
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": _meta(agent),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [account],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(agent),
            "spec": {
                "podSelector": {"matchLabels": selector(agent["metadata"]["name"])},
                "policyTypes": ["Egress"],
                "egress": runnerclasses.egress(runner_class),
            },
        },
        deployment(agent, tools, settings, runner_class, namespace_labels),
    ]
    # What the workers may do and reach counts too: a change updates the Role and the
    # NetworkPolicy along with the Deployment.
    rendered = json.dumps([o.get("rules") or o.get("spec") for o in rendered_objs], sort_keys=True)
    annotations = rendered_objs[-1]["metadata"]["annotations"]
    annotations[ANNOTATION_SPEC_HASH] = hashlib.sha256(rendered.encode()).hexdigest()[:16]
    return rendered_objs


class PoolReconciler:
    """Brings one Agent's pool objects in line with its ``spec.runner.pool``."""

    def __init__(
        self, store: store_mod.Store, rest: kube.Rest, settings: settings_mod.Settings
    ) -> None:
        self.store = store
        self.rest = rest
        self.settings = settings

    def reconcile(self, key: store_mod.Key) -> None:
        agent = self.store.agents.get(key)
        if agent is not None:
            self._reconcile(agent, runnerclasses.resolve(agent, self.store.runnerclasses.values()))

    def _reconcile(self, agent: Mapping[str, Any], runner_class: runnerclasses.Resolved) -> None:
        meta = agent["metadata"]
        ns, name = meta["namespace"], meta["name"]
        key = (ns, contract.pool_name(name))
        current = self.store.deployments.get(key)
        # A class naming its own ServiceAccount cannot serve a pool (the Agent is not Ready):
        # the pool-worker policy holds bosun-pool-<agent>, and no other account, to its Agent.
        if (
            pool_of(agent) is None
            or runner_class.missing
            or runner_class.spec.get("serviceAccountName")
        ):
            if current is not None and _controlled_by(current, agent):
                self.rest.delete("apps/v1", "deployments", ns, key[1])
                self.store.deployments.delete(current)
                log.info("Deleted pool deployment=%s/%s", ns, key[1])
            return
        tools = [
            t
            for t in (
                self.store.tools.get((ns, n)) for n in (agent.get("spec") or {}).get("tools", [])
            )
            if t is not None
        ]
        namespace = self.store.namespaces.get(("", ns))
        labels = None if namespace is None else dict(namespace["metadata"].get("labels") or {})
        wanted = objects(agent, tools, self.settings, runner_class, labels)
        if current is None:
            for child in wanted[:-1]:
                self._ensure(child, agent)
            created = self.rest.create(wanted[-1])
            if created is not None:
                self.store.deployments.put(created)
            log.info("Created pool deployment=%s/%s", ns, key[1])
            return
        if not _controlled_by(current, agent):
            log.warning("Deployment %s/%s is not this Agent's; pool not managed", ns, key[1])
            return
        desired = wanted[-1]
        had = current["metadata"].get("annotations") or {}
        want = desired["metadata"]["annotations"]
        if (
            had.get(ANNOTATION_SPEC_HASH) == want[ANNOTATION_SPEC_HASH]
            and had.get(ANNOTATION_WORKERS) == want[ANNOTATION_WORKERS]
        ):
            return
        for child in wanted[:-1]:  # the class's egress or the workers' rules may have changed
            self._ensure(child, agent)
        if had.get(ANNOTATION_WORKERS) == want[ANNOTATION_WORKERS]:
            # The Agent's workers did not change: keep whatever count is set now.
            desired["spec"]["replicas"] = (current.get("spec") or {}).get("replicas", 1)
        desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        updated = self.rest.request(
            "PUT", kube.object_path("apps/v1", "deployments", ns, key[1]), desired
        )
        self.store.deployments.put(updated)
        log.info("Updated pool deployment=%s/%s", ns, key[1])

    def _ensure(self, child: Obj, agent: Mapping[str, Any]) -> None:
        """Create ``child``, or bring an existing one of this Agent's in line (a Role's rules,
        a NetworkPolicy's spec)."""
        if self.rest.create(child) is not None:
            return
        field = {"Role": "rules", "NetworkPolicy": "spec"}.get(child["kind"])
        if field is None:
            return
        meta = child["metadata"]
        plural = {"Role": "roles", "NetworkPolicy": "networkpolicies"}[child["kind"]]
        found = self.rest.get(child["apiVersion"], plural, meta["namespace"], meta["name"])
        if found is None or not _controlled_by(found, agent) or found.get(field) == child[field]:
            return
        body = {
            **child,
            "metadata": {**meta, "resourceVersion": found["metadata"]["resourceVersion"]},
        }
        path = kube.object_path(child["apiVersion"], plural, meta["namespace"], meta["name"])
        self.rest.request("PUT", path, body)
        log.info("Updated pool %s=%s/%s", child["kind"], meta["namespace"], meta["name"])


def figures(store: store_mod.Store) -> list[tuple[str, str, int, int, int, int]]:
    """Per pooled Agent: (namespace, agent, waiting, claimed, free slots, ready workers).
    Waiting counts queued Runs and offered attempts no worker claimed yet."""
    waiting: dict[store_mod.Key, int] = {}
    claimed: dict[store_mod.Key, int] = {}
    pooled = {store_mod.key_of(a): a for a in store.agents.values() if pool_of(a) is not None}
    for key in pooled:
        waiting[key] = claimed[key] = 0
    for run in store.runs.values():
        key = store_mod.agent_key_of(run)
        if key not in pooled:
            continue
        status = run.get("status") or {}
        attempts = status.get("attempts") or ()
        if attempts and attempts[-1].get("pool") and not attempts[-1].get("endTime"):
            lease = store.leases.get((key[0], contract.lease_name(run["metadata"]["name"])))
            claim = contract.lease_note(lease, contract.ANNOTATION_CLAIM) if lease else None
            if claim is not None and claim.get("attempt") == attempts[-1].get("number"):
                claimed[key] += 1
            else:
                waiting[key] += 1
        elif status.get("phase") in (constants.PHASE_QUEUED, constants.PHASE_PENDING, None):
            waiting[key] += 1
    rows = []
    for key, agent in sorted(pooled.items()):
        deployment = store.deployments.get((key[0], contract.pool_name(key[1])))
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        per_worker = int((pool_of(agent) or {}).get("runsPerWorker", 10))
        free = max(0, ready * per_worker - claimed[key])
        rows.append((key[0], key[1], waiting[key], claimed[key], free, ready))
    return rows


def capacity(store: store_mod.Store, agent: Mapping[str, Any]) -> int | None:
    """Attempts the Agent's pool can hold at once: its ready workers times runsPerWorker
    (None: the Agent has no pool). Admission offers no more, so an offer is claimed soon."""
    pool = pool_of(agent)
    if pool is None:
        return None
    meta = agent["metadata"]
    deployment = store.deployments.get((meta["namespace"], contract.pool_name(meta["name"])))
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    return ready * int(pool.get("runsPerWorker", 10))


def claimed_by(store: store_mod.Store, worker: store_mod.Key) -> list[store_mod.Key]:
    """The Runs whose Lease a claim of the worker Lease ``worker`` holds."""
    found = []
    for lease in store.leases.values():
        meta = lease["metadata"]
        if meta.get("namespace") != worker[0]:
            continue
        claim = contract.lease_note(lease, contract.ANNOTATION_CLAIM)
        if claim is None or claim.get("workerLease") != worker[1]:
            continue
        owner = next(
            (o["name"] for o in meta.get("ownerReferences") or () if o.get("kind") == "Run"), None
        )
        run = owner or (meta.get("labels") or {}).get(constants.LABEL_RUN)
        if run:
            found.append((worker[0], str(run)))
    return found


def _controlled_by(obj: Mapping[str, Any], agent: Mapping[str, Any]) -> bool:
    uid = agent["metadata"].get("uid")
    owners = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(o.get("controller") and o.get("uid") == uid for o in owners)
