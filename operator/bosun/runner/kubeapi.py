"""The runner's view of the Kubernetes API: the calls its Role allows, for its Run's namespace.

A thin facade over ``bosun.kube.Rest`` limited to what the runner's Role
(``contract.runner_rules``) allows: read its Run, Agents, Tools, Policies and Approvals (and the
cluster's ClusterPolicies, which the chart lets every runner read); get and update its Lease;
create, get and update its journal chunks (RunJournals; ConfigMaps for a journal begun before
that Kind existed); apply its Run's status; create Events. Refusals raise ``bosun.kube``'s
errors (``NotFound``, ``Conflict``, ``AlreadyExists``, ``ApiError``). ``ClusterAPI`` is the
protocol the loop and its helpers depend on, so tests can pass their own fake.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import httpx

from bosun import constants, contract, kube

__all__ = ["CHUNK_KINDS", "TIMEOUT", "ChunkKind", "Cluster", "ClusterAPI", "Object"]

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
"""The runner's API request timeouts: a stalled API server must not stall the attempt."""

Object = dict[str, Any]

ChunkKind = Literal["RunJournal", "ConfigMap"]
CHUNK_KINDS: dict[ChunkKind, tuple[str, str]] = {
    "RunJournal": (constants.API_VERSION, "runjournals"),
    "ConfigMap": ("v1", "configmaps"),
}
"""Where journal chunks live: RunJournals, or ConfigMaps for a journal begun before them."""


class ClusterAPI(Protocol):
    """What the runner asks of the API server."""

    namespace: str

    def get_run(self, name: str) -> Object: ...
    def get_agent(self, name: str) -> Object: ...
    def get_tool(self, name: str) -> Object: ...
    def list_tools(self) -> list[Object]: ...
    def list_policies(self) -> list[Object]: ...
    def list_clusterpolicies(self) -> list[Object]: ...
    def list_agents(self) -> list[Object]: ...
    def list_approvals(self) -> list[Object]: ...
    def create_approval(self, body: Object) -> Object: ...
    def apply_run_status(self, name: str, body: Object) -> Object: ...
    def get_lease(self, name: str) -> Object: ...
    def replace_lease(self, name: str, body: Object) -> Object: ...
    def patch_lease(self, name: str, operations: list[Object]) -> Object: ...
    def get_chunk(self, kind: ChunkKind, name: str) -> Object: ...
    def create_chunk(self, kind: ChunkKind, body: Object) -> Object: ...
    def patch_chunk(self, kind: ChunkKind, name: str, patch: Object) -> Object: ...
    def create_event(self, body: Object) -> Object: ...
    def whoami(self) -> str: ...
    def close(self) -> None: ...


class Cluster:
    """API calls for one Run's namespace, over a ``kube.Rest`` (its own unless given one)."""

    def __init__(self, namespace: str, rest: kube.Rest | None = None) -> None:
        self.namespace = namespace
        self._owned = rest is None
        self.rest = rest if rest is not None else kube.connect(timeout=TIMEOUT)

    def close(self) -> None:
        if self._owned:
            self.rest.close()

    # --- Bosun objects -----------------------------------------------------------------------

    def _bosun(self, plural: str, name: str | None = None) -> str:
        if name is None:
            return kube.collection_path(constants.API_VERSION, plural, self.namespace)
        return kube.object_path(constants.API_VERSION, plural, self.namespace, name)

    def get_run(self, name: str) -> Object:
        return self.rest.request("GET", self._bosun("runs", name))

    def get_agent(self, name: str) -> Object:
        return self.rest.request("GET", self._bosun("agents", name))

    def get_tool(self, name: str) -> Object:
        return self.rest.request("GET", self._bosun("tools", name))

    def _list(self, plural: str) -> list[Object]:
        items: list[Object] = self.rest.request("GET", self._bosun(plural)).get("items") or []
        return items

    def list_tools(self) -> list[Object]:
        return self._list("tools")

    def list_policies(self) -> list[Object]:
        return self._list("policies")

    def list_approvals(self) -> list[Object]:
        return self._list("approvals")

    def list_agents(self) -> list[Object]:
        return self._list("agents")

    def list_clusterpolicies(self) -> list[Object]:
        """Every ClusterPolicy (cluster-scoped: read with the chart's ClusterRole, not the
        Run's Role)."""
        path = kube.collection_path(constants.API_VERSION, "clusterpolicies", None)
        items: list[Object] = self.rest.request("GET", path).get("items") or []
        return items

    def create_approval(self, body: Object) -> Object:
        return self.rest.request("POST", self._bosun("approvals"), body)

    def apply_run_status(self, name: str, body: Object) -> Object:
        """Server-side apply of the runner's own status fields, as ``bosun-runner``."""
        return self.rest.request(
            "PATCH",
            self._bosun("runs", name) + "/status",
            body,
            query=[("fieldManager", contract.FIELD_MANAGER_RUNNER), ("force", "true")],
            content_type=kube.APPLY_PATCH,
        )

    def whoami(self) -> str:
        """The user this client authenticates as (a SelfSubjectReview)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        review = self.rest.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body
        )
        info = (review.get("status") or {}).get("userInfo") or {}
        return str(info.get("username") or "")

    # --- Lease ---------------------------------------------------------------------------------

    def _lease(self, name: str) -> str:
        return kube.object_path("coordination.k8s.io/v1", "leases", self.namespace, name)

    def get_lease(self, name: str) -> Object:
        return self.rest.request("GET", self._lease(name))

    def replace_lease(self, name: str, body: Object) -> Object:
        """Update with the body's resourceVersion: a stale body raises ``Conflict``."""
        return self.rest.request("PUT", self._lease(name), body)

    def patch_lease(self, name: str, operations: list[Object]) -> Object:
        """A JSON patch, applied atomically: a failed ``test`` operation raises ``Invalid``."""
        return self.rest.request(
            "PATCH", self._lease(name), operations, content_type=kube.JSON_PATCH
        )

    # --- journal chunks ------------------------------------------------------------------------

    def _chunk(self, kind: ChunkKind, name: str | None = None) -> str:
        api_version, plural = CHUNK_KINDS[kind]
        if name is None:
            return kube.collection_path(api_version, plural, self.namespace)
        return kube.object_path(api_version, plural, self.namespace, name)

    def get_chunk(self, kind: ChunkKind, name: str) -> Object:
        return self.rest.request("GET", self._chunk(kind, name))

    def create_chunk(self, kind: ChunkKind, body: Object) -> Object:
        return self.rest.request("POST", self._chunk(kind), body)

    def patch_chunk(self, kind: ChunkKind, name: str, patch: Object) -> Object:
        """A JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition."""
        return self.rest.request(
            "PATCH", self._chunk(kind, name), patch, content_type=kube.MERGE_PATCH
        )

    # --- Events --------------------------------------------------------------------------------

    def create_event(self, body: Object) -> Object:
        return self.rest.request("POST", kube.collection_path("v1", "events", self.namespace), body)
