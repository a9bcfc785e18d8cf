"""Watched copies of what a pool worker's attempts read before every step.

A Job runner reads its Run, Agent, Policies, ClusterPolicies and Tools from the API server
before every step (``world``), so each decision sees what is stored now. A pool worker runs many
attempts at once, and those reads, made by every attempt at every step, were most of its
requests: about 18 per Run with one tool call, against 12 writes. ``Mirror`` lists one kind
and then watches it; ``Cached`` is the ``kubeapi.ClusterAPI`` a worker's attempts use, which
answers those reads from the mirrors while each is in sync, and from the API server otherwise.

In sync means listed, and watched since without a break: the copy is behind the store only by
the watch's delivery delay. A mirror whose watch broke, ended or sent an error answers nothing
until it has listed again, so a read never falls back on a copy that may have stopped changing;
a list the API server refuses (Forbidden, NotFound) leaves the mirror out of sync, and the read
goes to the API server, which refuses it the same way to the loop. An object a mirror does not
hold is read from the API server too (it may be newer than the watch), so NotFound is always the
API server's answer. Writes, Leases, journals and Approvals always go to the API server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bosun import constants, kube, retry
from bosun.runner import kubeapi

__all__ = ["READ_TIMEOUT_SECONDS", "Cached", "Mirror", "Mirrors"]

log = logging.getLogger("bosun.runner.pool")

_Obj = dict[str, Any]

READ_TIMEOUT_SECONDS = 90.0
"""A watch that delivers nothing, not even a bookmark (sent about every minute), for this long
is taken as broken."""


class Mirror:
    """One kind, in one namespace (``None``: cluster-wide), listed and then watched.

    ``on_listed(objects, gone)`` is called after each listing with every object listed and the
    names that disappeared since the last one; ``on_event(type, object)`` for each change the
    watch delivers (``ADDED``, ``MODIFIED``, ``DELETED``), after the copy is updated."""

    def __init__(
        self,
        rest: kube.Rest,
        api_version: str,
        plural: str,
        namespace: str | None,
        *,
        query: Sequence[tuple[str, str]] = (),
        on_listed: Callable[[list[_Obj], set[str]], None] | None = None,
        on_event: Callable[[str, _Obj], None] | None = None,
    ) -> None:
        self.rest = rest
        self.plural = plural
        self.path = kube.collection_path(api_version, plural, namespace)
        self.query = list(query)
        self.on_listed = on_listed
        self.on_event = on_event
        self._lock = threading.Lock()
        self._objects: dict[str, _Obj] = {}
        self._synced = False

    # --- reading -------------------------------------------------------------------------------

    def synced(self) -> bool:
        with self._lock:
            return self._synced

    def items(self) -> list[_Obj] | None:
        """Every object, or None while the mirror is not in sync."""
        with self._lock:
            return list(self._objects.values()) if self._synced else None

    def get(self, name: str) -> _Obj | None:
        """The object named ``name``; None while not in sync or when the mirror has none."""
        with self._lock:
            return self._objects.get(name) if self._synced else None

    # --- keeping it -----------------------------------------------------------------------------

    def _unsync(self) -> None:
        with self._lock:
            self._synced = False

    def run_forever(self, done: threading.Event) -> None:
        """List and watch until ``done``; after a break, list again (``retry.WATCH_RESTART``)."""
        failures = 0
        while not done.is_set():
            try:
                self.run_once(done)
                failures = 0
            except Exception as err:
                self._unsync()
                if done.is_set():
                    return
                failures += 1
                log.warning(
                    "Watch broke",
                    extra={"fields": {"resource": self.plural, "error": repr(err)[:300]}},
                )
                done.wait(retry.WATCH_RESTART.delay(failures))

    def run_once(self, done: threading.Event) -> None:
        """List, then watch until the watch ends or breaks (raising what broke it)."""
        listed = self.rest.request("GET", self.path, query=self.query or None)
        objects = {obj["metadata"]["name"]: obj for obj in listed.get("items") or ()}
        with self._lock:
            gone = set(self._objects) - set(objects)
            self._objects = objects
            self._synced = True
        if self.on_listed is not None:
            self.on_listed(list(objects.values()), gone)
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        query = [
            *self.query,
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
        ]
        try:
            with self.rest.stream(self.path, query, read_timeout=READ_TIMEOUT_SECONDS) as events:
                for event in events:
                    if done.is_set():
                        return
                    kind, obj = str(event.get("type") or ""), event.get("object") or {}
                    if kind == "ERROR":
                        return  # an expired resourceVersion: list again
                    if kind == "BOOKMARK":
                        continue
                    name = (obj.get("metadata") or {}).get("name")
                    if not name:
                        continue
                    with self._lock:
                        if kind == "DELETED":
                            self._objects.pop(name, None)
                        else:
                            self._objects[name] = obj
                    if self.on_event is not None:
                        self.on_event(kind, obj)
        finally:
            self._unsync()  # ended (the server's timeout), broke, or an error: list again


class Mirrors:
    """The mirrors of one worker's namespace: Agents, Tools, Policies and ClusterPolicies (the
    Runs' mirror is the worker's own watch of its Agent's Runs, passed in)."""

    def __init__(self, rest: kube.Rest, namespace: str, runs: Mirror) -> None:
        group = constants.API_VERSION
        self.runs = runs
        self.agents = Mirror(rest, group, "agents", namespace)
        self.tools = Mirror(rest, group, "tools", namespace)
        self.policies = Mirror(rest, group, "policies", namespace)
        self.clusterpolicies = Mirror(rest, group, "clusterpolicies", None)

    def all(self) -> tuple[Mirror, ...]:
        return (self.runs, self.agents, self.tools, self.policies, self.clusterpolicies)

    def start(self, done: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=m.run_forever, args=(done,), name=f"watch-{m.plural}", daemon=True
            )
            for m in self.all()
        ]
        for thread in threads:
            thread.start()
        return threads


