"""The one place Bosun builds Kubernetes API clients.

Loads a kubeconfig (an explicit path, ``KUBECONFIG``, or ``~/.kube/config``) or, inside a pod,
the in-cluster service-account credentials. The service-account folder defaults to the standard
mount path and can be moved with ``BOSUN_SERVICEACCOUNT_DIR`` (the node emulator of the local
control plane sets it, since its pods share one filesystem).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client import exceptions

from bosun import constants

__all__ = ["ConfigError", "Rest", "api_client", "in_cluster_dir"]

_DEFAULT_SA_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(RuntimeError):
    """No usable Kubernetes credentials were found."""


def in_cluster_dir() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get(constants.EMULATOR_SERVICEACCOUNT_DIR_ENV, str(_DEFAULT_SA_DIR))
    )


def _kubeconfig_path(explicit: str | os.PathLike[str] | None) -> pathlib.Path | None:
    if explicit:
        return pathlib.Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return pathlib.Path(env.split(os.pathsep)[0])
    home = pathlib.Path.home() / ".kube" / "config"
    return home if home.exists() else None


def api_client(kubeconfig: str | os.PathLike[str] | None = None) -> client.ApiClient:
    """Return an API client for the kubeconfig or, failing that, the in-cluster identity."""
    path = _kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    if path is not None:
        if not path.exists():
            raise ConfigError(f"kubeconfig {path} does not exist")
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        return client.ApiClient(configuration)
    sa_dir = in_cluster_dir()
    if "KUBERNETES_SERVICE_HOST" not in os.environ or not (sa_dir / "token").exists():
        raise ConfigError(
            "no kubeconfig found (set KUBECONFIG or pass --kubeconfig) and not running in a pod"
        )
    loader = config.incluster_config.InClusterConfigLoader(
        token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt")
    )
    loader.load_and_set(configuration)
    return client.ApiClient(configuration)


# --- A small REST layer over the generated client: plain dicts in, plain dicts out. -----------

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_PLURALS = {
    "ConfigMap": "configmaps",
    "Event": "events",
    "Job": "jobs",
    "Lease": "leases",
    "Namespace": "namespaces",
    "Pod": "pods",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Agent": "agents",
    "Approval": "approvals",
    "Policy": "policies",
    "Run": "runs",
    "Tool": "tools",
}


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """The REST path of a collection, e.g. ``/apis/batch/v1/namespaces/ns/jobs``."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def object_path(api_version: str, plural: str, namespace: str | None, name: str) -> str:
    return f"{collection_path(api_version, plural, namespace)}/{name}"


class Rest:
    """Plain-dict REST calls through a configured ``ApiClient`` (auth, TLS, timeouts)."""

    def __init__(self, api: client.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        response = self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        data = response.data
        result: Obj = json.loads(data) if data else {}
        return result

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", object_path(api_version, plural, namespace, name))
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        items: list[Obj] = self.request(
            "GET", collection_path(api_version, plural, namespace), query=query
        ).get("items", [])
        return items

    def create(self, obj: Obj) -> Obj | None:
        """Create ``obj``; None when it already exists (409 counts as success)."""
        meta = obj["metadata"]
        path = collection_path(obj["apiVersion"], _PLURALS[obj["kind"]], meta.get("namespace"))
        try:
            return self.request("POST", path, obj)
        except exceptions.ApiException as err:
            if err.status == 409:
                return None
            raise

    def delete(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it was already gone."""
        body = {"propagationPolicy": propagation}
        try:
            self.request("DELETE", object_path(api_version, plural, namespace, name), body)
        except exceptions.ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def merge_patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
    ) -> Obj:
        path = object_path(api_version, plural, namespace, name)
        if subresource:
            path = f"{path}/{subresource}"
        return self.request("PATCH", path, patch, content_type=MERGE_PATCH)

    def apply(
        self,
        obj: Obj,
        *,
        manager: str,
        subresource: str | None = None,
        force: bool = True,
    ) -> Obj:
        """Server-side apply ``obj`` (its apiVersion, kind and metadata.name) as ``manager``."""
        meta = obj["metadata"]
        path = object_path(
            obj["apiVersion"], _PLURALS[obj["kind"]], meta.get("namespace"), meta["name"]
        )
        if subresource:
            path = f"{path}/{subresource}"
        query = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        return self.request("PATCH", path, obj, query=query, content_type=APPLY_PATCH)

    def apply_status(self, obj: Mapping[str, Any], status: Obj, *, manager: str) -> Obj | None:
        """Server-side apply ``status`` to the status of ``obj`` as ``manager``; None when the
        object is gone."""
        meta = obj["metadata"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "status": status,
        }
        try:
            return self.apply(body, manager=manager, subresource="status")
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise
