"""Runs on the shipped runner image (``make images``), not on this checkout.

The node emulator runs the Job's container inside the image's root filesystem, as its user, with a
read-only root: a governed Run pausing for approval and finishing proves the image has what the
runner needs; an image whose entrypoint is gone fails every attempt, so these tests do look at the
image.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from bosun.dev import imagebuild, imagestore, testing
from bosun.dev.servers import tools
from bosun.runner import approvals, kubeapi

from . import harness

pytestmark = pytest.mark.cluster

ENTRYPOINT_MODULE = "opt/bosun/lib/python3.11/site-packages/bosun/runner/__main__.py"


def _runner(images: list[imagebuild.Built]) -> imagebuild.Built:
    return next(b for b in images if b.name == "bosun-runner")


def _operator(cp: testing.ControlPlaneHandle, namespace: str, image: str) -> Any:
    # No command: the image's own entrypoint runs, as in production.
    return testing.start_operator(cp, namespace, BOSUN_RUNNER_IMAGE=image, BOSUN_RUNNER_COMMAND="")


def _launches(cp: testing.ControlPlaneHandle, namespace: str) -> list[dict[str, Any]]:
    """What the node emulator started from an image in ``namespace`` (its launch files)."""
    assert cp.pods_folder is not None
    found = sorted(cp.pods_folder.glob(f"{namespace}_*/runner.launch.json"))
    return [json.loads(path.read_text()) for path in found]


def test_a_governed_run_pauses_for_approval_and_succeeds_in_the_shipped_runner_image(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    servers: Callable[[Any], Any],
    shipped_images: list[imagebuild.Built],
) -> None:
    runner = _runner(shipped_images)
    toolbox = servers(tools.ToolServer({"refund": lambda a: {"refunded": a["amount"]}}))
    script = [{"toolCalls": [{"tool": "refund", "args": {"amount": 500}}]}, {"reply": "refunded"}]
    kube.agent("clerk", {"provider": "scripted", "script": script}, ["refund"])
    kube.http_tool("refund", toolbox.url_for("refund"))
    kube.policy("ask", [{"name": "ask", "tools": ["refund"], "action": "RequireApproval"}])
    kube.submit_run("pay", "clerk", "refund 500")
    operator = _operator(control_plane, kube.namespace, runner.reference)
    try:
        waiting = testing.until(
            lambda: (s := kube.status("pay")).get("phase") == "AwaitingApproval" and s,
            120,
            what="Run pay to wait for approval",
            explain=lambda: control_plane.explain_namespace(kube.namespace),
        )
        assert toolbox.executions == []
        pending = waiting["pendingApprovals"][0]
        admin = kubeapi.Cluster(kube.namespace, control_plane.rest())
        approvals.create_approval(admin, "pay", pending["callHash"][:12], "Approved")
        status = kube.until_finished("pay")
    finally:
        operator.stop()
    assert status["phase"] == "Succeeded", status
    assert toolbox.executions == [("refund", {"amount": 500})]
    launches = _launches(control_plane, kube.namespace)
    assert launches, "no runner container was started from an image"
    for launch in launches:
        assert launch["rootfs"] == str(runner.image.rootfs)
        assert launch["argv"] == ["python", "-m", "bosun.runner"]
        assert launch["uid"] == 65532 and launch["read_only_root"] is True


def test_a_runner_image_without_its_entrypoint_fails_the_run(
    control_plane: testing.ControlPlaneHandle,
    kube: harness.Harness,
    shipped_images: list[imagebuild.Built],
) -> None:
    store = imagestore.Store.default()
    broken_ref = f"localhost/broken-{kube.namespace[-6:]}/bosun-runner:0.1.0"

    def remove_entrypoint(rootfs: pathlib.Path) -> None:
        module = rootfs / ENTRYPOINT_MODULE
        module.unlink()
        for compiled in module.parent.glob("__pycache__/__main__.*"):
            compiled.unlink()

    broken = store.derive(_runner(shipped_images).image, broken_ref, remove_entrypoint)
    kube.agent("clerk", {"provider": "scripted", "script": [{"reply": "done"}]}, [])
    kube.create(
        {
            "kind": "Run",
            "metadata": {"name": "doomed"},
            "spec": {"agentRef": {"name": "clerk"}, "input": "hi", "retry": {"maxAttempts": 1}},
        }
    )
    operator = _operator(control_plane, kube.namespace, broken_ref)
    try:
        status = testing.until(
            lambda: (s := kube.status("doomed")).get("phase") in ("Failed", "DeadLettered") and s,
            120,
            what="Run doomed to fail",
            explain=lambda: control_plane.explain_namespace(kube.namespace),
        )
    finally:
        operator.stop()
        store.remove(broken_ref)
        store.prune(grace_seconds=0)
    assert status["phase"] in ("Failed", "DeadLettered"), status
    assert control_plane.pods_folder is not None
    logs = "".join(
        path.read_text()
        for path in control_plane.pods_folder.glob(f"{kube.namespace}_*/runner.log")
    )
    assert "No module named bosun.runner.__main__" in logs, logs[-2000:]
    assert not broken.folder.exists()
