"""The ceiling: how fast a plain client gets Jobs created, and run, on the same API server.

Two figures bound what any operator could do on this control plane. The create rate: a
plain client (Bosun's own REST layer, no operator) creates suspended Jobs, which start no
pod, so only the API server and etcd work. The completion rate: the same client creates
Jobs whose pod is a no-op container (``busybox``, ``sh -c 'exit 0'``) and a watch sees
each Job Complete, through the real Job controller and the node emulator, exactly the path a
Bosun attempt takes without the operator and the runner.

    .venv/bin/python bench/ceiling.py --jobs 300
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from typing import Any

import _common

from bosun import kube


def busybox_job(namespace: str, name: str, *, suspend: bool) -> kube.Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "ceiling"}},
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"bench": "ceiling"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "noop", "image": "busybox", "command": ["sh", "-c", "exit 0"]}
                    ],
                },
            },
        },
    }


def create_rate(cluster: _common.Cluster, count: int, threads: int) -> float:
    """Jobs per second a plain client with ``threads`` connections creates (suspended Jobs)."""
    namespace = _common.create_namespace(cluster.rest, f"ceiling-create-{threads}")
    objects = [busybox_job(namespace, f"job-{i:05d}", suspend=True) for i in range(count)]
    seconds = _common.create_paced(cluster.rest, objects, _common.Marks(), threads=threads)
    return count / seconds


@dataclasses.dataclass
class Completions:
    """Plain Jobs run to completion through the Job controller and the node emulator."""

    jobs: int
    threads: int
    submit_seconds: float
    elapsed_seconds: float
    end_to_end: list[float]
    steady_rate: float
    writes: int
    cpu: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "threads": self.threads,
            "createRate": round(self.jobs / self.submit_seconds, 2),
            "completionRate": round(self.jobs / self.elapsed_seconds, 3),
            "steadyCompletionRate": round(self.steady_rate, 3),
            "endToEndMedian": statistics.median(self.end_to_end),
            "endToEndP99": _common.percentile(self.end_to_end, 99),
            "writesPerJob": round(self.writes / self.jobs, 2),
            "cpuSecondsPerJob": {
                k: round(v / self.jobs, 4) for k, v in self.cpu.items() if k != "wall"
            },
            "cpuShares": _common.cpu_shares(self.cpu),
        }


def completions(cluster: _common.Cluster, count: int, threads: int) -> Completions:
    """Create ``count`` no-op Jobs as fast as ``threads`` can and follow them to Complete."""
    rest = cluster.rest
    namespace = _common.create_namespace(rest, "ceiling-run")
    marks = _common.Marks()

    def on_job(_kind: str, job: kube.Obj, at: float) -> None:
        outcome = _common.job_finished(job)
        if outcome:
            marks.mark("done", job["metadata"]["name"], at, outcome)

    objects = [busybox_job(namespace, f"job-{i:05d}", suspend=False) for i in range(count)]
    names = [obj["metadata"]["name"] for obj in objects]
    meter = _common.CpuMeter(cluster.state.components)
    with _common.Watch(rest, "batch/v1", "jobs", namespace, on_job):
        writes_before = _common.api_writes(rest)
        cpu_before = meter.sample()
        started = time.monotonic()
        submit = _common.create_paced(rest, objects, marks, threads=threads)
        if not marks.wait_for("done", names, timeout=max(600.0, count * 2.0)):
            raise RuntimeError(f"only {marks.count('done')} of {count} plain Jobs finished")
        elapsed = max(marks.times["done"].values()) - started
        time.sleep(2.0)
        cpu = meter.delta(cpu_before, meter.sample())
        writes = sum((_common.api_writes(rest) - writes_before).values())
    failed = [n for n in names if marks.outcomes[n] != "Complete"]
    if failed:
        raise RuntimeError(f"{len(failed)} plain Jobs failed, e.g. {failed[0]}")
    return Completions(
        jobs=count,
        threads=threads,
        submit_seconds=submit,
        elapsed_seconds=elapsed,
        end_to_end=marks.between("created", "done", names),
        steady_rate=_common.steady_rate(list(marks.times["done"].values())),
        writes=writes,
        cpu=cpu,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with _common.local_control_plane() as cluster:
        rates = {n: create_rate(cluster, args.jobs, n) for n in (1, args.threads)}
        result = completions(cluster, args.jobs, args.threads).summary()
    rows = [
        (f"Jobs created per second, {n} client thread(s)", f"{r:.1f}") for n, r in rates.items()
    ]
    rows += [
        ("Jobs completed per second (middle 80%)", f"{result['steadyCompletionRate']:.2f}"),
        ("Job created → Complete seen, median", f"{result['endToEndMedian']:.2f} s"),
        ("API writes per Job (all clients)", f"{result['writesPerJob']:.1f}"),
    ]
    print(_common.table(("ceiling", "value"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
