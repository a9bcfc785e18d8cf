"""The Markdown of ``bench/results/REPORT.md``, rendered from the figures ``report.py`` gathered.

Every sentence with a number in it is computed from the figures (``readings``); nothing here
measures anything, so a report can be rendered again from a ``results.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _common
import operator_bench


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _held(result: dict[str, Any]) -> str:
    """Whether the system kept up: Runs finished at least 95% as fast as they were created,
    and the last quarter's latency stayed within twice the first quarter's (plus 0.5 s)."""
    kept_pace = result["finishRate"] >= 0.95 * result["submitRate"]
    first, last = result["endToEndFirstQuarter"], result["endToEndLastQuarter"]
    return "yes" if kept_pace and last <= 2 * first + 0.5 else "**no**"


def _sweep_table(results: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            f"{r['offeredRate']:g}",
            r["runs"],
            f"{r['submitRate']:.2f}",
            f"{r['finishRate']:.2f}",
            _held(r),
            _ms(r["admissionMedian"]),
            _ms(r["admissionP99"]),
            _s(r["endToEndMedian"]),
            _s(r["endToEndP99"]),
            f"{_s(r['endToEndFirstQuarter'])} → {_s(r['endToEndLastQuarter'])}",
            f"{r['attemptsPerRun']:.2f}",
            f"{r['cpuShares']['busy']:.0%} / {r['cpuShares']['other']:.0%}",
        )
        for r in results
    ]
    header = (
        "Runs/s offered",
        "Runs",
        "created/s",
        "finished/s",
        "held",
        "admission median",
        "admission p99",
        "end-to-end median",
        "end-to-end p99",
        "end-to-end, first → last quarter",
        "attempts/Run",
        "CPU busy / of it others",
    )
    return _common.table(header, rows)


def _stage_table(batches: dict[str, dict[str, Any]]) -> str:
    rows = []
    for start, end, what in operator_bench.STAGES:
        key = f"{start}→{end}"
        cells = [f"{start} → {end}", what]
        for result in batches.values():
            if key in result["stagesMedian"]:
                cells.append(f"{_s(result['stagesMedian'][key])} / {_s(result['stagesP99'][key])}")
            else:
                cells.append("not seen")
        rows.append(cells)
    header = ("stage", "what happens", *(f"{name}: median / p99" for name in batches))
    return _common.table(header, rows)


def _per_unit_table(columns: dict[str, dict[str, float]], unit: str, scale: float) -> str:
    """One row per key of any column; a cell is the value times ``scale``, blank if absent."""
    keys: list[str] = []
    for values in columns.values():
        keys += [k for k in values if k not in keys]
    digits = 0 if scale > 1 else 2
    rows = [
        (key, *(f"{v[key] * scale:.{digits}f}" if key in v else "" for v in columns.values()))
        for key in keys
    ]
    return _common.table(("", *(f"{name} ({unit})" for name in columns)), rows)


def _threads(count: str) -> str:
    return f"{count} thread" + ("" if count == "1" else "s")


def throughput_bars(facts: dict[str, Any]) -> list[tuple[str, float]]:
    """The sustained rates to compare: plain-Job ceilings first, then Bosun's."""
    ceil = facts["ceiling"]
    bars = [(f"plain Jobs created ({_threads(n)})", r) for n, r in ceil["createRates"].items()]
    return [
        *bars,
        ("plain no-op Jobs completed", ceil["completions"]["steadyCompletionRate"]),
        ("Bosun Runs, no-op runner", facts["noop"]["batch"]["steadyThroughput"]),
        (
            f"Bosun Runs, no-op runner, {facts['noopMoreWorkers']['workers']} workers",
            facts["noopMoreWorkers"]["batch"]["steadyThroughput"],
        ),
        ("Bosun Runs, real runner", facts["real"]["batch"]["steadyThroughput"]),
        *(
            [("Bosun Runs, real runner in a pool of 2", facts["pool"]["batch"]["steadyThroughput"])]
            if "pool" in facts
            else []
        ),
    ]


def _ours(cpu: dict[str, float]) -> float:
    """CPU seconds per Run of the processes this benchmark started."""
    return cpu["machine"] - cpu["other"]


