"""In-memory stand-ins for unit tests: manifests, a fake API server facade, a fake lease.

``FakeCluster`` implements the methods of ``bosun.runner.kubeapi.Cluster`` with the same
optimistic-concurrency rules (resourceVersion checks, AlreadyExists), so fencing logic can be
tested without a control plane; the integration tests cover the real API server.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from bosun import kube
from bosun.api import agent as agent_api
from bosun.api import policy as policy_api
from bosun.api import tool as tool_api
from bosun.runner import errors, kubeapi

Obj = dict[str, Any]


def agent_obj(tools: list[str], *, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    model = spec.pop("model", {"provider": "scripted", "script": [{"reply": "ok"}]})
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "agent", "labels": labels or {}, "uid": "agent-uid"},
        "spec": {"model": model, "tools": tools, **spec},
    }


def agent(tools: list[str], **kwargs: Any) -> agent_api.Agent:
    return agent_api.Agent.from_dict(agent_obj(tools, **kwargs))


def policy_obj(name: str, rules: list[Obj], **spec: Any) -> Obj:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": name},
        "spec": {"rules": rules, **spec},
    }


def policy(name: str, rules: list[Obj], **spec: Any) -> policy_api.Policy:
    return policy_api.Policy.from_dict(policy_obj(name, rules, **spec))


def tool_obj(name: str, url: str = "http://tools.test/x", **spec: Any) -> Obj:
    http = {"url": url, **spec.pop("http", {})}
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Tool",
        "metadata": {"name": name},
        "spec": {"description": f"{name} tool", "http": http, **spec},
    }


def tool(name: str, **spec: Any) -> tool_api.Tool:
    return tool_api.Tool.from_dict(tool_obj(name, **spec))


def run_obj(name: str = "run", agent_name: str = "agent", text: str = "go", **spec: Any) -> Obj:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name, "uid": "run-uid"},
        "spec": {"agentRef": {"name": agent_name}, "input": text, **spec},
    }


class FakeCluster:
    """The subset of ``kubeapi.Cluster`` the runner uses, in memory."""

    def __init__(self, namespace: str = "ns") -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str], Obj] = {}
        self.journals: dict[str, Obj] = {}  # RunJournals
        self.configmaps: dict[str, Obj] = {}  # a legacy journal's chunks
        self.leases: dict[str, Obj] = {}
        self.statuses: list[Obj] = []
        self.events: list[Obj] = []
        self.versions = itertools.count(1)
        self.fail_next_replace: kube.ApiError | None = None
        self.fail_clusterpolicies: kube.ApiError | None = None

    def close(self) -> None:
        return None

    # objects
    def put(self, obj: Obj) -> None:
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)

    def remove(self, kind: str, name: str) -> None:
        del self.objects[(kind, name)]

    def _get(self, kind: str, name: str) -> Obj:
        try:
            return copy.deepcopy(self.objects[(kind, name)])
        except KeyError:
            raise kube.NotFound(404, "NotFound", f"{kind} {name}") from None

    def _list(self, kind: str) -> list[Obj]:
        return [copy.deepcopy(o) for (k, _), o in sorted(self.objects.items()) if k == kind]

    def get_run(self, name: str) -> Obj:
        return self._get("Run", name)

    def get_agent(self, name: str) -> Obj:
        return self._get("Agent", name)

    def get_tool(self, name: str) -> Obj:
        return self._get("Tool", name)

    def list_tools(self) -> list[Obj]:
        return self._list("Tool")

    def list_policies(self) -> list[Obj]:
        return self._list("Policy")

    def list_approvals(self) -> list[Obj]:
        return self._list("Approval")

    def list_agents(self) -> list[Obj]:
        return self._list("Agent")

    def list_clusterpolicies(self) -> list[Obj]:
        if self.fail_clusterpolicies is not None:
            raise self.fail_clusterpolicies
        return self._list("ClusterPolicy")

    def create_approval(self, body: Obj) -> Obj:
        self.put(body)
        return body

    def whoami(self) -> str:
        return "tester"

    def apply_run_status(self, name: str, body: Obj) -> Obj:
        self.statuses.append(copy.deepcopy(body))
        return body

    def create_event(self, body: Obj) -> Obj:
        self.events.append(body)
        return body

    # versioned objects (ConfigMaps, Leases)
    def _stamp(self, body: Obj) -> Obj:
        stored = copy.deepcopy(body)
        stored.setdefault("metadata", {})["resourceVersion"] = str(next(self.versions))
        return stored

    def _replace(self, store: dict[str, Obj], name: str, body: Obj) -> Obj:
        if self.fail_next_replace is not None:
            err, self.fail_next_replace = self.fail_next_replace, None
            raise err
        current = store.get(name)
        if current is None:
            raise kube.NotFound(404, "NotFound", name)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise kube.Conflict(409, "Conflict", f"{name} changed")
        store[name] = self._stamp(body)
        return copy.deepcopy(store[name])

    def _chunks(self, kind: kubeapi.ChunkKind) -> dict[str, Obj]:
        return self.journals if kind == "RunJournal" else self.configmaps

    def get_chunk(self, kind: kubeapi.ChunkKind, name: str) -> Obj:
        store = self._chunks(kind)
        if name not in store:
            raise kube.NotFound(404, "NotFound", name)
        return copy.deepcopy(store[name])

    def create_chunk(self, kind: kubeapi.ChunkKind, body: Obj) -> Obj:
        store = self._chunks(kind)
        name = body["metadata"]["name"]
        if name in store:
            raise kube.AlreadyExists(409, "AlreadyExists", name)
        store[name] = self._stamp(body)
        return copy.deepcopy(store[name])

    def patch_chunk(self, kind: kubeapi.ChunkKind, name: str, patch: Obj) -> Obj:
        """A JSON merge patch with the API server's resourceVersion precondition."""
        if self.fail_next_replace is not None:
            err, self.fail_next_replace = self.fail_next_replace, None
            raise err
        store = self._chunks(kind)
        current = store.get(name)
        if current is None:
            raise kube.NotFound(404, "NotFound", name)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise kube.Conflict(409, "Conflict", f"{name} changed")
        store[name] = self._stamp(_merge(current, patch))
        return copy.deepcopy(store[name])

    def get_lease(self, name: str) -> Obj:
        if name not in self.leases:
            raise kube.NotFound(404, "NotFound", name)
        return copy.deepcopy(self.leases[name])

    def create_lease(self, name: str, duration: int = 15) -> None:
        self.leases[name] = self._stamp(
            {
                "metadata": {"name": name},
                "spec": {"leaseDurationSeconds": duration, "leaseTransitions": 0},
            }
        )

    def replace_lease(self, name: str, body: Obj) -> Obj:
        return self._replace(self.leases, name, body)

    def patch_lease(self, name: str, operations: list[Obj]) -> Obj:
        raise kube.ApiError(501, "NotImplemented", "the fake serves no JSON patch")


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


class FakeLease:
    """A lease that is held until ``lose`` is called."""

    def __init__(self) -> None:
        self.lost = False
        self.checks = 0

    def ensure_held(self) -> None:
        self.checks += 1
        if self.lost:
            raise errors.LeaseLost("LeaseTakenOver", "fake")

    def held(self) -> bool:
        return not self.lost

    def lose(self) -> None:
        self.lost = True


class Clock:
    """A manual monotonic clock and sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
