"""A Job a tenant pre-creates under an attempt's name is never adopted: the real operator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bosun import constants, contract, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
MALLORY = "mallory@example.com"


def _status(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    run = rest.get(API, "runs", namespace, name) or {}
    status: dict[str, Any] = run.get("status") or {}
    return status


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled-as-bosun", "unlabelled"])
def test_a_pre_created_job_decides_nothing_and_is_left_alone(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
    labelled: bool,
) -> None:
    rest = control_plane.rest()
    job_name = contract.job_name("pay", 1)
    labels = {constants.LABEL_MANAGED_BY: "bosun", constants.LABEL_RUN: "pay"} if labelled else {}
    # Mallory, a tenant bound to the built-in edit role, creates the first attempt's Job first:
    # one that "succeeds" at once, hoping the operator takes it for the Run's.
    control_plane.bind(namespace, MALLORY, "edit")
    mallory = control_plane.user_rest(MALLORY)
    forged = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "runner", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }

    def planted() -> bool:
        try:
            mallory.create(forged)
        except kube.Forbidden:
            return False  # the RoleBinding may take a moment to apply
        return True

    try:
        testing.until(planted, 30, what="Mallory's Job")
    finally:
        mallory.close()
    agent = {
        "apiVersion": API,
        "kind": "Agent",
        "metadata": {"name": "payer", "namespace": namespace},
        "spec": {
            "model": {"provider": "scripted", "script": [{"reply": "done"}]},
            "retry": {"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 2},
        },
    }
    run = {
        "apiVersion": API,
        "kind": "Run",
        "metadata": {"name": "pay", "namespace": namespace},
        "spec": {"agentRef": {"name": "payer"}, "input": json.dumps({"standin": {}})},
    }
    rest.create(agent)
    rest.create(run)
    operator = testing.start_operator(control_plane, namespace)
    try:
        status = testing.until(
            lambda: (
                (s := _status(rest, namespace, "pay")).get("phase") in ("Succeeded", "Failed") and s
            ),
            120,
            what="Run pay to finish",
            explain=lambda: control_plane.explain_namespace(namespace),
        )
    finally:
        operator.stop()
    first, second = status["attempts"][:2]
    assert (first["outcome"], first["reason"]) == ("Failed", "JobNotOwned"), status
    assert "not adopted" in first["message"]
    assert status["phase"] == "Succeeded"
    assert status["output"] == "stand-in finished attempt 2"
    assert second["job"] == contract.job_name("pay", 2)
    # Mallory's Job is still hers: not deleted, not owned by the Run.
    left = rest.get("batch/v1", "jobs", namespace, job_name)
    assert left is not None and not (left["metadata"].get("ownerReferences") or [])
    reasons = [
        e["reason"]
        for e in rest.list("v1", "events", namespace)
        if e["involvedObject"].get("name") == "pay"
    ]
    assert "JobNotOwned" in reasons
