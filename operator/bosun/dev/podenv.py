"""Compute a container's environment the way the kubelet does.

Resolves ``env`` (literal values with ``$(VAR)`` expansion, ``fieldRef``, ``resourceFieldRef``,
``secretKeyRef``, ``configMapKeyRef``) and ``envFrom`` against a pod given as a plain dict.
Secrets and ConfigMaps come from lookup callables, so this module does no I/O of its own.
A missing non-optional reference raises ``EnvError``, which the emulator reports as the
kubelet's ``CreateContainerConfigError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import utils

__all__ = ["EnvError", "Lookup", "container_env", "expand", "field_value", "resource_value"]

Lookup = Callable[[str, str], Mapping[str, str] | None]

_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(ValueError):
    """A referenced Secret, ConfigMap, key or field is missing."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` from earlier variables; ``$$`` is a literal ``$``; unknown stay as is."""

    def _sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(_sub, value)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {}) or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
        "status.hostIPs": status.get("hostIP", "127.0.0.1"),
        "status.podIPs": status.get("podIP", "127.0.0.1"),
    }
    if path in simple:
        return str(simple[path])
    match = _LABEL_PATH.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef.fieldPath {path!r}")


def resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    amounts = resources.get(kind) or {}
    raw = amounts.get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    divisor = utils.parse_quantity(str(ref.get("divisor") or "1"))
    if raw is None:
        return "0"
    quantity = utils.parse_quantity(str(raw))
    return str(math.ceil(quantity / divisor))


def _key_ref(ref: Mapping[str, Any], namespace: str, lookup: Lookup, kind: str) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    data = lookup(namespace, name)
    if data is None or key not in data:
        if ref.get("optional"):
            return None
        what = f"{kind} {namespace}/{name}" if data is None else f"key {key!r} in {kind} {name}"
        raise EnvError(f"{what} not found")
    return data[key]


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    secrets: Lookup,
    configmaps: Lookup,
) -> dict[str, str]:
    """The variables a container sees from its own spec (base variables not included)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix") or ""
        for kind, lookup in (("configMapRef", configmaps), ("secretRef", secrets)):
            ref = source.get(kind)
            if not ref:
                continue
            data = lookup(namespace, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"{kind[:-3]} {namespace}/{ref.get('name')} not found")
            env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or ():
        name = item["name"]
        if "value" in item and item["value"] is not None:
            env[name] = expand(str(item["value"]), env)
            continue
        source = item.get("valueFrom") or {}
        value: str | None
        if source.get("fieldRef"):
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif source.get("resourceFieldRef"):
            value = resource_value(container, source["resourceFieldRef"])
        elif source.get("secretKeyRef"):
            value = _key_ref(source["secretKeyRef"], namespace, secrets, "Secret")
        elif source.get("configMapKeyRef"):
            value = _key_ref(source["configMapKeyRef"], namespace, configmaps, "ConfigMap")
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env
