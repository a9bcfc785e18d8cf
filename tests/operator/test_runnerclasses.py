"""RunnerClass rules: which class serves an Agent, resource bounds, security, egress, the pod."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from bosun import constants, contract
from bosun.api import runnerclass
from bosun.controller import builders, runnerclasses, settings

DEFAULT = {constants.ANNOTATION_DEFAULT_RUNNER_CLASS: "true"}


def _class(name: str, created: str = "2025-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", None)
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "RunnerClass", "metadata": meta, "spec": {"image": f"img/{name}", **spec}}


def _agent(**runner: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"provider": "scripted", "script": [{"reply": "x"}]}}
    if runner:
        spec["runner"] = runner
    return {"metadata": {"name": "a", "namespace": "ns"}, "spec": spec}


def _run() -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "ns", "uid": "u-1"}}


def test_an_agent_gets_its_named_class_the_newest_default_or_the_builtin() -> None:
    old = _class("old", "2025-01-01T00:00:00Z", annotations=DEFAULT)
    new = _class("new", "2025-02-01T00:00:00Z", annotations=DEFAULT)
    gpu = _class("gpu")
    assert runnerclasses.resolve(_agent(className="gpu"), [old, new, gpu]).obj is gpu
    chosen = runnerclasses.resolve(_agent(), [old, new, gpu])
    assert (chosen.name, chosen.named) == ("new", False)
    builtin = runnerclasses.resolve(_agent(), [gpu])
    assert builtin.name is None and not builtin.missing
    missing = runnerclasses.resolve(_agent(className="nope"), [gpu])
    assert missing.missing and missing.describe() == "RunnerClass nope"


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", "0.25"), ("1Gi", str(2**30)), ("2", "2"), ("1e3", "1000"), ("1.5k", "1500")],
)
def test_quantities_parse_like_kubernetes(text: str, value: str) -> None:
    assert runnerclasses.quantity(text) == decimal.Decimal(value)


def test_resources_come_from_the_agent_or_the_class_and_bounds_fill_missing_limits() -> None:
    bounded = runnerclasses.Resolved(
        "small",
        _class(
            "small",
            defaultResources={"requests": {"cpu": "100m"}},
            maxResources={"cpu": "1", "memory": "1Gi"},
        ),
        True,
    )
    assert runnerclasses.resources(bounded, _agent()) == {
        "requests": {"cpu": "100m"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    own = _agent(resources={"limits": {"memory": "256Mi"}})
    assert runnerclasses.resources(bounded, own)["limits"] == {"memory": "256Mi", "cpu": "1"}
    builtin = runnerclasses.Resolved(None, None, False)
    assert runnerclasses.resources(builtin, _agent()) == runnerclasses.BUILTIN_RESOURCES


def test_resources_over_the_class_maximum_name_the_field_the_class_and_the_bound() -> None:
    small = runnerclasses.Resolved("small", _class("small", maxResources={"memory": "1Gi"}), True)
    greedy = _agent(className="small", resources={"requests": {"memory": "2Gi"}})
    reason, message = runnerclasses.resource_problem(small, greedy) or ("", "")
    assert reason == constants.REASON_RESOURCES_EXCEED_CLASS
    assert "runner.resources.requests.memory 2Gi" in message
    assert "RunnerClass small" in message and "1Gi" in message
    fine = _agent(className="small", resources={"requests": {"memory": "1024Mi"}})
    assert runnerclasses.resource_problem(small, fine) is None
    upside_down = _agent(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})
    problem = runnerclasses.resource_problem(small, upside_down)
    assert problem is not None and problem[0] == constants.REASON_INVALID_RESOURCES


def test_security_contexts_default_to_restricted_and_the_class_overrides_per_field() -> None:
    plain = runnerclasses.Resolved(None, None, False)
    assert runnerclasses.pod_security(plain) == runnerclasses.RESTRICTED_POD
    assert runnerclasses.container_security(plain) == runnerclasses.RESTRICTED_CONTAINER
    custom = runnerclasses.Resolved(
        "c",
        _class("c", securityContext={"runAsUser": 1000}, podSecurityContext={"fsGroup": 2}),
        True,
    )
    container = runnerclasses.container_security(custom)
    assert container["runAsUser"] == 1000 and container["allowPrivilegeEscalation"] is False
    assert runnerclasses.pod_security(custom)["fsGroup"] == 2


def _cidrs(rules: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [
        (p["ipBlock"]["cidr"], p["ipBlock"].get("except", []))
        for rule in rules
        for p in rule["to"]
        if "ipBlock" in p
    ]


def test_egress_never_reaches_cloud_metadata_whatever_the_class_allows() -> None:
    v4, v6 = runnerclass.METADATA_CIDRS
    assert _cidrs(runnerclasses.egress(runnerclasses.Resolved(None, None, False))) == [
        ("0.0.0.0/0", [v4]),
        ("::/0", [v6]),
    ]
    rules = [
        {"to": [{"ipBlock": {"cidr": "169.254.0.0/16"}}], "ports": [{"port": 443}]},
        {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]},  # only metadata: dropped
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"namespaceSelector": {}}]},
    ]
    out = runnerclasses.egress(runnerclasses.Resolved("c", _class("c", egress=rules), True))
    assert len(out) == 2
    assert _cidrs(out) == [("169.254.0.0/16", [v4]), ("10.0.0.0/8", [])]
    assert out[0]["ports"] == [{"port": 443}]
    assert out[1]["to"][1] == {"namespaceSelector": {}}


def test_the_job_is_built_from_the_class_and_ignores_the_agents_moved_fields() -> None:
    gpu = _class(
        "gpu",
        imagePullPolicy="Always",
        serviceAccountName="gpu-runner",
        nodeSelector={"pool": "gpu"},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
    )
    legacy = _agent(
        className="gpu",
        image="evil/image",
        serviceAccountName="admin",
        nodeSelector={"pool": "control-plane"},
        tolerations=[{"operator": "Exists"}],
        imagePullPolicy="Never",
    )
    chosen = runnerclasses.resolve(legacy, [gpu])
    job = builders.job(_run(), legacy, [], 1, settings.Settings(), runner_class=chosen)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == ("img/gpu", "Always")
    assert pod["serviceAccountName"] == "gpu-runner"
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert runnerclasses.moved_fields(legacy) == [
        "image",
        "imagePullPolicy",
        "serviceAccountName",
        "nodeSelector",
        "tolerations",
    ]
    builtin = builders.job(_run(), legacy, [], 1, settings.Settings(runner_image="ours:1"))
    pod = builtin["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ours:1"
    assert pod["serviceAccountName"] == contract.runner_account_name("r")
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_the_network_policy_selects_the_runs_pods_and_is_owned_by_the_run() -> None:
    policy = builders.network_policy(_run(), runnerclasses.Resolved(None, None, False))
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert policy["spec"]["policyTypes"] == ["Egress"]
    pod_labels = contract.pod_labels("r", 2)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(pod_labels[k] == v for k, v in selector.items())
