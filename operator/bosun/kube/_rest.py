"""Plain-dict REST calls to the Kubernetes API server over one httpx connection pool.

``Rest`` is the only object in Bosun that speaks to an API server (the dev tooling's node
emulator excepted): JSON dicts in and out, server-side apply, merge patches, watch streams, and
one set of errors (``bosun.kube``'s) for every refusal. It authenticates with the
``Credentials`` it is given (client certificate or bearer token) and verifies the server against
their CA. It does not load the official ``kubernetes`` client, so the runner starts quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from bosun import httpclients, retry
from bosun.kube import _credentials, _errors

__all__ = [
    "APPLY_PATCH",
    "MERGE_PATCH",
    "Obj",
    "Rest",
    "collection_path",
    "connect",
    "object_path",
    "ssl_context",
]

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_PLURALS = {
    "ConfigMap": "configmaps",
    "Event": "events",
    "Deployment": "deployments",
    "Job": "jobs",
    "Lease": "leases",
    "Namespace": "namespaces",
    "NetworkPolicy": "networkpolicies",
    "Pod": "pods",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Agent": "agents",
    "Approval": "approvals",
    "Policy": "policies",
    "Run": "runs",
    "RunnerClass": "runnerclasses",
    "Schedule": "schedules",
    "Webhook": "webhooks",
    "ClusterPolicy": "clusterpolicies",
    "Tool": "tools",
    "CustomResourceDefinition": "customresourcedefinitions",
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
    """Plain-dict REST calls to one API server. Safe to share between threads."""

    def __init__(
        self,
        credentials: _credentials.Credentials,
        timeout: float | httpx.Timeout = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self._sleep = sleep
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpclients.api_client(
            credentials.server, ssl_context(credentials), self.timeout, transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Rest:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A safety net for clients nobody closed: their sockets go with them, without warnings.
        with contextlib.suppress(Exception):
            self._http.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Content-Type": content_type} if content_type else {}
        token = self.credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(
        self,
        method: str,
        path: str,
        body: object | None,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body).encode()
        tries = 0
        while True:
            tries += 1
            try:
                response = self._http.request(
                    method,
                    path,
                    params=tuple(query) if query else None,
                    content=content,
                    headers=self._headers(content_type if content is not None else None),
                )
            except httpx.TransportError as err:
                raise _errors.Unavailable(0, type(err).__name__, f"{method} {path}: {err}") from err
            if not response.is_error:
                return response
            wait = _throttled(response)
            if wait is None or retry.API_THROTTLED.exhausted(tries):
                raise _errors.from_response(
                    response.status_code, response.reason_phrase, response.content
                )
            pacing = retry.API_THROTTLED
            self._sleep(pacing.delay(tries, retry_after=min(wait, pacing.max_backoff_seconds)))

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request; the JSON answer (``{}`` when empty). Refusals raise ``ApiError``s."""
        data = self._send(method, path, body, query, content_type).content
        result: Obj = json.loads(data) if data else {}
        return result

    def text(self, path: str) -> str:
        """A non-JSON GET, such as the API server's ``/metrics``."""
        return self._send("GET", path, None, None, "").text

    @contextlib.contextmanager
    def stream(
        self, path: str, query: list[tuple[str, str]] | None = None, *, read_timeout: float = 330
    ) -> Iterator[Iterator[Obj]]:
        """A watch: the JSON objects of a streamed GET, one per line, as they arrive."""
        timeout = httpx.Timeout(self.timeout.connect, read=read_timeout)
        request = self._http.build_request(
            "GET",
            path,
            params=tuple(query) if query else None,
            headers=self._headers(None),
            timeout=timeout,
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as err:
            raise _errors.Unavailable(0, type(err).__name__, f"GET {path}: {err}") from err
        try:
            if response.is_error:
                raise _errors.from_response(
                    response.status_code, response.reason_phrase, response.read()
                )
            yield (json.loads(line) for line in response.iter_lines() if line.strip())
        finally:
            response.close()

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", object_path(api_version, plural, namespace, name))
        except _errors.NotFound:
            return None

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
        except _errors.AlreadyExists:
            return None

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
        except _errors.NotFound:
            return False
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
        metadata: Obj = {"name": meta["name"]}
        if meta.get("namespace"):  # cluster-scoped objects have none
            metadata["namespace"] = meta["namespace"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": metadata,
            "status": status,
        }
        try:
            return self.apply(body, manager=manager, subresource="status")
        except _errors.NotFound:
            return None


def _throttled(response: httpx.Response) -> float | None:
    """How long to wait when the API server asked to be asked again (429 or 503 with
    ``Retry-After``: throttled by priority and fairness, or a resource's storage is still
    starting), or None when the answer is final. Such a request was not processed, whatever its
    verb, so sending it again is safe (as client-go does)."""
    if response.status_code not in (429, 503):
        return None
    return retry.retry_after_seconds(response.headers)


def ssl_context(credentials: _credentials.Credentials) -> ssl.SSLContext:
    """TLS that verifies the server against the credentials' CA and presents their client
    certificate. Certificate data is loaded through a private temporary folder, removed at once."""
    context = ssl.create_default_context(cadata=credentials.ca_pem or None)
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if credentials.client_cert_pem and credentials.client_key_pem:
        with tempfile.TemporaryDirectory(prefix="bosun-tls-") as folder:
            cert, key = pathlib.Path(folder, "tls.crt"), pathlib.Path(folder, "tls.key")
            for file, pem in (
                (cert, credentials.client_cert_pem),
                (key, credentials.client_key_pem),
            ):
                descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(pem)
            context.load_cert_chain(cert, key)
    return context


def connect(
    kubeconfig: str | os.PathLike[str] | None = None, *, timeout: float | httpx.Timeout = 30.0
) -> Rest:
    """A ``Rest`` for the kubeconfig's current context or, failing that, the pod's identity."""
    return Rest(_credentials.load(kubeconfig), timeout)
