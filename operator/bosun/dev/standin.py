"""A stand-in runner for testing the operator's Run lifecycle on its own (test tooling).

Runs in a Job pod exactly where the real runner would, with the same contract: it reads its Run,
acquires the Run's Lease with the runner's own ``LeaseKeeper`` (only if free or expired, bumping
``leaseTransitions``), renews it in the background, and then behaves as the Run's
``spec.input`` asks, given as JSON::

    {"standin": {"sleepSeconds": 0.2, "failUntilAttempt": 3, "exitCode": 11,
                 "hang": false, "stopRenewing": false, "appendTo": "/tmp/file"}}

``failUntilAttempt`` fails with ``FAILED_RETRYABLE`` on earlier attempts; ``exitCode`` always
exits with that code; ``hang`` sleeps forever (renewing unless ``stopRenewing``); ``appendTo``
appends one JSON line per lease acquisition and release to a file (pods here share one disk).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bosun import constants, contract, kube
from bosun.runner import errors, kubeapi
from bosun.runner import lease as lease_mod

__all__ = ["main"]


def _append(path: str | None, record: dict[str, Any]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main() -> int:
    namespace = os.environ[contract.ENV_RUN_NAMESPACE]
    run_name = os.environ[contract.ENV_RUN_NAME]
    attempt = int(os.environ[contract.ENV_ATTEMPT])
    pod = os.environ[contract.ENV_POD_NAME]
    rest = kube.connect()
    run = rest.get(constants.API_VERSION, "runs", namespace, run_name)
    if run is None:
        print(f"Run {namespace}/{run_name} not found", flush=True)
        return int(contract.ExitCode.FAILED_PERMANENT)
    try:
        behaviour = json.loads(run["spec"]["input"]).get("standin", {})
    except (ValueError, AttributeError):
        behaviour = {}
    duration = float(os.environ.get(contract.ENV_LEASE_DURATION, contract.LEASE_DURATION_SECONDS))
    lease = lease_mod.LeaseKeeper(
        lambda: kubeapi.Cluster(namespace),
        os.environ[contract.ENV_LEASE_NAME],
        pod,
        duration_seconds=duration,
        renew_seconds=duration / 5,
    )
    try:
        epoch = lease.acquire(wait_seconds=120)
    except errors.LeaseLost:
        print("Could not acquire the lease", flush=True)
        return int(contract.ExitCode.LEASE_LOST)
    log_path = behaviour.get("appendTo")
    record = {"event": "acquired", "pod": pod, "attempt": attempt, "epoch": epoch}
    _append(log_path, {**record, "at": time.time()})
    print(f"Acquired lease epoch={epoch} attempt={attempt}", flush=True)
    if not behaviour.get("stopRenewing"):
        lease.start()
    if behaviour.get("hang"):
        while lease.lost_reason is None:
            time.sleep(0.5)
        return int(contract.ExitCode.LEASE_LOST)
    time.sleep(float(behaviour.get("sleepSeconds", 0.2)))
    code = int(contract.ExitCode.SUCCEEDED)
    if "exitCode" in behaviour:
        code = int(behaviour["exitCode"])
    elif attempt < int(behaviour.get("failUntilAttempt", 0)):
        code = int(contract.ExitCode.FAILED_RETRYABLE)
    if code == contract.ExitCode.SUCCEEDED:
        rest.apply(
            {
                "apiVersion": constants.API_VERSION,
                "kind": "Run",
                "metadata": {"name": run_name, "namespace": namespace},
                "status": {"output": f"stand-in finished attempt {attempt}"},
            },
            manager=contract.FIELD_MANAGER_RUNNER,
            subresource="status",
        )
    # Keep the holder recorded (no release), so tests can read who held the Lease last.
    lease.stop(release=False)
    _append(
        log_path,
        {"event": "released", "pod": pod, "attempt": attempt, "code": code, "at": time.time()},
    )
    print(f"Exiting code={code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
