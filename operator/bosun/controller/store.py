"""The operator's in-memory view of the objects it watches, updated by events and by its writes.

Watch events and the responses of the operator's own writes both land here, newest
``resourceVersion`` first, so a decision made right after a write sees that write even before
its watch event arrives (admission counts depend on it). Each object is kept as a compact copy
of only what the operator reads: never ``managedFields`` or kubectl's last-applied annotation;
of a Run not its input, output, pending approvals or annotations other than Bosun's; of a Job
not its pod template. Strings are interned, so the keys and common values of thousands of
finished Runs are stored once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bosun import constants, kube

__all__ = [
    "Key",
    "Kind",
    "Obj",
    "Store",
    "acted_on",
    "agent_key_of",
    "key_of",
    "list_pages",
    "slim",
    "slim_job",
    "slim_run",
]

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


def acted_on(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the operator acts on in an object (its identity, spec generation, labels and
    deletion), to tell a change of it from a change of status alone."""
    meta = obj["metadata"]
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    return (meta.get("uid"), meta.get("generation"), labels, meta.get("deletionTimestamp"))


def slim(obj: Obj) -> Obj:
    """``obj`` without what the operator never reads and that dominates its size in memory:
    ``managedFields`` and kubectl's last-applied annotation (a shallow copy; ``obj`` itself,
    which may be kopf's, is left alone)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and _LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    return {**obj, "metadata": meta}


# Of a Run, what only the runner and people read: the operator never looks at these.
_RUN_SPEC_UNREAD = frozenset({"input"})
_RUN_STATUS_UNREAD = frozenset({"output", "pendingApprovals"})
_OURS = f"{constants.GROUP}/"
_INTERNED_UP_TO = 64
"""Strings up to this long are interned: keys, reasons, phases, names, timestamps."""


def slim_run(obj: Obj) -> Obj:
    """A Run as ``slim`` keeps it, without what only the runner and people read: spec.input,
    status.output and status.pendingApprovals, and annotations other than ``bosun.dev/`` ones."""
    found = slim(obj)
    meta = found["metadata"]
    annotations = meta.get("annotations")
    if annotations:
        ours = {k: v for k, v in annotations.items() if k.startswith(_OURS)}
        found["metadata"] = {**meta, "annotations": ours} if ours else _without(meta, "annotations")
    if isinstance(found.get("spec"), dict):
        found["spec"] = _without(found["spec"], *_RUN_SPEC_UNREAD)
    if isinstance(found.get("status"), dict):
        found["status"] = _without(found["status"], *_RUN_STATUS_UNREAD)
    return found


def slim_job(obj: Obj) -> Obj:
    """A Job (or a pool's Deployment) as ``slim`` keeps it, without its pod template (the
    operator wrote it)."""
    found = slim(obj)
    if isinstance(found.get("spec"), dict):
        found["spec"] = _without(found["spec"], "template")
    return found


def _without(mapping: Mapping[str, Any], *keys: str) -> Obj:
    return {k: v for k, v in mapping.items() if k not in keys}


def _compact(value: Any) -> Any:
    """A deep copy of a parsed JSON value with its short strings interned."""
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _INTERNED_UP_TO:
        return sys.intern(value)
    return value


def _version(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class Kind:
    """Objects of one kind by (namespace, name), each kept as ``strip`` leaves it."""

    def __init__(self, strip: Callable[[Obj], Obj] = slim) -> None:
        self._items: dict[Key, Obj] = {}
        self._lock = threading.Lock()
        self._strip = strip

    def put(self, obj: Obj) -> bool:
        """Store a compact copy of ``obj`` unless a newer version is stored; True when stored
        (also when this very version already is, which is then not copied again)."""
        key = key_of(obj)
        with self._lock:
            version = _compare(self._items.get(key), obj)
        if version is not None:
            return version == 0
        stripped = _compact(self._strip(obj))
        with self._lock:
            version = _compare(self._items.get(key), obj)
            if version is not None:
                return version == 0
            self._items[key] = stripped
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


def _compare(old: Obj | None, new: Mapping[str, Any]) -> int | None:
    """0 when ``old`` is this version of ``new``, 1 when it is a newer one, None otherwise
    (another object, an older version, or versions that cannot be compared)."""
    if old is None or old["metadata"].get("uid") != new["metadata"].get("uid"):
        return None
    stored, given = _version(old), _version(new)
    if stored > given:
        return 1
    if stored == given > 0:
        return 0
    return None


class Store:
    """Every kind the operator watches."""

    def __init__(self) -> None:
        self.runs = Kind(slim_run)
        self.agents = Kind()
        self.tools = Kind()
        self.policies = Kind()
        self.schedules = Kind()
        self.webhooks = Kind()
        self.runnerclasses = Kind()  # cluster-scoped: keyed by ("", name)
        self.clusterpolicies = Kind()  # cluster-scoped
        self.namespaces = Kind()  # cluster-scoped: their labels select ClusterPolicies
        self.jobs = Kind(slim_job)
        self.leases = Kind()
        self.deployments = Kind(slim_job)  # pools' workers: their pod template is ours too

    def runs_of(self, agent: Key) -> Iterator[Obj]:
        """The Runs that refer to the Agent ``agent``."""
        return (run for run in self.runs.values() if agent_key_of(run) == agent)

    def kind(self, plural: str) -> Kind:
        kinds: dict[str, Kind] = {
            "runs": self.runs,
            "agents": self.agents,
            "tools": self.tools,
            "policies": self.policies,
            "schedules": self.schedules,
            "webhooks": self.webhooks,
            "runnerclasses": self.runnerclasses,
            "clusterpolicies": self.clusterpolicies,
            "namespaces": self.namespaces,
            "jobs": self.jobs,
            "leases": self.leases,
            "deployments": self.deployments,
        }
        return kinds[plural]


def list_pages(
    rest: kube.Rest,
    api_version: str,
    plural: str,
    namespace: str | None,
    selector: str | None,
    *,
    page_size: int,
) -> Iterator[Obj]:
    """Every object of a collection, fetched ``page_size`` at a time; a page is dropped
    before the next one is fetched."""
    token = ""
    while True:
        query = [("limit", str(page_size))]
        if selector:
            query.append(("labelSelector", selector))
        if token:
            query.append(("continue", token))
        path = kube.collection_path(api_version, plural, namespace)
        page = rest.request("GET", path, query=query)
        token = str((page.get("metadata") or {}).get("continue") or "")
        items: list[Obj] = page.pop("items", None) or []
        del page
        items.reverse()
        while items:
            yield items.pop()  # dropped from the page as it is handed out
        if not token:
            return
