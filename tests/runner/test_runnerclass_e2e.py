"""RunnerClasses on the real control plane: an old Agent that set moved runner fields still runs
(with them ignored), and Agents whose class is missing or too small are not Ready, their Runs
waiting with a reason that names the class and the bound.

The local control plane enforces no NetworkPolicies (no network plugin); the tests check the
NetworkPolicy object the operator creates for each Run.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from bosun import constants, contract, ops
from bosun import kube as k8s
from bosun.api import crdgen, runnerclass
from bosun.dev import images, testing

from . import harness

pytestmark = pytest.mark.cluster

SCRIPT = [{"reply": "done"}]
MOVED = {
    "image": "example.com/anything:latest",
    "serviceAccountName": "default",
    "nodeSelector": {"pool": "nowhere"},  # no node matches: the pod would never run
    "tolerations": [{"operator": "Exists"}],
}


def _crd_without_moved_rules() -> dict[str, Any]:
    """The Agent CRD as it was before runner fields moved to RunnerClass: no rule on them."""
    crd = copy.deepcopy(crdgen.crd(next(i for i in crdgen.KINDS if i.kind == "Agent")))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runner = schema["properties"]["spec"]["properties"]["runner"]
    runner.pop("x-kubernetes-validations")
    return crd


def _rejected(rest: k8s.Rest, namespace: str, manifest: dict[str, Any]) -> str | None:
    """The API server's message when a dry-run create of ``manifest`` is refused, else None."""
    try:
        rest.request(
            "POST",
            k8s.collection_path(constants.API_VERSION, "agents", namespace),
            manifest,
            query=[("dryRun", "All")],
        )
    except k8s.ApiError as err:
        return str(err)
    return None


def _agent(name: str, **runner: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"provider": "scripted", "script": SCRIPT}}
    if runner:
        spec["runner"] = runner
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": spec,
    }


def _run(name: str, agent: str) -> dict[str, Any]:
    return {
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"agentRef": {"name": agent}, "input": "go"},
    }


def _pod(rest: k8s.Rest, namespace: str, run: str) -> dict[str, Any]:
    job = rest.get("batch/v1", "jobs", namespace, contract.job_name(run, 1))
    assert job is not None
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _ready(kube_: harness.Harness, agent: str, reason: str) -> dict[str, Any]:
    def condition() -> dict[str, Any] | None:
        status = kube_.get("Agent", agent).get("status") or {}
        found = next((c for c in status.get("conditions") or () if c["type"] == "Ready"), None)
        return found if found and found["reason"] == reason else None

    found: dict[str, Any] = testing.until(condition, 60, what=f"Agent {agent} {reason}")
    return found


def test_an_old_agent_with_moved_runner_fields_still_runs_and_is_told_they_are_ignored(
    control_plane: testing.ControlPlaneHandle, kube: harness.Harness
) -> None:
    rest, ns = kube.rest, kube.namespace
    rest.apply(_crd_without_moved_rules(), manager="bosun-tests", force=True)
    try:
        testing.until(
            lambda: _rejected(rest, ns, _agent("probe", **MOVED)) is None,
            30,
            what="the Agent CRD without the moved-field rules",
        )
        kube.create(_agent("legacy", **MOVED))
    finally:
        ops.install_crds(rest, manager="bosun-tests")
    message = testing.until(
        lambda: _rejected(rest, ns, _agent("probe", **MOVED)),
        30,
        what="the moved-field rules back in force",
    )
    assert "runner.image moved to RunnerClass" in message
    # The stored object keeps working: edits that leave the moved fields alone pass (the rules
    # see them unchanged), a change of one is refused, removing them is allowed.
    rest.merge_patch(
        constants.API_VERSION, "agents", ns, "legacy", {"spec": {"instructions": "Be brief."}}
    )
    with pytest.raises(k8s.ApiError, match=r"runner\.serviceAccountName moved to RunnerClass"):
        rest.merge_patch(
            constants.API_VERSION,
            "agents",
            ns,
            "legacy",
            {"spec": {"runner": {"serviceAccountName": "admin"}}},
        )
    kube.create(_run("old", "legacy"))
    operator = testing.start_operator(control_plane, ns, BOSUN_RUNNER_IMAGE=images.CHECKOUT_RUNNER)
    try:
        status = testing.until(
            lambda: (s := kube.status("old")).get("phase") in ("Succeeded", "Failed") and s,
            120,
            what="Run old to finish",
            explain=lambda: control_plane.explain_namespace(ns),
        )
        agent_status = kube.get("Agent", "legacy")["status"]
    finally:
        operator.stop()
    assert status["phase"] == "Succeeded", status
    pod = _pod(rest, ns, "old")
    # The default class's image (the chart's, if a test left one) or the built-in one.
    image = pod["containers"][0]["image"]
    assert image != MOVED["image"] and image.rsplit("/", 1)[-1].startswith("bosun-runner")
    assert pod["serviceAccountName"] == contract.runner_account_name("old")
    assert "nodeSelector" not in pod and "tolerations" not in pod
    ignored = next(
        c
        for c in agent_status["conditions"]
        if c["type"] == constants.CONDITION_RUNNER_FIELDS_IGNORED
    )
    assert ignored["status"] == "True"
    assert ignored["reason"] == constants.REASON_MOVED_TO_RUNNER_CLASS
    assert "runner.image" in ignored["message"] and "runner.tolerations" in ignored["message"]
    # The Run's runner pods got their NetworkPolicy: everywhere but cloud metadata.
    policy = rest.get(
        "networking.k8s.io/v1", "networkpolicies", ns, contract.runner_account_name("old")
    )
    assert policy is not None
    blocks = [p["ipBlock"] for rule in policy["spec"]["egress"] for p in rule["to"]]
    assert {c for b in blocks for c in b.get("except", [])} == set(runnerclass.METADATA_CIDRS)


