"""The Argo CD health scripts on objects as the real operator leaves them.

An operator (with the stand-in runner) works a namespace of the local control plane; each
object is then read back and judged by its Kind's script, so the scripts are held to the status
the operator actually writes, not only to hand-written samples.
"""

from __future__ import annotations

import json
from typing import Any

import argocd_lua
import pytest

from bosun import constants, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster

API = constants.API_VERSION
PLURALS = {"Agent": "agents", "Tool": "tools", "Policy": "policies", "Run": "runs"}


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _run(name: str, standin: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = {"agentRef": {"name": "scripted"}, "input": json.dumps({"standin": standin}), **spec}
    return _obj("Run", name, body)


def _health(rest: kube.Rest, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj = rest.get(API, PLURALS[kind], namespace, name)
    assert obj is not None, f"{kind} {name} is gone"
    return argocd_lua.health(argocd_lua.script_path(kind).read_text(), obj)


def _settles(rest: kube.Rest, namespace: str, kind: str, name: str, status: str) -> dict[str, Any]:
    return testing.until(
        lambda: (h := _health(rest, namespace, kind, name))["status"] == status and h,
        timeout=90,
        interval=0.3,
        what=f"{kind} {name} to be {status} in Argo CD's eyes",
        explain=lambda: f"last health: {_health(rest, namespace, kind, name)}",
    )


def test_health_of_objects_the_operator_reconciled(
    operator: testing.OperatorProcess,
    namespace: str,
    control_plane: testing.ControlPlaneHandle,
) -> None:
    rest = control_plane.rest()
    http = {"url": "http://orders.invalid/lookup", "method": "GET"}
    header = {
        "name": "Authorization",
        "valueFrom": {"secretKeyRef": {"name": "absent", "key": "t"}},
    }
    objects = [
        _obj("Tool", "lookup", {"description": "Look an order up.", "http": http}),
        _obj(
            "Tool",
            "locked",
            {"description": "Needs a Secret.", "http": {**http, "headers": [header]}},
        ),
        _obj("Policy", "fine", {"rules": [{"tools": ["lookup"], "action": "Allow"}]}),
        _obj(
            "Policy",
            "broken-cel",
            {"rules": [{"tools": ["lookup"], "when": "args.amount >", "action": "Allow"}]},
        ),
        _obj(
            "Agent",
            "scripted",
            {
                "model": {"provider": "scripted", "script": [{"reply": "done"}]},
                "tools": ["lookup"],
                "retry": {"maxAttempts": 1, "initialBackoffSeconds": 1},
            },
        ),
        _obj(
            "Agent",
            "missing-tool",
            {"model": {"provider": "scripted", "script": [{"reply": "done"}]}, "tools": ["nope"]},
        ),
        _run("ok", {"sleepSeconds": 0.2}),
        _run("refused", {"exitCode": 10}),
        _run("doomed", {"exitCode": 11}),
        _run("paused", {"sleepSeconds": 0.2}, suspend=True),
    ]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
        assert rest.create(obj) is not None

    expected = [
        ("Tool", "lookup", "Healthy"),
        # The operator reads no Secrets (#13): a missing header Secret shows on the Runs of the
        # Tool's Agents (RunnerNotStarting), not on the Tool.
        ("Tool", "locked", "Healthy"),
        ("Policy", "fine", "Healthy"),
        ("Policy", "broken-cel", "Degraded"),
        ("Agent", "scripted", "Healthy"),
        ("Agent", "missing-tool", "Degraded"),
        ("Run", "ok", "Healthy"),
        ("Run", "refused", "Degraded"),
        ("Run", "doomed", "Degraded"),
        ("Run", "paused", "Suspended"),
    ]
    for kind, name, status in expected:
        health = _settles(rest, namespace, kind, name, status)
        assert health["message"], (kind, name, health)

    assert "ToolNotFound" in _health(rest, namespace, "Agent", "missing-tool")["message"]
    assert "InvalidCEL" in _health(rest, namespace, "Policy", "broken-cel")["message"]
    phases = {
        name: (rest.get(API, "runs", namespace, name) or {}).get("status", {}).get("phase")
        for name in ("ok", "refused", "doomed", "paused")
    }
    assert phases == {
        "ok": "Succeeded",
        "refused": "Failed",
        "doomed": "DeadLettered",
        "paused": "Suspended",
    }
    # The one metadata write of the operator, which argocd/README.md says needs no ignoring.
    doomed = rest.get(API, "runs", namespace, "doomed") or {}
    assert doomed["metadata"]["labels"] == {constants.LABEL_DEAD_LETTER: "true"}
