"""``bosun demo``: what a newcomer runs first, on a bare machine.

Brings up the local control plane (building it on first use), builds the images (cached),
installs the Helm chart (the CRDs, and the operator Deployment on the operator image with the
chart's RBAC), applies the scripted demo agent with its Tool and Policy, runs it once to
completion through the runner image in an emulated Job pod, and prints the Run's trace.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import yaml

from bosun import kube, ops
from bosun.dev import daemon, imagebuild, provision
from bosun.runner import kubeapi, runtrace

__all__ = ["NAMESPACE", "Log", "run"]

Log = Callable[[str], None]
NAMESPACE = "default"


def _kubectl(kubectl: pathlib.Path, kubeconfig: pathlib.Path, *args: str) -> str:
    proc = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def _wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the operator was not ready within {timeout:.0f}s")


def _describe(run: dict[str, Any]) -> str:
    status = run.get("status") or {}
    attempts = status.get("attempts") or []
    usage = status.get("usage") or {}
    text = f"phase={status.get('phase') or 'New'}"
    if attempts:
        text += f" attempt={attempts[-1]['number']}"
    if usage:
        text += f" tokens={usage.get('totalTokens', 0)} denied={usage.get('deniedCalls', 0)}"
    return text


def run(folder: pathlib.Path, root: pathlib.Path, log: Log = print) -> int:
    """Run the demo; return the process exit code."""
    started = time.monotonic()
    state = daemon.up(folder, log=log)
    kubectl = provision.ensure(["kubectl"], log=log)["kubectl"]
    log(_kubectl(kubectl, state.kubeconfig, "get", "nodes"))
    rest = kube.connect(state.kubeconfig)
    # The operator and the Run's runner run from the shipped images, built here on first use.
    for image in imagebuild.ensure():
        kind = "Runner" if image.name == "bosun-runner" else "Operator"
        log(f"{kind} image {image.reference} ({image.image.size_bytes / 1e6:.0f} MB)")
    health = daemon.start_operator(folder, state, root / "helm" / "bosun", NAMESPACE, log=log)
    _wait_ready(health)
    log("The operator is ready")
    demo = root / "examples" / "demo"
    manifests = sorted(demo.glob("*.yaml"))
    if not manifests:
        raise RuntimeError(f"no demo manifests in {demo}; run the demo from the repository root")
    run_manifest: dict[str, Any] | None = None
    for path in manifests:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(d.get("kind") == "Run" for d in docs):
            run_manifest = next(d for d in docs if d.get("kind") == "Run")
            continue
        log(_kubectl(kubectl, state.kubeconfig, "apply", "-n", NAMESPACE, "-f", str(path)).strip())
    if run_manifest is None:
        raise RuntimeError(f"no Run among the demo manifests in {demo}")
    spec = run_manifest["spec"]
    name = f"{run_manifest['metadata']['name']}-{uuid.uuid4().hex[:5]}"
    ops.create_run(rest, NAMESPACE, spec["agentRef"]["name"], spec["input"], name=name)
    log(f"Created Run {name}: {spec['input']}")
    final: dict[str, Any] = {}
    for final in ops.follow(rest, NAMESPACE, name, timeout=300):
        log(f"  {name}: {_describe(final)}")
    status = final.get("status") or {}
    log("")
    log(f"Output: {status.get('output', '')}")
    log("")
    log(f"$ bosun trace {name}")

    cluster = kubeapi.Cluster(NAMESPACE, rest)
    log(runtrace.render(runtrace.records(cluster, name), name))
    log("")
    operator = daemon.operator_info(folder.resolve()) or {}
    bosun = "bosun" if shutil.which("bosun") else str(pathlib.Path(sys.executable).parent / "bosun")
    log(f"Demo finished in {time.monotonic() - started:.0f}s.")
    log(
        f"Operator metrics: {operator.get('metrics', '?')}/metrics (bosun_* series),"
        f" health {operator.get('health', '?')}/healthz;"
        f" log {state.folder / 'pods'}/{daemon.OPERATOR_NAMESPACE}_*/operator.log"
    )
    log("Try:")
    log(f"  export KUBECONFIG={state.kubeconfig}")
    log(f"  kubectl get bosun -n {NAMESPACE}")
    log(f"  {bosun} run demo -n {NAMESPACE} --input 'Hello' --wait")
    log(f"  {bosun} trace -n {NAMESPACE} <run>")
    log(f"  {bosun} dev status   # the control plane, the operator and where its metrics are")
    log(f"  {bosun} dev down     # stops the control plane and the operator")
    return 0 if status.get("phase") == "Succeeded" else 1
