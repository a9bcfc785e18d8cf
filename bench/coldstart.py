"""The runner's cold start: from its process starting to its first request to the model.

    .venv/bin/python bench/coldstart.py [--starts 20]

Each start is a real runner process (``python -m bosun.runner``, as a runner pod's container
runs it) for a fresh Run of an Agent whose model is an OpenAI-compatible HTTP server on
loopback: Python starts, the runner imports, reads its settings, acquires its Lease, opens its
journal, reads its Run, Agent, Tools and Policies, decides the model call, and sends it. The time
between the ``Popen`` and the model server receiving the request is one sample. Runs on a
private local control plane (started here) or on the one ``report.py`` passes in. Prints the
median and p99; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import _common

from bosun import constants, contract
from bosun.dev.servers import base, models


class _Stopwatch(models.OpenAIServer):
    """An OpenAI-compatible model that notes when each request arrived (the starts run one
    after another, so the first request after a start is that runner's)."""

    def __init__(self) -> None:
        super().__init__([{"reply": "done"}])
        self.times: list[float] = []
        self.arrived = threading.Condition()

    def handle(self, request: base.Request) -> base.Reply:
        with self.arrived:
            self.times.append(time.monotonic())
            self.arrived.notify_all()
        return super().handle(request)


def _lease(name: str, namespace: str) -> dict[str, Any]:
    """The Lease the operator would have created for Run ``name``."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": contract.lease_name(name), "namespace": namespace},
        "spec": {"leaseDurationSeconds": contract.LEASE_DURATION_SECONDS, "leaseTransitions": 0},
    }


def measure(cluster: _common.Cluster, starts: int = 20) -> dict[str, float]:
    """Seconds from runner process start to its first model request: median, p99, samples."""
    rest = cluster.rest
    namespace = _common.create_namespace(rest, "bench-coldstart")
    server = _Stopwatch().start()
    try:
        agent = {
            "apiVersion": constants.API_VERSION,
            "kind": "Agent",
            "metadata": {"name": "cold", "namespace": namespace},
            "spec": {
                "model": {"provider": "openai", "name": "test-model", "baseURL": server.url},
                "instructions": "Answer.",
            },
        }
        rest.create(agent)
        samples: list[float] = []
        for index in range(starts):
            name = f"cold-{index:03d}"
            run = rest.create(
                {
                    "apiVersion": constants.API_VERSION,
                    "kind": "Run",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"agentRef": {"name": "cold"}, "input": "go"},
                }
            )
            assert run is not None
            rest.create(_lease(name, namespace))
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "KUBECONFIG": str(cluster.state.kubeconfig),
                contract.ENV_RUN_NAME: name,
                contract.ENV_RUN_NAMESPACE: namespace,
                contract.ENV_RUN_UID: run["metadata"]["uid"],
                contract.ENV_ATTEMPT: "1",
                contract.ENV_POD_NAME: f"{name}-pod",
                contract.ENV_LEASE_NAME: contract.lease_name(name),
                contract.ENV_MODEL_API_KEY: "sk-bench",
            }
            before = len(server.times)
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bosun.runner"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                with server.arrived:
                    server.arrived.wait_for(lambda b=before: len(server.times) > b, timeout=60)
            finally:
                proc.wait(timeout=60)
            if len(server.times) <= before:
                raise RuntimeError(
                    f"runner of {name} sent no model request (exit {proc.returncode})"
                )
            samples.append(server.times[before] - started)
    finally:
        server.stop()
    return {
        "median": statistics.median(samples),
        "p99": _common.percentile(samples, 99),
        "min": min(samples),
        "samples": float(len(samples)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args(argv)
    with _common.local_control_plane() as cluster:
        figures = measure(cluster, args.starts)
    print(
        f"runner cold start (process start → first model request), {int(figures['samples'])}"
        f" starts: median {figures['median'] * 1e3:.0f} ms, p99 {figures['p99'] * 1e3:.0f} ms,"
        f" min {figures['min'] * 1e3:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
