"""The emulated Node in the API: its registration, heartbeat, pod bindings and pod watch.

``Node`` creates the Node object (labelled ``bosun.dev/emulated``), keeps it Ready with a
heartbeat of its status, and binds pending pods to itself, as there is no scheduler.
``PodWatch`` lists and watches every pod into a cache, marks the ones that changed as dirty
and wakes the emulator's loop; a failed watch is retried with a fresh list. These are the
emulator's node-level API calls; pod-level ones are in ``reporter``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from typing import Any

from kubernetes import client
from kubernetes.client import exceptions

from bosun.dev.emulator import clock, model, pods, reporter

__all__ = ["Node", "PodWatch"]

log = logging.getLogger("bosun.emulator")

_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "1000", "ephemeral-storage": "100Gi"}


class Node:
    """One emulated Node: registration, heartbeat and binding pods to it."""

    def __init__(self, api: client.ApiClient, name: str, time: clock.Clock) -> None:
        self.name = name
        self._core = client.CoreV1Api(api)
        self._clock = time

    def register(self) -> None:
        """Create the Node (an existing one is fine) and post its first heartbeat."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "bosun.dev/emulated": "true",
                },
            },
        }
        with contextlib.suppress(exceptions.ApiException):
            self._core.create_node(node, _preload_content=False)
        self.heartbeat()
        log.info("Registered node name=%s", self.name)

    def heartbeat(self) -> None:
        """Post the Node's status: Ready now, with its capacity and addresses."""
        now = clock.stamp(self._clock.now().wall)
        status = {
            "status": {
                "capacity": _CAPACITY,
                "allocatable": _CAPACITY,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "bosun node emulator is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "nodeInfo": {
                    "machineID": "bosun-emulator",
                    "systemUUID": "bosun-emulator",
                    "bootID": "bosun-emulator",
                    "kernelVersion": os.uname().release,
                    "osImage": "bosun node emulator",
                    "containerRuntimeVersion": "emulator://0.1",
                    "kubeletVersion": "v1.34.0-emulated",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }
        self._core.patch_node_status(
            self.name, status, _preload_content=False, _content_type=reporter.MERGE_PATCH
        )

    def bind(self, pod: model.Pod) -> None:
        """Bind a pending pod to this Node; a pod gone or bound meanwhile is fine."""
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        }
        try:
            self._core.create_namespaced_binding(meta["namespace"], binding, _preload_content=False)
            log.info("Bound pod pod=%s node=%s", pods.ref(pod), self.name)
        except exceptions.ApiException as err:
            if err.status not in (404, 409):
                raise


class PodWatch:
    """Every pod of the cluster, kept current by a watch; the changed ones are dirty."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._lock = threading.Lock()
        self._pods: dict[str, model.Pod] = {}
        self._dirty: set[str] = set()
        self.wake = threading.Event()
        """Set whenever a pod changed, so the loop looks again at once."""
        self.stopping = threading.Event()

    def snapshot(self) -> dict[str, model.Pod]:
        with self._lock:
            return dict(self._pods)

    def take_dirty(self) -> set[str]:
        """The uids of pods that changed since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    def mark_dirty(self, uid: str) -> None:
        with self._lock:
            self._dirty.add(uid)

    def _list(self) -> str:
        response = self._core.list_pod_for_all_namespaces(_preload_content=False)
        body = json.loads(response.data)
        with self._lock:
            self._pods = {p["metadata"]["uid"]: p for p in body["items"]}
            self._dirty.update(self._pods)
        self.wake.set()
        return str(body["metadata"]["resourceVersion"])

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(uid, None)
            else:
                self._pods[uid] = obj
                self._dirty.add(uid)
        self.wake.set()

    def run_forever(self) -> None:
        """List, then watch from that version; relist after an error or a lost watch."""
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._list()
                response = self._core.list_pod_for_all_namespaces(
                    watch=True,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=60,
                    _preload_content=False,
                    _request_timeout=90,
                )
                for line in response:
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self._apply(kind, obj)
                response.release_conn()
            except Exception as err:
                if self.stopping.is_set():
                    return
                log.warning("Watch of pods failed, relisting error=%r", err)
                version = ""
                self.stopping.wait(1.0)
