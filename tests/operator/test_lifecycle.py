"""The Run lifecycle on the real control plane, with a stand-in runner in emulated pods."""

from __future__ import annotations

import datetime
import itertools
import json
import pathlib
import urllib.request
from typing import Any

import pytest

from bosun import constants, contract, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION


def _agent(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"provider": "scripted", "script": [{"reply": "done"}]},
        "retry": {"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 4},
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "Agent", "metadata": {"name": name}, "spec": body}


def _run(
    name: str, agent: str, standin: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agentRef": {"name": agent},
        "input": json.dumps({"standin": standin or {}}),
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "Run", "metadata": {"name": name}, "spec": body}


def _create(rest: kube.Rest, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        obj["metadata"]["namespace"] = namespace
        assert rest.create(obj) is not None, f"{obj['kind']} {obj['metadata']['name']} exists"


def _status(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    run = rest.get(API, "runs", namespace, name)
    assert run is not None, f"Run {name} is gone"
    status: dict[str, Any] = run.get("status") or {}
    return status


def _wait_phase(
    rest: kube.Rest, namespace: str, name: str, *phases: str, timeout: float = 90
) -> dict[str, Any]:
    return testing.until(
        lambda: (s := _status(rest, namespace, name)).get("phase") in phases and s,
        timeout=timeout,
        what=f"Run {name} to reach {'/'.join(phases)}",
    )


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in status.get("conditions") or ():
        if condition["type"] == kind:
            return dict(condition)
    raise AssertionError(f"no {kind} condition in {status.get('conditions')}")


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _events(rest: kube.Rest, namespace: str, name: str) -> list[str]:
    return [
        e["reason"]
        for e in rest.list("v1", "events", namespace)
        if e["involvedObject"].get("name") == name
    ]


def _assert_one_job_per_attempt(rest: kube.Rest, namespace: str, names: list[str]) -> None:
    """Attempts are numbered 1..n; every Job belongs to exactly one attempt, none twice.

    Lost and Cancelled attempts have their Jobs deleted by the operator; every other attempt
    still has its Job.
    """
    jobs = [j["metadata"]["name"] for j in rest.list("batch/v1", "jobs", namespace)]
    assert len(jobs) == len(set(jobs))
    expected: set[str] = set()
    kept: set[str] = set()
    for name in names:
        attempts = _status(rest, namespace, name).get("attempts") or []
        assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1)), name
        for attempt in attempts:
            job = contract.job_name(name, attempt["number"])
            assert attempt["job"] == job
            expected.add(job)
            if attempt.get("outcome") not in ("Lost", "Cancelled"):
                kept.add(job)
    assert set(jobs) <= expected, sorted(set(jobs) - expected)
    assert kept <= set(jobs), sorted(kept - set(jobs))


@pytest.fixture
def rest(control_plane: testing.ControlPlaneHandle) -> kube.Rest:
    return control_plane.rest()


def test_success_path_records_attempts_times_and_lease(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("one", "triage", {"sleepSeconds": 0.5}))
    seen = set()

    def phase_then_done() -> dict[str, Any] | None:
        status = _status(rest, namespace, "one")
        seen.add(status.get("phase"))
        return status if status.get("phase") == "Succeeded" else None

    status = testing.until(phase_then_done, timeout=90, interval=0.05, what="Run one to succeed")
    assert "Running" in seen
    assert _condition(status, "Succeeded")["status"] == "True"
    assert _condition(status, "Running")["status"] == "False"
    assert _condition(status, "Queued")["status"] == "False"
    [attempt] = status["attempts"]
    assert attempt["number"] == 1
    assert attempt["job"] == contract.job_name("one", 1)
    assert attempt["outcome"] == "Succeeded"
    assert attempt["exitCode"] == 0
    assert attempt["pod"].startswith(f"{attempt['job']}-")
    assert _time(attempt["startTime"]) <= _time(attempt["endTime"])
    assert status["lease"] == {
        "name": contract.lease_name("one"),
        "holder": attempt["pod"],
        "transitions": 1,
    }
    assert attempt["epoch"] == 1
    assert _time(status["startTime"]) <= _time(status["completionTime"])
    assert status["output"] == "stand-in finished attempt 1"
    assert status["observedGeneration"] == 1
    job = rest.get("batch/v1", "jobs", namespace, attempt["job"])
    assert job is not None
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Run"
    assert "Succeeded" in _events(rest, namespace, "one")
    metrics = urllib.request.urlopen(operator.metrics_url, timeout=10).read().decode()
    assert 'bosun_runs_total{outcome="Succeeded"} 1.0' in metrics
    assert urllib.request.urlopen(operator.health_url, timeout=10).status == 200


