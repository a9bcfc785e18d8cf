"""Retention on the real control plane: the operator deletes exactly the finished Runs that are
past their TTL or outside their Agent's history, their children go with them, and nothing else
is touched (unfinished Runs, other Agents' Runs, dead letters within their TTL)."""

from __future__ import annotations

import datetime
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import constants, contract, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)

_FINAL = {
    "Succeeded": [("Queued", "False", "Admitted"), ("Succeeded", "True", "RunnerSucceeded")],
    "Failed": [("Queued", "False", "Admitted"), ("Failed", "True", "RunnerFailed")],
    "DeadLettered": [("Failed", "True", "RetriesExhausted"), ("DeadLettered", "True", "X")],
}


@pytest.fixture
def rest(control_plane: testing.ControlPlaneHandle) -> kube.Rest:
    return control_plane.rest()


def _agent(name: str, **spec: Any) -> dict[str, Any]:
    body = {"model": {"provider": "scripted", "script": [{"reply": "done"}]}, **spec}
    return {"apiVersion": API, "kind": "Agent", "metadata": {"name": name}, "spec": body}


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished(
    rest: kube.Rest,
    namespace: str,
    name: str,
    agent: str,
    *,
    phase: str,
    ago: datetime.timedelta,
    **spec: Any,
) -> None:
    """Create a Run as a finished one: created, then given the status of a Run that finished
    ``ago`` (before any operator watches the namespace)."""
    body = {"agentRef": {"name": agent}, "input": f"task {name}", **spec}
    meta = {"name": name, "namespace": namespace}
    rest.create({"apiVersion": API, "kind": "Run", "metadata": meta, "spec": body})
    done = NOW - ago
    start = _stamp(done - datetime.timedelta(minutes=1))
    status = {
        "phase": phase,
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": "", "lastTransitionTime": _stamp(done)}
            for t, s, r in _FINAL[phase]
        ],
        "attempts": [{"number": 1, "job": f"{name}-a1", "startTime": start, "endTime": start}],
        "startTime": start,
        "completionTime": _stamp(done),
        "output": "done",
    }
    rest.merge_patch(API, "runs", namespace, name, {"status": status}, subresource="status")


def _names(rest: kube.Rest, namespace: str) -> set[str]:
    return {r["metadata"]["name"] for r in rest.list(API, "runs", namespace)}


def _deleted_total(operator: testing.OperatorProcess) -> dict[str, float]:
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'^bosun_runs_deleted_total\{reason="(\w+)"\} ([0-9.]+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


