"""Readiness of Agents, Tools and Policies: a Ready condition with a reason to act on.

An Agent is not Ready while a Tool it lists is missing; a Tool while it has no transport; a
Policy while a rule's ``when`` does not compile as CEL. Secrets are not looked at: the operator
may not read them (admission checks that an author may read what they reference, and a missing
Secret shows on the Run, from its runner pod's CreateContainerConfigError). Status is written
only when it changes, so a resync costs no API write.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from bosun import cel, contract, kube
from bosun.controller import conditions, events
from bosun.controller import store as store_mod

__all__ = ["RECHECK_SECONDS", "Obj", "Readiness", "ResourceReconciler"]

log = logging.getLogger("bosun.operator")

Obj = dict[str, Any]
RECHECK_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    message: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


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
        }[plural](obj)
        self._write(plural, obj, readiness)
        return None if readiness.ready else RECHECK_SECONDS

    def _agent(self, agent: Obj) -> Readiness:
        ns = agent["metadata"]["namespace"]
        spec = agent.get("spec") or {}
        absent = [t for t in spec.get("tools") or () if self.store.tools.get((ns, t)) is None]
        if absent:
            return Readiness(False, "ToolNotFound", f"Tools not found: {', '.join(absent)}")
        model = spec.get("model") or {}
        described = "/".join(str(p) for p in (model.get("provider"), model.get("name")) if p)
        return Readiness(True, "Ready", f"Model {described}")

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
            if not when:
                continue
            try:
                self._cel.program(when)
            except cel.CELError as err:
                label = rule.get("name") or f"rules[{index}]"
                detail = err.detail.strip()
                first_line = detail.splitlines()[0] if detail else repr(err)
                where = err.where(when)
                message = (
                    f"{label}: when does not compile{where}: {first_line}"
                    if not where
                    else f"{label}: when does not compile{where}: {when!r}"
                )
                return Readiness(False, "InvalidCEL", message, extra)
        return Readiness(True, "Ready", f"{len(rules)} rules compile", extra)

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
        desired: Obj = {"observedGeneration": generation, "conditions": [ready], **readiness.extra}
        current = {k: status.get(k) for k in desired}
        current["conditions"] = [c for c in previous if c.get("type") == "Ready"]
        if current == desired:
            return
        manager = contract.FIELD_MANAGER_OPERATOR
        updated = self.rest.apply_status(obj, desired, manager=manager)
        if updated is None:
            return
        self.store.kind(plural).put(updated)
        was = conditions.find(previous, "Ready")
        if was is None or was.get("status") != ready["status"]:
            events.emit(
                self.rest, obj, readiness.reason, readiness.message, warning=not readiness.ready
            )
        log.info(
            "Updated readiness kind=%s object=%s/%s ready=%s reason=%s",
            obj["kind"],
            meta["namespace"],
            meta["name"],
            readiness.ready,
            readiness.reason,
        )
