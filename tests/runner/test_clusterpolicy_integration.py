"""ClusterPolicies on the real control plane: tenants cannot write them, their Deny holds over a
namespace's Allow whatever the tenant does to their Agent, and namespace budgets hold Runs of
every Agent of the namespace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bosun import constants, contract
from bosun import kube as kubelib
from bosun.dev import testing
from bosun.dev.servers import tools

from . import harness

pytestmark = pytest.mark.cluster

MALLORY = "mallory@example.com"
AMOUNT = {"type": "object", "properties": {"amount": {"type": "number"}}}


@pytest.fixture
def cluster_policies(kube: harness.Harness) -> Iterator[Callable[..., str]]:
    """Create ClusterPolicies as the administrator, selecting only this test's namespace;
    deleted after the test (they are cluster-wide)."""
    made: list[str] = []

    def create(rules: list[dict[str, Any]], **spec: Any) -> str:
        name = f"guard-{uuid.uuid4().hex[:8]}"
        selector = {"matchLabels": {"kubernetes.io/metadata.name": kube.namespace}}
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {"namespaceSelector": selector, "rules": rules, **spec},
        }
        kube.custom.create_cluster_custom_object(
            constants.GROUP, constants.VERSION, "clusterpolicies", body
        )
        made.append(name)
        return name

    yield create
    for name in made:
        kube.custom.delete_cluster_custom_object(
            constants.GROUP, constants.VERSION, "clusterpolicies", name
        )


def _namespace_labels(kube: harness.Harness) -> str:
    labels = kube.core.read_namespace(kube.namespace).metadata.labels or {}
    return json.dumps(labels)


def _tenant(control_plane: testing.ControlPlaneHandle, kube: harness.Harness) -> kubelib.Rest:
    """Mallory, bound to the built-in edit role (the chart's edit role aggregated into it), once
    her binding applies: she can relabel the namespace's Agents."""
    control_plane.bind(kube.namespace, MALLORY, "edit")
    rest = control_plane.user_rest(MALLORY)
    path = _path(kube.namespace, "agents", "payer")

    def relabeled() -> bool:
        try:
            rest.request(
                "PATCH",
                path,
                {"metadata": {"labels": {"team": "exempt"}}},
                content_type=kubelib.MERGE_PATCH,
            )
        except kubelib.Forbidden:
            return False
        return True

    testing.until(relabeled, 30, what="Mallory's RoleBinding to apply")
    return rest


def _path(namespace: str | None, plural: str, name: str | None = None) -> str:
    if name is None:
        return kubelib.collection_path(constants.API_VERSION, plural, namespace)
    return kubelib.object_path(constants.API_VERSION, plural, namespace, name)


def test_a_tenant_cannot_write_cluster_policies_nor_escape_one_by_relabeling(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    control_plane: testing.ControlPlaneHandle,
    chart_user_roles: dict[str, str],
    cluster_policies: Callable[..., str],
) -> None:
    toolbox = servers(
        tools.ToolServer(
            {"charge": lambda a: {"charged": a["amount"]}, "lookup": lambda a: {"found": True}}
        )
    )
    script = [
        {"toolCalls": [{"tool": "charge", "args": {"amount": 99999}}]},
        {"toolCalls": [{"tool": "lookup", "args": {"amount": 1}}]},
        {"reply": "done"},
    ]
    kube.agent(
        "payer",
        {"provider": "scripted", "script": script},
        ["charge", "lookup"],
        labels={"team": "payments"},
    )
    for name in ("charge", "lookup"):
        kube.http_tool(name, toolbox.url_for(name), AMOUNT)
    kube.allow_all()  # the namespace's own Policy allows every tool
    guard = cluster_policies(
        [{"name": "no-charges", "tools": ["charge"], "action": "Deny", "message": "not here"}]
    )

    env = {contract.ENV_NAMESPACE_LABELS: _namespace_labels(kube)}
    kube.run("before", "payer")
    assert kube.start_runner("before", env=env).wait(120) == 0, kube.explain()

    # Mallory may edit the namespace's Agents (she relabels hers), but not ClusterPolicies.
    rest = _tenant(control_plane, kube)
    try:
        assert kube.get("Agent", "payer")["metadata"]["labels"] == {"team": "exempt"}
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": "ClusterPolicy",
            "metadata": {"name": f"mallory-{guard}"},
            "spec": {"rules": [{"tools": ["*"], "action": "Allow"}]},
        }
        with pytest.raises(kubelib.Forbidden):
            rest.request("POST", _path(None, "clusterpolicies"), body)
        with pytest.raises(kubelib.Forbidden):
            rest.request(
                "PATCH",
                _path(None, "clusterpolicies", guard),
                {"spec": {"rules": [{"tools": ["*"], "action": "Allow"}]}},
                content_type=kubelib.MERGE_PATCH,
            )
        with pytest.raises(kubelib.Forbidden):
            rest.request("DELETE", _path(None, "clusterpolicies", guard))
    finally:
        rest.close()

    kube.run("after", "payer")
    assert kube.start_runner("after", env=env).wait(120) == 0, kube.explain()

    # Neither Run charged anything; the allowed lookup ran each time.
    assert toolbox.executions == [("lookup", {"amount": 1}), ("lookup", {"amount": 1})]
    for run in ("before", "after"):
        decided = [(d["tool"], d["outcome"], d["policy"], d["rule"]) for d in kube.decisions(run)]
        assert decided == [
            ("charge", "denied", f"ClusterPolicy/{guard}", "no-charges"),
            ("lookup", "allowed", "allow-all", "everything"),
        ], decided
        assert kube.status(run)["usage"]["deniedCalls"] == 1


