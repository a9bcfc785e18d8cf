"""The ``bosun`` command line as a user runs it: run --wait, redrive, trace, and clear errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from bosun import constants, kube
from bosun.dev import daemon, testing

pytestmark = pytest.mark.cluster


def _bosun(
    *args: str, kubeconfig: pathlib.Path | str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bosun", *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _agent(rest: kube.Rest, namespace: str) -> None:
    rest.create(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Agent",
            "metadata": {"name": "cli", "namespace": namespace},
            "spec": {
                "model": {"provider": "scripted", "script": [{"reply": "ok"}]},
                "retry": {"maxAttempts": 1},
            },
        }
    )


def test_run_wait_follows_the_run_and_prints_its_output(
    control_plane: testing.ControlPlaneHandle, namespace: str, operator: testing.OperatorProcess
) -> None:
    rest = control_plane.rest()
    _agent(rest, namespace)
    text = json.dumps({"standin": {"sleepSeconds": 0.2}})
    proc = _bosun(
        "run",
        "cli",
        "--input",
        text,
        "--name",
        "by-cli",
        "--wait",
        "-n",
        namespace,
        kubeconfig=control_plane.kubeconfig,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"run.bosun.dev/by-cli created in {namespace}" in proc.stdout
    assert "phase=Running" in proc.stdout
    assert "phase=Succeeded" in proc.stdout
    assert proc.stdout.rstrip().endswith("stand-in finished attempt 1")


def test_failed_run_exits_non_zero_and_redrive_requeues_it(
    control_plane: testing.ControlPlaneHandle, namespace: str, operator: testing.OperatorProcess
) -> None:
    rest = control_plane.rest()
    _agent(rest, namespace)
    text = json.dumps({"standin": {"exitCode": 11}})
    proc = _bosun(
        "run",
        "cli",
        "--input",
        text,
        "--name",
        "doomed",
        "--wait",
        "-n",
        namespace,
        kubeconfig=control_plane.kubeconfig,
    )
    assert proc.returncode == 1
    assert "phase=DeadLettered" in proc.stdout
    again = _bosun("redrive", "doomed", "-n", namespace, kubeconfig=control_plane.kubeconfig)
    assert again.returncode == 0, again.stderr
    assert "redrive requested" in again.stdout
    testing.until(
        lambda: (
            len(
                (
                    (rest.get(constants.API_VERSION, "runs", namespace, "doomed") or {}).get(
                        "status"
                    )
                    or {}
                ).get("attempts")
                or []
            )
            == 2
        ),
        what="the redriven Run's second attempt",
    )


def test_clear_errors_for_a_missing_run_agent_and_kubeconfig(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    cases = [
        (("trace", "ghost", "-n", namespace), f"Run ghost not found in namespace {namespace}"),
        (("redrive", "ghost", "-n", namespace), f"Run ghost not found in namespace {namespace}"),
        (("approve", "ghost", "abc", "-n", namespace), "Run ghost not found"),
        (("run", "nobody", "--input", "x", "-n", namespace), "Agent nobody not found"),
    ]
    for args, message in cases:
        proc = _bosun(*args, kubeconfig=control_plane.kubeconfig)
        assert proc.returncode == 1, (args, proc.stdout)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    missing = _bosun("trace", "x", kubeconfig="/nonexistent/kubeconfig")
    assert missing.returncode == 1
    assert "kubeconfig /nonexistent/kubeconfig does not exist" in missing.stderr


def test_clear_error_when_the_crds_are_not_installed(tmp_path: pathlib.Path) -> None:
    bare = daemon.up(tmp_path / "bare", attached=True, log=lambda _m: None)
    try:
        proc = _bosun("run", "demo", "--input", "hi", kubeconfig=bare.kubeconfig)
    finally:
        daemon.down(tmp_path / "bare", log=lambda _m: None)
    assert proc.returncode == 1
    assert "the Bosun CRDs (bosun.dev/v1alpha1) are not installed" in proc.stderr
    assert "bosun crds | kubectl apply" in proc.stderr
