"""Faults against worker pools: killed, hung and drained workers, and an API server outage.

The real operator runs pool workers from the built runner image (the node emulator executes
the Deployment's pods in the image's root filesystem); the model is scripted, the side effect a
real HTTP tool that counts every execution by idempotency key. Each scenario prints one line of
figures; reduced sizes in ``make test``, full ones in ``make soak``.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import constants, contract, kube
from bosun.dev import imagebuild, testing
from bosun.dev.servers import tools

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

API = constants.API_VERSION
FINAL = ("Succeeded", "Failed", "DeadLettered", "Cancelled")
POOL_RUNNER = {
    "BOSUN_RUNNER_IMAGE": "ghcr.io/bosun-dev/bosun-runner:0.1.0",
    "BOSUN_RUNNER_COMMAND": "",
    "BOSUN_LEASE_DURATION_SECONDS": "6",
}


@pytest.fixture
def rest(control_plane: testing.ControlPlaneHandle) -> kube.Rest:
    return control_plane.rest()


@pytest.fixture
def pool_operator(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
    shipped_images: list[imagebuild.Built],
) -> Iterator[testing.OperatorProcess]:
    process = testing.start_operator(control_plane, namespace, **POOL_RUNNER)
    try:
        yield process
    finally:
        process.stop()


def _slow_charge(seconds: float) -> Any:
    def charge(args: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)
        return {"charged": args}

    return charge


@pytest.fixture
def tool_server() -> Iterator[tools.ToolServer]:
    server = tools.ToolServer({"charge": _slow_charge(0.3)}).start()
    try:
        yield server
    finally:
        server.stop()


def _setup(
    rest: kube.Rest, namespace: str, url: str, *, workers: int = 2, per_worker: int = 8
) -> None:
    script = [{"toolCalls": [{"tool": "charge", "args": {"step": n}}]} for n in (1, 2, 3)]
    objs: list[dict[str, Any]] = [
        {
            "kind": "Tool",
            "metadata": {"name": "charge"},
            "spec": {
                "description": "Charge a customer's card (a side effect).",
                "inputSchema": {
                    "type": "object",
                    "properties": {"step": {"type": "integer"}},
                    "required": ["step"],
                },
                "http": {"url": url, "method": "POST"},
                "idempotent": True,
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "allow-all"},
            "spec": {"rules": [{"name": "allow", "tools": ["*"], "action": "Allow"}]},
        },
        {
            "kind": "Agent",
            "metadata": {"name": "payer"},
            "spec": {
                "model": {"provider": "scripted", "script": [*script, {"reply": "charged"}]},
                "tools": ["charge"],
                "retry": {"maxAttempts": 20, "initialBackoffSeconds": 1, "maxBackoffSeconds": 2},
                "runner": {"pool": {"workers": workers, "runsPerWorker": per_worker}},
            },
        },
    ]
    for obj in objs:
        obj["apiVersion"] = API
        obj["metadata"]["namespace"] = namespace
        assert rest.create(obj) is not None, obj["metadata"]["name"]


def _runs(rest: kube.Rest, namespace: str, count: int) -> list[str]:
    names = [f"pay-{i:04d}" for i in range(count)]
    for name in names:
        run = {
            "apiVersion": API,
            "kind": "Run",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"agentRef": {"name": "payer"}, "input": "Charge the customer in 3 steps."},
        }
        assert rest.create(run) is not None
    return names


def _workers(rest: kube.Rest, namespace: str) -> list[dict[str, Any]]:
    selector = f"{constants.LABEL_AGENT}=payer,app.kubernetes.io/component=pool-worker"
    return rest.list("v1", "pods", namespace, label_selector=selector)


def _until_workers(
    control_plane: testing.ControlPlaneHandle, rest: kube.Rest, namespace: str, count: int
) -> None:
    def ready() -> bool:
        pool = (rest.get(API, "agents", namespace, "payer") or {}).get("status", {}).get("pool")
        return bool(pool) and pool.get("readyWorkers") == count

    testing.until(
        ready,
        timeout=120,
        interval=0.5,
        what=f"{count} ready pool workers",
        explain=lambda: control_plane.explain_namespace(namespace),
    )


def _runs_now(rest: kube.Rest, namespace: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in rest.list(API, "runs", namespace)}


def _phases(rest: kube.Rest, namespace: str) -> dict[str, str]:
    return {
        n: (r.get("status") or {}).get("phase", "") for n, r in _runs_now(rest, namespace).items()
    }


def _wait_final(
    control_plane: testing.ControlPlaneHandle, rest: kube.Rest, namespace: str, timeout: float
) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = testing.until(
        lambda: (
            (found := _runs_now(rest, namespace))
            and all((r.get("status") or {}).get("phase") in FINAL for r in found.values())
            and found
        ),
        timeout=timeout,
        interval=1.0,
        what="every pooled Run to reach a final phase",
        explain=lambda: control_plane.explain_namespace(namespace),
    )
    return runs


def _audit(runs: dict[str, dict[str, Any]], server: tools.ToolServer, count: int) -> dict[str, int]:
    """Lost Runs, side effects and their duplicates, and whether any Run's attempts ever had
    two holders (an attempt's epoch not above the one before)."""
    lost = sum(1 for r in runs.values() if r["status"].get("phase") != "Succeeded")
    overlapping = 0
    outcomes: collections.Counter[str] = collections.Counter()
    for run in runs.values():
        epochs = [a["epoch"] for a in run["status"].get("attempts") or () if "epoch" in a]
        overlapping += sum(1 for a, b in itertools.pairwise(epochs) if b <= a)
        outcomes.update(a.get("outcome", "") for a in run["status"].get("attempts") or ())
    executions = len(server.executions)
    keys = len(server.seen)
    return {
        "lost": lost,
        "executions": executions,
        "expected": count * 3,
        "duplicates": executions - keys,
        "overlapping": overlapping,
        "attempts": sum(outcomes.values()),
        "handedBack": outcomes[constants.OUTCOME_HANDED_BACK],
        "failedOrLost": outcomes[constants.OUTCOME_FAILED] + outcomes[constants.OUTCOME_LOST],
    }


def _fault(rest: kube.Rest, namespace: str, pod: str, fault: str) -> None:
    rest.merge_patch(
        "v1",
        "pods",
        namespace,
        pod,
        {"metadata": {"annotations": {constants.ANNOTATION_EMULATOR_FAULT: fault}}},
    )


def test_pool_workers_killed_at_random_lose_nothing_and_repeat_no_side_effect(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    pool_operator: testing.OperatorProcess,
    tool_server: tools.ToolServer,
) -> None:
    count = testing.scenario_size(24, 200)
    rng = random.Random(15)
    _setup(rest, namespace, tool_server.url_for("charge"))
    _until_workers(control_plane, rest, namespace, 2)
    tool_server.tools["charge"] = _slow_charge(1.0)
    names = _runs(rest, namespace, count)
    testing.until(lambda: tool_server.executions, timeout=120, what="the first side effect")
    kills = 0
    deadline = time.monotonic() + 120 + count * 3
    while time.monotonic() < deadline and kills < max(3, count // 20):
        if all(p in FINAL for p in _phases(rest, namespace).values()):
            break
        running = [
            p["metadata"]["name"]
            for p in _workers(rest, namespace)
            if (p.get("status") or {}).get("phase") == "Running"
        ]
        if running:
            _fault(rest, namespace, rng.choice(running), "kill")
            kills += 1
        time.sleep(rng.uniform(1.0, 4.0))
    runs = _wait_final(control_plane, rest, namespace, timeout=300 + count * 3)
    figures = _audit(runs, tool_server, count)
    print(f"\nfigure pool-worker-kills: runs={count} worker_kills={kills} {json.dumps(figures)}")
    assert kills >= 1
    assert figures["lost"] == 0, {n: r["status"].get("phase") for n, r in runs.items()}
    assert figures["executions"] == figures["expected"] and figures["duplicates"] == 0
    assert figures["overlapping"] == 0
    assert set(runs) == set(names)


def test_a_rolling_restart_of_the_pool_hands_runs_back_without_spending_retries(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    pool_operator: testing.OperatorProcess,
    tool_server: tools.ToolServer,
) -> None:
    count = testing.scenario_size(16, 100)
    _setup(rest, namespace, tool_server.url_for("charge"), per_worker=max(8, count // 2))
    _until_workers(control_plane, rest, namespace, 2)
    before = {p["metadata"]["name"] for p in _workers(rest, namespace)}
    _runs(rest, namespace, count)
    testing.until(
        lambda: len(tool_server.executions) >= 2,
        timeout=120,
        what="the first side effects before the restart",
    )
    # What `kubectl rollout restart` does: a new pod template, rolled one surge pod at a time.
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rest.merge_patch(
        "apps/v1",
        "deployments",
        namespace,
        contract.pool_name("payer"),
        {"spec": {"template": {"metadata": {"annotations": {"restartedAt": stamp}}}}},
    )
    testing.until(
        lambda: not (before & {p["metadata"]["name"] for p in _workers(rest, namespace)}),
        timeout=300,
        interval=0.5,
        what="every old worker to be replaced",
        explain=lambda: control_plane.explain_namespace(namespace),
    )
    runs = _wait_final(control_plane, rest, namespace, timeout=300 + count * 3)
    figures = _audit(runs, tool_server, count)
    print(f"\nfigure pool-rolling-restart: runs={count} {json.dumps(figures)}")
    assert figures["lost"] == 0
    assert figures["executions"] == figures["expected"] and figures["duplicates"] == 0
    assert figures["failedOrLost"] == 0, figures  # no retry budget spent
    assert figures["handedBack"] >= 1, figures


def test_a_hung_worker_is_taken_over_and_once_resumed_does_nothing_more(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    pool_operator: testing.OperatorProcess,
    tool_server: tools.ToolServer,
) -> None:
    count = testing.scenario_size(8, 40)
    _setup(rest, namespace, tool_server.url_for("charge"))
    _until_workers(control_plane, rest, namespace, 2)
    tool_server.tools["charge"] = _slow_charge(1.0)
    _runs(rest, namespace, count)
    testing.until(lambda: tool_server.executions, timeout=120, what="the first side effect")

    def holding() -> str | None:
        for found in rest.list("coordination.k8s.io/v1", "leases", namespace):
            holder = (found.get("spec") or {}).get("holderIdentity")
            if contract.ANNOTATION_CLAIM in (found["metadata"].get("annotations") or {}) and holder:
                return str(holder)
        return None

    hung = testing.until(holding, timeout=120, what="a worker holding a Run")
    _fault(rest, namespace, hung, "pause")
    paused_at = len(tool_server.executions)
    testing.until(
        lambda: any(
            a.get("reason") == constants.REASON_LEASE_EXPIRED
            for r in _runs_now(rest, namespace).values()
            for a in (r.get("status") or {}).get("attempts") or ()
        ),
        timeout=120,
        what="an attempt of the hung worker to end as Lost",
        explain=lambda: control_plane.explain_namespace(namespace),
    )
    _fault(rest, namespace, hung, "resume")

    def restarts() -> int:
        pod = rest.get("v1", "pods", namespace, hung) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)

    # Resumed, it finds its Lease gone stale, stops every attempt before any call, and exits.
    testing.until(
        restarts,
        timeout=120,
        what="the resumed worker to stop (and be restarted)",
        explain=lambda: control_plane.explain_namespace(namespace),
    )
    runs = _wait_final(control_plane, rest, namespace, timeout=300 + count * 3)
    figures = _audit(runs, tool_server, count)
    print(
        f"\nfigure pool-hung-worker: runs={count} executions_when_paused={paused_at}"
        f" {json.dumps(figures)}"
    )
    assert figures["lost"] == 0
    assert figures["executions"] == figures["expected"] and figures["duplicates"] == 0
    assert figures["overlapping"] == 0
    assert figures["failedOrLost"] >= 1  # its attempts were taken over
    # A call is re-sent (same key) at most by the one attempt that took it over.
    assert max(tool_server.seen.values()) <= 2, tool_server.seen


def test_the_api_server_stopped_for_twenty_seconds_with_pooled_runs_in_flight(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    pool_operator: testing.OperatorProcess,
    tool_server: tools.ToolServer,
) -> None:
    if control_plane.folder is None:
        pytest.skip("stopping the API server needs the local control plane")
    count = testing.scenario_size(24, 200)
    _setup(rest, namespace, tool_server.url_for("charge"), per_worker=max(8, count // 2))
    _until_workers(control_plane, rest, namespace, 2)
    _runs(rest, namespace, count)
    testing.until(
        lambda: len(tool_server.executions) >= count // 2,
        timeout=300,
        what="Runs in flight before the outage",
    )
    pid = control_plane.component_pid("kube-apiserver")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(20.0)  # the fault itself: the API server is away this long
    finally:
        os.kill(pid, signal.SIGCONT)
    runs = _wait_final(control_plane, rest, namespace, timeout=600 + count * 3)
    figures = _audit(runs, tool_server, count)
    print(f"\nfigure pool-api-outage: runs={count} outage=20s {json.dumps(figures)}")
    assert figures["lost"] == 0
    assert figures["executions"] == figures["expected"] and figures["duplicates"] == 0
    assert figures["overlapping"] == 0
