"""Readiness of Agents, Tools, Policies, ClusterPolicies, RunnerClasses and Webhooks.

An Agent is not Ready while a Tool it lists or its RunnerClass is missing, or its runner
resources break the class's bounds; a stored Agent that still sets runner fields that moved to
RunnerClass also gets a RunnerFieldsIgnored condition. A Tool is not Ready while it has no
transport; a Policy or ClusterPolicy while a rule's ``when`` does not compile as CEL; a
RunnerClass while its default resources exceed its maximum; a Webhook while its ``filter`` or
``input`` does not compile. Secrets are not looked at: the
operator may not read them (admission checks that an author may read what they reference, and
a missing Secret shows on the Run, from its runner pod's CreateContainerConfigError). Status is
written only when it changes, so a resync costs no API write.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from bosun import cel, constants, contract, kube
from bosun.controller import conditions, events, pools, runnerclasses
from bosun.controller import store as store_mod

__all__ = ["RECHECK_SECONDS", "Obj", "Readiness", "ResourceReconciler", "not_ready"]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]
RECHECK_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    message: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[tuple[str, str, str], ...] = ()
    """Other True conditions to show, as (type, reason, message)."""


# Condition types this reconciler writes besides Ready; absent from ``notes``, they are removed.
_NOTE_TYPES = (constants.CONDITION_RUNNER_FIELDS_IGNORED,)


class ResourceReconciler:
    def __init__(self, store: store_mod.Store, rest: kube.Rest) -> None:
        self.store = store
        self.rest = rest
        self._cel = cel.Evaluator()

    def reconcile(self, plural: str, key: store_mod.Key) -> float | None:
        """Bring one object's Ready condition up to date; return when to look again."""
        obj = self.store.kind(plural).get(key)
        if obj is None:
            return None
        readiness = {
            "agents": self._agent,
            "tools": self._tool,
            "policies": self._policy,
            "clusterpolicies": self._policy,
            "runnerclasses": self._runnerclass,
            "webhooks": self._webhook,
        }[plural](obj)
        self._write(plural, obj, readiness)
        return None if readiness.ready else RECHECK_SECONDS

    def _agent(self, agent: Obj) -> Readiness:
        ns = agent["metadata"]["namespace"]
        spec = agent.get("spec") or {}
        absent = [t for t in spec.get("tools") or () if self.store.tools.get((ns, t)) is None]
        notes = _moved_note(agent)
        if absent:
            message = f"Tools not found: {', '.join(absent)}"
            return Readiness(False, "ToolNotFound", message, notes=notes)
        unusable = self._runner_class_problem(agent)
        if unusable is not None:
            return Readiness(False, unusable[0], unusable[1], notes=notes)
        chosen = runnerclasses.resolve(agent, self.store.runnerclasses.values())
        if pools.pool_of(agent) is not None and chosen.spec.get("serviceAccountName"):
            message = (
                f"RunnerClass {chosen.name} sets serviceAccountName, and a pool's workers run as"
                f" their own account {contract.pool_name(agent['metadata']['name'])} (held to"
                " this Agent by the pool-worker policy): pick a class without one for a pool"
            )
            return Readiness(False, "PoolNeedsOwnAccount", message, notes=notes)
        model = spec.get("model") or {}
        described = "/".join(str(p) for p in (model.get("provider"), model.get("name")) if p)
        return Readiness(True, "Ready", f"Model {described}", self._mode(agent), notes=notes)

    def _mode(self, agent: Obj) -> dict[str, Any]:
        """``runnerMode`` and, for a pool, its workers as its Deployment reports them, and the
        slots they have free for attempts (as of this look; the metrics say it live)."""
        pool = pools.pool_of(agent)
        if pool is None:
            return {"runnerMode": "Job"}
        ns, name = agent["metadata"]["namespace"], agent["metadata"]["name"]
        deployment = self.store.deployments.get((ns, contract.pool_name(name)))
        row = next((r for r in pools.figures(self.store) if r[:2] == (ns, name)), None)
        free, ready = (row[4], row[5]) if row is not None else (0, 0)
        return {
            "runnerMode": "Pool",
            "pool": {
                "deployment": contract.pool_name(name),
                "workers": int(((deployment or {}).get("spec") or {}).get("replicas") or 0),
                "readyWorkers": ready,
                "freeSlots": free,
            },
        }

    def _runner_class_problem(self, agent: Obj) -> tuple[str, str] | None:
        """(reason, message) when the Agent's RunnerClass is missing or its runner resources
        break the class's bounds."""
        chosen = runnerclasses.resolve(agent, self.store.runnerclasses.values())
        if chosen.missing:
            return constants.REASON_RUNNER_CLASS_NOT_FOUND, (
                f"RunnerClass {chosen.name} (runner.className) not found"
            )
        return runnerclasses.resource_problem(chosen, agent)

    def _runnerclass(self, runner_class: Obj) -> Readiness:
        name = runner_class["metadata"]["name"]
        chosen = runnerclasses.default_class(self.store.runnerclasses.values())
        serves = chosen is not None and chosen["metadata"]["name"] == name
        extra = {"default": serves}
        problem = runnerclasses.resource_problem(
            runnerclasses.Resolved(name, runner_class, True), {}
        )
        if problem is not None:
            message = problem[1].replace("runner.resources", "defaultResources", 1)
            return Readiness(False, problem[0], message, extra)
        if serves:
            return Readiness(
                True, "Ready", "The default class: serves Agents that name none", extra
            )
        if runnerclasses.is_default(runner_class) and chosen is not None:
            newer = chosen["metadata"]["name"]
            message = f"Marked default, but {newer} is newer and is the default class"
            return Readiness(True, "Ready", message, extra)
        return Readiness(True, "Ready", "Usable by Agents whose author may use it", extra)

    def _tool(self, tool: Obj) -> Readiness:
        spec = tool.get("spec") or {}
        transport = "http" if spec.get("http") else "mcp" if spec.get("mcp") else None
        extra = {"transport": transport} if transport else {}
        if transport is None:
            return Readiness(False, "NoTransport", "Set exactly one of http or mcp", extra)
        return Readiness(True, "Ready", f"{transport} transport", extra)

    def _policy(self, policy: Obj) -> Readiness:
        rules = (policy.get("spec") or {}).get("rules") or []
        extra = {"ruleCount": len(rules)}
        for index, rule in enumerate(rules):
            when = rule.get("when")
            problem = when and self._compile_problem(when)
            if problem:
                label = rule.get("name") or f"rules[{index}]"
                return Readiness(False, "InvalidCEL", f"{label}: when {problem}", extra)
        return Readiness(True, "Ready", f"{len(rules)} rules compile", extra)

    def _webhook(self, webhook: Obj) -> Readiness:
        spec = webhook.get("spec") or {}
        for field in ("filter", "input"):
            source = spec.get(field)
            problem = source and self._compile_problem(source)
            if problem:
                return Readiness(False, "InvalidCEL", f"spec.{field} {problem}")
        agent = ((spec.get("runTemplate") or {}).get("spec") or {}).get("agentRef") or {}
        message = f"filter and input compile; deliveries start Runs of Agent {agent.get('name')}"
        return Readiness(True, "Ready", message)

    def _compile_problem(self, source: str) -> str | None:
        """``does not compile at ...: ...`` for a CEL expression that does not, else None."""
        try:
            self._cel.program(source)
        except cel.CELError as err:
            detail = err.detail.strip()
            first_line = detail.splitlines()[0] if detail else repr(err)
            where = err.where(source)
            shown = first_line if not where else repr(source)
            return f"does not compile{where}: {shown}"
        return None

    def _write(self, plural: str, obj: Obj, readiness: Readiness) -> None:
        meta = obj["metadata"]
        status = obj.get("status") or {}
        generation = meta.get("generation")
        previous = status.get("conditions") or []
        ready = conditions.make(
            previous,
            "Ready",
            readiness.ready,
            readiness.reason,
            readiness.message,
            generation=generation,
        )
        notes = [
            conditions.make(previous, kind, True, reason, message, generation=generation)
            for kind, reason, message in readiness.notes
        ]
        desired: Obj = {
            "observedGeneration": generation,
            "conditions": [ready, *notes],
            **readiness.extra,
        }
        current = {k: status.get(k) for k in desired}
        current["conditions"] = [c for c in previous if c.get("type") == "Ready"] + [
            c for c in previous if c.get("type") in _NOTE_TYPES
        ]
        if current == desired:
            return
        manager = contract.FIELD_MANAGER_OPERATOR
        updated = self.rest.apply_status(obj, desired, manager=manager)
        if updated is None:
            return
        self.store.kind(plural).put(updated)
        # Cluster-scoped objects (RunnerClasses, ClusterPolicies) get no Events: an Event lives
        # in a namespace.
        namespaced = bool(meta.get("namespace"))
        was = conditions.find(previous, "Ready")
        if namespaced and (was is None or was.get("status") != ready["status"]):
            events.emit(
                self.rest, obj, readiness.reason, readiness.message, warning=not readiness.ready
            )
        for note in notes:
            if namespaced and conditions.find(previous, note["type"]) is None:
                events.emit(self.rest, obj, note["reason"], note["message"], warning=True)
        log.info(
            "Updated readiness kind=%s object=%s/%s ready=%s reason=%s",
            obj["kind"],
            meta.get("namespace", ""),
            meta["name"],
            readiness.ready,
            readiness.reason,
        )


def not_ready(agent: Mapping[str, Any]) -> str | None:
    """Why an Agent's Runs must wait (its Ready condition is False), or None."""
    ready = conditions.find(
        (agent.get("status") or {}).get("conditions"), constants.CONDITION_READY
    )
    if ready is None or ready.get("status") != "False":
        return None
    name = agent["metadata"]["name"]
    return (
        f"Agent {name} is not Ready ({ready.get('reason')}: {ready.get('message')});"
        " the Run starts when it is"
    )


def _moved_note(agent: Obj) -> tuple[tuple[str, str, str], ...]:
    """The RunnerFieldsIgnored condition of a stored Agent that still sets moved fields."""
    moved = runnerclasses.moved_fields(agent)
    if not moved:
        return ()
    fields = ", ".join(f"runner.{f}" for f in moved)
    message = (
        f"Ignored: {fields} moved to RunnerClass; the runner pod is what the Agent's RunnerClass"
        " defines (runner.className, or the default class). Remove the fields; they cannot be"
        " changed, only removed."
    )
    return (
        (
            constants.CONDITION_RUNNER_FIELDS_IGNORED,
            constants.REASON_MOVED_TO_RUNNER_CLASS,
            message,
        ),
    )
