"""The operator's store keeps compact copies of only what the operator reads (no cluster)."""

from __future__ import annotations

from retention_runs import run

from bosun import constants
from bosun.controller import store


def test_the_store_keeps_a_run_without_what_only_the_runner_and_people_read() -> None:
    stored_runs = store.Store().runs
    event = run(
        "r",
        metadata__annotations={
            constants.ANNOTATION_REDRIVE: "1",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "argocd.argoproj.io/tracking-id": "x" * 500,
        },
        metadata__managedFields=[{"manager": "kubectl"}],
        metadata__labels={constants.LABEL_DEAD_LETTER: "true"},
        status__output="a long answer " * 100,
        status__pendingApprovals=[{"callHash": "h", "tool": "t", "args": {"big": "x" * 500}}],
        status__usage={"totalTokens": 5},
    )
    event["spec"]["idempotencyKey"] = "k"
    assert stored_runs.put(event)
    kept = stored_runs.get(("n", "r"))
    assert kept is not None
    assert kept["metadata"]["annotations"] == {constants.ANNOTATION_REDRIVE: "1"}
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["labels"] == {constants.LABEL_DEAD_LETTER: "true"}
    assert kept["spec"] == {"agentRef": {"name": "a"}, "idempotencyKey": "k"}
    assert "output" not in kept["status"] and "pendingApprovals" not in kept["status"]
    assert kept["status"]["usage"] == {"totalTokens": 5}
    assert kept["status"]["conditions"] == event["status"]["conditions"]
    # The event itself (kopf's) is left alone, and the copy shares nothing mutable with it.
    assert event["spec"]["input"] == "x" and "output" in event["status"]
    assert kept["status"]["conditions"][0] is not event["status"]["conditions"][0]


def test_the_store_interns_strings_and_does_not_copy_a_version_it_has() -> None:
    stored_runs = store.Store().runs
    first, second = run("r1"), run("r2")
    stored_runs.put(first)
    stored_runs.put(second)
    one, two = stored_runs.get(("n", "r1")), stored_runs.get(("n", "r2"))
    assert one is not None and two is not None
    key_one = next(k for k in one["status"] if k == "completionTime")
    key_two = next(k for k in two["status"] if k == "completionTime")
    assert key_one is key_two
    assert one["status"]["completionTime"] is two["status"]["completionTime"]
    assert stored_runs.put(run("r1"))  # the same version again: stored, not copied again
    assert stored_runs.get(("n", "r1")) is one
    newer = run("r1", status__usage={"totalTokens": 9})
    newer["metadata"]["resourceVersion"] = "8"
    assert stored_runs.put(newer)
    assert stored_runs.get(("n", "r1")) is not one


def test_the_store_keeps_a_job_without_its_pod_template() -> None:
    jobs = store.Store().jobs
    job = {
        "metadata": {"name": "j", "namespace": "n", "uid": "1", "resourceVersion": "3"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{"name": "runner"}]}}},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    jobs.put(job)
    assert jobs.get(("n", "j")) == {
        "metadata": job["metadata"],
        "spec": {"backoffLimit": 0},
        "status": job["status"],
    }
