"""The chart's Secret-reference admission policies, tried by a real tenant on a real API server.

The policies and the people's roles are rendered from the chart (``helm template``) under a
release name of their own and applied with kubectl. The tenant authenticates with its own
client certificate and holds only what the chart's ``edit`` and ``view`` roles give, bound in
its namespace, plus ``get`` on one Secret by name: the API server's authorizer, asked by the
policy as that user, decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import chartkit
import pytest
import yaml

from bosun import constants, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
TENANT = "tenant@example.com"
READABLE, HIDDEN = "readable", "hidden"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def release(bosun_crds: testing.ControlPlaneHandle) -> Iterator[str]:
    """The chart's admission policies and people's roles, applied under a fresh release name."""
    name = f"bosun-{uuid.uuid4().hex[:6]}"
    # The operator is not needed here: only the policies and the people's roles are applied.
    text = chartkit.template_text(sets=["rbac.create=false"], release=name)
    docs = [
        doc
        for doc in chartkit.parse(text)
        if doc["kind"]
        in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterRole")
    ]
    manifest = "\n---\n".join(yaml.safe_dump(doc) for doc in docs)
    bosun_crds.kubectl("apply", "-f", "-", input=manifest)
    yield name
    bosun_crds.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest, check=False)


def _agent(namespace: str, name: str, secret: str, **model: Any) -> Obj:
    return {
        "apiVersion": API,
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "provider": "openai",
                "name": "gpt-4o-mini",
                "apiKeySecretRef": {"name": secret, "key": "token"},
                **model,
            }
        },
    }


def _tool(namespace: str, name: str, secret: str, transport: str = "http") -> Obj:
    reach: Obj = {
        "url": "https://tools.example.com/lookup",
        "headers": [
            {"name": "X-Trace", "value": "1"},
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": secret, "key": "h"}}},
        ],
    }
    if transport == "mcp":
        reach["toolName"] = "lookup"
    return {
        "apiVersion": API,
        "kind": "Tool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"description": "Look something up.", transport: reach},
    }


@pytest.fixture
def tenant(
    control_plane: testing.ControlPlaneHandle, namespace: str, release: str
) -> Iterator[kube.Rest]:
    """A user of ``namespace`` with the chart's edit and view roles and get on one Secret."""
    kubectl = control_plane.kubectl
    for secret in (READABLE, HIDDEN):
        kubectl("create", "secret", "generic", secret, "--from-literal=token=t", "-n", namespace)
    for role in ("edit", "view"):
        kubectl(
            "create", "rolebinding", f"tenant-{role}", f"--clusterrole={release}-{role}",
            f"--user={TENANT}", "-n", namespace,
        )  # fmt: skip
    kubectl(
        "create", "role", "read-one-secret", "--verb=get", "--resource=secrets",
        f"--resource-name={READABLE}", "-n", namespace,
    )  # fmt: skip
    kubectl(
        "create", "rolebinding", "read-one-secret", "--role=read-one-secret",
        f"--user={TENANT}", "-n", namespace,
    )  # fmt: skip
    rest = control_plane.user_rest(TENANT)
    try:
        _wait_until_enforced(rest, namespace)
        yield rest
    finally:
        rest.close()


def _wait_until_enforced(rest: kube.Rest, namespace: str) -> None:
    """RBAC bindings and a new admission policy take a moment to reach the API server's
    caches: wait until the tenant may create Agents and the policy turns a probe away."""

    def enforced() -> bool:
        try:
            rest.create(_agent(namespace, "probe", HIDDEN))
        except (kube.Forbidden, kube.Invalid) as err:
            return "apiKeySecretRef" in err.message
        rest.delete(API, "agents", namespace, "probe")
        return False

    testing.until(enforced, timeout=60, interval=0.5, what="the Secret-reference policy")


def _refused(rest: kube.Rest, obj: Obj) -> str:
    with pytest.raises((kube.Forbidden, kube.Invalid)) as caught:
        rest.create(obj)
    message: str = caught.value.message
    return message


