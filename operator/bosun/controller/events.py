"""Kubernetes Events about Bosun objects, for every state change a human cares about."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from bosun import kube
from bosun.controller import conditions

__all__ = ["COMPONENT", "emit"]

log = logging.getLogger("bosun.operator")

COMPONENT = "bosun-operator"


def emit(
    rest: kube.Rest,
    obj: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool = False,
) -> None:
    """Record an Event on ``obj``; a failure to record is logged, never raised."""
    meta = obj["metadata"]
    now = conditions.stamp(conditions.now())
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name'][:200]}.{uuid.uuid4().hex[:12]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        rest.create(event)
    except kube.ApiError as err:
        log.warning(
            "Could not record event reason=%s object=%s error=%s", reason, meta["name"], err
        )
