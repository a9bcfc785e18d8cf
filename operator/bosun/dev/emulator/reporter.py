"""Every pod-scoped API call of the node emulator: status writes and what a kubelet reads.

``Reporter`` writes a pod's status when it changed since the last write (a merge patch, so what
the API already holds outside ``status`` stays), deletes a pod whose processes are gone with no
grace (the kubelet's final delete, guarded by the pod's uid), asks for a pod-bound
service-account token, and reads the Secrets and ConfigMaps a container's environment refers
to. It is the one place the emulator's pod handling meets the API server.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client import exceptions

__all__ = ["MERGE_PATCH", "Reporter"]

log = logging.getLogger("bosun.emulator")

MERGE_PATCH = "application/merge-patch+json"


class Reporter:
    """Pod status writes, final deletes, token requests and env lookups for the emulator."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._written: dict[str, str] = {}
        self._lock = threading.Lock()

    def report(self, uid: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Write a pod's status unless it is what was written last; a vanished pod is fine."""
        rendered = json.dumps(status, sort_keys=True)
        with self._lock:
            if self._written.get(uid) == rendered:
                return
        try:
            self._core.patch_namespaced_pod_status(
                name,
                namespace,
                {"status": status},
                _preload_content=False,
                _content_type=MERGE_PATCH,
            )
        except exceptions.ApiException as err:
            if err.status == 404:
                return
            raise
        with self._lock:
            self._written[uid] = rendered
        log.info("Reported pod status pod=%s/%s phase=%s", namespace, name, status.get("phase"))

    def forget(self, uid: str) -> None:
        """Drop what was last written for a pod the emulator no longer tracks."""
        with self._lock:
            self._written.pop(uid, None)

    def delete_now(self, namespace: str, name: str, uid: str) -> None:
        """Delete the pod with no grace period, only if it is still the pod with ``uid``."""
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self._core.delete_namespaced_pod(name, namespace, body=options, _preload_content=False)
        except exceptions.ApiException as err:
            if err.status not in (404, 409):
                raise

    def request_token(
        self, namespace: str, account: str, pod_name: str, pod_uid: str, seconds: int
    ) -> str:
        """A service-account token bound to the pod, valid for ``seconds``."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod_name,
                    "uid": pod_uid,
                },
            },
        }
        response = self._core.create_namespaced_service_account_token(
            account, namespace, request, _preload_content=False
        )
        return str(json.loads(response.data)["status"]["token"])

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded; None when there is no such Secret."""
        try:
            response = self._core.read_namespaced_secret(name, namespace, _preload_content=False)
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise
        data = json.loads(response.data).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data; None when there is no such ConfigMap."""
        try:
            response = self._core.read_namespaced_config_map(
                name, namespace, _preload_content=False
            )
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise
        data: dict[str, str] = json.loads(response.data).get("data") or {}
        return data
