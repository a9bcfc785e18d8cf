"""Worker pools: throughput, claim latency, API writes and density, next to Job mode.

    .venv/bin/python bench/pool_bench.py [--runs N] [--density N] [--wait S]

Throughput and writes: the real runner image as 2 pool workers (``operator_bench``'s ``pool``
runner: scripted model, one governed HTTP tool call), a saturating batch. Claim latency:
Runs submitted at 10/s, from the Run seen admitted (the offer) to its Lease seen claimed.
Density: ``--density`` Runs at once, each waiting ``--wait`` seconds on a slow OpenAI-compatible
model endpoint, in 2 workers: the workers' peak RSS (every process of the pool's pods), and
the Lease writes per second the API server counted while the Runs waited (claims, releases
and the workers' renewals). Prints figures; asserts nothing. ``report.py`` runs the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import statistics
import sys
import threading
import time
from typing import Any

import _common
import operator_bench

from bosun import constants
from bosun.dev import testing
from bosun.dev.servers import models


def _worker_pids() -> list[int]:
    """Every process of a pool worker (``python -m bosun.runner pool``), in any container."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bosun.runner" in argv and b"pool" in argv:
            pids.append(int(entry.name))
    return pids


def worker_rss_mib() -> float:
    return sum(_common.rss_kib(pid) for pid in _worker_pids()) / 1024


@dataclasses.dataclass
class Density:
    runs: int
    wait_seconds: float
    succeeded: int
    seconds: float
    """First create to last finish."""
    peak_rss_mib: float
    rss_per_run_kib: float
    idle_rss_mib: float
    lease_writes: int
    """Every write to a Lease the API server counted (refused ones too)."""
    lease_writes_per_second: float
    renewals_per_second: float
    """Writes to the workers' own Leases (their liveness, for every Run they hold), per second:
    counted from a watch of those Leases, one change per write."""
    run_lease_writes_per_run: float
    """The rest of the Lease writes, per Run: its creation, the claim and the release, and
    claims refused to the worker that lost a race."""
    writes_per_run: float

    def summary(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


def density(cluster: _common.Cluster, runs: int, wait: float) -> Density:
    """``runs`` Runs at once in 2 workers, each waiting ``wait`` seconds on the model."""
    namespace = _common.create_namespace(cluster.rest, "bench-density")
    model = models.OpenAIServer([{"reply": "done"}])
    model.delay_seconds = wait
    model.start()
    per_worker = -(-runs // operator_bench.POOL_WORKERS)
    agent = {
        "apiVersion": constants.API_VERSION,
        "kind": "Agent",
        "metadata": {"name": operator_bench.AGENT, "namespace": namespace},
        "spec": {
            "model": {
                "provider": "openai",
                "name": "slow-model",
                "baseURL": f"{model.url}/v1",
                "timeoutSeconds": int(wait * 4),
            },
            "concurrency": {"maxConcurrentRuns": runs},
            "runner": {
                "pool": {"workers": operator_bench.POOL_WORKERS, "runsPerWorker": per_worker}
            },
        },
    }
    cluster.rest.create(agent)
    operator = testing.start_operator(
        cluster.handle,
        namespace,
        BOSUN_MAX_CONCURRENT_RUNS=str(runs),
        BOSUN_LEASE_DURATION_SECONDS="15",
        BOSUN_START_TIMEOUT_SECONDS="900",
        **operator_bench.runner_env("pool"),
    )
    try:
        _common.wait_operator_ready(operator)
        operator_bench._wait_workers(cluster.rest, namespace, operator_bench.POOL_WORKERS)
        idle = worker_rss_mib()
        peak = [idle]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                peak[0] = max(peak[0], worker_rss_mib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        objects = [
            operator_bench.run_object(namespace, f"wait-{i:05d}", "pool") for i in range(runs)
        ]
        marks = _common.Marks()
        renewals = [0]

        def renewed(kind: str, _obj: dict[str, Any], _at: float) -> None:
            if kind == "MODIFIED":
                renewals[0] += 1

        with _common.Watch(
            cluster.rest,
            "coordination.k8s.io/v1",
            "leases",
            namespace,
            renewed,
            label_selector=f"{constants.LABEL_POOL_WORKER}=true",
        ):
            before = _common.api_writes(cluster.rest)
            started = time.monotonic()
            _common.create_paced(cluster.rest, objects, marks, threads=4)
            names = [o["metadata"]["name"] for o in objects]
            deadline = time.monotonic() + wait * 3 + runs * 0.5 + 300
            phases: dict[str, str] = {}
            while time.monotonic() < deadline:
                listed = cluster.rest.list(constants.API_VERSION, "runs", namespace)
                phases = {
                    r["metadata"]["name"]: (r.get("status") or {}).get("phase", "") for r in listed
                }
                if all(phases.get(n) in operator_bench.TERMINAL for n in names):
                    break
                time.sleep(2.0)
            seconds = time.monotonic() - started
            writes = _common.api_writes(cluster.rest) - before
            worker_writes = renewals[0]
        done.set()
        sampler.join(5)
    finally:
        operator.stop()
        model.stop()
        # The workers would go on watching and renewing through the benchmarks that follow.
        cluster.rest.delete(
            "apps/v1", "deployments", namespace, f"bosun-pool-{operator_bench.AGENT}"
        )
    lease_writes = writes.get("leases", 0)
    succeeded = sum(1 for n in names if phases.get(n) == "Succeeded")
    return Density(
        runs=runs,
        wait_seconds=wait,
        succeeded=succeeded,
        seconds=seconds,
        peak_rss_mib=peak[0],
        rss_per_run_kib=(peak[0] - idle) * 1024 / runs,
        idle_rss_mib=idle,
        lease_writes=lease_writes,
        lease_writes_per_second=lease_writes / seconds,
        renewals_per_second=worker_writes / seconds,
        run_lease_writes_per_run=max(0, lease_writes - worker_writes) / runs,
        writes_per_run=sum(writes.values()) / runs,
    )


def pool_phase(
    cluster: _common.Cluster, batch: int, rate_runs: int
) -> tuple[operator_bench.LoadResult, operator_bench.LoadResult]:
    """A saturating batch (throughput, writes) and Runs at 10/s (claim latency)."""
    with operator_bench.bosun(cluster, "bench-pool", "pool", 200) as target:
        _common.log(f"pool: {rate_runs} Runs at 10/s")
        paced = operator_bench.measure_load(target, rate_runs, 10.0, "r10")
        _common.log(f"pool: saturating batch of {batch} Runs")
        saturated = operator_bench.measure_load(target, batch, None, "batch")
    pool = f"bosun-pool-{operator_bench.AGENT}"
    cluster.rest.delete("apps/v1", "deployments", "bench-pool", pool)  # no idle workers after
    return paced, saturated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="the saturating batch")
    parser.add_argument("--paced", type=int, default=150, help="Runs submitted at 10/s")
    parser.add_argument("--density", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=30.0)
    args = parser.parse_args()
    with _common.local_control_plane() as cluster:
        paced, saturated = pool_phase(cluster, args.runs, args.paced)
        print(f"# Pool at 10 Runs/s\n\n{operator_bench.markdown(paced)}\n")
        print(f"# Pool, saturating batch\n\n{operator_bench.markdown(saturated)}\n")
        if args.density:
            found = density(cluster, args.density, args.wait)
            print(f"# Density\n\n{found.summary()}")
            claims = paced.admission
            print(
                f"claim latency median {statistics.median(claims) * 1000:.0f} ms,"
                f" p99 {_common.percentile(claims, 99) * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
