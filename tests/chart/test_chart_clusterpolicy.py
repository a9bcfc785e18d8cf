"""The chart's RBAC around ClusterPolicies: runners read them, the operator reads them and
Namespaces and writes their status, and no role for people writes them."""

from __future__ import annotations

import pathlib

import chartkit
import pytest

from bosun import constants, contract

NONDEFAULT = chartkit.VALUES / "nondefault.yaml"
OPERATOR_NEEDS = {
    (constants.GROUP, "clusterpolicies", verb) for verb in ("get", "list", "watch")
} | {
    (constants.GROUP, "clusterpolicies/status", "get"),
    (constants.GROUP, "clusterpolicies/status", "patch"),
    ("", "namespaces", "get"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}
WRITES = ("create", "update", "patch", "delete", "deletecollection")


def _granted(rules: list[chartkit.Obj]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for g, r, v, _ in chartkit.expand(rules)}


@pytest.mark.parametrize(
    ("values", "sets", "fullname", "groups"),
    [
        ([], [], "bosun", ["system:serviceaccounts:" + chartkit.NAMESPACE]),
        (
            [NONDEFAULT],
            [],
            "bosun-team",
            ["system:serviceaccounts:team-a", "system:serviceaccounts:team-b"],
        ),
        ([], ["operator.clusterWide=true"], "bosun", ["system:serviceaccounts"]),
    ],
    ids=["default", "watched-namespaces", "cluster-wide"],
)
def test_runners_of_the_watched_namespaces_read_cluster_policies(
    values: list[pathlib.Path], sets: list[str], fullname: str, groups: list[str]
) -> None:
    objs = chartkit.render(values, sets)
    reader = chartkit.one(objs, "ClusterRole", f"{fullname}-clusterpolicy-reader")
    assert _granted(reader["rules"]) == _granted(contract.CLUSTERPOLICY_READER_RULES)
    binding = chartkit.one(objs, "ClusterRoleBinding", f"{fullname}-clusterpolicy-reader")
    assert binding["roleRef"]["name"] == reader["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == groups
    assert {s["kind"] for s in binding["subjects"]} == {"Group"}


@pytest.mark.parametrize("sets", [[], ["operator.clusterWide=true"]], ids=["namespaced", "wide"])
def test_the_operator_reads_cluster_policies_and_namespace_labels_in_both_modes(
    sets: list[str],
) -> None:
    objs = chartkit.render(sets=sets)
    role = chartkit.one(objs, "ClusterRole", "bosun-operator-clusterpolicies")
    assert _granted(role["rules"]) == OPERATOR_NEEDS
    binding = chartkit.one(objs, "ClusterRoleBinding", "bosun-operator-clusterpolicies")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bosun", "namespace": chartkit.NAMESPACE}
    ]


@pytest.mark.parametrize("values", [[], [NONDEFAULT]], ids=["default", "nondefault"])
def test_no_chart_role_writes_cluster_policies(values: list[pathlib.Path]) -> None:
    for role in chartkit.of_kind(chartkit.render(values), "ClusterRole"):
        for verb in WRITES:
            assert not chartkit.allows(role["rules"], constants.GROUP, "clusterpolicies", verb), (
                role["metadata"]["name"],
                verb,
            )