DISTURBED = 0.2
"""Share of the machine's CPU used by other processes above which a batch counts as disturbed."""


def readings(facts: dict[str, Any]) -> list[str]:
    """What the figures say, computed from them (no claim here is typed in by hand)."""
    noop, real = facts["noop"]["batch"], facts["real"]["batch"]
    comp, nproc = facts["ceiling"]["completions"], facts["machine"]["nproc"]
    rc, nc, pc = real["cpuSecondsPerRun"], noop["cpuSecondsPerRun"], comp["cpuSecondsPerJob"]
    more = facts["noopMoreWorkers"]
    lines = []
    batches = [
        *(
            (f"{name} at {r['offeredRate']:g}/s", r)
            for name in ("real", "noop")
            for r in facts[name]["sweep"]
        ),
        ("saturating real", real),
        ("saturating no-op", noop),
        (f"saturating no-op, {facts['noopMoreWorkers']['workers']} workers", more["batch"]),
        ("plain Jobs", comp),
    ]
    disturbed = [
        f"{label} ({r['cpuShares']['other']:.0%})"
        for label, r in batches
        if r["cpuShares"]["other"] > DISTURBED
    ]
    if disturbed:
        lines.append(
            f"Other processes on the machine used more than {DISTURBED:.0%} of its CPU during "
            f"these batches, whose figures they worsen: {', '.join(disturbed)}."
        )
    for name, batch in (("real-runner", real), ("no-op", noop), ("plain-Job", comp)):
        shares = batch["cpuShares"]
        bound = (
            "CPU-bound"
            if shares["busy"] >= 0.9
            else "close to CPU-bound"
            if shares["busy"] >= 0.75
            else "not CPU-bound"
        )
        lines.append(
            f"During the {name} batch the {nproc} cores were {shares['busy']:.0%} busy "
            f"({shares['ours']:.0%} this benchmark's processes, {shares['other']:.0%} others): "
            f"{bound}."
        )
    startup = facts["runnerStartup"]
    heaviest = [k for k in startup if k.startswith("of which")]
    detail = f" ({heaviest[0]}: {_ms(startup[heaviest[0]])})" if heaviest else ""
    lines.append(
        f"A real Run costs {_ms(_ours(rc))} of CPU here, {_ms(rc.get('pods', 0))} "
        f"({rc.get('pods', 0) / _ours(rc):.0%}) of it in the runner process; starting Python and "
        f"importing the runner alone takes {_ms(startup['import bosun.runner.app'])}{detail}."
    )
    lines.append(
        f"Without a runner process a Run costs {_ms(_ours(nc))} of CPU against {_ms(_ours(pc))} "
        f"for a plain Job; the API server's part is {_ms(nc['kube-apiserver'])} against "
        f"{_ms(pc['kube-apiserver'])}, for {noop['writesPerRun']:.1f} against "
        f"{comp['writesPerJob']:.1f} writes; the operator process itself spends "
        f"{_ms(nc['operator'])} per Run."
    )
    lines.append(
        f"With BOSUN_WORKERS={more['workers']} instead of 4 the saturating no-op batch finished "
        f"{more['batch']['steadyThroughput']:.2f} instead of {noop['steadyThroughput']:.2f} "
        f"Runs/s (median end-to-end {_s(more['batch']['endToEndMedian'])} instead of "
        f"{_s(noop['endToEndMedian'])}), with the operator spending "
        f"{_ms(more['batch']['cpuSecondsPerRun']['operator'])} instead of "
        f"{_ms(nc['operator'])} of CPU per Run."
    )
    stages = noop["stagesMedian"]
    operator_keys = ("created→queued", "queued→admitted", "admitted→job", "jobDone→done")
    operator_time = sum(stages.get(k, 0.0) for k in operator_keys)
    lines.append(
        f"In the no-op batch the operator's stages (pick-up, admission, child creation, "
        f"recording the outcome) took {_s(operator_time)} of medians, the Job itself "
        f"{_s(stages.get('job→jobDone', 0.0))}, of a {_s(noop['endToEndMedian'])} median "
        f"end-to-end."
    )
    mem = facts["memory"]
    sample = mem["samples"][-1]
    if sample["heap_per_run"]:
        per_run = mem["growthKibPer1000"] * 1024 / 1000
        lines.append(
            f"Operator RSS grows {mem['growthKibPer1000'] / 1024:.1f} MiB per 1,000 finished "
            f"Runs, {per_run / 1024:.0f} KiB per Run; one such Run is "
            f"{sample['bytes_per_run']:,} B of JSON and {sample['heap_per_run']:,} B parsed, so "
            f"the operator holds about {per_run / sample['heap_per_run']:.1f} parsed copies' "
            f"worth of memory per Run."
        )
    return lines


