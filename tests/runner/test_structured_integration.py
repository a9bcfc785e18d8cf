"""Structured outputs on the real control plane: the real operator runs the real runner, whose
Agent has an ``outputSchema``. Problems go back to the model and a corrected answer is stored
as JSON; answers that never validate fail the Run once, cleanly, with reason OutputInvalid;
and the API server keeps ``outputSchema`` as written (the CRD preserves its fields)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bosun.dev import testing

from . import harness

pytestmark = pytest.mark.cluster

SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "bug"]}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
}


def _finished(control_plane: testing.ControlPlaneHandle, kube: harness.Harness, run: str) -> Any:
    return testing.until(
        lambda: (
            (s := kube.status(run)).get("phase") in ("Succeeded", "Failed", "DeadLettered") and s
        ),
        120,
        what=f"Run {run} to finish",
        explain=lambda: control_plane.explain_namespace(kube.namespace),
    )


def test_answers_are_checked_returned_and_failed_cleanly(
    control_plane: testing.ControlPlaneHandle, kube: harness.Harness
) -> None:
    corrected = [
        {"reply": "It is a billing problem."},
        {"reply": '```json\n{"category": "billing", "urgent": true}\n```'},
    ]
    kube.agent("triage", {"provider": "scripted", "script": corrected}, [], outputSchema=SCHEMA)
    never = [{"reply": "billing"}, {"reply": '{"category": "sales", "urgent": true}'}]
    kube.agent(
        "stubborn", {"provider": "scripted", "script": never}, [],
        outputSchema=SCHEMA, limits={"maxOutputRetries": 1},
    )  # fmt: skip
    kube.allow_all()
    stored = kube.rest.get("bosun.dev/v1alpha1", "agents", kube.namespace, "triage")
    assert stored is not None and stored["spec"]["outputSchema"] == SCHEMA
    for run, agent in (("good", "triage"), ("bad", "stubborn")):
        kube.create(
            {
                "kind": "Run",
                "metadata": {"name": run},
                "spec": {"agentRef": {"name": agent}, "input": "My card was charged twice."},
            }
        )
    operator = testing.start_operator(
        control_plane, kube.namespace, BOSUN_RUNNER_COMMAND='["python", "-m", "bosun.runner"]'
    )
    try:
        good = _finished(control_plane, kube, "good")
        bad = _finished(control_plane, kube, "bad")
    finally:
        operator.stop()

    assert good["phase"] == "Succeeded", good
    assert json.loads(good["output"]) == {"category": "billing", "urgent": True}
    kinds = [r["type"] for r in kube.journal("good")]
    assert kinds.count("outputRejected") == 1 and kinds[-1] == "runFinished"

    assert bad["phase"] == "Failed", bad
    assert len(bad["attempts"]) == 1  # a permanent failure: not retried
    assert bad["attempts"][0]["reason"] == "OutputInvalid"
    rejected = [r for r in kube.journal("bad") if r["type"] == "outputRejected"]
    assert len(rejected) == 1 and "not JSON" in rejected[0]["problems"]