class Cached:
    """A ``kubeapi.ClusterAPI`` that reads Runs, Agents, Tools, Policies and ClusterPolicies
    from ``mirrors`` while they are in sync, and everything else from ``cluster``. What it
    returns from a mirror is the mirror's own copy, shared by every attempt: read it, never
    change it (a mirror replaces an object on each change, never edits one)."""

    def __init__(self, cluster: kubeapi.Cluster, mirrors: Mirrors) -> None:
        self.cluster = cluster
        self.mirrors = mirrors
        self.namespace = cluster.namespace

    # --- what the mirrors answer ---------------------------------------------------------------

    def get_run(self, name: str) -> kubeapi.Object:
        found = self.mirrors.runs.get(name)
        return found if found is not None else self.cluster.get_run(name)

    def get_agent(self, name: str) -> kubeapi.Object:
        found = self.mirrors.agents.get(name)
        return found if found is not None else self.cluster.get_agent(name)

    def get_tool(self, name: str) -> kubeapi.Object:
        found = self.mirrors.tools.get(name)
        return found if found is not None else self.cluster.get_tool(name)

    def list_tools(self) -> list[kubeapi.Object]:
        found = self.mirrors.tools.items()
        return found if found is not None else self.cluster.list_tools()

    def list_policies(self) -> list[kubeapi.Object]:
        found = self.mirrors.policies.items()
        return found if found is not None else self.cluster.list_policies()

    def list_clusterpolicies(self) -> list[kubeapi.Object]:
        found = self.mirrors.clusterpolicies.items()
        return found if found is not None else self.cluster.list_clusterpolicies()

    def list_agents(self) -> list[kubeapi.Object]:
        found = self.mirrors.agents.items()
        return found if found is not None else self.cluster.list_agents()

    # --- what always goes to the API server ----------------------------------------------------

    def list_approvals(self) -> list[kubeapi.Object]:
        return self.cluster.list_approvals()

    def create_approval(self, body: kubeapi.Object) -> kubeapi.Object:
        return self.cluster.create_approval(body)

    def apply_run_status(self, name: str, body: kubeapi.Object) -> kubeapi.Object:
        return self.cluster.apply_run_status(name, body)

    def get_lease(self, name: str) -> kubeapi.Object:
        return self.cluster.get_lease(name)

    def replace_lease(self, name: str, body: kubeapi.Object) -> kubeapi.Object:
        return self.cluster.replace_lease(name, body)

    def patch_lease(self, name: str, operations: list[kubeapi.Object]) -> kubeapi.Object:
        return self.cluster.patch_lease(name, operations)

    def get_chunk(self, kind: kubeapi.ChunkKind, name: str) -> kubeapi.Object:
        return self.cluster.get_chunk(kind, name)

    def create_chunk(self, kind: kubeapi.ChunkKind, body: kubeapi.Object) -> kubeapi.Object:
        return self.cluster.create_chunk(kind, body)

    def patch_chunk(
        self, kind: kubeapi.ChunkKind, name: str, patch: kubeapi.Object
    ) -> kubeapi.Object:
        return self.cluster.patch_chunk(kind, name, patch)

    def create_event(self, body: kubeapi.Object) -> kubeapi.Object:
        return self.cluster.create_event(body)

    def whoami(self) -> str:
        return self.cluster.whoami()

    def close(self) -> None:
        """The worker's client outlives every attempt: nothing to close."""
