"""One tenant flooding the queue does not starve another: the real operator over two namespaces."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import constants, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION


def _agent(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Agent",
        "metadata": {"name": "worker", "namespace": namespace},
        "spec": {"model": {"provider": "scripted", "script": [{"reply": "done"}]}},
    }


def _run(namespace: str, name: str, standin: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = {"agentRef": {"name": "worker"}, "input": json.dumps({"standin": standin}), **spec}
    return {
        "apiVersion": API,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


@pytest.fixture
def other_namespace(control_plane: testing.ControlPlaneHandle) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _phase(rest: kube.Rest, namespace: str, name: str) -> str | None:
    run = rest.get(API, "runs", namespace, name) or {}
    phase: str | None = (run.get("status") or {}).get("phase")
    return phase


def _running(rest: kube.Rest, namespace: str, names: list[str]) -> list[str]:
    return [n for n in names if _phase(rest, namespace, n) == "Running"]


def test_a_flooded_queue_still_starts_another_namespaces_run_next(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    other_namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    rest = control_plane.rest()
    flood = [f"flood-{i}" for i in range(5)]
    for obj in (_agent(namespace), _agent(other_namespace)):
        rest.create(obj)
    operator = testing.start_operator(
        control_plane,
        f"{namespace},{other_namespace}",
        BOSUN_LEADER_NAMESPACE=namespace,
        BOSUN_MAX_CONCURRENT_RUNS="2",
    )

    def explain() -> str:
        parts = [control_plane.explain_namespace(ns) for ns in (namespace, other_namespace)]
        return "\n".join([*parts, operator.log_path.read_text(errors="replace")[-4000:]])

    try:
        for name in flood:
            rest.create(_run(namespace, name, {"hang": True}))
        busy = testing.until(
            lambda: len(r := _running(rest, namespace, flood)) == 2 and r,
            90,
            what="two of the flood's Runs to take both slots",
            explain=explain,
        )
        # The other team's Run arrives last, behind three queued Runs of the flood.
        rest.create(_run(other_namespace, "urgent", {"sleepSeconds": 0.2}))
        testing.until(
            lambda: _phase(rest, other_namespace, "urgent") == "Queued",
            60,
            what="the other namespace's Run to queue",
            explain=explain,
        )
        # One slot frees: it goes to the namespace with no active Run, not to the flood.
        rest.merge_patch(API, "runs", namespace, busy[0], {"spec": {"cancel": True}})
        testing.until(
            lambda: _phase(rest, other_namespace, "urgent") == "Succeeded",
            90,
            what="the other namespace's Run to run next and succeed",
            explain=explain,
        )
        waiting = [n for n in flood if _phase(rest, namespace, n) == "Queued"]
        assert len(waiting) >= 2, explain()
    finally:
        for name in flood:
            rest.merge_patch(API, "runs", namespace, name, {"spec": {"cancel": True}})
        operator.stop()
