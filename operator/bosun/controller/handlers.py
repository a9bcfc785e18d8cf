"""kopf registrations, and nothing else: each watch event goes to the Controller in kopf's memo.

``main`` passes ``memo_for(controller)`` to ``kopf.run``; kopf hands every handler a (shallow) copy
of it as the ``memo`` keyword, so a watch event reaches ``Controller.observe`` here, the store
and the work queue there, and a worker's ``RunReconciler.reconcile`` decides with
``lifecycle.decide``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from bosun import constants
from bosun.controller import controller as controller_mod

__all__ = [
    "MANAGED",
    "agent_event",
    "clusterpolicy_event",
    "configure",
    "controller_of",
    "deployment_event",
    "job_event",
    "lease_event",
    "login",
    "memo_for",
    "namespace_event",
    "policy_event",
    "run_event",
    "runnerclass_event",
    "schedule_event",
    "tool_event",
    "webhook_event",
]

MANAGED = {constants.LABEL_MANAGED_BY: "bosun"}
_CONTROLLER = "controller"


def memo_for(controller: controller_mod.Controller) -> kopf.Memo:
    """The memo to run kopf with, so that every handler reaches ``controller``."""
    found = kopf.Memo()
    found[_CONTROLLER] = controller
    return found


def controller_of(memo: Mapping[str, Any]) -> controller_mod.Controller:
    """The Controller a handler's ``memo`` carries."""
    controller = memo[_CONTROLLER]
    assert isinstance(controller, controller_mod.Controller)
    return controller


def _observe(memo: Mapping[str, Any], plural: str, event: Any) -> None:
    if isinstance(event, dict) and isinstance(event.get("object"), dict):
        controller_of(memo).observe(plural, event.get("type"), event["object"])


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=f"kopf.{constants.GROUP}"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{constants.GROUP}", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # kopf lists a page at a time too (``controller.LIST_PAGE``), and lets a handled object go
    # soon: the operator's store keeps what it needs.
    settings.watching.chunk_size = controller_mod.LIST_PAGE
    settings.queueing.idle_timeout = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


@kopf.on.event(constants.GROUP, constants.VERSION, "runs")
async def run_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "runs", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "agents")
async def agent_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "agents", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "tools")
async def tool_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "tools", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "policies")
async def policy_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "policies", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "schedules")
async def schedule_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "schedules", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "webhooks")
async def webhook_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "webhooks", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "runnerclasses")
async def runnerclass_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "runnerclasses", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "clusterpolicies")
async def clusterpolicy_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "clusterpolicies", event)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "namespaces", event)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "jobs", event)


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels=MANAGED)
async def lease_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "leases", event)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def deployment_event(event: Any, memo: kopf.Memo, **_: Any) -> None:
    _observe(memo, "deployments", event)


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """Log kopf in with the credentials Bosun's own client loaded (kubeconfig or in-cluster)."""
    credentials = controller_of(memo).rest.credentials
    # In a pod the token file rotates; every (re)login reads the current one.
    token = credentials.bearer_token()
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_data=_base64(credentials.ca_pem),
        insecure=credentials.insecure,
        scheme="Bearer" if token else None,
        token=token or None,
        certificate_data=_base64(credentials.client_cert_pem),
        private_key_data=_base64(credentials.client_key_pem),
    )


def _base64(pem: str | None) -> str | None:
    """PEM as kopf's ``*_data`` fields take it in every supported version: base64 of the PEM."""
    return base64.b64encode(pem.encode()).decode() if pem else None
