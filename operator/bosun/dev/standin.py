"""A stand-in runner for testing the operator's Run lifecycle on its own (test tooling).

Runs in a Job pod exactly where the real runner would, with the same contract: it reads its Run,
acquires the Run's Lease (only if free or expired, bumping ``leaseTransitions``), renews it in the
background, and then behaves as the Run's ``spec.input`` asks, given as JSON::

    {"standin": {"sleepSeconds": 0.2, "failUntilAttempt": 3, "exitCode": 11,
                 "hang": false, "stopRenewing": false, "appendTo": "/tmp/file"}}

``failUntilAttempt`` fails with ``FAILED_RETRYABLE`` on earlier attempts; ``exitCode`` always
exits with that code; ``hang`` sleeps forever (renewing unless ``stopRenewing``); ``appendTo``
appends one JSON line per lease acquisition and release to a file (pods here share one disk).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
import time
from typing import Any

from kubernetes.client import exceptions

from bosun import constants, contract, kube


def _micro(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


class Lease:
    def __init__(self, rest: kube.Rest, namespace: str, name: str, holder: str, duration: int):
        self.rest = rest
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.duration = duration
        self.epoch = 0
        self.lost = threading.Event()
        self.stop_renewing = threading.Event()

    def _path(self) -> str:
        return kube.object_path("coordination.k8s.io/v1", "leases", self.namespace, self.name)

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lease = self.rest.get("coordination.k8s.io/v1", "leases", self.namespace, self.name)
            if lease is None:
                time.sleep(0.2)
                continue
            spec: dict[str, Any] = lease.setdefault("spec", {})
            now = datetime.datetime.now(datetime.UTC)
            renewed = _parse(spec.get("renewTime"))
            held = spec.get("holderIdentity") and renewed is not None
            if held and renewed is not None:
                expiry = renewed + datetime.timedelta(seconds=int(spec["leaseDurationSeconds"]))
                if expiry > now:
                    time.sleep(0.2)
                    continue
            spec["holderIdentity"] = self.holder
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = spec["renewTime"] = _micro(now)
            spec["leaseDurationSeconds"] = self.duration
            try:
                self.rest.request("PUT", self._path(), lease)
            except exceptions.ApiException as err:
                if err.status == 409:
                    continue
                raise
            self.epoch = int(spec["leaseTransitions"])
            return True
        return False

    def renew_forever(self) -> None:
        while not self.stop_renewing.wait(contract.LEASE_RENEW_SECONDS * self.duration / 15):
            try:
                lease = self.rest.get("coordination.k8s.io/v1", "leases", self.namespace, self.name)
                spec = (lease or {}).get("spec") or {}
                if lease is None or spec.get("holderIdentity") != self.holder:
                    self.lost.set()
                    return
                spec["renewTime"] = _micro(datetime.datetime.now(datetime.UTC))
                self.rest.request("PUT", self._path(), lease)
            except exceptions.ApiException:
                self.lost.set()
                return


def _append(path: str | None, record: dict[str, Any]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main() -> int:
    namespace = os.environ[contract.ENV_RUN_NAMESPACE]
    run_name = os.environ[contract.ENV_RUN_NAME]
    attempt = int(os.environ[contract.ENV_ATTEMPT])
    pod = os.environ[contract.ENV_POD_NAME]
    rest = kube.Rest(kube.api_client())
    run = rest.get(constants.API_VERSION, "runs", namespace, run_name)
    if run is None:
        print(f"Run {namespace}/{run_name} not found", flush=True)
        return int(contract.ExitCode.FAILED_PERMANENT)
    try:
        behaviour = json.loads(run["spec"]["input"]).get("standin", {})
    except (ValueError, AttributeError):
        behaviour = {}
    lease = Lease(
        rest,
        namespace,
        os.environ[contract.ENV_LEASE_NAME],
        pod,
        int(os.environ.get(contract.ENV_LEASE_DURATION, contract.LEASE_DURATION_SECONDS)),
    )
    if not lease.acquire(timeout=120):
        print("Could not acquire the lease", flush=True)
        return int(contract.ExitCode.LEASE_LOST)
    log_path = behaviour.get("appendTo")
    _append(
        log_path,
        {
            "event": "acquired",
            "pod": pod,
            "attempt": attempt,
            "epoch": lease.epoch,
            "at": time.time(),
        },
    )
    print(f"Acquired lease epoch={lease.epoch} attempt={attempt}", flush=True)
    if behaviour.get("stopRenewing"):
        lease.stop_renewing.set()
    else:
        threading.Thread(target=lease.renew_forever, daemon=True).start()
    if behaviour.get("hang"):
        while not lease.lost.is_set():
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
    lease.stop_renewing.set()
    _append(
        log_path,
        {"event": "released", "pod": pod, "attempt": attempt, "code": code, "at": time.time()},
    )
    print(f"Exiting code={code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