def _retention_notes(facts: dict[str, Any]) -> str:
    """The memory section's lines about the compared operator and about retention (absent
    from results written before they were measured)."""
    lines = []
    for s in facts["memory"].get("compared") or ():
        lines.append(
            f"\nThe operator from `{s['source']}` with {s['runs']:,} Runs present: "
            f"RSS {s['rss_kib'] / 1024:.0f} MiB (peak {s['peak_kib'] / 1024:.0f} MiB)."
        )
    kept = facts.get("retention")
    if kept:
        deleted = kept["present"] - kept["kept"]
        lines.append(
            f"\nRetention: an operator keeping {kept['kept']:,} succeeded Runs per Agent deleted "
            f"{deleted:,} of {kept['present']:,} in {kept['seconds']:.0f} s from its start "
            f"({deleted / max(kept['seconds'], 0.1):.0f} Runs/s); RSS once done "
            f"{kept['rss_kib'] / 1024:.0f} MiB (peak {kept['peak_kib'] / 1024:.0f} MiB)."
        )
    return "".join(lines)


MEMORY_HEADER = (
    "Runs present",
    "Runs the operator listed",
    "RSS",
    "peak RSS (VmHWM)",
    "ready after start",
    "one Run as JSON",
    "one Run parsed (Python heap)",
)


def _not_accepted(load: dict[str, Any]) -> str:
    """`` (N answered otherwise: ...)`` when not every delivery got its 202 or 200."""
    other = {k: v for k, v in load["statuses"].items() if k not in ("200", "202")}
    if not other:
        return ""
    return f" ({sum(other.values())} answered otherwise: {other})"


def _gateway_section(facts: dict[str, Any]) -> str:
    gateway = facts.get("gateway")
    if not gateway:
        return ""
    rows = [
        (
            load["name"],
            f"{load['deliveries']:,}",
            f"{load['offered_rate']:g}/s"
            if load["offered_rate"]
            else f"{gateway['threads']} senders",
            f"{load['throughput']:.1f}/s",
            _ms(load["latency_median"]),
            _ms(load["latency_p99"]),
            ", ".join(f"{k}: {v}" for k, v in sorted(load["statuses"].items())),
            f"{load['gateway_cpu_ms_per_delivery']:.1f}"
            f" / {load['apiserver_cpu_ms_per_delivery']:.1f} ms",
            f"{load['gateway_peak_rss_mib']:.0f} MiB",
        )
        for load in gateway["loads"]
    ]
    header = ("load", "deliveries", "offered", "answered", "median", "p99", "answers",
              "CPU each (gateway / API server)", "gateway RSS peak")  # fmt: skip
    return f"""## Webhook gateway (`bench/gateway_bench.py`)

One `bosun gateway` process, one Webhook (HMAC-SHA256, a CEL filter and input), each delivery
signed with its own id; latency is the sender's, from sending the request to reading the answer,
and a 202 is sent only once the API server stored the Run. *paced* is an open loop at a fixed
rate; *batch* saturates it; *redelivered* sends the batch's deliveries again (each answered 200
with the Run the first made: a refused create and a read). Runs stored: {gateway["runsStored"]:,};
deliveries without their Run: {gateway["deliveriesWithoutRun"]}.

{_common.table(header, rows)}

"""


