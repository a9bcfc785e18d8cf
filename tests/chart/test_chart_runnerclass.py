"""The chart's RunnerClass pieces as rendered: the default class, the `use` policy, the RBAC."""

from __future__ import annotations

import chartkit

from bosun import constants
from bosun.api import runnerclass


def test_the_default_class_comes_from_the_runner_values_and_is_a_hook() -> None:
    objs = chartkit.render(
        sets=[
            "runner.image.repository=registry.example.com/runner",
            "runner.image.tag=v7",
            "runner.defaultClass.maxResources.memory=1Gi",
        ]
    )
    found = chartkit.one(objs, "RunnerClass", "default")
    annotations = found["metadata"]["annotations"]
    assert annotations[constants.ANNOTATION_DEFAULT_RUNNER_CLASS] == "true"
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert found["spec"]["image"] == "registry.example.com/runner:v7"
    assert found["spec"]["maxResources"] == {"memory": "1Gi"}
    runnerclass.RunnerClass.from_dict(found)  # valid against the model
    env = chartkit.env_of(chartkit.container(objs))
    assert env["BOSUN_RUNNER_IMAGE"] == "registry.example.com/runner:v7"
    none = chartkit.render(sets=["runner.defaultClass.create=false"])
    assert not chartkit.of_kind(none, "RunnerClass")


def test_the_use_policy_checks_the_requesters_authorizer_when_the_class_changes() -> None:
    objs = chartkit.render()
    policy = chartkit.one(objs, "ValidatingAdmissionPolicy", "bosun-runnerclass-use")
    binding = chartkit.one(objs, "ValidatingAdmissionPolicyBinding", "bosun-runnerclass-use")
    assert binding["spec"] == {"policyName": "bosun-runnerclass-use", "validationActions": ["Deny"]}
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["agents"], ["CREATE", "UPDATE"])
    (validation,) = policy["spec"]["validations"]
    check = " ".join(validation["expression"].split())
    assert "authorizer.group('bosun.dev').resource('runnerclasses')" in check
    assert ".namespace(request.namespace)" in check and ".check('use').allowed()" in check
    assert "variables.className == variables.oldClassName" in check
    assert "spec.runner.className" in validation["messageExpression"]
    off = chartkit.render(sets=["runner.classPolicy.enabled=false"])
    names = [p["metadata"]["name"] for p in chartkit.of_kind(off, "ValidatingAdmissionPolicy")]
    assert "bosun-runnerclass-use" not in names


def test_editors_may_use_the_default_class_and_no_chart_role_writes_classes() -> None:
    objs = chartkit.render()
    use = chartkit.one(objs, "ClusterRole", "bosun-runnerclass-default-use")
    labels = use["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in labels
    assert chartkit.allows(use["rules"], constants.GROUP, "runnerclasses", "use", "default")
    assert not chartkit.allows(use["rules"], constants.GROUP, "runnerclasses", "use", "other")
    for role in chartkit.of_kind(objs, "ClusterRole"):
        for verb in ("create", "update", "patch", "delete"):
            assert not chartkit.allows(role["rules"], constants.GROUP, "runnerclasses", verb)


def test_the_operator_reads_classes_and_creates_runner_network_policies() -> None:
    for sets in ([], ["operator.clusterWide=true"]):
        objs = chartkit.render(sets=sets)
        rules = chartkit.one(objs, "ClusterRole", "bosun-operator-runnerclasses")["rules"]
        for verb in ("get", "list", "watch"):
            assert chartkit.allows(rules, constants.GROUP, "runnerclasses", verb)
        assert chartkit.allows(rules, constants.GROUP, "runnerclasses/status", "patch")
        assert not chartkit.allows(rules, "networking.k8s.io", "networkpolicies", "create")
    # NetworkPolicies come with the operator's own rules: a Role per watched namespace.
    scoped = chartkit.render(sets=["operator.watchNamespaces={team-a}"])
    role = chartkit.one(scoped, "Role", "bosun-operator")
    assert role["metadata"]["namespace"] == "team-a"
    assert chartkit.allows(role["rules"], "networking.k8s.io", "networkpolicies", "create")
    wide = chartkit.render(sets=["operator.clusterWide=true"])
    rules = chartkit.one(wide, "ClusterRole", "bosun-operator")["rules"]
    assert chartkit.allows(rules, "networking.k8s.io", "networkpolicies", "create")
