"""Which RunnerClass serves an Agent, and what the class makes of its runner pod: pure rules.

``resolve`` picks the class an Agent names, or the default class (the newest one annotated
``runnerclass.bosun.dev/is-default-class: "true"``), or else the operator's built-in class (its
configured runner image, nothing else). ``resources`` takes the Agent's resources or else the
class's defaults and ``resource_problem`` checks them against the class's maximum;
``pod_security`` and ``container_security`` lay the class's security contexts over the
PodSecurity "restricted" profile; ``egress`` turns the class's egress rules into NetworkPolicy
rules that never reach a cloud metadata address. ``moved_fields`` names what a stored Agent
still sets that moved here.
"""

from __future__ import annotations

import dataclasses
import decimal
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bosun import constants
from bosun.api import agent as agent_api
from bosun.api import runnerclass as runnerclass_api

__all__ = [
    "BUILTIN_RESOURCES",
    "RESTRICTED_CONTAINER",
    "RESTRICTED_POD",
    "Obj",
    "Resolved",
    "container_security",
    "default_class",
    "egress",
    "is_default",
    "moved_fields",
    "pod_security",
    "quantity",
    "resolve",
    "resource_problem",
    "resources",
]

Obj = Mapping[str, Any]

BUILTIN_RESOURCES: dict[str, dict[str, Any]] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
"""Resources of a runner container when neither its class nor its Agent sets any."""

RESTRICTED_POD: dict[str, Any] = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The class serving an Agent. ``name`` None: the operator's built-in class. ``obj`` None
    with a ``name``: the class does not exist."""

    name: str | None
    obj: Obj | None
    named: bool
    """Whether the Agent names the class (rather than getting the default)."""

    @property
    def missing(self) -> bool:
        return self.name is not None and self.obj is None

    @property
    def spec(self) -> Obj:
        return (self.obj or {}).get("spec") or {}

    def describe(self) -> str:
        return f"RunnerClass {self.name}" if self.name else "the built-in runner class"


def is_default(obj: Obj) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(constants.ANNOTATION_DEFAULT_RUNNER_CLASS, "")).lower() == "true"


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The default class: of those annotated default, the newest (StorageClass's rule)."""
    marked = [c for c in classes if is_default(c) and not c["metadata"].get("deletionTimestamp")]
    if not marked:
        return None
    return max(
        marked, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"])
    )


def resolve(agent: Obj, classes: Iterable[Obj]) -> Resolved:
    """The class that serves ``agent`` among ``classes`` (every RunnerClass there is)."""
    wanted = ((agent.get("spec") or {}).get("runner") or {}).get("className")
    known = list(classes)
    if wanted:
        found = next((c for c in known if c["metadata"]["name"] == wanted), None)
        return Resolved(str(wanted), found, True)
    chosen = default_class(known)
    if chosen is None:
        return Resolved(None, None, False)
    return Resolved(str(chosen["metadata"]["name"]), chosen, False)