def render(facts: dict[str, Any]) -> str:
    m, plan = facts["machine"], facts["plan"]
    ceil, comp = facts["ceiling"], facts["ceiling"]["completions"]
    noop, real = facts["noop"]["batch"], facts["real"]["batch"]
    more = facts["noopMoreWorkers"]
    mem = facts["memory"]
    by_runs = {s["runs"]: s for s in mem["samples"]}
    create_best = max(ceil["createRates"].values())
    plain = comp["steadyCompletionRate"]

    def mib(kib: float) -> str:
        return f"{kib / 1024:.0f} MiB"

    headline = [
        (
            "Bosun throughput, real runner (scripted model, 1 governed HTTP tool call)",
            f"{real['steadyThroughput']:.2f} Runs/s (concurrency {plan['real_concurrency']})",
        ),
        (
            "Bosun throughput, no-op runner (the operator's path alone)",
            f"{noop['steadyThroughput']:.2f} Runs/s",
        ),
        (
            f"Bosun throughput, no-op runner, BOSUN_WORKERS={more['workers']} (default 4)",
            f"{more['batch']['steadyThroughput']:.2f} Runs/s",
        ),
        ("Ceiling: plain Jobs completed (busybox no-op pod)", f"{plain:.2f} Jobs/s"),
        (
            "Ceiling: plain Jobs created (API server only)",
            ", ".join(f"{v:.0f}/s with {_threads(k)}" for k, v in ceil["createRates"].items()),
        ),
        ("Bosun real runner ÷ plain Job completion", f"{real['steadyThroughput'] / plain:.1%}"),
        ("Bosun no-op runner ÷ plain Job completion", f"{noop['steadyThroughput'] / plain:.1%}"),
        ("Bosun real runner ÷ plain Job creation", f"{real['steadyThroughput'] / create_best:.2%}"),
        (
            "API writes per Run (real runner / no-op runner / plain Job)",
            f"{real['writesPerRun']:.1f} / {noop['writesPerRun']:.1f} / {comp['writesPerJob']:.1f}",
        ),
    ]
    if "pool" in facts:
        pool, paced, dense = (
            facts["pool"]["batch"],
            facts["pool"]["paced"],
            facts["pool"]["density"],
        )
        headline += [
            (
                "Bosun throughput, real runner in a pool of 2 workers (same Agent and tool)",
                f"{pool['steadyThroughput']:.2f} Runs/s; ÷ plain Job completion"
                f" {pool['steadyThroughput'] / plain:.1%}; ÷ Job mode"
                f" {pool['steadyThroughput'] / real['steadyThroughput']:.1f}x",
            ),
            (
                "Pool: admitted → claimed at 10 Runs/s (median, p99)",
                f"{_ms(paced['admissionMedian'])}, {_ms(paced['admissionP99'])}",
            ),
            (
                "API writes per Run (pool / Job mode)",
                f"{pool['writesPerRun']:.1f} / {real['writesPerRun']:.1f}",
            ),
            (
                f"Pool density: {dense['runs']:,} Runs waiting {dense['wait_seconds']:g} s on the"
                " model, 2 workers",
                f"{dense['succeeded']:,} succeeded; worker RSS peak {dense['peak_rss_mib']:.0f} MiB"
                f" ({dense['rss_per_run_kib']:.0f} KiB per Run); liveness (the workers' Lease"
                f" renewals) {dense['renewals_per_second']:.2f} writes/s; each Run's own Lease"
                f" {dense.get('run_lease_writes_per_run', 0):.1f} writes (create, claim, release);"
                f" all Lease writes {dense['lease_writes_per_second']:.1f}/s",
            ),
        ]
    gateway = facts.get("gateway")
    if gateway:
        loads = {load["name"]: load for load in gateway["loads"]}
        paced, batch = loads["paced"], loads["batch"]
        headline += [
            (
                f"Webhook gateway at {paced['offered_rate']:g} signed deliveries/s: delivery →"
                " 202 with the Run stored (median, p99)",
                f"{_ms(paced['latency_median'])}, {_ms(paced['latency_p99'])}"
                + _not_accepted(paced),
            ),
            (
                f"Webhook gateway saturated ({gateway['threads']} senders, 1 replica)",
                f"{batch['throughput']:.0f} deliveries/s;"
                f" {batch['gateway_cpu_ms_per_delivery']:.1f} ms gateway CPU each;"
                f" RSS {batch['gateway_peak_rss_mib']:.0f} MiB",
            ),
        ]
    for r in facts["real"]["sweep"]:
        headline.append(
            (
                f"Real runner at {r['offeredRate']:g} Runs/s: admission / end-to-end (median, p99)",
                f"{_ms(r['admissionMedian'])}, {_ms(r['admissionP99'])} / "
                f"{_s(r['endToEndMedian'])}, {_s(r['endToEndP99'])}",
            )
        )
    for size in (1000, 10000):
        if size in by_runs:
            headline.append(
                (f"Operator RSS with {size:,} finished Runs", mib(by_runs[size]["rss_kib"]))
            )
    headline.append(
        ("Operator RSS growth", f"{mem['growthKibPer1000'] / 1024:.1f} MiB per 1,000 Runs")
    )

    cpu_columns = {
        "real runner": real["cpuSecondsPerRun"],
        "no-op runner": noop["cpuSecondsPerRun"],
        "plain Job": comp["cpuSecondsPerJob"],
    }
    writes_columns = {
        "real runner": real["writesPerRunByResource"],
        **({"pool": facts["pool"]["batch"]["writesPerRunByResource"]} if "pool" in facts else {}),
        "no-op runner": noop["writesPerRunByResource"],
    }
    mem_rows = [
        (
            f"{s['runs']:,}",
            f"{s['listed']:,}" if "listed" in s else "?",
            mib(s["rss_kib"]),
            mib(s["peak_kib"]),
            f"{s['ready_seconds']:.1f} s",
            f"{s['bytes_per_run']:,} B ({s['managed_fields_bytes']:,} B managedFields)"
            if s["runs"]
            else "",
            f"{s['heap_per_run']:,} B" if s["runs"] else "",
        )
        for s in mem["samples"]
    ]
    mem_notes = _retention_notes(facts)
    startup_rows = [(name, _ms(value)) for name, value in facts["runnerStartup"].items()]
    cold = facts["runnerColdStart"]
    startup_rows += [
        (
            f"runner process start → first model request, {label} (median / p99)",
            f"{_ms(cold[key]['median'])} / {_ms(cold[key]['p99'])}",
        )
        for key, label in (("image", "runner image packages"), ("dev", "dev .venv"))
    ]
    pod = facts.get("runnerPodStart")
    if pod:
        startup_rows.append(
            (
                "runner pod of the built image created → first model request (median / p99)",
                f"{_ms(pod['median'])} / {_ms(pod['p99'])}",
            )
        )
    startup_rows += [
        (f"image {ref} on disk", f"{size / 1e6:.0f} MB")
        for ref, size in sorted((facts.get("images") or {}).items())
    ]
    bars = throughput_bars(facts)
    stage_columns = {
        "real runner": real,
        "no-op runner": noop,
        f"no-op, {more['workers']} workers": more["batch"],
    }
    other = facts["otherCpuShare"]
    return f"""# Bosun benchmark report

Generated {facts["date"]} from commit `{facts["commit"]}` by `{facts["command"]}`
in {facts["minutes"]:.1f} minutes.

**Machine:** {m["nproc"]} CPUs ({m["cpu"]}), {m["memory"]} memory, Linux {m["kernel"]},
Python {m["python"]}, Kubernetes {facts["serverVersion"]} (local control plane: etcd,
kube-apiserver and kube-controller-manager as processes; pods run by the node emulator as local
processes). Load average when the run started: {m["loadavg"]}. Other processes on the machine used
{other:.0%} of its CPU during the load phases (see *CPU per Run*): read the rates against that.

Everything runs on these {m["nproc"]} cores at once: the control plane, the operator, every runner
pod (one Python process each), and the benchmark client. The submission rates for the real runner
are chosen to stay within what {m["nproc"]} cores can hold (each runner pod spends about
{real["cpuSecondsPerRun"].get("pods", 0):.1f} CPU-seconds); the operator's own path is measured at
higher rates with a no-op runner pod.

## Headline figures

{_common.table(("figure", "value"), headline)}

## Reading the figures

{chr(10).join(f"- {line}" for line in readings(facts))}

## Latency at several submission rates

Each rate is an open-loop batch: Runs are created on a fixed schedule by one client, whatever
happens to earlier ones. *created/s* and *finished/s* are the rates from the first to the last
create and finish; *held* means the Runs finished at least 95% as fast as they were created
and the median latency of the last quarter of the batch stayed within twice that of the first
quarter plus 0.5 s; otherwise a backlog grew, and the last quarter's latency shows how long.
The last column is how busy the cores were during the batch, and how much of that was processes
this benchmark did not start.

**Real runner** (production image, scripted model → one HTTP tool call allowed by a Policy →
reply; concurrency {plan["real_concurrency"]}):

{_sweep_table(facts["real"]["sweep"])}

**No-op runner** (`sh -c 'exit 0'`; the operator, RBAC, Lease, Job, pod and status path without
a runner process; concurrency {plan["noop_concurrency"]}):

{_sweep_table(facts["noop"]["sweep"])}

![latency](latency.png)

## Throughput and the ceiling

Saturating batches: {plan["real_batch"]} Runs (real runner) and {plan["noop_batch"]} Runs (no-op)
created as fast as one client can; the rate is taken over the middle 80% of finishes. The
ceiling, measured on the same API server in the same run: {plan["ceiling_jobs"]} suspended Jobs
created by a plain client (no pods: the API server and etcd alone), and {plan["ceiling_jobs"]}
no-op Jobs (`busybox`, `sh -c 'exit 0'`) created with {plan["ceiling_threads"]} threads and followed
to Complete through the Job controller and the node emulator.

{_common.table(("", "per second"), [(label, f"{value:.2f}") for label, value in bars])}

Plain Job created → Complete: median {_s(comp["endToEndMedian"])}, p99 {_s(comp["endToEndP99"])}.
Tool calls executed by the no-op tool server during the real-runner batch:
{real["toolCalls"]} for {real["runs"]} Runs; attempts per Run {real["attemptsPerRun"]:.2f};
outcomes {real["outcomes"]}.

![throughput](throughput.png)

## Where a Run's time goes (saturating batches)

Observed from watch events of the Run (phase) and its Job (created, Complete).

{_stage_table(stage_columns)}

## CPU per Run, by process (saturating batches)

CPU time each process spent during the batch, divided by the Runs (or plain Jobs) in it.
*pods* are the processes the node emulator ran (the runner); *other* is everything else on the
machine, not started by this benchmark.

{_per_unit_table(cpu_columns, "ms", 1000)}

## API writes per Run, by resource

Mutating requests counted by the API server (`apiserver_request_total`) during the saturating
batch, from every client (operator, runner, Job controller, node emulator, the benchmark's own
create), divided by the Runs.

{_per_unit_table(writes_columns, "writes", 1)}

## Operator memory

Finished Runs (each with the status of a real Succeeded Run) present in the operator's namespace;
an operator is started for each size, and its `VmRSS` is read once it is ready and idle.

{_common.table(MEMORY_HEADER, mem_rows)}

Growth (least-squares slope): **{mem["growthKibPer1000"] / 1024:.1f} MiB per 1,000 Runs**.
{mem_notes}
![memory](memory.png)

{_gateway_section(facts)}## Runner start-up cost

Best of three: starting Python, and importing the runner (cumulative import time of its
heaviest dependencies from `python -X importtime`). Then the cold start of 20 real runner
processes (`bench/coldstart.py`): from the process starting to the model server receiving its
first request, with the runner image's locked packages and with the dev `.venv`.

{_common.table(("", "time"), startup_rows)}

## Runner hot paths (`bench/runner_bench.py`)

```
{facts["runnerHotPaths"]}
```

## How the figures are measured

- Times are taken by the benchmark process: a Run's *created* time when its create call returns,
  later milestones when a watch event shows them (Job added, Run phase, Job Complete). Latency is
  the difference; nearest-rank percentiles. With small batches the p99 is close to the maximum.
- Rates in the sweep tables run from the first to the last create (or finish); in the
  saturating batches the rate is taken over the middle 80% of finishes, to leave out ramp-up
  and drain.
- API writes: `POST`, `PUT`, `PATCH`, `DELETE` and `APPLY` requests in the API server's
  `apiserver_request_total`, before and after a batch, from every client.
- CPU: `utime + stime` from `/proc/<pid>/stat` for the control-plane components, the operator and
  the benchmark itself; reaped children of the node emulator for pods.
- Memory: `VmRSS` and `VmHWM` of the operator process from `/proc/<pid>/status`.
- No figure is asserted; a noisy machine moves them. `{facts["command"]}` reproduces them.
"""
