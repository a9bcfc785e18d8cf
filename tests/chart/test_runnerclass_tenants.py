"""Who may use a RunnerClass, with real tenant identities against the chart's own objects.

The chart's people roles (aggregated into the built-in edit role), its default-class grant and
its `use` ValidatingAdmissionPolicy are rendered by the real helm and applied to the local
control plane; a tenant is a client certificate bound to `edit` in its namespace only. The
admin identity only sets the stage, never proves a refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import chartkit
import pytest

from bosun import constants
from bosun import kube as k8s
from bosun.dev import testing

pytestmark = pytest.mark.cluster

CLUSTER_KINDS = ("ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture
def chart_objects(bosun_crds: testing.ControlPlaneHandle) -> Iterator[str]:
    """The chart's RunnerClass policy and roles, under a unique release name; yields the name
    of its default class (not marked default, so other tests keep the built-in class)."""
    release = f"rc{uuid.uuid4().hex[:6]}"
    default = f"{release}-default"
    objs = chartkit.render(
        sets=[
            f"fullnameOverride={release}",
            f"runner.defaultClass.name={default}",
            "runner.defaultClass.isDefault=false",
        ]
    )
    applied = [o for o in objs if o["kind"] in CLUSTER_KINDS or o["kind"] == "RunnerClass"]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": applied})
    bosun_crds.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    try:
        yield default
    finally:
        bosun_crds.kubectl("delete", "--wait=false", "-f", "-", input=manifest, check=False)


def _agent(name: str, class_name: str | None = None, **runner: Any) -> dict[str, Any]:
    if class_name:
        runner["className"] = class_name
    spec: dict[str, Any] = {"model": {"provider": "scripted", "script": [{"reply": "hi"}]}}
    if runner:
        spec["runner"] = runner
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(rest: k8s.Rest, namespace: str, obj: dict[str, Any], dry: bool = False) -> str | None:
    """None when the API server accepts ``obj``; its refusal otherwise."""
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    query = [("dryRun", "All")] if dry else []
    try:
        rest.request(
            "POST", k8s.collection_path(obj["apiVersion"], "agents", namespace), obj, query=query
        )
    except k8s.ApiError as err:
        return str(err)
    return None


def _class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "RunnerClass",
        "metadata": {"name": name},
        "spec": {"image": "example.com/runner:1"},
    }


def test_a_tenant_uses_only_the_classes_it_is_granted_and_cannot_write_classes(
    control_plane: testing.ControlPlaneHandle, namespace: str, chart_objects: str
) -> None:
    admin = control_plane.rest()
    gold = f"gold-{uuid.uuid4().hex[:6]}"
    admin.create(_class(gold))
    user = f"tenant-{uuid.uuid4().hex[:6]}@example.com"
    control_plane.kubectl(
        "create",
        "rolebinding",
        "tenant-edit",
        "--clusterrole=edit",
        f"--user={user}",
        "-n",
        namespace,
    )
    tenant = control_plane.user_rest(user, ("tenants",))
    try:
        # The policy and the aggregated roles take a moment to be in force.
        refusal = testing.until(
            lambda: _create(tenant, namespace, _agent("probe", gold), dry=True),
            60,
            what="the RunnerClass use policy to refuse the tenant",
        )
        assert "spec.runner.className" in refusal and gold in refusal, refusal
        testing.until(
            lambda: _create(tenant, namespace, _agent("probe", chart_objects), dry=True) is None,
            60,
            what="the default class grant aggregated into edit",
        )
        assert _create(tenant, namespace, _agent("plain")) is None  # no class: the default
        assert _create(tenant, namespace, _agent("standard", chart_objects)) is None
        assert _create(tenant, namespace, _agent("golden", gold)) is not None
        # Privileged runner fields are refused whoever asks.
        moved = _create(tenant, namespace, _agent("sneaky", None, image="evil/image:1"))
        assert moved is not None and "runner.image moved to RunnerClass" in moved
        # An Agent an admin put on gold stays editable by the tenant, except its class.
        assert _create(admin, namespace, _agent("admins", gold)) is None
        tenant.merge_patch(
            constants.API_VERSION, "agents", namespace, "admins", {"spec": {"instructions": "x"}}
        )
        with pytest.raises(k8s.ApiError, match=r"spec\.runner\.className"):
            tenant.merge_patch(
                constants.API_VERSION,
                "agents",
                namespace,
                "plain",
                {"spec": {"runner": {"className": gold}}},
            )
        # Tenants cannot create or change classes.
        with pytest.raises(k8s.Forbidden):
            tenant.create(_class(f"mine-{gold}"))
        with pytest.raises(k8s.Forbidden):
            tenant.merge_patch(
                constants.API_VERSION, "runnerclasses", None, gold, {"spec": {"image": "evil:1"}}
            )
        # With the grant (a RoleBinding in the tenant's namespace), the tenant may use gold.
        grant = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"use-{gold}"},
            "rules": [
                {
                    "apiGroups": [constants.GROUP],
                    "resources": ["runnerclasses"],
                    "resourceNames": [gold],
                    "verbs": ["use"],
                }
            ],
        }
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(grant))
        control_plane.kubectl(
            "create",
            "rolebinding",
            "use-gold",
            f"--clusterrole=use-{gold}",
            f"--user={user}",
            "-n",
            namespace,
        )
        testing.until(
            lambda: _create(tenant, namespace, _agent("golden", gold)) is None,
            60,
            what="the tenant's use grant on the class to take effect",
        )
    finally:
        tenant.close()
        admin.delete(constants.API_VERSION, "runnerclasses", None, gold)
        control_plane.kubectl("delete", "clusterrole", f"use-{gold}", check=False)
