"""Operator benchmark: latency, throughput and API writes of Runs through the real operator.

Starts its own local control plane and operator, creates N Runs at a given rate, and measures
from an outside observer: the time from each Run's create call returning to its first Job
appearing in a watch (admission latency), the time to a terminal phase in a watch
(end-to-end), the throughput, the API server's own count of mutating requests
(apiserver_request_total) per Run by resource, and the CPU each process spent per Run.
Prints a Markdown table; nothing here is asserted. ``report.py`` reuses these pieces.

Runners: ``real`` is the production runner image (the node emulator runs ``python -m
bosun.runner``) with a scripted model that calls one HTTP tool on a local no-op server, under
a Policy that allows it; ``pool`` is the same image and Agent with ``runner.pool`` (2 workers
claim every attempt; no pod per Run), where admission latency is admitted → claimed;
``noop`` is ``sh -c 'exit 0'``, the operator's own cost without a runner process;
``standin`` is the operator tests' Python stand-in that takes the Lease.

    .venv/bin/python bench/operator_bench.py --runs 200 --rate 20 --runner noop
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import _common

from bosun import constants, contract, kube
from bosun.dev import testing
from bosun.dev.servers import tools

RUNNERS = ("real", "pool", "noop", "standin")
POOL_WORKERS = 2
TERMINAL = ("Succeeded", "Failed", "Cancelled", "DeadLettered", "Duplicate")
# Where a Run's time goes, as an observer sees it: (from, to, what happens in between).
STAGES = (
    ("created", "queued", "operator picks the Run up (first status)"),
    ("queued", "admitted", "admission (capacity, status write)"),
    ("admitted", "job", "runner RBAC, Lease and Job created"),
    ("job", "jobDone", "the Job runs: controller, pod, runner process"),
    ("jobDone", "done", "operator sees the Job end and records the outcome"),
)
POOL_STAGES = (
    ("created", "queued", "operator picks the Run up (first status)"),
    ("queued", "admitted", "admission (capacity, status write: the offer)"),
    ("admitted", "claimed", "a worker sees the offer and claims the Run's Lease"),
    ("claimed", "released", "the worker executes the attempt and releases the Lease"),
    ("released", "done", "operator sees the outcome and records it"),
)
AGENT = "bench"
TOOL = "noop"


def runner_env(runner: str) -> dict[str, str]:
    """The operator's settings that choose what each Job's pod runs."""
    if runner in ("real", "pool"):
        return {
            "BOSUN_RUNNER_IMAGE": "ghcr.io/bosun-dev/bosun-runner:0.1.0",
            "BOSUN_RUNNER_COMMAND": "",
        }
    if runner == "noop":
        return {"BOSUN_RUNNER_IMAGE": "busybox", "BOSUN_RUNNER_COMMAND": '["sh", "-c", "exit 0"]'}
    return {}  # start_operator's default: the stand-in


def agent_objects(
    namespace: str, concurrency: int, tool_url: str, pool: dict[str, int] | None = None
) -> list[kube.Obj]:
    """The no-op Tool, a Policy allowing it, and an Agent whose scripted model calls it once
    (with ``pool``, its ``runner.pool``)."""
    script = [{"toolCalls": [{"tool": TOOL, "args": {"n": 1}}]}, {"reply": "done"}]
    meta = {"namespace": namespace}
    runner = {"runner": {"pool": pool}} if pool else {}
    return [
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Tool",
            "metadata": {"name": TOOL, **meta},
            "spec": {"description": "does nothing", "http": {"url": tool_url}},
        },
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Policy",
            "metadata": {"name": "allow-all", **meta},
            "spec": {"rules": [{"name": "everything", "tools": ["*"], "action": "Allow"}]},
        },
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Agent",
            "metadata": {"name": AGENT, **meta},
            "spec": {
                "model": {"provider": "scripted", "script": script},
                "tools": [TOOL],
                "concurrency": {"maxConcurrentRuns": concurrency},
                **runner,
            },
        },
    ]


def run_object(namespace: str, name: str, runner: str) -> kube.Obj:
    text = '{"standin": {"sleepSeconds": 0}}' if runner == "standin" else f"benchmark {name}"
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"agentRef": {"name": AGENT}, "input": text},
    }


@dataclasses.dataclass
class Bosun:
    """One namespace with its own operator, the bench Agent, its no-op Tool and Policy."""

    cluster: _common.Cluster
    namespace: str
    runner: str
    concurrency: int
    operator: testing.OperatorProcess
    toolbox: tools.ToolServer

    def cpu_meter(self) -> _common.CpuMeter:
        assert self.operator.proc is not None
        return _common.CpuMeter(
            {**self.cluster.state.components, "operator": self.operator.proc.pid}
        )


@contextlib.contextmanager
def bosun(
    cluster: _common.Cluster, namespace: str, runner: str, concurrency: int, **settings: str
) -> Iterator[Bosun]:
    """A namespace served by its own operator (stopped afterwards) and a no-op tool server.

    ``settings`` are more ``BOSUN_*`` variables for the operator (``BOSUN_WORKERS``, say)."""
    _common.create_namespace(cluster.rest, namespace)
    toolbox = tools.ToolServer({TOOL: lambda _args: {"ok": True}})
    toolbox.start()
    operator: testing.OperatorProcess | None = None
    try:
        pool = None
        if runner == "pool":
            per_worker = -(-concurrency // POOL_WORKERS)
            pool = {"workers": POOL_WORKERS, "runsPerWorker": per_worker}
        for obj in agent_objects(namespace, concurrency, toolbox.url_for(TOOL), pool):
            cluster.rest.create(obj)
        operator = testing.start_operator(
            cluster.handle,
            namespace,
            BOSUN_MAX_CONCURRENT_RUNS=str(concurrency),
            BOSUN_LEASE_DURATION_SECONDS="15",
            BOSUN_START_TIMEOUT_SECONDS="600",
            **{**runner_env(runner), **settings},
        )
        _common.wait_operator_ready(operator)
        if pool is not None:
            _wait_workers(cluster.rest, namespace, POOL_WORKERS)
        yield Bosun(cluster, namespace, runner, concurrency, operator, toolbox)
    finally:
        if operator is not None:
            operator.stop()
        toolbox.stop()


def _wait_workers(rest: kube.Rest, namespace: str, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent = rest.get(constants.API_VERSION, "agents", namespace, AGENT) or {}
        if ((agent.get("status") or {}).get("pool") or {}).get("readyWorkers") == count:
            # Each worker takes its own Lease after its pod is ready.
            leases = rest.list("coordination.k8s.io/v1", "leases", namespace)
            workers = [
                x
                for x in leases
                if (x["metadata"].get("labels") or {}).get(constants.LABEL_POOL_WORKER) == "true"
                and x["spec"].get("holderIdentity")
            ]
            if len(workers) >= count:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the pool of {AGENT} in {namespace} has not {count} ready workers")


@dataclasses.dataclass
class LoadResult:
    """What one batch of Runs measured."""

    runner: str
    runs: int
    offered_rate: float | None
    concurrency: int
    created: list[float]
    """When each Run's create call returned (monotonic seconds)."""
    finished: list[float]
    """When each Run was first seen in a terminal phase."""
    admission: list[float]
    end_to_end: list[float]
    stages: dict[str, list[float]]
    steady_throughput: float
    outcomes: collections.Counter[str]
    attempts: float
    writes: collections.Counter[str]
    reads: collections.Counter[str]
    """GETs and LISTs, every client's (the benchmark's own watches list too)."""
    cpu: dict[str, float]
    tool_calls: int

    @property
    def throughput(self) -> float:
        """Runs finished per second, from the first create to the last finish."""
        return self.runs / (max(self.finished) - min(self.created))

    @property
    def writes_per_run(self) -> float:
        return sum(self.writes.values()) / self.runs

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (seconds, Runs/s), for the report and its JSON."""
        quarter = len(self.end_to_end) // 4
        return {
            "runner": self.runner,
            "runs": self.runs,
            "offeredRate": self.offered_rate,
            "submitRate": round(_common.rate_of(self.created), 3),
            "finishRate": round(_common.rate_of(self.finished), 3),
            "concurrency": self.concurrency,
            "admissionMedian": statistics.median(self.admission),
            "admissionP99": _common.percentile(self.admission, 99),
            "endToEndMedian": statistics.median(self.end_to_end),
            "endToEndP99": _common.percentile(self.end_to_end, 99),
            # A backlog shows as latency growing from the first Runs of a batch to the last.
            "endToEndFirstQuarter": statistics.median(self.end_to_end[: quarter or 1]),
            "endToEndLastQuarter": statistics.median(self.end_to_end[-(quarter or 1) :]),
            "stagesMedian": {k: statistics.median(v) for k, v in self.stages.items() if v},
            "stagesP99": {k: _common.percentile(v, 99) for k, v in self.stages.items() if v},
            "throughput": round(self.throughput, 3),
            "steadyThroughput": round(self.steady_throughput, 3),
            "outcomes": dict(self.outcomes),
            "attemptsPerRun": round(self.attempts, 3),
            "writesPerRun": round(self.writes_per_run, 2),
            "readsPerRun": round(sum(self.reads.values()) / self.runs, 2),
            "readsPerRunByResource": {
                k: round(v / self.runs, 2) for k, v in self.reads.most_common(8)
            },
            "writesPerRunByResource": {
                k: round(v / self.runs, 2) for k, v in self.writes.most_common()
            },
            "cpuSecondsPerRun": {
                k: round(v / self.runs, 4) for k, v in self.cpu.items() if k != "wall"
            },
            "cpuShares": _common.cpu_shares(self.cpu),
            "toolCalls": self.tool_calls,
        }


def measure_load(target: Bosun, count: int, rate: float | None, prefix: str) -> LoadResult:
    """Create ``count`` Runs at ``rate`` per second (None: as fast as one client can) and
    follow them to a terminal phase."""
    rest, namespace = target.cluster.rest, target.namespace
    marks = _common.Marks()
    attempts: dict[str, int] = {}

    def on_job(_kind: str, job: kube.Obj, at: float) -> None:
        run = (job["metadata"].get("labels") or {}).get(constants.LABEL_RUN, "")
        marks.mark("job", run, at)
        if _common.job_finished(job):
            marks.mark("jobDone", run, at)

    def on_lease(_kind: str, lease: kube.Obj, at: float) -> None:
        run = (lease["metadata"].get("labels") or {}).get(constants.LABEL_RUN, "")
        notes = lease["metadata"].get("annotations") or {}
        if run and contract.ANNOTATION_CLAIM in notes:
            marks.mark("claimed", run, at)
        if run and contract.ANNOTATION_OUTCOME in notes:
            marks.mark("released", run, at)

    def on_run(_kind: str, run: kube.Obj, at: float) -> None:
        name, phase = run["metadata"]["name"], (run.get("status") or {}).get("phase")
        if phase:
            marks.mark("queued", name, at)
        if phase in ("Running", "AwaitingApproval"):
            marks.mark("admitted", name, at)
        if phase in TERMINAL:
            marks.mark("done", name, at, phase)
            attempts.setdefault(name, len(run["status"].get("attempts") or []))

    objects = [run_object(namespace, f"{prefix}-{i:05d}", target.runner) for i in range(count)]
    names = [obj["metadata"]["name"] for obj in objects]
    selector = f"{constants.LABEL_MANAGED_BY}=bosun"
    jobs = _common.Watch(rest, "batch/v1", "jobs", namespace, on_job, label_selector=selector)
    if target.runner == "pool":
        jobs = _common.Watch(
            rest, "coordination.k8s.io/v1", "leases", namespace, on_lease, label_selector=selector
        )
    runs = _common.Watch(rest, constants.API_VERSION, "runs", namespace, on_run)
    tool_calls_before = len(target.toolbox.executions)
    meter = target.cpu_meter()
    with jobs, runs:
        writes_before = _common.api_writes(rest)
        reads_before = _common.api_reads(rest)
        cpu_before = meter.sample()
        _common.create_paced(rest, objects, marks, rate=rate)
        if not marks.wait_for("done", names, timeout=max(600.0, count * 6.0)):
            missing = len(names) - marks.count("done")
            raise RuntimeError(
                f"{missing} of {count} Runs did not finish; see {target.operator.log_path}"
            )
        time.sleep(2.0)  # the operator's Events and the last status writes trail the phase
        cpu = meter.delta(cpu_before, meter.sample())
        writes = _common.api_writes(rest) - writes_before
        reads = _common.api_reads(rest) - reads_before
    finished = [marks.times["done"][n] for n in names]
    return LoadResult(
        runner=target.runner,
        runs=count,
        offered_rate=rate,
        concurrency=target.concurrency,
        created=[marks.times["created"][n] for n in names],
        finished=finished,
        admission=(
            marks.between("admitted", "claimed", names)
            if target.runner == "pool"
            else marks.between("created", "job", names)
        ),
        end_to_end=marks.between("created", "done", names),
        stages={f"{a}→{b}": marks.between(a, b, names) for a, b, _ in stages_of(target.runner)},
        steady_throughput=_common.steady_rate(finished),
        outcomes=collections.Counter(marks.outcomes[n] for n in names),
        attempts=statistics.mean(attempts[n] for n in names),
        writes=writes,
        reads=reads,
        cpu=cpu,
        tool_calls=len(target.toolbox.executions) - tool_calls_before,
    )


def stages_of(runner: str) -> tuple[tuple[str, str, str], ...]:
    return POOL_STAGES if runner == "pool" else STAGES


def markdown(result: LoadResult) -> str:
    """One batch's figures as Markdown tables, with writes per Run by resource."""
    s = result.summary()
    rate = f"{result.offered_rate:g}/s" if result.offered_rate else "as fast as possible"
    admitted = "admitted → claimed" if result.runner == "pool" else "Run created → Job seen"
    outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
    figures = [
        (f"admission latency ({admitted}), median", f"{s['admissionMedian']:.3f} s"),
        ("admission latency, p99", f"{s['admissionP99']:.3f} s"),
        ("end-to-end (created → finished seen), median", f"{s['endToEndMedian']:.2f} s"),
        ("end-to-end, p99", f"{s['endToEndP99']:.2f} s"),
        ("throughput (first create → last finish)", f"{s['throughput']:.2f} Runs/s"),
        ("steady throughput (middle 80% of finishes)", f"{s['steadyThroughput']:.2f} Runs/s"),
        ("outcomes", outcomes),
        ("attempts per Run", f"{s['attemptsPerRun']:.2f}"),
        ("API writes per Run (all clients)", f"{s['writesPerRun']:.1f}"),
        ("API reads (GET, LIST) per Run (all clients)", f"{s['readsPerRun']:.1f}"),
    ]
    by_resource = [(k, f"{v:.2f}") for k, v in s["writesPerRunByResource"].items()]
    cpu = [(k, f"{v * 1000:.0f} ms") for k, v in s["cpuSecondsPerRun"].items()]
    stages = [
        (
            f"{a} → {b}",
            what,
            f"{s['stagesMedian'][f'{a}→{b}']:.3f} s",
            f"{s['stagesP99'][f'{a}→{b}']:.3f} s",
        )
        for a, b, what in stages_of(result.runner)
        if f"{a}→{b}" in s["stagesMedian"]
    ]
    return (
        f"{result.runs} Runs submitted {rate}, concurrency {result.concurrency}, "
        f"runner {result.runner}\n\n{_common.table(('figure', 'value'), figures)}\n\n"
        f"{_common.table(('stage', 'what', 'median', 'p99'), stages)}\n\n"
        f"{_common.table(('resource', 'writes per Run'), by_resource)}\n\n"
        f"{_common.table(('process', 'CPU per Run'), cpu)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="Runs created per second")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runner", choices=RUNNERS, default="standin")
    parser.add_argument("--workers", type=int, help="the operator's BOSUN_WORKERS")
    args = parser.parse_args()
    settings = {"BOSUN_WORKERS": str(args.workers)} if args.workers else {}
    with (
        _common.local_control_plane() as cluster,
        bosun(cluster, "bench", args.runner, args.concurrency, **settings) as target,
    ):
        result = measure_load(target, args.runs, args.rate, "bench")
    print(f"# Operator benchmark\n\n{markdown(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
