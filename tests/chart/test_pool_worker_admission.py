"""A pool worker's own token can write only what belongs to the Agent it serves.

The pool's ServiceAccount, Role (``contract.pool_rules``) and RoleBinding are what the operator
renders (``pools.objects``); the pool-worker ValidatingAdmissionPolicy is the chart's, rendered
by the real helm and applied to the local control plane. Every refusal below comes from the API
server answering a request made with a token issued for the worker's ServiceAccount.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from typing import Any

import chartkit
import pytest

from bosun import constants, contract
from bosun import kube as k8s
from bosun.controller import pools, runnerclasses
from bosun.controller import settings as settings_mod
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
CLUSTER_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture
def pool_policy(bosun_crds: testing.ControlPlaneHandle) -> Iterator[str]:
    release = f"pw{uuid.uuid4().hex[:6]}"
    objs = chartkit.render(sets=[f"fullnameOverride={release}"])
    applied = [
        o
        for o in objs
        if o["kind"] in CLUSTER_KINDS and o["metadata"]["name"].endswith("pool-workers")
    ]
    assert len(applied) == 2, [o["metadata"]["name"] for o in applied]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": applied})
    bosun_crds.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    try:
        yield release
    finally:
        bosun_crds.kubectl("delete", "--wait=false", "-f", "-", input=manifest, check=False)


def _agent(admin: k8s.Rest, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": API,
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"provider": "scripted", "script": [{"reply": "hi"}]},
            "runner": {"pool": {"workers": 1}},
        },
    }
    created = admin.create(body)
    assert created is not None
    return created


def _run(admin: k8s.Rest, namespace: str, name: str, agent: str) -> dict[str, Any]:
    body = {
        "apiVersion": API,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"agentRef": {"name": agent}, "input": "x"},
    }
    created = admin.create(body)
    assert created is not None
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": contract.lease_name(name),
            "namespace": namespace,
            "labels": {constants.LABEL_AGENT: agent, constants.LABEL_RUN: name},
        },
        "spec": {"leaseTransitions": 0},
    }
    assert admin.create(lease) is not None
    return created


def _worker_rest(admin: k8s.Rest, namespace: str, account: str) -> k8s.Rest:
    review = admin.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    token = review["status"]["token"]
    creds = dataclasses.replace(
        admin.credentials, client_cert_pem=None, client_key_pem=None, token=token, token_file=None
    )
    return k8s.Rest(creds)


def _refused(call: Any) -> str | None:
    try:
        call()
    except k8s.ApiError as err:
        return str(err)
    return None


def _journal(namespace: str, run: str, agent: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "RunJournal",
        "metadata": {
            "name": contract.journal_name(run, 0),
            "namespace": namespace,
            "labels": {constants.LABEL_AGENT: agent},
            "ownerReferences": [{"apiVersion": API, "kind": "Run", "name": run, "uid": uid}],
        },
        "spec": {"runName": run, "runUID": uid, "chunk": 0},
    }


def test_a_pool_worker_writes_only_its_agents_runs_leases_and_journals(
    control_plane: testing.ControlPlaneHandle, namespace: str, pool_policy: str
) -> None:
    admin = control_plane.rest()
    mine = _agent(admin, namespace, "mine")
    _agent(admin, namespace, "theirs")
    for obj in pools.objects(
        mine, [], settings_mod.Settings(), runnerclasses.Resolved(None, None, False), None
    )[:3]:  # ServiceAccount, Role, RoleBinding: the worker's identity and rights
        assert admin.create(obj) is not None
    own_run = _run(admin, namespace, "own", "mine")
    other_run = _run(admin, namespace, "other", "theirs")
    worker = _worker_rest(admin, namespace, contract.pool_name("mine"))
    assert worker.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )["status"]["userInfo"]["username"].endswith(":bosun-pool-mine")

    def status(run: str) -> Any:
        return lambda: worker.request(
            "PATCH",
            k8s.object_path(API, "runs", namespace, run) + "/status",
            {"status": {"usage": {"modelCalls": 1}}},
            content_type=k8s.MERGE_PATCH,
        )

    def lease(run: str) -> Any:
        return lambda: worker.request(
            "PATCH",
            k8s.object_path(
                "coordination.k8s.io/v1", "leases", namespace, contract.lease_name(run)
            ),
            {"spec": {"holderIdentity": "bosun-pool-mine-x"}},
            content_type=k8s.MERGE_PATCH,
        )

    def create(body: dict[str, Any]) -> Any:
        plural = {"Lease": "leases", "RunJournal": "runjournals", "Event": "events"}[body["kind"]]
        return lambda: worker.request(
            "POST", k8s.collection_path(body["apiVersion"], plural, namespace), body
        )

    def worker_lease(name: str, agent: str) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "labels": {constants.LABEL_AGENT: agent}},
            "spec": {},
        }

    def event(kind: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": "probe-"},
            "involvedObject": {
                "apiVersion": API if kind == "Run" else "v1",
                "kind": kind,
                "name": name,
                "namespace": namespace,
            },
            "reason": "Probe",
            "message": "probe",
            "type": "Normal",
        }

    # The policy takes a moment to be in force.
    refusal = testing.until(
        lambda: _refused(status("other")), 60, what="the pool-worker policy to refuse"
    )
    assert "403" in refusal and "only the status of its Agent's Runs" in refusal, refusal
    assert _refused(status("own")) is None

    refusal = _refused(lease("other"))
    assert refusal is not None and "labelled bosun.dev/agent=mine" in refusal, refusal
    assert _refused(lease("own")) is None

    refusal = _refused(create(worker_lease(contract.lease_name("future"), "mine")))
    assert refusal is not None and "only its own worker Lease" in refusal, refusal
    refusal = _refused(create(worker_lease("bosun-worker-forged", "theirs")))
    assert refusal is not None and "labelled bosun.dev/agent=mine" in refusal, refusal
    assert _refused(create(worker_lease("bosun-worker-probe", "mine"))) is None

    other_uid = other_run["metadata"]["uid"]
    refusal = _refused(create(_journal(namespace, "other", "theirs", other_uid)))
    assert refusal is not None and "runjournals labelled" in refusal, refusal
    own_uid = own_run["metadata"]["uid"]
    assert _refused(create(_journal(namespace, "own", "mine", own_uid))) is None

    refusal = _refused(create(event("Pod", "somebody")))
    assert refusal is not None and "Events only about Runs" in refusal, refusal
    assert _refused(create(event("Run", "own"))) is None

    # RBAC: no Secrets, no pods, no Jobs, whatever the policy says.
    for path in (
        f"/api/v1/namespaces/{namespace}/secrets",
        f"/api/v1/namespaces/{namespace}/pods",
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
    ):
        refusal = _refused(lambda p=path: worker.request("GET", p))
        assert refusal is not None and "403" in refusal, (path, refusal)
    worker.close()
