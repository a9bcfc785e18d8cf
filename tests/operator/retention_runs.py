"""Runs and Agents as the API server returns them, in every phase retention distinguishes."""

from __future__ import annotations

import datetime
from typing import Any

from bosun.controller import conditions

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

_FINAL = {
    "Succeeded": [("Succeeded", "True", "RunnerSucceeded")],
    "Failed": [("Failed", "True", "RunnerFailed")],
    "Cancelled": [("Failed", "True", "Cancelled")],
    "DeadLettered": [("Failed", "True", "RetriesExhausted"), ("DeadLettered", "True", "X")],
    "Duplicate": [("Queued", "False", "DuplicateIdempotencyKey")],
    "Running": [("Queued", "False", "Admitted"), ("Running", "True", "AttemptRunning")],
    "Queued": [("Queued", "True", "WaitingForCapacity")],
}


def run(
    name: str,
    phase: str = "Succeeded",
    *,
    finished: datetime.datetime | None = NOW - DAY,
    agent: str = "a",
    namespace: str = "n",
    ttl: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    stamp = conditions.stamp(finished) if finished else None
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {"type": t, "status": s, "reason": r, "lastTransitionTime": stamp or ""}
            for t, s, r in _FINAL[phase]
        ],
    }
    if finished is not None:
        status["startTime"] = conditions.stamp(finished - datetime.timedelta(minutes=1))
        if phase not in ("Running", "Queued"):
            status["completionTime"] = stamp
    spec: dict[str, Any] = {"agentRef": {"name": agent}, "input": "x"}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": conditions.stamp((finished or NOW) - HOUR),
        },
        "spec": spec,
        "status": status,
    }
    for path, value in extra.items():
        section, _, key = path.partition("__")
        obj[section][key] = value
    return obj


def agent(name: str = "a", namespace: str = "n", **history: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"provider": "scripted"}}
    if history:
        spec["history"] = history
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