@pytest.fixture
def started(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> Iterator[list[testing.OperatorProcess]]:
    """Operators a test starts (with its own settings), stopped afterwards."""
    operators: list[testing.OperatorProcess] = []
    try:
        yield operators
    finally:
        for operator in operators:
            operator.stop()


def test_retention_deletes_exactly_what_ttl_and_history_say_and_nothing_else(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
    started: list[testing.OperatorProcess],
) -> None:
    for agent in (_agent("strict", history={"succeeded": 2, "failed": 1}), _agent("lax")):
        agent["metadata"]["namespace"] = namespace
        rest.create(agent)
    for i in range(4):  # strict keeps the newest 2: ok-0 and ok-1 go
        _finished(rest, namespace, f"ok-{i}", "strict", phase="Succeeded", ago=(6 - i) * HOUR)
    for i in range(2):  # strict keeps the newest failed one: bad-0 goes
        _finished(rest, namespace, f"bad-{i}", "strict", phase="Failed", ago=(6 - i) * HOUR)
    # Dead letters wait for a redrive: not counted in the history, kept within their TTL.
    _finished(rest, namespace, "dead-0", "strict", phase="DeadLettered", ago=30 * DAY)
    _finished(
        rest,
        namespace,
        "dead-1",
        "strict",
        phase="DeadLettered",
        ago=2 * DAY,
        ttlSecondsAfterFinished=3600,
    )
    # lax sets no history: the operator's default (3) keeps all of these.
    _finished(rest, namespace, "lax-0", "lax", phase="Succeeded", ago=9 * DAY)
    _finished(
        rest,
        namespace,
        "lax-1",
        "lax",
        phase="Succeeded",
        ago=8 * DAY,
        ttlSecondsAfterFinished=7200,
    )
    _finished(
        rest, namespace, "lax-2", "lax", phase="Succeeded", ago=2 * HOUR, ttlSecondsAfterFinished=0
    )
    _finished(
        rest,
        namespace,
        "lax-3",
        "lax",
        phase="Failed",
        ago=3 * DAY,
        ttlSecondsAfterFinished=10 * 86400,
    )
    # Unfinished Runs, however old and whatever their TTL: suspended, and waiting for an Agent.
    for name, spec in (("paused", {"suspend": True}), ("orphan", {})):
        run_spec = {"agentRef": {"name": "lax" if spec else "missing"}, "input": "x", **spec}
        rest.create(
            {
                "apiVersion": API,
                "kind": "Run",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {**run_spec, "ttlSecondsAfterFinished": 0},
            }
        )
    # A child of a Run that goes, owned the way the operator's children are.
    doomed = rest.get(API, "runs", namespace, "ok-0")
    assert doomed is not None
    owner = {
        "apiVersion": API,
        "kind": "Run",
        "name": "ok-0",
        "uid": doomed["metadata"]["uid"],
        "controller": True,
    }
    lease = contract.lease_name("ok-0")
    rest.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": lease, "namespace": namespace, "ownerReferences": [owner]},
            "spec": {},
        }
    )
    everything = _names(rest, namespace)
    gone = {"ok-0", "ok-1", "bad-0", "dead-1", "lax-1", "lax-2"}

    operator = testing.start_operator(
        control_plane,
        namespace,
        BOSUN_RUN_TTL_SECONDS="0",
        BOSUN_RUN_HISTORY_SUCCEEDED="3",
        BOSUN_RUN_HISTORY_FAILED="3",
    )
    started.append(operator)
    testing.until(
        lambda: _names(rest, namespace) == everything - gone,
        timeout=60,
        what=f"retention to delete {sorted(gone)} and only those",
    )
    testing.until(
        lambda: rest.get("coordination.k8s.io/v1", "leases", namespace, lease) is None,
        timeout=90,
        what="the garbage collector to delete the deleted Run's Lease",
    )
    # Nothing else goes: every deletion is counted, and later sweeps find nothing more.
    assert _deleted_total(operator) == {"TTLExpired": 3.0, "HistoryLimit": 3.0}
    assert (_status(rest, namespace, "paused").get("phase")) == constants.PHASE_SUSPENDED

    # An Agent's lowered history is acted on at once: lax keeps its newest succeeded Run.
    rest.merge_patch(API, "agents", namespace, "lax", {"spec": {"history": {"succeeded": 0}}})
    testing.until(
        lambda: "lax-0" not in _names(rest, namespace),
        timeout=30,
        what="retention to act on the Agent's new history limit",
    )
    assert _names(rest, namespace) == everything - gone - {"lax-0"}
    assert _deleted_total(operator) == {"TTLExpired": 3.0, "HistoryLimit": 4.0}


def _status(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    run = rest.get(API, "runs", namespace, name)
    assert run is not None, f"Run {name} is gone"
    return dict(run.get("status") or {})


def test_runs_and_agents_without_the_new_fields_work_and_get_the_defaults(
    rest: kube.Rest,
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
    started: list[testing.OperatorProcess],
) -> None:
    """Objects written before ttlSecondsAfterFinished and history existed: the chart's default
    TTL (7 days) deletes an old finished Run, keeps a newer one, and a new Run still runs."""
    agent = _agent("before")
    agent["metadata"]["namespace"] = namespace
    rest.create(agent)
    _finished(rest, namespace, "old", "before", phase="Succeeded", ago=8 * DAY)
    _finished(rest, namespace, "recent", "before", phase="Failed", ago=6 * DAY)
    operator = testing.start_operator(control_plane, namespace)  # the operator's defaults
    started.append(operator)
    testing.until(
        lambda: "old" not in _names(rest, namespace),
        timeout=60,
        what="the default TTL to delete the Run finished 8 days ago",
    )
    run = {"agentRef": {"name": "before"}, "input": '{"standin": {}}'}
    meta = {"name": "fresh", "namespace": namespace}
    rest.create({"apiVersion": API, "kind": "Run", "metadata": meta, "spec": run})
    testing.until(
        lambda: _status(rest, namespace, "fresh").get("phase") == constants.PHASE_SUCCEEDED,
        timeout=90,
        what="a Run without ttlSecondsAfterFinished to succeed",
    )
    assert _names(rest, namespace) == {"recent", "fresh"}
    assert _deleted_total(operator) == {"TTLExpired": 1.0}
