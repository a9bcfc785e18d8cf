"""kopf registrations, and nothing else: each watch event goes to the bound Controller."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from bosun import constants
from bosun.controller import controller as controller_mod

_bound: list[controller_mod.Controller] = []

MANAGED = {constants.LABEL_MANAGED_BY: "bosun"}


def bind(controller: controller_mod.Controller) -> None:
    _bound[:] = [controller]


def _observe(plural: str, event: Any) -> None:
    if _bound and isinstance(event, dict) and isinstance(event.get("object"), dict):
        _bound[0].observe(plural, event.get("type"), event["object"])


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=f"kopf.{constants.GROUP}"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{constants.GROUP}", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


@kopf.on.event(constants.GROUP, constants.VERSION, "runs")
async def run_event(event: Any, **_: Any) -> None:
    _observe("runs", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "agents")
async def agent_event(event: Any, **_: Any) -> None:
    _observe("agents", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "tools")
async def tool_event(event: Any, **_: Any) -> None:
    _observe("tools", event)


@kopf.on.event(constants.GROUP, constants.VERSION, "policies")
async def policy_event(event: Any, **_: Any) -> None:
    _observe("policies", event)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(event: Any, **_: Any) -> None:
    _observe("jobs", event)


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels=MANAGED)
async def lease_event(event: Any, **_: Any) -> None:
    _observe("leases", event)


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Log kopf in with the credentials Bosun's own client loaded (kubeconfig or in-cluster)."""
    credentials = _bound[0].rest.credentials
    # In a pod the token file rotates; every (re)login reads the current one.
    token = credentials.bearer_token()
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_data=credentials.ca_pem,
        insecure=credentials.insecure,
        scheme="Bearer" if token else None,
        token=token or None,
        certificate_data=credentials.client_cert_pem,
        private_key_data=credentials.client_key_pem,
    )