def test_a_cluster_policy_selecting_by_namespace_label_denies_without_the_labels(
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    cluster_policies: Callable[..., str],
) -> None:
    """A runner started without its namespace's labels cannot tell whether a ClusterPolicy
    selects it: it calls nothing (fail closed)."""
    toolbox = servers(tools.ToolServer({"lookup": lambda a: {"found": True}}))
    script = [{"toolCalls": [{"tool": "lookup", "args": {}}]}, {"reply": "done"}]
    kube.agent("payer", {"provider": "scripted", "script": script}, ["lookup"])
    kube.http_tool("lookup", toolbox.url_for("lookup"))
    kube.allow_all()
    cluster_policies([{"tools": ["*"], "action": "Allow"}])
    kube.run("blind", "payer")
    code = kube.start_runner("blind").wait(120)
    assert code == contract.ExitCode.FAILED_PERMANENT, kube.explain()
    assert toolbox.executions == []
    [denied] = [d for d in kube.decisions("blind") if d["outcome"] == "denied"]
    assert denied["reason"] == "GovernanceError"
    assert "namespace's labels" in denied["message"]


def test_a_namespace_runs_budget_holds_runs_of_every_agent_queued(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    cluster_policies: Callable[..., str],
) -> None:
    """namespaceBudgets.runsPerHour counts the Runs of all the namespace's Agents; the runners
    get the namespace's labels from the operator (without them this ClusterPolicy, which
    selects by a namespace label, would deny their model calls)."""
    reply = {"provider": "scripted", "script": [{"reply": "hi"}]}
    kube.agent("alpha", reply, [])
    kube.agent("beta", reply, [])
    kube.allow_all()
    guard = cluster_policies([], namespaceBudgets={"runsPerHour": 2})
    broken = cluster_policies(
        [{"name": "bad", "tools": ["no-such-tool"], "when": "args.amount >", "action": "Deny"}]
    )
    operator = testing.start_operator(
        control_plane,
        kube.namespace,
        BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]',
        BOSUN_LEASE_DURATION_SECONDS="6",
    )

    def explain() -> str:
        return control_plane.explain_namespace(kube.namespace)

    try:

        def status(name: str) -> dict[str, Any] | None:
            found = kube.custom.get_cluster_custom_object(
                constants.GROUP, constants.VERSION, "clusterpolicies", name
            )
            return (
                (found.get("status") or {})
                if (found.get("status") or {}).get("conditions")
                else None
            )

        ready = testing.until(lambda: status(guard), 60, what="readiness", explain=explain)
        assert [(c["type"], c["status"]) for c in ready["conditions"]] == [("Ready", "True")]
        assert ready["ruleCount"] == 0
        invalid = testing.until(lambda: status(broken), 60, what="readiness", explain=explain)
        [condition] = invalid["conditions"]
        assert (condition["status"], condition["reason"]) == ("False", "InvalidCEL"), condition
        assert condition["message"].startswith("bad: when does not compile")
        kube.submit_run("a1", "alpha", "go")
        kube.submit_run("b1", "beta", "go")
        for name in ("a1", "b1"):
            assert kube.until_finished(name)["phase"] == "Succeeded", kube.status(name)
        kube.submit_run("a2", "alpha", "go")
        kube.submit_run("b2", "beta", "go")
        for name in ("a2", "b2"):
            held = testing.until(
                lambda n=name: (
                    (c := kube.condition(n, "Queued"))  # type: ignore[misc]
                    and c["reason"] == "BudgetExceeded"
                    and c
                ),
                60,
                what=f"{name} to be held by the namespace's runsPerHour",
                explain=explain,
            )
            assert held["message"].startswith(
                f"ClusterPolicy {guard} allows 2 Runs in namespace {kube.namespace} per hour"
            ), held
            assert not kube.status(name).get("attempts")
        kube.custom.patch_cluster_custom_object(
            constants.GROUP,
            constants.VERSION,
            "clusterpolicies",
            guard,
            {"spec": {"namespaceBudgets": {"runsPerHour": 4}}},
        )
        for name in ("a2", "b2"):
            assert kube.until_finished(name)["phase"] == "Succeeded", kube.status(name)
    finally:
        operator.stop()