def test_fails_twice_then_succeeds_with_jittered_growing_backoff(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    retry = {"maxAttempts": 5, "initialBackoffSeconds": 1, "backoffMultiplier": 2}
    _create(
        rest,
        namespace,
        _agent("triage"),
        _run("flaky", "triage", {"failUntilAttempt": 3}, retry=retry),
    )
    status = _wait_phase(rest, namespace, "flaky", "Succeeded", "Failed", "DeadLettered")
    assert status["phase"] == "Succeeded"
    attempts = status["attempts"]
    assert [a["outcome"] for a in attempts] == ["Failed", "Failed", "Succeeded"]
    assert [a["exitCode"] for a in attempts] == [11, 11, 0]
    # Full jitter: each wait lies in [0, initial * multiplier^(n-1)], and the bound grows.
    bounds = [1.0, 2.0]
    for attempt, bound in zip(attempts[:2], bounds, strict=True):
        assert 0.0 <= attempt["backoffSeconds"] <= bound
        assert attempt["reason"] == "RunnerRetryableFailure"
    for before, after in itertools.pairwise(attempts):
        gap = (_time(after["startTime"]) - _time(before["endTime"])).total_seconds()
        # Status times have one-second resolution.
        assert gap >= before["backoffSeconds"] - 1.0
    assert [a["epoch"] for a in attempts] == [1, 2, 3]
    assert _events(rest, namespace, "flaky").count("RetryScheduled") == 2


def test_always_failing_run_is_dead_lettered_and_redrive_runs_it_again(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("doomed", "triage", {"exitCode": 11}))
    status = _wait_phase(rest, namespace, "doomed", "DeadLettered", "Failed", "Succeeded")
    assert status["phase"] == "DeadLettered"
    assert len(status["attempts"]) == 3
    assert _condition(status, "DeadLettered")["status"] == "True"
    assert _condition(status, "DeadLettered")["reason"] == "RetriesExhausted"
    run = rest.get(API, "runs", namespace, "doomed")
    assert run is not None
    assert run["metadata"]["labels"][constants.LABEL_DEAD_LETTER] == "true"
    testing.until(
        lambda: "DeadLettered" in _events(rest, namespace, "doomed"), what="a DeadLettered event"
    )
    listed = rest.list(API, "runs", namespace, label_selector=f"{constants.LABEL_DEAD_LETTER}=true")
    assert [r["metadata"]["name"] for r in listed] == ["doomed"]

    rest.merge_patch(
        API, "runs", namespace, "doomed", {"metadata": {"annotations": {"bosun.dev/redrive": "r1"}}}
    )
    testing.until(
        lambda: len(_status(rest, namespace, "doomed").get("attempts", [])) > 3,
        what="a fresh attempt after redrive",
    )
    status = _wait_phase(rest, namespace, "doomed", "DeadLettered", timeout=120)
    assert [a["number"] for a in status["attempts"]] == [1, 2, 3, 4, 5, 6]
    assert status["attemptBudgetStart"] == 3
    assert status["redrive"] == "r1"
    _assert_one_job_per_attempt(rest, namespace, ["doomed"])


def test_lost_node_expires_the_lease_and_a_new_attempt_takes_over(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("victim", "triage", {"sleepSeconds": 8}))
    holders: list[tuple[str, int, str]] = []

    def observe_lease() -> None:
        lease = rest.get(
            "coordination.k8s.io/v1", "leases", namespace, contract.lease_name("victim")
        )
        spec = (lease or {}).get("spec") or {}
        if spec.get("holderIdentity"):
            entry = (spec["holderIdentity"], int(spec["leaseTransitions"]), spec["acquireTime"])
            if not holders or holders[-1][:2] != entry[:2]:
                holders.append(entry)

    def first_pod() -> str | None:
        observe_lease()
        return holders[0][0] if holders else None

    pod = testing.until(first_pod, what="the first runner to hold the lease")
    rest.merge_patch(
        "v1",
        "pods",
        namespace,
        pod,
        {"metadata": {"annotations": {constants.ANNOTATION_EMULATOR_FAULT: "vanish"}}},
    )

    def done() -> dict[str, Any] | None:
        observe_lease()
        status = _status(rest, namespace, "victim")
        return status if status.get("phase") in ("Succeeded", "Failed", "DeadLettered") else None

    status = testing.until(done, timeout=120, interval=0.1, what="the run to finish after takeover")
    assert status["phase"] == "Succeeded", status
    assert len(status["attempts"]) == 2, status["attempts"]
    first, second = status["attempts"]
    assert first["outcome"] == "Lost"
    assert first["reason"] == "LeaseExpired"
    assert second["outcome"] == "Succeeded"
    assert second["epoch"] > first["epoch"]
    # The epochs only ever grow, and each holder took over only after the previous one expired.
    assert [h[1] for h in holders] == sorted({h[1] for h in holders})
    assert holders[0][0] == pod and holders[-1][0] == second["pod"]
    assert "LeaseLost" in _events(rest, namespace, "victim")


def test_concurrency_limit_holds_across_thirty_runs(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess, tmp_path: pathlib.Path
) -> None:
    trace = tmp_path / "lease-trace.jsonl"
    _create(rest, namespace, _agent("busy", concurrency={"maxConcurrentRuns": 3}))
    for index in range(30):
        _create(
            rest,
            namespace,
            _run(f"run-{index}", "busy", {"sleepSeconds": 0.5, "appendTo": str(trace)}),
        )
    testing.until(
        lambda: all(
            (r.get("status") or {}).get("phase") == "Succeeded"
            for r in rest.list(API, "runs", namespace)
        ),
        timeout=240,
        interval=0.5,
        what="all 30 runs to succeed",
    )
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    edges = sorted((r["at"], 1 if r["event"] == "acquired" else -1) for r in records)
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert len(records) == 60
    assert 1 <= peak <= 3


def test_runs_per_hour_admits_exactly_the_budget_and_tells_each_held_run_once(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    """Five Runs queued before the operator starts, one at a time by concurrency, two per hour
    by Policy: two run and three wait with BudgetExceeded. Raising the budget to four while a
    Run holds the only slot lets two more through; the fifth is held throughout, told once."""
    _create(rest, namespace, _agent("metered", concurrency={"maxConcurrentRuns": 1}))
    policy = {
        "apiVersion": API,
        "kind": "Policy",
        "metadata": {"name": "metered-hourly"},
        "spec": {"budgets": {"runsPerHour": 2}},
    }
    _create(rest, namespace, policy)
    names = [f"m-{index}" for index in range(5)]
    for name in names:
        _create(rest, namespace, _run(name, "metered", {"sleepSeconds": 6}))

    def phase(name: str) -> str:
        return str(_status(rest, namespace, name).get("phase") or "")

    def budget_held() -> list[str]:
        return [
            n
            for n in names
            if phase(n) == "Queued"
            and _condition(_status(rest, namespace, n), "Queued")["reason"] == "BudgetExceeded"
        ]

    def explain() -> str:
        return control_plane.explain_namespace(namespace)

    operator = testing.start_operator(control_plane, namespace)
    try:
        # Which two start first is up to admission (the five were created within a second).
        held = testing.until(
            lambda: (
                sorted(phase(n) for n in names).count("Running") == 1
                and len(h := budget_held()) == 3
                and h
            ),
            timeout=120,
            what="one Run done or running, one running, three held by the budget",
            explain=explain,
        )
        [running] = [n for n in names if phase(n) == "Running"]
        queued = _condition(_status(rest, namespace, held[0]), "Queued")
        assert queued["message"] == (
            "Policy metered-hourly allows 2 Runs of Agent metered per hour, "
            "and that many started within the last hour"
        )
        rest.merge_patch(
            API, "policies", namespace, "metered-hourly", {"spec": {"budgets": {"runsPerHour": 4}}}
        )
        # The two oldest held Runs take the two new slots; the last stays held.
        testing.until(
            lambda: sorted(phase(n) for n in names) == ["Queued"] + ["Succeeded"] * 4,
            timeout=120,
            what="four Runs to succeed and the fifth to wait",
            explain=explain,
        )
        assert budget_held() == [held[-1]]
        jobs = {j["metadata"]["name"] for j in rest.list("batch/v1", "jobs", namespace)}
        assert contract.job_name(held[-1], 1) not in jobs
        for name in held:
            assert _events(rest, namespace, name).count("BudgetExceeded") == 1, name
        assert "BudgetExceeded" not in _events(rest, namespace, running)
        testing.until(
            lambda: (
                ((rest.get(API, "agents", namespace, "metered") or {}).get("status") or {})
                .get("usage", {})
                .get("runs")
                == 4
            ),
            what="the Agent's usage to count four Runs",
        )
    finally:
        operator.stop()


def test_run_created_before_its_agent_starts_when_the_agent_appears(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _run("early", "late-agent"))
    status = _wait_phase(rest, namespace, "early", "Pending")
    assert _condition(status, "Queued")["reason"] == "AgentNotFound"
    assert "late-agent" in _condition(status, "Queued")["message"]
    # A Run waiting for its Agent is in the queue the alert watches.
    waiting = 'bosun_queue_depth{reason="AgentNotFound"} 1.0'
    testing.until(
        lambda: waiting in urllib.request.urlopen(operator.metrics_url, timeout=10).read().decode(),
        what=waiting,
    )
    _create(rest, namespace, _agent("late-agent"))
    _wait_phase(rest, namespace, "early", "Succeeded")
    gone = 'bosun_queue_depth{reason="AgentNotFound"} 0.0'
    testing.until(
        lambda: gone in urllib.request.urlopen(operator.metrics_url, timeout=10).read().decode(),
        what=gone,
    )


def test_idempotency_key_duplicate_never_executes(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("first", "triage", idempotencyKey="order-7"))
    _wait_phase(rest, namespace, "first", "Succeeded")
    _create(rest, namespace, _run("second", "triage", idempotencyKey="order-7"))
    status = _wait_phase(rest, namespace, "second", "Duplicate")
    assert status["duplicateOf"] == "first"
    assert not status.get("attempts")
    _assert_one_job_per_attempt(rest, namespace, ["first", "second"])
    assert not any(
        j["metadata"]["name"].startswith("second-")
        for j in rest.list("batch/v1", "jobs", namespace)
    )


def test_cancel_stops_the_job_and_deadline_fails_the_run(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(
        rest,
        namespace,
        _agent("triage"),
        _run("stopme", "triage", {"hang": True}),
        _run("slow", "triage", {"hang": True}, deadlineSeconds=4),
    )
    testing.until(
        lambda: (_status(rest, namespace, "stopme").get("lease") or {}).get("holder"),
        what="the runner to hold its lease",
    )
    rest.merge_patch(API, "runs", namespace, "stopme", {"spec": {"cancel": True}})
    status = _wait_phase(rest, namespace, "stopme", "Cancelled")
    assert status["attempts"][0]["outcome"] == "Cancelled"
    testing.until(
        lambda: rest.get("batch/v1", "jobs", namespace, contract.job_name("stopme", 1)) is None,
        what="the cancelled Job to be deleted",
    )
    status = _wait_phase(rest, namespace, "slow", "Failed")
    assert _condition(status, "Failed")["reason"] == "DeadlineExceeded"
    assert status["attempts"][0]["outcome"] == "TimedOut"


def test_operator_killed_mid_way_through_fifty_runs_loses_nothing(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    first = testing.start_operator(control_plane, namespace)
    second: testing.OperatorProcess | None = None
    try:
        _create(rest, namespace, _agent("bulk", concurrency={"maxConcurrentRuns": 10}))
        names = [f"bulk-{i}" for i in range(50)]
        for name in names:
            _create(rest, namespace, _run(name, "bulk", {"sleepSeconds": 0.3}))

        def succeeded() -> int:
            return sum(
                (r.get("status") or {}).get("phase") == "Succeeded"
                for r in rest.list(API, "runs", namespace)
            )

        testing.until(lambda: succeeded() >= 12, timeout=120, what="a dozen runs to succeed")
        first.kill()
        second = testing.start_operator(control_plane, namespace)
        testing.until(lambda: succeeded() == 50, timeout=300, interval=0.5, what="all 50 runs")
        _assert_one_job_per_attempt(rest, namespace, names)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_readiness_of_agents_tools_and_policies(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("needs-tool", tools=["lookup"]))
    agent = testing.until(
        lambda: (
            (a := rest.get(API, "agents", namespace, "needs-tool"))
            and (a.get("status") or {}).get("conditions")
            and a
        ),
        what="the Agent's Ready condition",
    )
    ready = _condition(agent["status"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ToolNotFound")
    # A Run of an Agent that is not Ready waits, saying why, and starts once the Agent is.
    _create(rest, namespace, _run("patient", "needs-tool"))

    def queued() -> dict[str, Any] | None:
        status = (rest.get(API, "runs", namespace, "patient") or {}).get("status") or {}
        found = [c for c in status.get("conditions") or () if c["type"] == "Queued"]
        return found[0] if found and found[0].get("reason") == "AgentNotReady" else None

    waiting = testing.until(queued, what="the Run to wait for its Agent to be Ready")
    assert "ToolNotFound" in waiting["message"], waiting
    assert rest.list("batch/v1", "jobs", namespace) == []
    tool = {
        "apiVersion": API,
        "kind": "Tool",
        "metadata": {"name": "lookup"},
        "spec": {
            "description": "Look an order up",
            "http": {"url": "http://127.0.0.1:9/lookup", "method": "POST"},
        },
    }
    _create(rest, namespace, tool)
    testing.until(
        lambda: (
            _condition(
                (rest.get(API, "agents", namespace, "needs-tool") or {}).get("status")
                or {"conditions": []},
                "Ready",
            )["status"]
            == "True"
        ),
        what="the Agent to become Ready once its Tool exists",
    )
    _wait_phase(rest, namespace, "patient", "Succeeded")
    policy = {
        "apiVersion": API,
        "kind": "Policy",
        "metadata": {"name": "broken"},
        "spec": {
            "rules": [{"name": "bad", "tools": ["*"], "when": "args.amount >", "action": "Deny"}]
        },
    }
    _create(rest, namespace, policy)
    testing.until(
        lambda: ((rest.get(API, "policies", namespace, "broken") or {}).get("status") or {}).get(
            "conditions"
        ),
        what="the Policy's Ready condition",
    )
    status = (rest.get(API, "policies", namespace, "broken") or {})["status"]
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidCEL")
    assert "bad" in ready["message"]
    # The parser's position, so the author can find the mistake without reading source.
    assert "at line 1, column 13 (near '>')" in ready["message"], ready["message"]
    assert status["ruleCount"] == 1


def test_two_operator_replicas_one_leads_and_the_standby_takes_over(
    rest: kube.Rest,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    first = testing.start_operator(control_plane, namespace)
    second = testing.start_operator(control_plane, namespace)
    try:
        _create(rest, namespace, _agent("pair"))

        def leader() -> str | None:
            lease = rest.get("coordination.k8s.io/v1", "leases", namespace, "bosun-operator-leader")
            return ((lease or {}).get("spec") or {}).get("holderIdentity")

        testing.until(leader, what="a leader")

        def leads(process: testing.OperatorProcess) -> bool:
            try:
                text = urllib.request.urlopen(process.metrics_url, timeout=5).read().decode()
            except OSError:
                return False
            return "bosun_leader 1.0" in text

        testing.until(lambda: leads(first) or leads(second), what="one replica to lead")
        leading, standby = (first, second) if leads(first) else (second, first)
        assert not leads(standby)
        # Both are ready: a standby serves its probes while it waits.
        for process in (leading, standby):
            url = process.health_url.replace("healthz", "readyz")

            def ready(url: str = url) -> bool:
                try:
                    return urllib.request.urlopen(url, timeout=5).status == 200
                except OSError:
                    return False

            testing.until(ready, what=f"{url} to answer 200")
        for index in range(5):
            _create(rest, namespace, _run(f"pair-{index}", "pair"))
        for index in range(5):
            _wait_phase(rest, namespace, f"pair-{index}", "Succeeded")
        leading.kill()
        testing.until(lambda: leads(standby), timeout=60, what="the standby to take over")
        _create(rest, namespace, _run("after", "pair"))
        _wait_phase(rest, namespace, "after", "Succeeded")
        _assert_one_job_per_attempt(rest, namespace, [f"pair-{i}" for i in range(5)] + ["after"])
    finally:
        first.stop()
        second.stop()


def test_suspend_stops_the_attempt_and_resume_starts_a_new_one(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("pausable", "triage", {"sleepSeconds": 6}))
    testing.until(
        lambda: (_status(rest, namespace, "pausable").get("lease") or {}).get("holder"),
        what="the first runner to hold its lease",
    )
    rest.merge_patch(API, "runs", namespace, "pausable", {"spec": {"suspend": True}})
    status = _wait_phase(rest, namespace, "pausable", "Suspended")
    assert status["attempts"][0]["outcome"] == "Cancelled"
    assert status["attempts"][0]["reason"] == "Suspended"
    testing.until(
        lambda: rest.get("batch/v1", "jobs", namespace, contract.job_name("pausable", 1)) is None,
        what="the suspended attempt's Job to be deleted",
    )
    rest.merge_patch(API, "runs", namespace, "pausable", {"spec": {"suspend": False}})
    status = _wait_phase(rest, namespace, "pausable", "Succeeded", timeout=120)
    assert [a["outcome"] for a in status["attempts"]] == ["Cancelled", "Succeeded"]
    # A suspension is not a failure: it does not count against the retry budget.
    assert not status.get("attemptBudgetStart")


def test_deleting_a_run_deletes_its_job_lease_and_runner_rbac(
    rest: kube.Rest, namespace: str, operator: testing.OperatorProcess
) -> None:
    _create(rest, namespace, _agent("triage"), _run("gone", "triage", {"hang": True}))
    testing.until(
        lambda: (_status(rest, namespace, "gone").get("lease") or {}).get("holder"),
        what="the runner to hold its lease",
    )
    children = [
        ("batch/v1", "jobs", contract.job_name("gone", 1)),
        ("coordination.k8s.io/v1", "leases", contract.lease_name("gone")),
        ("v1", "serviceaccounts", contract.runner_account_name("gone")),
        ("rbac.authorization.k8s.io/v1", "roles", contract.runner_account_name("gone")),
        ("rbac.authorization.k8s.io/v1", "rolebindings", contract.runner_account_name("gone")),
    ]
    for api_version, plural, name in children:
        assert rest.get(api_version, plural, namespace, name) is not None, (plural, name)
    rest.delete(API, "runs", namespace, "gone")
    testing.until(
        lambda: all(rest.get(v, p, namespace, n) is None for v, p, n in children),
        timeout=90,
        what="the garbage collector to delete every child of the Run",
    )
    testing.until(
        lambda: (
            not rest.list("v1", "pods", namespace, label_selector=f"{constants.LABEL_RUN}=gone")
        ),
        what="the runner pod to be deleted",
    )
