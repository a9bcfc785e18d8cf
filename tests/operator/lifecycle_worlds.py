"""Worlds for the Run lifecycle's unit tests: a Run at each stage, made by the lifecycle itself.

A Running Run here is a queued Run that ``lifecycle.admit`` admitted, a dead letter is what
``lifecycle.decide`` made of its last failed attempt, so the tests start only from states the
operator really produces. Pure: no cluster, no clock.
"""

from __future__ import annotations

import datetime
import json
import random
from typing import Any

from bosun import constants, contract
from bosun.controller import conditions, lifecycle, plans, runstatus, settings

Obj = dict[str, Any]
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
SETTINGS = settings.Settings(start_timeout_seconds=30, lease_duration_seconds=20)
AGENT: Obj = {
    "apiVersion": constants.API_VERSION,
    "kind": "Agent",
    "metadata": {"name": "a", "namespace": "ns"},
    "spec": {
        "model": {"provider": "scripted"},
        "retry": {"maxAttempts": 2, "initialBackoffSeconds": 4, "maxBackoffSeconds": 60},
    },
}


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def run(
    status: Obj | None = None,
    *,
    name: str = "r",
    created: float = 60,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"u-{name}",
        "generation": 1,
        "creationTimestamp": conditions.stamp(ago(created)),
    }
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": meta,
        "spec": {"agentRef": {"name": "a"}, "input": "hi", **spec},
        "status": status or {},
    }


def world(run: Obj, **facts: Any) -> plans.World:
    facts.setdefault("agent", AGENT)
    facts.setdefault("settings", SETTINGS)
    facts.setdefault("rng", random.Random(7))
    return plans.World(run=run, **facts)


def after(run: Obj, plan: plans.Plan | None) -> Obj:
    """``run`` as the API server holds it once ``plan``'s status is applied."""
    assert plan is not None and plan.status is not None
    foreign = [
        c
        for c in (run.get("status") or {}).get("conditions") or ()
        if c["type"] not in runstatus.OPERATOR_CONDITIONS
    ]
    status = {**plan.status, "conditions": [*plan.status["conditions"], *foreign]}
    return {**run, "status": status}


def with_spec(run: Obj, **spec: Any) -> Obj:
    return {**run, "spec": {**run["spec"], **spec}}


def annotated(run: Obj, **annotations: str) -> Obj:
    return {**run, "metadata": {**run["metadata"], "annotations": annotations}}


def job(
    done: str | None = None,
    reason: str | None = None,
    number: int = 1,
    controller: Obj | None = None,
) -> Obj:
    """The attempt's Job; controlled by Run r unless ``controller`` says otherwise."""
    status: Obj = {}
    if done:
        status["conditions"] = [{"type": done, "status": "True", "reason": reason}]
    owner = controller or {"apiVersion": "bosun.dev/v1alpha1", "kind": "Run", "name": "r",
                           "uid": "u-r", "controller": True}  # fmt: skip
    return {
        "metadata": {
            "name": contract.job_name("r", number),
            "namespace": "ns",
            "ownerReferences": [owner],
        },
        "status": status,
    }


def lease(holder: str | None, renewed: str = "t1", transitions: int = 0) -> Obj:
    spec: Obj = {"leaseDurationSeconds": 20, "leaseTransitions": transitions, "renewTime": renewed}
    if holder:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": contract.lease_name("r"), "namespace": "ns"}, "spec": spec}


def termination(code: int, report: Obj | None = None) -> plans.PodFacts:
    message = None if report is None else json.dumps(report)
    return plans.PodFacts(exit_code=code, name="r-a1-x", message=message)


# --- the states the table starts from, each made by the lifecycle itself ---------------------

NEW = run()
QUEUED = after(NEW, lifecycle.decide(world(NEW), ago(50)))
RUNNING = after(QUEUED, lifecycle.admit(QUEUED, ago(10)))
STALE = after(QUEUED, lifecycle.admit(QUEUED, ago(40)))  # past the 30 s start timeout
HOLDER = f"{contract.job_name('r', 1)}-pod"
SIGHTED = plans.LeaseSighting((HOLDER, "t1", 0), seen_at=100.0)
FAILED_ONCE = after(  # at ago(8), backing off for at most 4 s
    RUNNING,
    lifecycle.decide(
        world(RUNNING, job=job("Failed"), pod=termination(contract.ExitCode.FAILED_RETRYABLE)),
        ago(8),
    ),
)
RUNNING_2 = after(FAILED_ONCE, lifecycle.admit(FAILED_ONCE, ago(3)))
DEAD = after(
    RUNNING_2,
    lifecycle.decide(
        world(
            RUNNING_2,
            job=job("Failed", number=2),
            pod=termination(contract.ExitCode.FAILED_RETRYABLE),
        ),
        NOW,
    ),
)
SUCCEEDED = after(
    RUNNING, lifecycle.decide(world(RUNNING, job=job("Complete"), pod=termination(0)), NOW)
)
PERMANENT = after(
    RUNNING,
    lifecycle.decide(
        world(RUNNING, job=job("Failed"), pod=termination(contract.ExitCode.FAILED_PERMANENT)),
        NOW,
    ),
)
NO_AGENT = after(NEW, lifecycle.decide(world(NEW, agent=None), ago(50)))
SUSPENDED = after(NEW, lifecycle.decide(world(with_spec(NEW, suspend=True)), ago(50)))

LEASE = contract.lease_name("r")
ACCOUNT = contract.runner_account_name("r")
