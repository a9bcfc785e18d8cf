"""The operator's in-memory view of the objects it watches, updated by events and by its writes.

Watch events and the responses of the operator's own writes both land here, newest
``resourceVersion`` first, so a decision made right after a write sees that write even before
its watch event arrives (admission counts depend on it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Key", "Kind", "Obj", "Store", "agent_key_of", "key_of", "slim"]

Obj = dict[str, Any]
Key = tuple[str, str]


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return (str(meta.get("namespace", "")), str(meta["name"]))


def agent_key_of(run: Mapping[str, Any]) -> Key:
    """The key of the Agent a Run refers to."""
    name = ((run.get("spec") or {}).get("agentRef") or {}).get("name", "")
    return (str(run["metadata"].get("namespace", "")), str(name))


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: Obj) -> Obj:
    """``obj`` without what the operator never reads and that dominates its size in memory:
    ``managedFields`` and kubectl's last-applied annotation (a shallow copy; ``obj`` itself,
    which may be kopf's, is left alone)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and _LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    return {**obj, "metadata": meta}


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class Kind:
    """Objects of one kind by (namespace, name)."""

    def __init__(self) -> None:
        self._items: dict[Key, Obj] = {}
        self._lock = threading.Lock()

    def put(self, obj: Obj) -> bool:
        """Store ``obj`` (slimmed) unless a newer version is stored; True when stored."""
        obj = slim(obj)
        key = key_of(obj)
        with self._lock:
            old = self._items.get(key)
            same = old is not None and old["metadata"].get("uid") == obj["metadata"].get("uid")
            if same and old is not None and _version(old) > _version(obj):
                return False
            self._items[key] = obj
            return True

    def delete(self, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        with self._lock:
            old = self._items.get(key)
            if old is not None and old["metadata"].get("uid") == obj["metadata"].get("uid"):
                del self._items[key]

    def get(self, key: Key) -> Obj | None:
        with self._lock:
            return self._items.get(key)

    def values(self) -> list[Obj]:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[Obj]:
        return iter(self.values())


class Store:
    """Every kind the operator watches."""

    def __init__(self) -> None:
        self.runs = Kind()
        self.agents = Kind()
        self.tools = Kind()
        self.policies = Kind()
        self.runnerclasses = Kind()  # cluster-scoped: keyed by ("", name)
        self.clusterpolicies = Kind()  # cluster-scoped
        self.namespaces = Kind()  # cluster-scoped: their labels select ClusterPolicies
        self.jobs = Kind()
        self.leases = Kind()

    def runs_of(self, agent: Key) -> Iterator[Obj]:
        """The Runs that refer to the Agent ``agent``."""
        return (run for run in self.runs.values() if agent_key_of(run) == agent)

    def kind(self, plural: str) -> Kind:
        kinds: dict[str, Kind] = {
            "runs": self.runs,
            "agents": self.agents,
            "tools": self.tools,
            "policies": self.policies,
            "runnerclasses": self.runnerclasses,
            "clusterpolicies": self.clusterpolicies,
            "namespaces": self.namespaces,
            "jobs": self.jobs,
            "leases": self.leases,
        }
        return kinds[plural]
