"""Worker pools on the real control plane: the operator's Deployment, claims, takeovers, drain.

The real operator runs the checkout's runner as pool workers (pods of a real Deployment and
ReplicaSet, executed by the node emulator); models are scripted, tools real HTTP servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bosun import constants, contract
from bosun import kube as k8s
from bosun.dev import testing
from bosun.dev.servers import tools
from bosun.runner import approvals, kubeapi

from . import harness

pytestmark = pytest.mark.cluster

POOLED = {
    "BOSUN_RUNNER_COMMAND": '["python", "-m", "bosun.runner"]',
    "BOSUN_LEASE_DURATION_SECONDS": "6",
}


@pytest.fixture
def operator(
    control_plane: testing.ControlPlaneHandle, kube: harness.Harness
) -> Iterator[testing.OperatorProcess]:
    process = testing.start_operator(control_plane, kube.namespace, **POOLED)
    try:
        yield process
    finally:
        process.stop()


def _pooled_agent(kube: harness.Harness, name: str, script: list[Any], **pool: int) -> None:
    kube.agent(
        name,
        {"provider": "scripted", "script": script},
        ["charge"],
        runner={"pool": {"workers": 2, "runsPerWorker": 4, **pool}},
    )


def _charge(kube: harness.Harness, servers: Callable[[Any], Any]) -> tools.ToolServer:
    server: tools.ToolServer = servers(tools.ToolServer({"charge": lambda a: {"charged": a}}))
    kube.http_tool(
        "charge",
        server.url_for("charge"),
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        idempotent=True,
    )
    kube.allow_all()
    return server


def _workers_ready(kube: harness.Harness, agent: str, count: int) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        status = kube.get("Agent", agent).get("status") or {}
        pool = status.get("pool") or {}
        return status if pool.get("readyWorkers") == count else None

    found: dict[str, Any] = testing.until(
        ready,
        120,
        what=f"{count} ready workers of Agent {agent}",
        explain=lambda: kube.cp.explain_namespace(kube.namespace),
    )
    return found


def _finish(kube: harness.Harness, names: list[str], timeout: float = 180) -> dict[str, Any]:
    final = ("Succeeded", "Failed", "DeadLettered", "Cancelled")

    def done() -> dict[str, Any] | None:
        statuses = {n: kube.status(n) for n in names}
        return statuses if all(s.get("phase") in final for s in statuses.values()) else None

    found: dict[str, Any] = testing.until(
        done,
        timeout,
        what=f"{len(names)} pooled Runs to finish",
        explain=lambda: kube.cp.explain_namespace(kube.namespace),
    )
    return found


def test_a_pool_claims_every_attempt_once_with_no_job_and_counts_workers(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    operator: testing.OperatorProcess,
) -> None:
    charge = _charge(kube, servers)
    script = [{"toolCalls": [{"tool": "charge", "args": {"n": 1}}]}, {"reply": "charged"}]
    _pooled_agent(kube, "payer", script)
    status = _workers_ready(kube, "payer", 2)
    assert status["runnerMode"] == "Pool"
    assert status["pool"]["deployment"] == "bosun-pool-payer"
    deployment = kube.rest.get("apps/v1", "deployments", kube.namespace, "bosun-pool-payer")
    assert deployment is not None
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Agent", "payer")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "bosun-pool-payer"
    assert pod["containers"][0]["args"] == ["pool"]
    labels = f'agent="payer",namespace="{kube.namespace}"'
    scraped = httpx.get(operator.metrics_url).text
    assert f"bosun_pool_workers_ready{{{labels}}} 2.0" in scraped, scraped
    assert f"bosun_pool_free_slots{{{labels}}} 8.0" in scraped

    names = [f"pay-{i}" for i in range(10)]
    for name in names:
        kube.submit_run(name, "payer", "charge once")
    statuses = _finish(kube, names)

    assert {n: s["phase"] for n, s in statuses.items()} == dict.fromkeys(names, "Succeeded")
    assert len(charge.executions) == 10
    workers = set()
    for name, status in statuses.items():
        (attempt,) = status["attempts"]
        assert attempt["pool"] == "bosun-pool-payer" and "job" not in attempt, attempt
        assert attempt["outcome"] == "Succeeded" and attempt["epoch"] == 1
        workers.add(attempt["pod"])
        assert status["output"] == "charged"
        assert kube.journal(name)[-1]["type"] == "runFinished"
    assert all(w.startswith("bosun-pool-payer-") for w in workers)
    jobs = kube.rest.list("batch/v1", "jobs", kube.namespace)
    assert jobs == []
    scraped = httpx.get(operator.metrics_url).text
    assert f"bosun_pool_queue_depth{{{labels}}} 0.0" in scraped
    assert f"bosun_pool_claimed_runs{{{labels}}} 0.0" in scraped
    lease = kube.rest.get(
        "coordination.k8s.io/v1", "leases", kube.namespace, contract.lease_name(names[0])
    )
    assert lease is not None and not lease["spec"].get("holderIdentity")
    outcome = json.loads(lease["metadata"]["annotations"][contract.ANNOTATION_OUTCOME])
    assert outcome["exitCode"] == 0 and outcome["attempt"] == 1
    assert lease["metadata"]["labels"][constants.LABEL_AGENT] == "payer"


def test_a_pooled_run_pauses_for_approval_in_its_worker_and_proceeds_once_approved(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    operator: testing.OperatorProcess,
) -> None:
    toolbox = servers(tools.ToolServer({"refund": lambda a: {"refunded": a["amount"]}}))
    script = [{"toolCalls": [{"tool": "refund", "args": {"amount": 500}}]}, {"reply": "refunded"}]
    kube.agent(
        "clerk",
        {"provider": "scripted", "script": script},
        ["refund"],
        runner={"pool": {"workers": 1, "runsPerWorker": 2}},
    )
    kube.http_tool("refund", toolbox.url_for("refund"))
    kube.policy("ask", [{"name": "ask", "tools": ["refund"], "action": "RequireApproval"}])
    _workers_ready(kube, "clerk", 1)
    kube.submit_run("pay", "clerk", "refund 500")
    waiting = testing.until(
        lambda: (s := kube.status("pay")).get("phase") == "AwaitingApproval" and s,
        120,
        what="the pooled Run to await approval",
        explain=lambda: kube.cp.explain_namespace(kube.namespace),
    )
    assert toolbox.executions == []
    shown = testing.until(
        lambda: (kube.status("pay").get("attempts") or [{}])[-1].get("pod"),
        60,
        what="the waiting attempt to show its worker",
    )
    assert shown.startswith("bosun-pool-clerk-")
    pending = waiting["pendingApprovals"][0]
    admin = kubeapi.Cluster(kube.namespace, kube.cp.rest())
    approvals.create_approval(admin, "pay", pending["callHash"][:12], "Approved")
    (status,) = _finish(kube, ["pay"]).values()
    assert status["phase"] == "Succeeded", status
    assert toolbox.executions == [("refund", {"amount": 500})]
    decisions = [d.get("action") for d in kube.decisions("pay")]
    assert "RequireApproval" in decisions, decisions


def test_dropping_the_pool_deletes_its_deployment_and_runs_go_back_to_jobs(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    operator: testing.OperatorProcess,
) -> None:
    _charge(kube, servers)
    script = [{"reply": "done"}]
    _pooled_agent(kube, "payer", script, workers=1)
    _workers_ready(kube, "payer", 1)
    agent = kube.get("Agent", "payer")
    agent["spec"]["runner"] = {}
    kube.rest.request(
        "PUT", k8s.object_path(constants.API_VERSION, "agents", kube.namespace, "payer"), agent
    )
    testing.until(
        lambda: kube.rest.get("apps/v1", "deployments", kube.namespace, "bosun-pool-payer") is None,
        60,
        what="the pool's Deployment to be deleted",
    )
    testing.until(
        lambda: (kube.get("Agent", "payer").get("status") or {}).get("runnerMode") == "Job",
        60,
        what="the Agent to report Job mode",
    )
    kube.submit_run("plain", "payer", "hi")
    (status,) = _finish(kube, ["plain"]).values()
    assert status["phase"] == "Succeeded"
    assert status["attempts"][0]["job"] == contract.job_name("plain", 1)


def test_a_run_begun_in_job_mode_continues_in_the_pool_from_its_journal(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    operator: testing.OperatorProcess,
) -> None:
    """The migration: a Run whose first attempt was a Job (its Lease and journal made before
    the Agent had a pool) is taken over by the pool, replaying the journal: the call whose
    outcome the Job never recorded is re-sent under its Idempotency-Key, never run twice."""
    charge = _charge(kube, servers)
    arrived, release = charge.gate(1)
    script = [{"toolCalls": [{"tool": "charge", "args": {"n": 7}}]}, {"reply": "charged"}]
    kube.agent(
        "payer",
        {"provider": "scripted", "script": script},
        ["charge"],
        retry={"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 1},
    )
    kube.submit_run("moving", "payer", "charge 7")
    assert arrived.wait(120), kube.cp.explain_namespace(kube.namespace)
    # The Job's runner waits in the call; the Agent gets a pool; the Job's pod dies.
    agent = kube.get("Agent", "payer")
    agent["spec"]["runner"] = {"pool": {"workers": 1, "runsPerWorker": 2}}
    kube.rest.request(
        "PUT", k8s.object_path(constants.API_VERSION, "agents", kube.namespace, "payer"), agent
    )
    _workers_ready(kube, "payer", 1)
    (pod,) = kube.rest.list(
        "v1", "pods", kube.namespace, label_selector=f"job-name={contract.job_name('moving', 1)}"
    )
    kube.rest.merge_patch(
        "v1",
        "pods",
        kube.namespace,
        pod["metadata"]["name"],
        {"metadata": {"annotations": {constants.ANNOTATION_EMULATOR_FAULT: "kill"}}},
    )
    # The Job's attempt is over before its call is let through: it never records the outcome
    # (released sooner, its runner might get the answer and journal it before the kill lands).
    testing.until(
        lambda: ((kube.status("moving").get("attempts") or [{}])[0]).get("endTime"),
        120,
        what="the Job's attempt of Run moving to end",
        explain=lambda: kube.cp.explain_namespace(kube.namespace),
    )
    release.set()
    (status,) = _finish(kube, ["moving"]).values()
    assert status["phase"] == "Succeeded", status
    first, *_, last = status["attempts"]
    assert first["job"] == contract.job_name("moving", 1) and first["outcome"] == "Failed"
    assert last["pool"] == "bosun-pool-payer" and last["outcome"] == "Succeeded"
    assert charge.calls("charge") == [{"n": 7}]  # executed once; the pool re-sent its key
    assert max(charge.seen.values()) == 2
    types = [r["type"] for r in kube.journal("moving")]
    assert types.count("toolStarted") == 1 and types[-1] == "runFinished", types
    lease = kube.rest.get(
        "coordination.k8s.io/v1", "leases", kube.namespace, contract.lease_name("moving")
    )
    assert lease is not None and lease["metadata"]["labels"][constants.LABEL_AGENT] == "payer"


def test_a_suspended_and_resumed_pooled_run_is_claimed_again_by_a_live_worker(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    operator: testing.OperatorProcess,
) -> None:
    """The operator ends an attempt a live worker holds (suspend): the worker stops it and
    gives the Lease back, so the next attempt is claimed at once, not after a timeout."""
    charge = _charge(kube, servers)
    arrived, release = charge.gate(1)
    script = [{"toolCalls": [{"tool": "charge", "args": {"n": 1}}]}, {"reply": "charged"}]
    _pooled_agent(kube, "payer", script, workers=1)
    _workers_ready(kube, "payer", 1)
    kube.submit_run("paused", "payer", "charge once")
    assert arrived.wait(120), kube.cp.explain_namespace(kube.namespace)

    def suspend(value: bool) -> None:
        kube.rest.merge_patch(
            constants.API_VERSION, "runs", kube.namespace, "paused", {"spec": {"suspend": value}}
        )

    suspend(True)
    testing.until(
        lambda: (kube.status("paused").get("attempts") or [{}])[-1].get("endTime"),
        60,
        what="the suspended attempt to end",
    )
    release.set()
    lease_name = contract.lease_name("paused")
    testing.until(
        lambda: (
            not (
                kube.rest.get("coordination.k8s.io/v1", "leases", kube.namespace, lease_name) or {}
            )
            .get("spec", {})
            .get("holderIdentity")
        ),
        60,
        what="the live worker to give the Lease back",
        explain=lambda: kube.cp.explain_namespace(kube.namespace),
    )
    suspend(False)
    (status,) = _finish(kube, ["paused"]).values()
    assert status["phase"] == "Succeeded", status
    outcomes = [a.get("outcome") for a in status["attempts"]]
    assert outcomes[-1] == "Succeeded" and "Lost" not in outcomes, status["attempts"]
    assert charge.calls("charge") == [{"n": 1}]
