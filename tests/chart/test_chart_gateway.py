"""The chart's gateway: off by default; when on, a restricted pod of the operator image serving
what `bosun gateway` serves, and RBAC that is exactly what the gateway does with the API."""

from __future__ import annotations

import chartkit
import pytest

from bosun import constants

ON = ["gateway.enabled=true"]

# What the gateway does with the API (operator/bosun/gateway): (group, resource, verb, name).
GATEWAY_NEEDS = {
    (constants.GROUP, "webhooks", "get", None),  # lookup.Lookup.webhook
    (constants.GROUP, "webhooks/status", "get", None),  # tallies: read the counts, then add
    (constants.GROUP, "webhooks/status", "patch", None),
    (constants.GROUP, "runs", "create", None),  # deliveries: the delivery's Run
    (constants.GROUP, "runs", "get", None),  # deliveries: the Run a redelivery answers with
}


def _gateway_objects(sets: list[str]) -> list[chartkit.Obj]:
    return [
        obj for obj in chartkit.render(sets=sets) if obj["metadata"]["name"].endswith("-gateway")
    ]


def test_the_gateway_is_off_by_default() -> None:
    assert _gateway_objects([]) == []


def test_namespaced_roles_grant_exactly_what_the_gateway_does() -> None:
    objs = _gateway_objects([*ON, "operator.watchNamespaces={team-a,team-b}"])
    roles = chartkit.of_kind(objs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"team-a", "team-b"}
    for role in roles:
        assert set(chartkit.expand(role["rules"])) == GATEWAY_NEEDS
        for verb in ("get", "list", "watch"):  # no Secret, by name or otherwise
            assert not chartkit.allows(role["rules"], "", "secrets", verb)
    bindings = chartkit.of_kind(objs, "RoleBinding")
    account = chartkit.one(objs, "ServiceAccount")["metadata"]["name"]
    assert {b["subjects"][0]["name"] for b in bindings} == {account}
    assert chartkit.of_kind(objs, "ClusterRole") == []


def test_secret_names_are_granted_by_name_only() -> None:
    objs = _gateway_objects([*ON, "gateway.secretNames={github-hook}"])
    role = chartkit.one(objs, "Role")
    secrets = {e for e in chartkit.expand(role["rules"]) if e[1] == "secrets"}
    assert secrets == {("", "secrets", "get", "github-hook")}
    assert chartkit.allows(role["rules"], "", "secrets", "get", "github-hook")
    assert not chartkit.allows(role["rules"], "", "secrets", "get", "another")
    assert not chartkit.allows(role["rules"], "", "secrets", "list")


def test_cluster_wide_refuses_secret_names_every_namespace_would_expose() -> None:
    with pytest.raises(AssertionError, match="kube-system included"):
        chartkit.render(sets=[*ON, "operator.clusterWide=true", "gateway.secretNames={k}"])


def test_cluster_wide_uses_one_cluster_role_with_the_same_rules() -> None:
    objs = _gateway_objects([*ON, "operator.clusterWide=true"])
    role = chartkit.one(objs, "ClusterRole")
    assert set(chartkit.expand(role["rules"])) == GATEWAY_NEEDS
    assert chartkit.of_kind(objs, "Role") == []


@pytest.mark.parametrize("replicas", [1, 3])
def test_the_deployment_runs_the_gateway_restricted(replicas: int) -> None:
    objs = _gateway_objects([*ON, f"gateway.replicas={replicas}", "gateway.port=8181"])
    deployment = chartkit.one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    pod = deployment["spec"]["template"]["spec"]
    account = chartkit.one(objs, "ServiceAccount")["metadata"]["name"]
    assert pod["serviceAccountName"] == account
    (container,) = pod["containers"]
    assert container["command"] == ["bosun", "gateway"]
    env = chartkit.env_of(container)
    assert env["BOSUN_GATEWAY_PORT"] == "8181"
    assert env["BOSUN_NAMESPACES"] == chartkit.NAMESPACE
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8181,
        "metrics": int(env["BOSUN_METRICS_PORT"]),
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    service = chartkit.one(objs, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # The operator's Deployment does not select the gateway's pods, nor the reverse.
    operator = next(
        d for d in chartkit.of_kind(chartkit.render(sets=ON), "Deployment") if d is not deployment
        and not d["metadata"]["name"].endswith("-gateway")
    )  # fmt: skip
    assert not operator["spec"]["selector"]["matchLabels"].items() <= labels.items()
