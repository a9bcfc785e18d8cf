"""The real operator runs the real runner in an emulated Job pod, end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bosun.dev import testing
from bosun.dev.servers import tools

from . import harness

pytestmark = pytest.mark.cluster


def test_operator_job_runs_the_runner_to_success_with_least_privilege(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    servers: Callable[[Any], Any],
) -> None:
    toolbox = servers(tools.ToolServer({"greet": lambda a: {"greeting": f"hi {a['name']}"}}))
    script = [
        {"toolCalls": [{"tool": "greet", "args": {"name": "ada"}}]},
        {"reply": "I greeted Ada."},
    ]
    kube.agent("greeter", {"provider": "scripted", "script": script}, ["greet"])
    kube.http_tool("greet", toolbox.url_for("greet"))
    kube.allow_all()
    kube.create(
        {
            "kind": "Run",
            "metadata": {"name": "hello"},
            "spec": {"agentRef": {"name": "greeter"}, "input": "greet ada"},
        }
    )

    operator = testing.start_operator(
        control_plane,
        kube.namespace,
        BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]',
        BOSUN_LEASE_DURATION_SECONDS="6",
    )
    try:
        status = testing.until(
            lambda: (
                (s := kube.status("hello")).get("phase") in ("Succeeded", "Failed", "DeadLettered")
                and s
            ),
            120,
            what="the Run to finish",
            explain=lambda: control_plane.explain_namespace(kube.namespace),
        )
    finally:
        operator.stop()

    assert status["phase"] == "Succeeded", status
    assert status["output"] == "I greeted Ada."
    assert status["usage"]["toolCalls"] == 1 and status["steps"] == 2
    assert toolbox.executions == [("greet", {"name": "ada"})]
    assert [r["type"] for r in kube.journal("hello")][-1] == "runFinished"
