"""The chart as rendered by the real helm: lint, values schema, CRDs, Deployment, RBAC, options.

No cluster: these check what `helm template` produces against what the operator and the
runner contract need (the install test proves it on a real API server).
"""

from __future__ import annotations

import inspect
import json
import pathlib
import re

import chartkit
import pytest
import yaml

from bosun import constants, contract
from bosun.api import crdgen
from bosun.controller import leader
from bosun.controller import settings as settings_mod

NONDEFAULT = chartkit.VALUES / "nondefault.yaml"
CRDS = chartkit.REPO / "crds"
CHART_CRDS = chartkit.CHART / "files" / "crds"


@pytest.fixture(scope="module")
def default() -> list[chartkit.Obj]:
    return chartkit.render()


@pytest.fixture(scope="module")
def nondefault() -> list[chartkit.Obj]:
    return chartkit.render([NONDEFAULT])


# --- lint and values schema --------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
def test_helm_lint_is_clean(values: list[pathlib.Path]) -> None:
    proc = chartkit.helm(
        "lint",
        str(chartkit.CHART),
        "--strict",
        "--kube-version",
        chartkit.KUBE_VERSION,
        *chartkit.values_args(values),
    )
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("operator.replica=2", "additional properties 'replica' not allowed"),
        ("operator.replicas=two", "got string, want integer"),
        ("operator.watchNamespaces={Team_A}", "/operator/watchNamespaces/0"),
        ("admissionPolicy.approvals.validationActions={Block}", "must be one of"),
        ("operator.healthPort=70000", "/operator/healthPort"),
        ("image.digest=latest", "/image/digest"),
    ],
)
def test_values_schema_rejects_mistakes(setting: str, complaint: str) -> None:
    proc = chartkit.helm(
        "template",
        "bosun",
        str(chartkit.CHART),
        "--kube-version",
        chartkit.KUBE_VERSION,
        "--set",
        setting,
        check=False,
    )
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "schema" in proc.stderr, proc.stderr
    assert complaint in proc.stderr, proc.stderr