_SUFFIXES: dict[str, int | decimal.Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def quantity(value: int | str) -> decimal.Decimal:
    """A Kubernetes resource quantity (``250m``, ``1Gi``, ``2``, ``1e3``) as a number."""
    if isinstance(value, int):
        return decimal.Decimal(value)
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a quantity")
    number, suffix = decimal.Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * (decimal.Decimal(10) ** int(suffix[1:]))
    return number * decimal.Decimal(_SUFFIXES[suffix])


def resources(resolved: Resolved, agent: Obj) -> dict[str, dict[str, Any]]:
    """The runner container's resources: the Agent's when it sets any, else the class's
    defaults (else the built-in ones); a resource the class bounds but nobody limits gets the
    bound as its limit, so the bound holds in the pod."""
    spec = resolved.spec
    own = ((agent.get("spec") or {}).get("runner") or {}).get("resources")
    base = own or spec.get("defaultResources")
    if base is None:
        base = BUILTIN_RESOURCES
    chosen = {kind: dict(base.get(kind) or {}) for kind in ("requests", "limits")}
    for name, bound in (spec.get("maxResources") or {}).items():
        chosen["limits"].setdefault(name, bound)
    return {kind: amounts for kind, amounts in chosen.items() if amounts}


def resource_problem(resolved: Resolved, agent: Obj) -> tuple[str, str] | None:
    """(reason, message) when the runner's resources break the class's bounds or contradict
    themselves; None when they are fine."""
    effective = resources(resolved, agent)
    try:
        bounds = {k: quantity(v) for k, v in (resolved.spec.get("maxResources") or {}).items()}
        amounts = {
            kind: {name: quantity(v) for name, v in (effective.get(kind) or {}).items()}
            for kind in ("requests", "limits")
        }
    except ValueError as err:
        return constants.REASON_INVALID_RESOURCES, f"runner.resources: {err}"
    for kind in ("requests", "limits"):
        for name, amount in sorted(amounts[kind].items()):
            bound = bounds.get(name)
            if bound is not None and amount > bound:
                raw = effective[kind][name]
                limit = resolved.spec["maxResources"][name]
                return constants.REASON_RESOURCES_EXCEED_CLASS, (
                    f"runner.resources.{kind}.{name} {raw} exceeds the maximum {limit} of"
                    f" {resolved.describe()} (maxResources.{name})"
                )
    for name, amount in sorted(amounts["requests"].items()):
        limit_amount = amounts["limits"].get(name)
        if limit_amount is not None and amount > limit_amount:
            return constants.REASON_INVALID_RESOURCES, (
                f"runner.resources.requests.{name} {effective['requests'][name]} exceeds"
                f" limits.{name} {effective['limits'][name]}"
            )
    return None


def pod_security(resolved: Resolved) -> dict[str, Any]:
    return {**RESTRICTED_POD, **(resolved.spec.get("podSecurityContext") or {})}


def container_security(resolved: Resolved) -> dict[str, Any]:
    return {**RESTRICTED_CONTAINER, **(resolved.spec.get("securityContext") or {})}


_METADATA = tuple(ipaddress.ip_network(c) for c in runnerclass_api.METADATA_CIDRS)
_EVERYWHERE = ({"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}})


def _guarded(peer: Obj) -> dict[str, Any] | None:
    """``peer`` with every metadata address inside it excepted; None when it is nothing but
    metadata addresses. Pod and namespace selectors never select those addresses."""
    block = peer.get("ipBlock")
    if not block:
        return dict(peer)
    network = ipaddress.ip_network(block["cidr"], strict=False)
    excepted = list(block.get("except") or ())
    for metadata in _METADATA:
        if metadata.version != network.version:
            continue
        if network.subnet_of(metadata):  # type: ignore[arg-type]
            return None
        if metadata.subnet_of(network) and str(metadata) not in excepted:  # type: ignore[arg-type]
            excepted.append(str(metadata))
    guarded: dict[str, Any] = {"cidr": block["cidr"]}
    if excepted:
        guarded["except"] = excepted
    return {**peer, "ipBlock": guarded}


def egress(resolved: Resolved) -> list[dict[str, Any]]:
    """The NetworkPolicy egress rules of the class's runner pods. A rule with no destination
    means everywhere, so it becomes everywhere-but-metadata; a rule whose destinations were
    all metadata addresses is dropped (an empty ``to`` would allow everything)."""
    rules = resolved.spec.get("egress")
    if rules is None:
        rules = [{}]
    out = []
    for rule in rules:
        peers = rule.get("to") or _EVERYWHERE
        to = [g for g in (_guarded(p) for p in peers) if g is not None]
        if not to:
            continue
        entry: dict[str, Any] = {"to": to}
        if rule.get("ports"):
            entry["ports"] = [dict(p) for p in rule["ports"]]
        out.append(entry)
    return out


def moved_fields(agent: Obj) -> list[str]:
    """The runner fields a stored Agent still sets that moved to RunnerClass (ignored)."""
    runner = (agent.get("spec") or {}).get("runner") or {}
    return [f for f in agent_api.MOVED_RUNNER_FIELDS if runner.get(f) not in (None, "", [], {})]