def test_a_missing_or_too_small_class_holds_the_agents_runs_with_the_class_and_bound(
    control_plane: testing.ControlPlaneHandle, kube: harness.Harness
) -> None:
    rest, ns = kube.rest, kube.namespace
    small = f"small-{uuid.uuid4().hex[:6]}"
    rest.create(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "RunnerClass",
            "metadata": {"name": small},
            "spec": {
                "image": images.CHECKOUT_RUNNER,
                "maxResources": {"memory": "256Mi"},
                "defaultResources": {"requests": {"memory": "64Mi"}},
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}],
            },
        }
    )
    try:
        kube.create(_agent("nowhere", className=f"absent-{small}"))
        kube.create(_agent("greedy", className=small, resources={"limits": {"memory": "1Gi"}}))
        kube.create(_agent("fits", className=small))
        for name in ("nowhere", "greedy", "fits"):
            kube.create(_run(name, name))
        operator = testing.start_operator(control_plane, ns)
        try:
            testing.until(
                lambda: kube.status("fits").get("phase") == "Succeeded",
                120,
                what="Run fits to succeed",
                explain=lambda: control_plane.explain_namespace(ns),
            )
            missing = _ready(kube, "nowhere", constants.REASON_RUNNER_CLASS_NOT_FOUND)
            greedy = _ready(kube, "greedy", constants.REASON_RESOURCES_EXCEED_CLASS)

            def queued_reason(run: str) -> str:
                status = kube.status(run)
                found = next(
                    (c for c in status.get("conditions") or () if c["type"] == "Queued"), {}
                )
                return str(found.get("message", "")) if status.get("phase") == "Queued" else ""

            held = testing.until(
                lambda: "maxResources.memory" in (m := queued_reason("greedy")) and m,
                60,
                what="Run greedy held for its class's bound",
            )
            waiting = testing.until(
                lambda: f"absent-{small}" in (m := queued_reason("nowhere")) and m,
                60,
                what="Run nowhere held for its missing class",
            )
            class_status = testing.until(
                lambda: (
                    (rest.get(constants.API_VERSION, "runnerclasses", None, small) or {})
                    .get("status", {})
                    .get("conditions")
                ),
                30,
                what="the RunnerClass's status",
            )
        finally:
            operator.stop()
        assert f"absent-{small}" in missing["message"] and "runner.className" in missing["message"]
        assert f"RunnerClass {small}" in greedy["message"] and "256Mi" in greedy["message"]
        assert "1Gi" in greedy["message"] and f"RunnerClass {small}" in held
        assert class_status[0]["status"] == "True"
        assert f"absent-{small}" in waiting
        pod = _pod(rest, ns, "fits")
        assert pod["containers"][0]["resources"] == {
            "requests": {"memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        }
        policy = rest.get(
            "networking.k8s.io/v1", "networkpolicies", ns, contract.runner_account_name("fits")
        )
        assert policy is not None
        assert policy["spec"]["egress"] == [
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
                "ports": [{"port": 443, "protocol": "TCP"}],
            }
        ]
    finally:
        rest.delete(constants.API_VERSION, "runnerclasses", None, small)
