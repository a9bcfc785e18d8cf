"""``make bench``: every benchmark in one run on one local control plane, written up.

Runs, in order, against a private local control plane (etcd, kube-apiserver and
kube-controller-manager as processes, pods run by the node emulator): the runner's hot paths
(``runner_bench``), the runner's start-up cost, the ceiling of plain Jobs (``ceiling``),
Bosun with a no-op runner and with the real runner at several submission rates and as a
saturating batch (``operator_bench``), worker pools (``pool_bench``), the Webhook gateway
(``gateway_bench``), and the operator's memory with thousands of finished Runs and retention
deleting them (``memory``). Writes ``bench/results/REPORT.md``
(``writeup``), ``results.json`` and PNG plots (``plots``), and prints the report. Asserts
nothing.

    .venv/bin/python bench/report.py            # about 10 minutes on 2 quiet cores
    .venv/bin/python bench/report.py --quick    # a smoke test of the whole pipeline, 2 minutes
    .venv/bin/python bench/report.py --from-json bench/results/results.json   # render again
    .venv/bin/python bench/report.py --compare ../old-checkout/operator   # memory before/after
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import _common
import ceiling
import coldstart
import gateway_bench
import memory
import operator_bench
import plots
import pool_bench
import runner_bench
import writeup

from bosun import constants
from bosun.dev import imagebuild

ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    ceiling_jobs: int = 300
    ceiling_threads: int = 4
    noop_concurrency: int = 100
    noop_batch: int = 300
    noop_rates: tuple[tuple[float, int], ...] = ((1, 30), (2, 60), (5, 150), (10, 300))
    more_workers: int = 16
    """BOSUN_WORKERS of a second saturating no-op batch (the operator's default is 4)."""
    real_concurrency: int = 8
    real_batch: int = 80
    real_rates: tuple[tuple[float, int], ...] = ((0.25, 15), (0.5, 30), (1, 60))
    memory_sizes: tuple[int, ...] = (0, 1000, 2500, 5000, 10000)
    retention_keep: int = 1000
    """History limit of the retention step: it deletes the rest of the finished Runs."""
    journal_steps: int = 100
    decisions: int = 2000
    pool_batch: int = 300
    pool_paced: int = 150
    """Runs submitted at 10/s to a pool (claim latency)."""
    density_runs: int = 1000
    density_wait_seconds: float = 30.0
    gateway_rate: float = 50.0
    gateway_paced: int = 1000
    """Signed deliveries sent at gateway_rate per second (open loop)."""
    gateway_batch: int = 1000
    gateway_threads: int = 16


QUICK = Plan(
    ceiling_jobs=40,
    noop_batch=40,
    noop_rates=((2, 10), (10, 30)),
    real_batch=10,
    real_rates=((0.5, 5), (1, 8)),
    memory_sizes=(0, 200, 500),
    retention_keep=100,
    journal_steps=20,
    decisions=200,
    pool_batch=40,
    pool_paced=20,
    density_runs=50,
    density_wait_seconds=5.0,
    gateway_rate=20.0,
    gateway_paced=60,
    gateway_batch=100,
)


# --- the parts ------------------------------------------------------------------------------------


def runner_hot_paths(cluster: _common.Cluster, plan: Plan) -> str:
    """The runner engineer's benchmark (governance decisions, journal writes), as printed."""
    out = io.StringIO()
    argv = ["--kubeconfig", str(cluster.state.kubeconfig), "--steps", str(plan.journal_steps)]
    with contextlib.redirect_stdout(out):
        runner_bench.main([*argv, "--decisions", str(plan.decisions)])
    return out.getvalue().rstrip()


IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$")


def _direct_imports(importtime: str, module: str) -> dict[str, float]:
    """Seconds each direct import of ``module`` took (cumulative), from ``-X importtime``."""
    children: dict[str, float] = {}
    for line in importtime.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        micros, indent, name = int(match.group(1)), len(match.group(2)), match.group(3)
        if indent == 0:  # a top-level import ends: the lines before it were its children
            if name == module:
                return children
            children = {}
        elif indent == 2:
            children[name] = micros / 1e6
    return {}


def runner_startup(repeats: int = 3) -> dict[str, float]:
    """Seconds to start Python, and to import the runner with its four heaviest direct
    imports (cumulative import time from ``python -X importtime``), best of ``repeats``."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import bosun.runner.app"],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = {"python -c pass": bare, "import bosun.runner.app": time.perf_counter() - started}
        children = _direct_imports(proc.stderr, "bosun.runner.app")
        for name in sorted(children, key=children.__getitem__, reverse=True)[:4]:
            figures[f"of which import {name}"] = children[name]
        for name, value in figures.items():
            best[name] = min(value, best.get(name, value))
    return best


def bosun_phase(
    cluster: _common.Cluster,
    namespace: str,
    runner: str,
    concurrency: int,
    *,
    rates: Sequence[tuple[float, int]],
    batch: int,
    **settings: str,
) -> tuple[list[operator_bench.LoadResult], operator_bench.LoadResult, Any]:
    """A rate sweep, then a saturating batch, in one namespace served by one operator.

    Also returns the status of one Succeeded Run, for the memory benchmark."""
    with operator_bench.bosun(cluster, namespace, runner, concurrency, **settings) as target:
        sweep = []
        for rate, count in rates:
            _common.log(f"{namespace}: {count} Runs at {rate:g}/s")
            sweep.append(operator_bench.measure_load(target, count, rate, f"r{rate:g}"))
        _common.log(f"{namespace}: saturating batch of {batch} Runs")
        saturated = operator_bench.measure_load(target, batch, None, "batch")
        sample = cluster.rest.get(constants.API_VERSION, "runs", target.namespace, "batch-00000")
    return sweep, saturated, (sample or {}).get("status")


def measure(plan: Plan, compare: pathlib.Path | None = None) -> dict[str, Any]:
    """Run every benchmark of ``plan`` on a fresh local control plane; return the figures.

    With ``compare`` (another source tree's ``operator/`` folder), the memory step also
    measures an operator run from it at each size."""
    started = time.monotonic()
    facts: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _common.git_commit(ROOT),
        "command": _command(),
        "machine": _common.machine(),
        "plan": dataclasses.asdict(plan),
    }
    _common.log("starting the local control plane")
    with _common.local_control_plane() as cluster:
        facts["serverVersion"] = _server_version(cluster)
        # First, on a quiet API server: the runner's own start-up, not the server's backlog.
        _common.log("runner cold start")
        facts["runnerColdStart"] = {
            "image": coldstart.measure(cluster, 20),
            "dev": coldstart.measure(cluster, 20, pathlib.Path(sys.executable)),
        }
        _common.log("runner pod start on the built image")
        built = imagebuild.ensure()
        runner = next(b for b in built if b.name == "bosun-runner")
        facts["images"] = {b.reference: b.image.size_bytes for b in built}
        facts["runnerPodStart"] = coldstart.measure_pods(cluster, runner.reference, 20)
        _common.log("runner hot paths")
        facts["runnerHotPaths"] = runner_hot_paths(cluster, plan)
        facts["runnerStartup"] = runner_startup()
        _common.log("ceiling: plain Jobs")
        facts["ceiling"] = {
            "createRates": {
                str(n): round(ceiling.create_rate(cluster, plan.ceiling_jobs, n), 1)
                for n in (1, plan.ceiling_threads)
            },
            "completions": ceiling.completions(
                cluster, plan.ceiling_jobs, plan.ceiling_threads
            ).summary(),
        }
        phases: dict[str, list[operator_bench.LoadResult]] = {}
        statuses: dict[str, Any] = {}
        for runner, concurrency, rates, batch in (
            ("noop", plan.noop_concurrency, plan.noop_rates, plan.noop_batch),
            ("real", plan.real_concurrency, plan.real_rates, plan.real_batch),
        ):
            sweep, saturated, statuses[runner] = bosun_phase(
                cluster, f"bench-{runner}", runner, concurrency, rates=rates, batch=batch
            )
            facts[runner] = {"sweep": [r.summary() for r in sweep], "batch": saturated.summary()}
            phases[runner] = [*sweep, saturated]
        _common.log("pools: throughput, claim latency and API writes of 2 workers")
        paced, pooled = pool_bench.pool_phase(cluster, plan.pool_batch, plan.pool_paced)
        facts["pool"] = {"paced": paced.summary(), "batch": pooled.summary()}
        phases["pool"] = [paced, pooled]
        _common.log(f"pools: density, {plan.density_runs} Runs waiting on a slow model")
        dense = pool_bench.density(cluster, plan.density_runs, plan.density_wait_seconds)
        facts["pool"]["density"] = dense.summary()
        # The same saturating no-op batch with more reconcile workers: is the operator
        # waiting on the API server rather than working?
        workers = str(plan.more_workers)
        _, saturated, _ = bosun_phase(
            cluster,
            f"bench-noop-w{workers}",
            "noop",
            plan.noop_concurrency,
            rates=(),
            batch=plan.noop_batch,
            BOSUN_WORKERS=workers,
        )
        facts["noopMoreWorkers"] = {"workers": plan.more_workers, "batch": saturated.summary()}
        phases["noopMoreWorkers"] = [saturated]
        _common.log("gateway: signed deliveries at a fixed rate, saturated, redelivered")
        facts["gateway"] = gateway_bench.gateway_phase(
            cluster, plan.gateway_rate, plan.gateway_paced, plan.gateway_batch,
            plan.gateway_threads,
        )  # fmt: skip
        _common.log("memory: operator RSS with finished Runs present")
        status = statuses["real"] or memory.finished_status()
        found = memory.measure(cluster, plan.memory_sizes, status, compare=compare)
        samples = [s for s in found if s.source == "this"]
        facts["memory"] = {
            "samples": [s.summary() for s in samples],
            "growthKibPer1000": memory.growth_per_thousand(samples),
            "compared": [s.summary() for s in found if s.source != "this"],
        }
        _common.log("retention: deleting finished Runs down to the history limit")
        facts["retention"] = memory.retention(cluster, keep=plan.retention_keep).summary()
    facts["otherCpuShare"] = _other_share(phases)
    facts["minutes"] = (time.monotonic() - started) / 60
    return facts


def write(facts: dict[str, Any], output: pathlib.Path) -> str:
    """Write REPORT.md, results.json and the plots to ``output``; return the report."""
    output.mkdir(parents=True, exist_ok=True)
    text = writeup.render(facts)
    (output / "REPORT.md").write_text(text)
    (output / "results.json").write_text(json.dumps(facts, indent=1, default=str) + "\n")
    plots.latency(
        {"real runner": facts["real"]["sweep"], "no-op runner": facts["noop"]["sweep"]},
        output / "latency.png",
    )
    plots.throughput(writeup.throughput_bars(facts), output / "throughput.png")
    plots.memory(facts["memory"]["samples"], output / "memory.png")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--compare",
        type=pathlib.Path,
        help="also measure the memory of the operator in this source tree's operator/ folder",
    )
    parser.add_argument(
        "--from-json",
        type=pathlib.Path,
        help="render the report again from a results.json instead of measuring",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        facts = json.loads(args.from_json.read_text())
    else:
        facts = measure(QUICK if args.quick else Plan(), args.compare)
    print(write(facts, args.output))
    _common.log(f"wrote {args.output}/REPORT.md, results.json and PNG plots")
    return 0


def _other_share(phases: dict[str, list[operator_bench.LoadResult]]) -> float:
    """CPU used by processes this benchmark did not start, as a share of the machine's capacity."""
    spent = {"machine": 0.0, "other": 0.0, "wall": 0.0}
    for result in (r for results in phases.values() for r in results):
        for key in spent:
            spent[key] += result.cpu[key]
    return _common.cpu_shares(spent)["other"]


def _command() -> str:
    argv = [
        os.path.relpath(sys.executable, ROOT),
        os.path.relpath(sys.argv[0], ROOT),
        *sys.argv[1:],
    ]
    return shlex.join(argv)


def _server_version(cluster: _common.Cluster) -> str:
    return str(cluster.rest.request("GET", "/version").get("gitVersion", "?"))


if __name__ == "__main__":
    sys.exit(main())