def test_every_value_is_documented_in_the_schema() -> None:
    """values.yaml and values.schema.json describe the same keys (the schema forbids others)."""
    values = yaml.safe_load((chartkit.CHART / "values.yaml").read_text())
    schema = json.loads((chartkit.CHART / "values.schema.json").read_text())

    def walk(value: object, node: dict[str, object], path: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        properties = node["properties"]
        assert isinstance(properties, dict)
        for key, sub in value.items():
            assert key in properties, f"{path}{key} is not in values.schema.json"
            walk(sub, properties[key], f"{path}{key}.")

    walk(values, schema, "")


# --- CRDs ----------------------------------------------------------------------------------------


def test_chart_crd_files_are_a_copy_of_the_generated_crds() -> None:
    """files/crds/ must equal crds/ (regenerate with: cp crds/*.yaml helm/bosun/files/crds/)."""
    expected = sorted(p.name for p in CRDS.glob("*.yaml"))
    assert sorted(p.name for p in CHART_CRDS.glob("*.yaml")) == expected
    for name in expected:
        assert (CHART_CRDS / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"helm/bosun/files/crds/{name} differs from crds/{name}: "
            "cp crds/*.yaml helm/bosun/files/crds/"
        )


def test_rendered_crds_are_the_generated_crds_plus_chart_metadata(
    default: list[chartkit.Obj],
) -> None:
    generated = {}
    for path in CRDS.glob("*.yaml"):
        doc = next(d for d in yaml.safe_load_all(path.read_text()) if d)
        generated[doc["metadata"]["name"]] = doc
    rendered = {
        crd["metadata"]["name"]: crd
        for crd in chartkit.of_kind(default, "CustomResourceDefinition")
    }
    assert sorted(rendered) == sorted(generated)
    assert sorted(generated) == sorted(crdgen.crd_name(info) for info in crdgen.KINDS)
    for name, crd in rendered.items():
        source = generated[name]
        assert crd["spec"] == source["spec"], f"{name}: the chart changed the CRD's spec"
        labels = crd["metadata"]["labels"]
        assert source["metadata"].get("labels", {}).items() <= labels.items()
        assert labels["app.kubernetes.io/part-of"] == "bosun"
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crd_options(nondefault: list[chartkit.Obj]) -> None:
    crds = chartkit.of_kind(nondefault, "CustomResourceDefinition")
    assert len(crds) == len(constants.KINDS)
    for crd in crds:
        # keep: false drops the keep policy; extra annotations are added.
        assert crd["metadata"]["annotations"] == {
            "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"
        }
    none = chartkit.render(sets=["crds.install=false"])
    assert chartkit.of_kind(none, "CustomResourceDefinition") == []


# --- the operator Deployment -----------------------------------------------------------------


def test_operator_deployment_defaults(default: list[chartkit.Obj]) -> None:
    deployment = chartkit.one(default, "Deployment")
    assert deployment["metadata"]["namespace"] == chartkit.NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    # A standby is not ready until it leads, so a RollingUpdate would never finish.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    operator = chartkit.container(default)
    assert operator["image"] == "ghcr.io/bosun-dev/bosun:0.1.0"
    assert operator["command"] == ["bosun", "operator"]
    assert "args" not in operator
    assert chartkit.env_of(operator) == {
        "BOSUN_RUNNER_IMAGE": "ghcr.io/bosun-dev/bosun-runner:0.1.0",
        "BOSUN_LEASE_DURATION_SECONDS": str(contract.LEASE_DURATION_SECONDS),
        "BOSUN_START_TIMEOUT_SECONDS": "600",
        "BOSUN_ATTEMPT_TIMEOUT_SECONDS": "3600",
        "BOSUN_MAX_CONCURRENT_RUNS": "100",
        "BOSUN_MAX_CONCURRENT_RUNS_PER_NAMESPACE": "0",
        "BOSUN_FAIR_SHARE_WEIGHTS": "{}",
        "BOSUN_PRIORITY_CLASSES": "{}",
        "BOSUN_DEFAULT_PRIORITY_CLASS": "",
        "BOSUN_WORKERS": "4",
        "BOSUN_USAGE_INTERVAL_SECONDS": "5",
        "BOSUN_RUN_TTL_SECONDS": "604800",
        "BOSUN_RUN_HISTORY_SUCCEEDED": "1000",
        "BOSUN_RUN_HISTORY_FAILED": "1000",
        "BOSUN_RETENTION_INTERVAL_SECONDS": "300",
        # Namespaced by default: the release namespace alone.
        "BOSUN_NAMESPACES": chartkit.NAMESPACE,
        "BOSUN_LEADER_ELECTION": "true",
        "BOSUN_LEADER_NAMESPACE": chartkit.NAMESPACE,
        "BOSUN_LEADER_LEASE_SECONDS": "15",
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "BOSUN_METRICS_PORT": "8080",
        "BOSUN_HEALTH_PORT": "8081",
    }
    assert operator["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert pod["serviceAccountName"] == chartkit.one(default, "ServiceAccount")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True


def test_operator_env_parses_as_the_operator_settings(nondefault: list[chartkit.Obj]) -> None:
    """What the chart sets is what ``Settings.from_env`` reads back."""
    env = {
        k: v
        for k, v in chartkit.env_of(chartkit.container(nondefault)).items()
        if isinstance(v, str)
    }
    settings = settings_mod.Settings.from_env(env)
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.runner_command == ("python", "-m", "bosun.dev.standin")
    assert dict(settings.runner_env) == {
        "BOSUN_RUNNER_LOG_LEVEL": "DEBUG",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4317",
    }
    assert settings.runner_image == "registry.example.com/platform/bosun-runner:0.1.0-rc1"
    assert settings.max_concurrent_runs == 25
    assert settings.workers == 8
    assert settings.lease_duration_seconds == 20
    assert settings.start_timeout_seconds == 120
    assert settings.attempt_timeout_seconds == 600
    assert settings.leader_election is True
    assert settings.leader_namespace == chartkit.NAMESPACE
    assert settings.leader_lease_seconds == 30
    assert (settings.metrics_port, settings.health_port) == (9090, 9091)
    defaults = settings_mod.Settings.from_env(
        {
            k: v
            for k, v in chartkit.env_of(chartkit.container(chartkit.render())).items()
            if isinstance(v, str)
        }
    )
    assert defaults.namespaces == (chartkit.NAMESPACE,)
    assert defaults.runner_command == ()
    assert defaults.runner_env == ()


def test_retention_values_reach_the_operator_settings(nondefault: list[chartkit.Obj]) -> None:
    """The chart's retention defaults are the operator's, and 0 (keep forever) reaches it."""
    for objs, expected in (
        (chartkit.render(), (604_800, 1000, 1000, 300)),
        (nondefault, (0, 50, 200, 30)),
    ):
        env = chartkit.env_of(chartkit.container(objs))
        settings = settings_mod.Settings.from_env(
            {k: v for k, v in env.items() if isinstance(v, str)}
        )
        found = (
            settings.run_ttl_seconds,
            settings.run_history_succeeded,
            settings.run_history_failed,
            settings.retention_interval_seconds,
        )
        assert found == expected
    defaults = settings_mod.Settings()
    assert (defaults.run_ttl_seconds, defaults.run_history_succeeded) == (604_800, 1000)


def test_operator_deployment_options(nondefault: list[chartkit.Obj]) -> None:
    deployment = chartkit.one(nondefault, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    operator = chartkit.container(nondefault)
    assert deployment["spec"]["replicas"] == 2
    assert operator["image"].endswith(
        "bosun@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert operator["imagePullPolicy"] == "Always"
    assert operator["args"] == ["--verbose"]
    env = chartkit.env_of(operator)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "bosun-operator"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "platform"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
def test_probes_and_ports_match_what_the_operator_serves(values: list[pathlib.Path]) -> None:
    objs = chartkit.render(values)
    operator = chartkit.container(objs)
    env = chartkit.env_of(operator)
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {
        "metrics": int(env["BOSUN_METRICS_PORT"]),
        "health": int(env["BOSUN_HEALTH_PORT"]),
    }
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert operator["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    service = chartkit.one(objs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = chartkit.one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
def test_operator_pod_meets_podsecurity_restricted(values: list[pathlib.Path]) -> None:
    """The checks of the "restricted" Pod Security Standard that a pod spec can fail."""
    pod = chartkit.one(chartkit.render(values), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"].get("runAsUser", 1) != 0
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert not context.get("privileged")
        assert not any(port.get("hostPort") for port in container["ports"])
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]


# --- RBAC ----------------------------------------------------------------------------------------

# What the operator does with the API (operator/bosun/controller and kopf), beyond what it must
# hold to grant the runner's Role. Each entry is (group, resource, verbs).
OPERATOR_NEEDS = [
    # create: each Schedule fire's Run; patch: spec.cancel of one CancelOther replaces.
    (constants.GROUP, "runs", ("get", "list", "watch", "create", "patch", "delete")),
    (constants.GROUP, "runs/status", ("get", "patch", "update")),
    (constants.GROUP, "schedules", ("get", "list", "watch")),
    (constants.GROUP, "schedules/status", ("get", "patch")),
    # A Webhook's Ready condition: its filter and input compile.
    (constants.GROUP, "webhooks", ("get", "list", "watch")),
    (constants.GROUP, "webhooks/status", ("get", "patch")),
    (constants.GROUP, "agents", ("get", "list", "watch")),
    (constants.GROUP, "tools", ("get", "list", "watch")),
    (constants.GROUP, "policies", ("get", "list", "watch")),
    (constants.GROUP, "approvals", ("get", "list", "watch")),
    (constants.GROUP, "agents/status", ("get", "patch")),
    (constants.GROUP, "tools/status", ("get", "patch")),
    (constants.GROUP, "policies/status", ("get", "patch")),
    ("batch", "jobs", ("get", "list", "watch", "create", "delete")),
    ("coordination.k8s.io", "leases", ("get", "list", "watch", "create", "update")),
    ("", "pods", ("get", "list")),
    ("", "events", ("create", "patch")),
    ("", "serviceaccounts", ("get", "create")),
    ("rbac.authorization.k8s.io", "roles", ("get", "create", "update")),
    ("rbac.authorization.k8s.io", "rolebindings", ("get", "create")),
    ("networking.k8s.io", "networkpolicies", ("get", "create", "update")),
    # Worker pools (Agent.spec.runner.pool): the pool's Deployment.
    ("apps", "deployments", ("get", "list", "watch", "create", "update", "delete")),
]
DISCOVERY = [("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch"))]
NAMESPACE_DISCOVERY = [("", "namespaces", ("get", "list", "watch"))]
NEVER = {"escalate", "bind", "impersonate", "*"}


def _needed(needs: list[tuple[str, str, tuple[str, ...]]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for group, resource, verbs in needs for verb in verbs}


def _runner_permissions() -> set[tuple[str, str, str, str | None]]:
    """What the operator grants: a Job runner's Role and a pool's Role."""
    granted = [*contract.runner_rules("some-run"), *contract.pool_rules()]
    return set(chartkit.expand(granted))


def _operator_rules(objs: list[chartkit.Obj], kind: str, name: str) -> list[chartkit.Obj]:
    rules: list[chartkit.Obj] = chartkit.one(objs, kind, name)["rules"]
    return rules


def _assert_least_privilege(rules: list[chartkit.Obj], allowed: set[tuple[str, str, str]]) -> None:
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), f"wildcard in {rule}"
        assert not NEVER & set(rule["verbs"]), f"escalation verb in {rule}"
    runner = {(g, r, v) for g, r, v, _ in _runner_permissions()}
    extra = {(g, r, v) for g, r, v, _ in chartkit.expand(rules)} - allowed - runner
    assert not extra, f"permissions nobody needs: {sorted(extra)}"


def test_cluster_wide_rbac_is_sufficient_and_least() -> None:
    default = chartkit.render(sets=["operator.clusterWide=true"])
    rules = _operator_rules(default, "ClusterRole", "bosun-operator")
    for group, resource, verb in _needed(OPERATOR_NEEDS + DISCOVERY):
        assert chartkit.allows(rules, group, resource, verb), f"missing {verb} {group}/{resource}"
    # Kubernetes refuses to let the operator create a Role granting more than it holds.
    for group, resource, verb, name in _runner_permissions():
        assert chartkit.allows(rules, group, resource, verb, name), (
            f"cannot grant the runner {verb} {group}/{resource} {name or ''}"
        )
    _assert_least_privilege(rules, _needed(OPERATOR_NEEDS + DISCOVERY))
    for verb in ("get", "list", "watch"):
        assert not chartkit.allows(rules, "", "secrets", verb)
    assert not chartkit.allows(rules, "coordination.k8s.io", "leases", "delete")
    binding = chartkit.one(default, "ClusterRoleBinding", "bosun-operator")
    assert binding["roleRef"]["name"] == "bosun-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bosun", "namespace": chartkit.NAMESPACE}
    ]
    assert chartkit.of_kind(default, "Role") == []
    env = chartkit.env_of(chartkit.container(default))
    assert env["BOSUN_NAMESPACES"] == ""


def test_namespaced_is_the_default_and_watches_the_release_namespace(
    default: list[chartkit.Obj],
) -> None:
    roles = chartkit.of_kind(default, "Role")
    assert {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles} == {
        (chartkit.NAMESPACE, "bosun-operator"),
        (chartkit.NAMESPACE, "bosun-leader-election"),
    }
    assert "bosun-operator" not in {
        c["metadata"]["name"] for c in chartkit.of_kind(default, "ClusterRole")
    }
    role = chartkit.one(roles, "Role", "bosun-operator")
    _assert_least_privilege(role["rules"], _needed(OPERATOR_NEEDS))
    for group, resource, verb, name in _runner_permissions():
        assert chartkit.allows(role["rules"], group, resource, verb, name)


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
@pytest.mark.parametrize("cluster_wide", [False, True], ids=["namespaced", "cluster-wide"])
def test_the_operator_reads_no_secrets(values: list[pathlib.Path], cluster_wide: bool) -> None:
    sets = ["operator.watchNamespaces=null", "operator.clusterWide=true"] if cluster_wide else []
    objs = chartkit.render(values, sets)
    roles = chartkit.of_kind(objs, "Role") + chartkit.of_kind(objs, "ClusterRole")
    operator = [r for r in roles if "-operator" in r["metadata"]["name"]]
    assert operator
    for role in operator:
        for verb in ("get", "list", "watch"):
            assert not chartkit.allows(role["rules"], "", "secrets", verb), role["metadata"]


def test_cluster_wide_and_a_namespace_list_do_not_mix() -> None:
    proc = chartkit.helm(
        "template",
        "bosun",
        str(chartkit.CHART),
        "--kube-version",
        chartkit.KUBE_VERSION,
        "--set",
        "operator.clusterWide=true",
        "--set",
        "operator.watchNamespaces={team-a}",
        check=False,
    )
    assert proc.returncode != 0
    assert "leave operator.watchNamespaces empty" in proc.stderr


def test_namespaced_rbac_is_sufficient_and_least(nondefault: list[chartkit.Obj]) -> None:
    roles = chartkit.of_kind(nondefault, "Role")
    per_namespace = {
        r["metadata"]["namespace"]: r
        for r in roles
        if r["metadata"]["name"] == "bosun-team-operator"
    }
    assert sorted(per_namespace) == ["team-a", "team-b"]
    for namespace, role in per_namespace.items():
        for group, resource, verb in _needed(OPERATOR_NEEDS):
            assert chartkit.allows(role["rules"], group, resource, verb), (
                namespace,
                verb,
                resource,
            )
        for group, resource, verb, name in _runner_permissions():
            assert chartkit.allows(role["rules"], group, resource, verb, name)
        _assert_least_privilege(role["rules"], _needed(OPERATOR_NEEDS))
        binding = chartkit.one(
            [b for b in nondefault if b["metadata"].get("namespace") == namespace],
            "RoleBinding",
            "bosun-team-operator",
        )
        assert binding["subjects"][0] == {
            "kind": "ServiceAccount",
            "name": "bosun-operator",
            "namespace": chartkit.NAMESPACE,
        }
    # Leader election: the operator's own Lease in the release namespace, by name.
    election = chartkit.one(roles, "Role", "bosun-team-leader-election")
    assert election["metadata"]["namespace"] == chartkit.NAMESPACE
    assert chartkit.allows(election["rules"], "coordination.k8s.io", "leases", "create")
    for verb in ("get", "update"):
        assert chartkit.allows(
            election["rules"], "coordination.k8s.io", "leases", verb, leader.LEASE_NAME
        )
        assert not chartkit.allows(election["rules"], "coordination.k8s.io", "leases", verb, "x")
    # Cluster-wide, only reading CRDs and namespace names.
    discovery = _operator_rules(nondefault, "ClusterRole", "bosun-team-operator-discovery")
    _assert_least_privilege(discovery, _needed(DISCOVERY + NAMESPACE_DISCOVERY))
    assert {(g, r, v) for g, r, v, _ in chartkit.expand(discovery)} == _needed(
        DISCOVERY + NAMESPACE_DISCOVERY
    )
    assert not [
        c
        for c in chartkit.of_kind(nondefault, "ClusterRole")
        if c["metadata"]["name"] == "bosun-team-operator"
    ]


def test_user_roles(default: list[chartkit.Obj], nondefault: list[chartkit.Obj]) -> None:
    view = chartkit.one(default, "ClusterRole", "bosun-view")
    edit = chartkit.one(default, "ClusterRole", "bosun-edit")
    approver = chartkit.one(default, "ClusterRole", "bosun-approver")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert not any(
        k.startswith("rbac.authorization.k8s.io/aggregate") for k in approver["metadata"]["labels"]
    )
    assert {v for _, _, v, _ in chartkit.expand(view["rules"])} == {"get", "list", "watch"}
    # Editing Agents and Runs does not include deciding approvals.
    assert not chartkit.allows(edit["rules"], constants.GROUP, "approvals", "create")
    assert chartkit.allows(approver["rules"], constants.GROUP, "approvals", "create")
    assert chartkit.allows(edit["rules"], constants.GROUP, "runs", "create")
    # The journal (every model response and tool result) is a right of its own.
    reader = chartkit.one(default, "ClusterRole", "bosun-journal-reader")
    assert not any(
        k.startswith("rbac.authorization.k8s.io/aggregate") for k in reader["metadata"]["labels"]
    )
    assert chartkit.allows(reader["rules"], constants.GROUP, "runjournals", "get")
    for role in chartkit.of_kind(default, "ClusterRole"):
        if (
            role["metadata"]["name"] != "bosun-journal-reader"
            and "-operator" not in role["metadata"]["name"]
        ):
            assert not chartkit.allows(role["rules"], constants.GROUP, "runjournals", "get"), role
    for role in chartkit.of_kind(nondefault, "ClusterRole"):
        labels = role["metadata"]["labels"]
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in labels)


# --- metrics, network policy, admission policy -------------------------------------------------


def test_service_monitor_and_network_policy(nondefault: list[chartkit.Obj]) -> None:
    service = chartkit.one(nondefault, "Service")
    monitor = chartkit.one(nondefault, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chartkit.NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert service["spec"]["ports"][0]["port"] == 9090

    policy = chartkit.one(nondefault, "NetworkPolicy")
    pod_labels = chartkit.one(nondefault, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    dns, api = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert [peer["ipBlock"]["cidr"] for peer in api["to"]] == ["10.0.0.1/32", "172.18.0.2/32"]


def test_optional_parts_are_off_by_default(default: list[chartkit.Obj]) -> None:
    kinds = {obj["kind"] for obj in default}
    assert "ServiceMonitor" not in kinds
    assert "NetworkPolicy" not in kinds
    assert "ValidatingAdmissionPolicy" in kinds


def test_approval_admission_policy(
    default: list[chartkit.Obj], nondefault: list[chartkit.Obj]
) -> None:
    policy = chartkit.one(default, "ValidatingAdmissionPolicy", "bosun-approval-identity")
    binding = chartkit.one(default, "ValidatingAdmissionPolicyBinding", "bosun-approval-identity")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [constants.GROUP]
    assert rule["resources"] == ["approvals"]
    (validation,) = policy["spec"]["validations"]
    assert "object.spec.approvedBy == request.userInfo.username" in validation["expression"]
    warn = chartkit.one(
        nondefault, "ValidatingAdmissionPolicyBinding", "bosun-team-approval-identity"
    )
    assert warn["spec"]["validationActions"] == ["Warn", "Audit"]
    off = chartkit.render(sets=["admissionPolicy.approvals.enabled=false"])
    names = {p["metadata"]["name"] for p in chartkit.of_kind(off, "ValidatingAdmissionPolicy")}
    assert "bosun-approval-identity" not in names


SECRET_POLICIES = ("bosun-agent-secret-references", "bosun-tool-secret-references")


def test_secret_reference_admission_policies(
    default: list[chartkit.Obj], nondefault: list[chartkit.Obj]
) -> None:
    """On by default; the requester's authorizer decides (the install tests try real users)."""
    for name, resource in zip(SECRET_POLICIES, ("agents", "tools"), strict=True):
        policy = chartkit.one(default, "ValidatingAdmissionPolicy", name)
        binding = chartkit.one(default, "ValidatingAdmissionPolicyBinding", name)
        assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
        assert policy["spec"]["failurePolicy"] == "Fail"
        (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
        assert rule["resources"] == [resource]
        assert rule["operations"] == ["CREATE", "UPDATE"]
        (validation,) = policy["spec"]["validations"]
        assert "authorizer.group('').resource('secrets')" in validation["expression"]
        assert ".check('get').allowed()" in validation["expression"]
        assert "you may not read Secret" in validation["messageExpression"]
        warn = chartkit.one(
            nondefault, "ValidatingAdmissionPolicyBinding", name.replace("bosun", "bosun-team")
        )
        assert warn["spec"]["validationActions"] == ["Warn", "Audit"]
    off = chartkit.render(sets=["admissionPolicy.secretReferences.enabled=false"])
    names = {p["metadata"]["name"] for p in chartkit.of_kind(off, "ValidatingAdmissionPolicy")}
    assert "bosun-approval-identity" in names and not names & set(SECRET_POLICIES)


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
def test_namespaced_objects_land_in_the_release_namespace(values: list[pathlib.Path]) -> None:
    watched = {"team-a", "team-b"} if values else set()
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "RunnerClass",
    }
    for obj in chartkit.render(values):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, obj["metadata"]
        elif obj["kind"] in ("Role", "RoleBinding") and namespace in watched:
            continue
        else:
            assert namespace == chartkit.NAMESPACE, (obj["kind"], obj["metadata"])


def test_chart_sets_every_operator_setting(default: list[chartkit.Obj]) -> None:
    """Each BOSUN_* variable the operator reads has a chart value, and the chart sets no other."""
    read = set(re.findall(r'"(BOSUN_[A-Z_]+)"', inspect.getsource(settings_mod)))
    set_by_chart = {
        name for name in chartkit.env_of(chartkit.container(default)) if name.startswith("BOSUN_")
    }
    # Set only when runner.command (testing) and runner.env are.
    assert read == set_by_chart | {"BOSUN_RUNNER_COMMAND", "BOSUN_RUNNER_ENV"}


def test_replicas_need_leader_election() -> None:
    proc = chartkit.helm(
        "template",
        "bosun",
        str(chartkit.CHART),
        "--kube-version",
        chartkit.KUBE_VERSION,
        "--set",
        "operator.replicas=2",
        "--set",
        "operator.leaderElection.enabled=false",
        check=False,
    )
    assert proc.returncode != 0
    assert "needs operator.leaderElection.enabled" in proc.stderr
    single = chartkit.render(sets=["operator.leaderElection.enabled=false"])
    assert chartkit.env_of(chartkit.container(single))["BOSUN_LEADER_ELECTION"] == "false"


def test_runner_events_policy(default: list[chartkit.Obj]) -> None:
    """On by default, matching only per-Run runner ServiceAccounts (a real runner tries it in
    tests/runner/test_trust_integration.py)."""
    policy = chartkit.one(default, "ValidatingAdmissionPolicy", "bosun-runner-events")
    binding = chartkit.one(default, "ValidatingAdmissionPolicyBinding", "bosun-runner-events")
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    [condition] = policy["spec"]["matchConditions"]
    assert "':bosun-runner-'" in condition["expression"]
    off = chartkit.render(sets=["admissionPolicy.runnerEvents.enabled=false"])
    names = {p["metadata"]["name"] for p in chartkit.of_kind(off, "ValidatingAdmissionPolicy")}
    assert "bosun-runner-events" not in names
