"""Faults against the orchestration plane: the operator, the API server and runner processes.

Each scenario drives a load of Runs through the real control plane with the stand-in runner,
injects its fault, and prints one line: load held, faults injected, runs lost, duplicates.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import random
import signal
import time
from typing import Any

import pytest

from bosun import constants, contract, kube
from bosun.dev import testing

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

API = constants.API_VERSION


def _create_load(
    rest: kube.Rest,
    namespace: str,
    agent: str,
    count: int,
    standin: dict[str, Any],
    *,
    concurrency: int,
) -> list[str]:
    rest.create(
        {
            "apiVersion": API,
            "kind": "Agent",
            "metadata": {"name": agent, "namespace": namespace},
            "spec": {
                "model": {"provider": "scripted", "script": [{"reply": "ok"}]},
                "concurrency": {"maxConcurrentRuns": concurrency},
                "retry": {"maxAttempts": 10, "initialBackoffSeconds": 1, "maxBackoffSeconds": 4},
            },
        }
    )
    names = [f"{agent}-{index:04d}" for index in range(count)]
    for name in names:
        rest.create(
            {
                "apiVersion": API,
                "kind": "Run",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"agentRef": {"name": agent}, "input": json.dumps({"standin": standin})},
            }
        )
    return names


def _phases(rest: kube.Rest, namespace: str) -> dict[str, str]:
    return {
        r["metadata"]["name"]: (r.get("status") or {}).get("phase", "")
        for r in rest.list(API, "runs", namespace)
    }


def _audit(rest: kube.Rest, namespace: str, names: list[str]) -> tuple[int, int, int]:
    """(runs lost, duplicate Jobs, attempts): every Run succeeded, one Job per attempt."""
    phases = _phases(rest, namespace)
    lost = sum(1 for name in names if phases.get(name) != "Succeeded")
    expected: list[str] = []
    attempts = 0
    for run in rest.list(API, "runs", namespace):
        recorded = (run.get("status") or {}).get("attempts") or []
        numbers = [a["number"] for a in recorded]
        assert numbers == list(range(1, len(numbers) + 1)), (run["metadata"]["name"], numbers)
        attempts += len(recorded)
        expected += [contract.job_name(run["metadata"]["name"], n) for n in numbers]
    jobs = [j["metadata"]["name"] for j in rest.list("batch/v1", "jobs", namespace)]
    duplicates = len(jobs) - len(set(jobs)) + len(set(jobs) - set(expected))
    return lost, duplicates, attempts


@pytest.fixture
def rest(control_plane: testing.ControlPlaneHandle) -> kube.Rest:
    return control_plane.rest()


def test_operator_killed_every_few_seconds(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    count = testing.scenario_size(40, 300)
    rng = random.Random(7)
    operator = testing.start_operator(control_plane, namespace)
    kills = 0
    started = time.monotonic()
    try:
        names = _create_load(rest, namespace, "churn", count, {"sleepSeconds": 0.3}, concurrency=20)
        deadline = time.monotonic() + 60 + count * 3
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(2.0, 5.0))
            if all(p == "Succeeded" for p in _phases(rest, namespace).values()):
                break
            operator.kill()
            kills += 1
            operator = testing.start_operator(control_plane, namespace)
        testing.until(
            lambda: all(p == "Succeeded" for p in _phases(rest, namespace).values()),
            timeout=300,
            interval=0.5,
            what="every Run to succeed after the last kill",
        )
    finally:
        operator.stop()
    lost, duplicates, attempts = _audit(rest, namespace, names)
    print(
        f"\nfigure operator-kills: runs={count} operator_kills={kills} attempts={attempts} "
        f"lost={lost} duplicate_jobs={duplicates} elapsed={time.monotonic() - started:.0f}s"
    )
    assert kills >= 1
    assert (lost, duplicates) == (0, 0)


def test_api_server_stopped_for_twenty_seconds_mid_load(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    if control_plane.folder is None:
        pytest.skip("stopping the API server needs the local control plane")
    count = testing.scenario_size(30, 100)
    outage = 20.0
    operator = testing.start_operator(control_plane, namespace)
    pid = control_plane.component_pid("kube-apiserver")
    try:
        names = _create_load(
            rest, namespace, "outage", count, {"sleepSeconds": 1.0}, concurrency=10
        )
        testing.until(
            lambda: sum(p == "Succeeded" for p in _phases(rest, namespace).values()) >= count // 4,
            timeout=300,
            what="a quarter of the Runs to succeed before the outage",
        )
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(outage)
        finally:
            os.kill(pid, signal.SIGCONT)
        testing.until(
            lambda: all(p == "Succeeded" for p in _phases(rest, namespace).values()),
            timeout=600,
            interval=1.0,
            what="every Run to succeed after the API server came back",
        )
    finally:
        operator.stop()
    lost, duplicates, attempts = _audit(rest, namespace, names)
    print(
        f"\nfigure api-outage: runs={count} outage={outage:.0f}s attempts={attempts} "
        f"lost={lost} duplicate_jobs={duplicates}"
    )
    assert (lost, duplicates) == (0, 0)


def test_runner_processes_killed_at_random_points(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    operator: testing.OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    """Runner pods vanish (a lost node) at random moments; the Lease hands each Run over.

    The stand-in logs every acquisition with its epoch and time; no two holders of one Run's
    Lease may overlap: a new holder acquires only after the previous one's last renewal plus
    the Lease duration, which the epochs' order and the operator's Lost verdicts show.
    """
    count = testing.scenario_size(20, 100)
    rng = random.Random(11)
    trace = tmp_path / "leases.jsonl"
    names = _create_load(
        rest,
        namespace,
        "victims",
        count,
        {"sleepSeconds": 4, "appendTo": str(trace)},
        concurrency=10,
    )
    killed: set[str] = set()
    per_run: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 120 + count * 6
    while time.monotonic() < deadline:
        phases = _phases(rest, namespace)
        if all(p == "Succeeded" for p in phases.values()):
            break
        for pod in rest.list("v1", "pods", namespace):
            status = pod.get("status") or {}
            name = pod["metadata"]["name"]
            run = (pod["metadata"].get("labels") or {}).get(constants.LABEL_RUN, "")
            if status.get("phase") != "Running" or name in killed or rng.random() > 0.3:
                continue
            # At most two losses per Run: a slow machine must not exhaust a retry budget.
            if per_run[run] >= 2:
                continue
            per_run[run] += 1
            killed.add(name)
            rest.merge_patch(
                "v1",
                "pods",
                namespace,
                name,
                {"metadata": {"annotations": {constants.ANNOTATION_EMULATOR_FAULT: "vanish"}}},
            )
        time.sleep(rng.uniform(0.5, 2.0))
    testing.until(
        lambda: all(p == "Succeeded" for p in _phases(rest, namespace).values()),
        timeout=600,
        what="every Run to succeed",
    )
    lost, duplicates, attempts = _audit(rest, namespace, names)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    by_run: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["event"] == "acquired":
            run = record["pod"].rsplit("-a", 1)[0]
            by_run.setdefault(run, []).append(record)
    overlaps = 0
    for run, acquisitions in by_run.items():
        acquisitions.sort(key=lambda r: r["at"])
        epochs = [r["epoch"] for r in acquisitions]
        if epochs != sorted(set(epochs)):
            overlaps += 1
        status = (rest.get(API, "runs", namespace, run) or {}).get("status") or {}
        lost_attempts = [a for a in status.get("attempts", []) if a.get("outcome") == "Lost"]
        # Every handover was decided by the operator after the lease expired.
        if len(acquisitions) > 1 and len(lost_attempts) < len(acquisitions) - 1:
            overlaps += 1
    print(
        f"\nfigure runner-kills: runs={count} runner_kills={len(killed)} attempts={attempts} "
        f"lost={lost} duplicate_jobs={duplicates} lease_overlaps={overlaps}"
    )
    assert (lost, duplicates, overlaps) == (0, 0, 0)
    assert killed
