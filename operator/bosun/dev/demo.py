"""``bosun demo``: what a newcomer runs first, on a bare machine.

Brings up the local control plane (building it on first use), installs the CRDs and applies the
examples. The operator and runner are not built yet, so the demo stops after showing the applied
resources and one Job run end to end through the real Job controller and the node emulator.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
from collections.abc import Callable

from bosun.dev import daemon, provision

Log = Callable[[str], None]

_HELLO_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "bosun-demo-hello", "namespace": "default"},
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 300,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "hello",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo hello from $(POD_NAME)"],
                        "env": [
                            {
                                "name": "POD_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            }
                        ],
                    }
                ],
            }
        },
    },
}


def run(folder: pathlib.Path, root: pathlib.Path, log: Log = print) -> int:
    """Run the demo; return the process exit code."""
    state = daemon.up(folder, log=log)
    kubectl = provision.ensure(["kubectl"], log=log)["kubectl"]

    def k(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [str(kubectl), f"--kubeconfig={state.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    log(k("get", "nodes", "-o", "wide"))
    crds = root / "crds"
    if any(crds.glob("*.yaml")):
        log(k("apply", "--server-side", "-f", str(crds)))
        k("wait", "--for=condition=established", "-f", str(crds))
    examples = root / "examples"
    if any(examples.glob("*.yaml")):
        log(k("apply", "--server-side", "-f", str(examples)))
        log(k("get", "bosun", "-A"))
    k("delete", "job", "bosun-demo-hello", "--ignore-not-found", "--wait=true")
    k("apply", "-f", "-", stdin=json.dumps(_HELLO_JOB))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = json.loads(k("get", "job", "bosun-demo-hello", "-o", "json"))["status"]
        if status.get("succeeded"):
            log("Job bosun-demo-hello succeeded through the Job controller and node emulator")
            log(k("get", "pods", "-l", "job-name=bosun-demo-hello", "-o", "wide"))
            log(f"Next: export KUBECONFIG={state.kubeconfig}; 'bosun dev down' stops everything.")
            return 0
        if status.get("failed"):
            log("Job bosun-demo-hello failed; see " + str(state.logs))
            return 1
        time.sleep(0.5)
    log("Job bosun-demo-hello did not finish in 120s; see " + str(state.logs))
    return 1