def test_a_tenant_cannot_reference_a_secret_they_may_not_read(
    tenant: kube.Rest, namespace: str, control_plane: testing.ControlPlaneHandle
) -> None:
    message = _refused(tenant, _agent(namespace, "thief", HIDDEN, baseURL="https://evil.test/"))
    assert f"spec.model.apiKeySecretRef.name: you may not read Secret {HIDDEN}" in message
    message = _refused(tenant, _tool(namespace, "thief-http", HIDDEN))
    assert (
        "spec.http.headers[Authorization].valueFrom.secretKeyRef.name: "
        f"you may not read Secret {HIDDEN}"
    ) in message
    message = _refused(tenant, _tool(namespace, "thief-mcp", HIDDEN, "mcp"))
    assert "spec.mcp.headers[Authorization].valueFrom.secretKeyRef.name" in message
    for kind in ("agents", "tools"):
        assert control_plane.rest().list(API, kind, namespace) == []

    # A Secret the tenant may read is theirs to use.
    assert tenant.create(_agent(namespace, "mine", READABLE)) is not None
    assert tenant.create(_tool(namespace, "mine-http", READABLE)) is not None
    assert tenant.create(_tool(namespace, "mine-mcp", READABLE, "mcp")) is not None


def test_a_tenant_may_edit_an_admins_agent_but_not_redirect_its_secret(
    tenant: kube.Rest, namespace: str, control_plane: testing.ControlPlaneHandle
) -> None:
    admin = control_plane.rest()
    admin.create(_agent(namespace, "wired", HIDDEN, baseURL="https://llm.internal/v1"))
    admin.create(_tool(namespace, "wired", HIDDEN))

    # Editing what does not decide where the Secret goes is fine.
    tenant.merge_patch(API, "agents", namespace, "wired", {"spec": {"instructions": "Be brief."}})
    tenant.merge_patch(API, "tools", namespace, "wired", {"spec": {"description": "Lookups."}})

    # Sending it elsewhere, or another key of it, is a new use of the Secret.
    for model in (
        {"baseURL": "https://evil.test/v1"},
        {"provider": "anthropic"},
        {"apiKeySecretRef": {"name": HIDDEN, "key": "other"}},
    ):
        with pytest.raises((kube.Forbidden, kube.Invalid)) as caught:
            tenant.merge_patch(API, "agents", namespace, "wired", {"spec": {"model": model}})
        assert f"you may not read Secret {HIDDEN}" in caught.value.message, model
    with pytest.raises((kube.Forbidden, kube.Invalid)) as caught:
        tenant.merge_patch(
            API, "tools", namespace, "wired", {"spec": {"http": {"url": "https://evil.test/"}}}
        )
    assert "spec.http.headers[Authorization].valueFrom.secretKeyRef.name" in caught.value.message
    agent = admin.get(API, "agents", namespace, "wired")
    assert agent is not None
    assert agent["spec"]["model"]["baseURL"] == "https://llm.internal/v1"
    assert agent["spec"]["instructions"] == "Be brief."

    # Pointing it at a Secret the tenant may read is allowed.
    tenant.merge_patch(
        API,
        "agents",
        namespace,
        "wired",
        {"spec": {"model": {"apiKeySecretRef": {"name": READABLE, "key": "token"}}}},
    )


def _webhook(namespace: str, name: str, secret: str, method: str = "hmac") -> Obj:
    return {
        "apiVersion": API,
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "auth": {method: {"secretRef": {"name": secret, "key": "token"}}},
            "input": "'Event: ' + string(body)",
            "runTemplate": {"spec": {"agentRef": {"name": "triage"}}},
        },
    }


def test_a_tenant_cannot_make_a_secret_they_may_not_read_a_webhooks_key(
    tenant: kube.Rest, namespace: str, control_plane: testing.ControlPlaneHandle
) -> None:
    for method in ("hmac", "bearer"):
        message = _refused(tenant, _webhook(namespace, f"thief-{method}", HIDDEN, method))
        assert f"spec.auth.{method}.secretRef.name: you may not read Secret {HIDDEN}" in message
    assert control_plane.rest().list(API, "webhooks", namespace) == []
    assert tenant.create(_webhook(namespace, "mine", READABLE)) is not None

    # An admin's Webhook on a hidden key: the tenant may edit it, but not re-point the key.
    control_plane.rest().create(_webhook(namespace, "wired", HIDDEN))
    tenant.merge_patch(API, "webhooks", namespace, "wired", {"spec": {"filter": "true"}})
    hidden_token = {"secretRef": {"name": HIDDEN, "key": "token"}}
    for target, auth in (
        ("mine", {"hmac": hidden_token}),  # to a Secret the tenant may not read
        ("wired", {"hmac": {"secretRef": {"name": HIDDEN, "key": "username"}}}),  # another key
        ("wired", {"hmac": None, "bearer": hidden_token}),  # the same key as a bearer token
    ):
        with pytest.raises((kube.Forbidden, kube.Invalid)) as caught:
            tenant.merge_patch(API, "webhooks", namespace, target, {"spec": {"auth": auth}})
        assert f"you may not read Secret {HIDDEN}" in caught.value.message, (target, auth)
