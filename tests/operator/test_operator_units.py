"""Unit tests of the operator's pure parts: retry math, classification, status, builders, queue."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bosun import constants, contract
from bosun.controller import builders, conditions, outcomes, runstatus, settings, store, workqueue
from bosun.controller import controller as controller_mod


@pytest.mark.parametrize(
    ("code", "reason", "outcome", "retryable"),
    [
        (0, None, "Succeeded", False),
        (contract.ExitCode.FAILED_PERMANENT, None, "Failed", False),
        (contract.ExitCode.FAILED_RETRYABLE, None, "Failed", True),
        (contract.ExitCode.LEASE_LOST, None, "Lost", True),
        (contract.ExitCode.CANCELLED, None, "Cancelled", False),
        (contract.ExitCode.NEEDS_HUMAN, None, "Failed", False),
        (137, None, "Failed", True),
        (1, None, "Failed", True),
        (None, "UnknownImage", "Failed", True),
        (None, "DeadlineExceeded", "TimedOut", True),
    ],
)
def test_classify_exit(code: int | None, reason: str | None, outcome: str, retryable: bool) -> None:
    verdict = outcomes.classify_exit(code, reason)
    assert (verdict.outcome, verdict.retryable) == (outcome, retryable)


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    early = conditions.now().replace(year=2020)
    first = conditions.make(None, "Ready", True, "A", at=early)
    same = conditions.make([first], "Ready", True, "B")
    flipped = conditions.make([same], "Ready", False, "C")
    assert same["lastTransitionTime"] == first["lastTransitionTime"]
    assert same["reason"] == "B"
    assert flipped["lastTransitionTime"] != first["lastTransitionTime"]


def _run(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u-1", "generation": 2},
        "spec": {"agentRef": {"name": "a"}, "input": "hi"},
        "status": status or {},
    }


def test_run_status_keeps_runner_fields_out_of_the_operator_body() -> None:
    run = _run(
        {
            "phase": "Running",
            "usage": {"totalTokens": 5},
            "conditions": [
                {"type": "AwaitingApproval", "status": "True", "reason": "X"},
                {"type": "Running", "status": "True", "reason": "Y"},
            ],
            "attempts": [{"number": 1, "job": "r-a1"}],
        }
    )
    st = runstatus.RunStatus(run)
    body = st.apply_body()["status"]
    assert "usage" not in body
    assert [c["type"] for c in body["conditions"]] == ["Running"]
    assert body["phase"] == "AwaitingApproval"
    assert st.phase == "Running"
    assert body["observedGeneration"] == 2
    # The stored phase says Running while the runner awaits approval: the operator rewrites it.
    assert st.changed()
    shown = _run({**run["status"], "phase": "AwaitingApproval"})
    assert not runstatus.RunStatus(shown).changed()


def test_failures_count_only_failed_attempts_since_the_last_redrive() -> None:
    attempts = [
        {"number": 1, "outcome": "Failed"},
        {"number": 2, "outcome": "Lost"},
        {"number": 3, "outcome": "Cancelled"},
        {"number": 4, "outcome": "TimedOut"},
    ]
    assert runstatus.RunStatus(_run({"attempts": attempts})).failures() == 3
    redriven = runstatus.RunStatus(_run({"attempts": attempts, "attemptBudgetStart": 2}))
    assert redriven.failures() == 1


def test_job_has_no_retries_an_owner_deterministic_name_and_secret_refs_only() -> None:
    agent = {
        "spec": {
            "model": {"provider": "openai", "apiKeySecretRef": {"name": "llm", "key": "k"}},
            "limits": {"runTimeoutSeconds": 120},
        }
    }
    tool = {
        "spec": {
            "http": {
                "url": "http://x",
                "headers": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "t", "key": "v"}}}
                ],
            }
        }
    }
    job = builders.job(_run(), agent, [tool], 3, settings.Settings())
    assert job["metadata"]["name"] == contract.job_name("r", 3) == "r-a3"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 120
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == contract.runner_account_name("r")
    assert pod["restartPolicy"] == "Never"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env[contract.ENV_ATTEMPT]["value"] == "3"
    assert env[contract.ENV_MODEL_API_KEY]["valueFrom"]["secretKeyRef"] == {
        "name": "llm",
        "key": "k",
    }
    header = env[contract.secret_env_name("t", "v")]
    assert header["valueFrom"]["secretKeyRef"] == {"name": "t", "key": "v"}
    assert all("value" not in e or "valueFrom" not in e for e in env.values())
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]


def test_runner_role_pins_names_and_grants_no_secrets() -> None:
    rules = builders.role(_run())["rules"]
    assert all("secrets" not in r["resources"] for r in rules)
    runs = next(r for r in rules if r["resources"] == ["runs/status"])
    assert runs["resourceNames"] == ["r"]
    leases = next(r for r in rules if r["resources"] == ["leases"])
    assert leases["resourceNames"] == [contract.lease_name("r")]
    assert "create" not in leases["verbs"]


def test_long_run_names_give_valid_child_names() -> None:
    name = "x" * 250
    assert len(contract.job_name(name, 12)) <= 63
    assert contract.job_name(name, 12).endswith("-a12")
    assert contract.job_name(name, 1) != contract.job_name("x" * 249, 1)
    assert len(contract.lease_name(name)) <= 253


def test_settings_from_env_and_clear_errors() -> None:
    parsed = settings.Settings.from_env(
        {
            "BOSUN_NAMESPACES": "a, b",
            "BOSUN_RUNNER_COMMAND": '["python", "-m", "x"]',
            "BOSUN_RUNNER_ENV": '{"K": "V"}',
            "BOSUN_LEADER_ELECTION": "false",
        }
    )
    assert parsed.namespaces == ("a", "b")
    assert parsed.runner_command == ("python", "-m", "x")
    assert parsed.runner_env == (("K", "V"),)
    assert parsed.leader_election is False
    with pytest.raises(ValueError, match="BOSUN_WORKERS must be an integer"):
        settings.Settings.from_env({"BOSUN_WORKERS": "many"})
    with pytest.raises(ValueError, match="BOSUN_RUNNER_COMMAND"):
        settings.Settings.from_env({"BOSUN_RUNNER_COMMAND": '"python"'})


def test_store_keeps_the_newest_version_of_an_object() -> None:
    kind = store.Kind()
    newer = {"metadata": {"name": "a", "namespace": "n", "uid": "1", "resourceVersion": "9"}}
    older = {"metadata": {"name": "a", "namespace": "n", "uid": "1", "resourceVersion": "5"}}
    assert kind.put(newer)
    assert not kind.put(older)
    assert kind.get(("n", "a")) == newer
    recreated = {"metadata": {"name": "a", "namespace": "n", "uid": "2", "resourceVersion": "3"}}
    assert kind.put(recreated)
    kind.delete(newer)
    assert kind.get(("n", "a")) == recreated


def test_store_drops_managed_fields_and_last_applied_without_touching_the_event() -> None:
    kind = store.Kind()
    event = {
        "metadata": {
            "name": "a",
            "namespace": "n",
            "uid": "1",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "k": "v"},
        }
    }
    kind.put(event)
    stored = kind.get(("n", "a"))
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    assert stored["metadata"]["annotations"] == {"k": "v"}
    assert "managedFields" in event["metadata"]


def test_work_queue_deduplicates_and_never_hands_a_key_to_two_workers() -> None:
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    queue.add("a")
    queue.add("a")
    assert len(queue) == 1
    assert queue.get(timeout=1) == "a"
    queue.add("a")  # while processing: marked dirty, not handed out again
    assert queue.get(timeout=0.05) is None
    queue.done("a")
    assert queue.get(timeout=1) == "a"
    queue.done("a")


def test_work_queue_delayed_add_arrives_after_its_delay() -> None:
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    started = time.monotonic()
    queue.add_after("later", 0.2)
    assert queue.get(timeout=5) == "later"
    assert time.monotonic() - started >= 0.19
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get()))
    thread.start()
    queue.shutdown()
    thread.join(5)
    assert got == [None]


def test_runner_termination_message_explains_the_verdict_but_not_its_retry() -> None:
    failed = outcomes.classify_exit(contract.ExitCode.FAILED_PERMANENT)
    report = '{"reason": "BudgetExceeded", "message": "the Agent used 60 of 50 tokens"}'
    explained = outcomes.explained(failed, report)
    assert explained == outcomes.Verdict(
        "Failed", "BudgetExceeded", False, "the Agent used 60 of 50 tokens"
    )
    retryable = outcomes.explained(
        outcomes.classify_exit(contract.ExitCode.FAILED_RETRYABLE), report
    )
    assert retryable.retryable and retryable.reason == "BudgetExceeded"
    # Nothing readable: the exit code's verdict stands.
    for unreadable in (None, "", "not json", "[1]", '{"reason": "has space"}', '{"message": "x"}'):
        assert outcomes.explained(failed, unreadable) == failed
    succeeded = outcomes.classify_exit(contract.ExitCode.SUCCEEDED)
    assert outcomes.explained(succeeded, report) == succeeded


def test_an_agent_edit_is_acted_on_even_when_the_operators_own_write_stored_it_first() -> None:
    engine = controller_mod.Controller(None, settings.Settings())  # type: ignore[arg-type]
    key = ("ns", "a")

    def agent(version: int, generation: int, **status: Any) -> dict[str, Any]:
        meta = {"name": "a", "namespace": "ns", "uid": "u1", "generation": generation}
        meta["resourceVersion"] = str(version)
        return {
            "apiVersion": constants.API_VERSION,
            "kind": "Agent",
            "metadata": meta,
            "spec": {},
            "status": status,
        }

    def drained() -> set[Any]:
        items = set()
        while (item := engine.queue.get(timeout=0.01)) is not None:
            items.add(item)
            engine.queue.done(item)
        return items

    engine.observe("agents", "ADDED", agent(1, 1))
    assert ("agents", key) in drained()
    # The user edits the spec (version 2); the operator's status write (version 3) returns the
    # edited object, which reaches the store before the edit's own watch event.
    engine.store.agents.put(agent(3, 2, usage={"runs": 1}))
    engine.observe("agents", "MODIFIED", agent(2, 2))  # older than the store: dropped
    engine.observe("agents", "MODIFIED", agent(3, 2, usage={"runs": 1}))
    assert ("agents", key) in drained()
    # A change of status alone is not acted on.
    engine.observe("agents", "MODIFIED", agent(4, 2, usage={"runs": 2}))
    assert ("agents", key) not in drained()


def test_what_ended_the_pod_comes_before_what_the_runner_said() -> None:
    said = '{"reason": "Terminated", "message": "the runner was asked to stop"}'
    permanent = int(contract.ExitCode.FAILED_PERMANENT)
    # The Job's deadline killed the pod; the runner saw SIGTERM and said so: the deadline wins.
    timed_out = outcomes.failed_attempt(permanent, None, "DeadlineExceeded", said)
    assert (timed_out.outcome, timed_out.reason, timed_out.retryable) == (
        "TimedOut",
        "AttemptTimedOut",
        True,
    )
    # A pod the kubelet failed (eviction): its exit code decides, not the runner's words.
    evicted = outcomes.failed_attempt(permanent, "Evicted", None, said)
    assert evicted == outcomes.classify_exit(permanent, "Evicted")
    assert evicted.reason != "Terminated"
    # The runner ended the attempt itself: its words explain it.
    assert outcomes.failed_attempt(permanent, None, None, said).reason == "Terminated"
    assert outcomes.failed_attempt(permanent, None, "BackoffLimitExceeded", None).reason == (
        "RunnerFailed"
    )


@pytest.mark.parametrize(
    ("phase", "reason", "spec", "expected"),
    [
        (None, None, {}, "Reconciling"),
        ("Pending", "AgentNotFound", {}, "AgentNotFound"),
        ("Queued", "WaitingForCapacity", {}, "WaitingForCapacity"),
        ("Queued", "BudgetExceeded", {}, "BudgetExceeded"),
        ("Retrying", "RetryScheduled", {}, "RetryScheduled"),
        ("Pending", "Reconciling", {}, "Reconciling"),
        ("Queued", "WaitingForCapacity", {"suspend": True}, None),
        ("Queued", "WaitingForCapacity", {"cancel": True}, None),
        ("Running", "Admitted", {}, None),
        ("Suspended", "Suspended", {}, None),
        ("Succeeded", "Admitted", {}, None),
        ("DeadLettered", "RetriesExhausted", {}, None),
        ("Duplicate", "DuplicateIdempotencyKey", {}, None),
    ],
)
def test_queue_depth_counts_every_run_that_waits_by_why(
    phase: str | None, reason: str | None, spec: dict[str, Any], expected: str | None
) -> None:
    status: dict[str, Any] = {}
    if phase is not None:
        status = {"phase": phase, "conditions": [{"type": "Queued", "reason": reason}]}
    run = {"metadata": {"name": "r"}, "spec": spec, "status": status}
    assert runstatus.waiting_reason(run) == expected
    assert expected is None or expected in runstatus.WAITING_REASONS
