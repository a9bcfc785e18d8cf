"""The one place the runner talks to the Kubernetes API server.

A thin, dict-in/dict-out facade over the generated client, limited to what the runner's Role
(``contract.runner_rules``) allows: read its Run, Agents, Tools, Policies and Approvals; get and
update its Lease; create, get and update its journal ConfigMaps; apply its Run's status; create
Events. API errors become ``NotFound``/``Conflict``/``AlreadyExists``/``APIError``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, NoReturn

from kubernetes import client
from kubernetes.client import exceptions

from bosun import constants, contract, kube

__all__ = ["APIError", "AlreadyExists", "Cluster", "Conflict", "NotFound"]

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
_TIMEOUT = (5.0, 20.0)

Object = dict[str, Any]


class APIError(RuntimeError):
    """The API server refused or failed a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class NotFound(APIError):
    pass


class Conflict(APIError):
    """The object changed since it was read (stale resourceVersion)."""


class AlreadyExists(APIError):
    pass


def _raise(err: exceptions.ApiException) -> NoReturn:
    status = int(err.status or 0)
    reason = ""
    with contextlib.suppress(TypeError, ValueError):
        reason = json.loads(err.body or "{}").get("reason", "")
    message = str(err.reason or "")
    if status == 404:
        raise NotFound(status, message) from err
    if status == 409 and reason == "AlreadyExists":
        raise AlreadyExists(status, message) from err
    if status == 409:
        raise Conflict(status, message) from err
    raise APIError(status, f"{message} {err.body or ''}".strip()) from err


def _data(response: Any) -> Object:
    payload: Object = json.loads(response.data)
    return payload


class Cluster:
    """API calls for one Run's namespace. Each thread should use its own instance."""

    def __init__(self, namespace: str, api: client.ApiClient | None = None) -> None:
        self.namespace = namespace
        self.api = api or kube.api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    # --- Bosun objects -----------------------------------------------------------------------

    def _get(self, plural: str, name: str) -> Object:
        try:
            response = self.custom.get_namespaced_custom_object(
                constants.GROUP,
                constants.VERSION,
                self.namespace,
                plural,
                name,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def _list(self, plural: str) -> list[Object]:
        try:
            response = self.custom.list_namespaced_custom_object(
                constants.GROUP,
                constants.VERSION,
                self.namespace,
                plural,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except exceptions.ApiException as err:
            _raise(err)
        items: list[Object] = _data(response).get("items") or []
        return items

    def get_run(self, name: str) -> Object:
        return self._get("runs", name)

    def get_agent(self, name: str) -> Object:
        return self._get("agents", name)

    def get_tool(self, name: str) -> Object:
        return self._get("tools", name)

    def list_tools(self) -> list[Object]:
        return self._list("tools")

    def list_policies(self) -> list[Object]:
        return self._list("policies")

    def list_approvals(self) -> list[Object]:
        return self._list("approvals")

    def create_approval(self, body: Object) -> Object:
        try:
            response = self.custom.create_namespaced_custom_object(
                constants.GROUP,
                constants.VERSION,
                self.namespace,
                "approvals",
                body,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def apply_run_status(self, name: str, body: Object) -> Object:
        """Server-side apply of the runner's own status fields, as ``bosun-runner``."""
        try:
            response = self.custom.patch_namespaced_custom_object_status(
                constants.GROUP,
                constants.VERSION,
                self.namespace,
                "runs",
                name,
                body,
                field_manager=contract.FIELD_MANAGER_RUNNER,
                force=True,
                _content_type=APPLY_PATCH,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def whoami(self) -> str:
        """The user this client authenticates as (a SelfSubjectReview)."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            response = client.AuthenticationV1Api(self.api).create_self_subject_review(
                body, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        info = (_data(response).get("status") or {}).get("userInfo") or {}
        return str(info.get("username") or "")

    # --- Lease ---------------------------------------------------------------------------------

    def get_lease(self, name: str) -> Object:
        try:
            response = self.coordination.read_namespaced_lease(
                name, self.namespace, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def replace_lease(self, name: str, body: Object) -> Object:
        """Update with the body's resourceVersion: a stale body raises ``Conflict``."""
        try:
            response = self.coordination.replace_namespaced_lease(
                name, self.namespace, body, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    # --- ConfigMaps (the journal) ---------------------------------------------------------------

    def get_configmap(self, name: str) -> Object:
        try:
            response = self.core.read_namespaced_config_map(
                name, self.namespace, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def create_configmap(self, body: Object) -> Object:
        try:
            response = self.core.create_namespaced_config_map(
                self.namespace, body, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def replace_configmap(self, name: str, body: Object) -> Object:
        try:
            response = self.core.replace_namespaced_config_map(
                name, self.namespace, body, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    def patch_configmap(self, name: str, patch: Object) -> Object:
        """A JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition."""
        try:
            response = self.core.patch_namespaced_config_map(
                name,
                self.namespace,
                patch,
                _content_type=MERGE_PATCH,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)

    # --- Events --------------------------------------------------------------------------------

    def create_event(self, body: Object) -> Object:
        try:
            response = self.core.create_namespaced_event(
                self.namespace, body, _preload_content=False, _request_timeout=_TIMEOUT
            )
        except exceptions.ApiException as err:
            _raise(err)
        return _data(response)
