"""Operator memory (RSS) with thousands of finished Runs present, and retention deleting them.

Finished Runs are what accumulates in a real namespace, so that is what is measured: Runs
created while no operator runs, each given the status of a real Succeeded Run (copied from
one the real runner finished, so every object has a realistic size). For each size an
operator is started for the namespace; once it is ready (its initial listing done) and its
CPU use has settled, ``VmRSS`` of its process is read from /proc, with ``VmHWM`` (the peak).
Every time in the copied status is moved to a day in the past (``aged``): these Runs are older
than the hour of usage budgets count, as finished Runs that pile up are. The operator only watches
the namespace, with retention off (``KEEP_ALL``: the Runs are older than any TTL and more than any
history limit keeps); nothing it does with them writes anything.

Then retention: an operator whose history limit keeps ``keep`` succeeded Runs per Agent is
started for the same namespace, and the time it takes to delete the rest is measured, with its
RSS once it is done.

    .venv/bin/python bench/memory.py --sizes 0,1000,10000
    .venv/bin/python bench/memory.py --sizes 0,10000 --compare /path/to/another/checkout/operator

``--compare`` also measures, at each size, an operator run from another source tree (its
``operator/`` folder on PYTHONPATH), say a checkout of an earlier commit: before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Sequence
from typing import Any

import _common
import operator_bench

from bosun import constants, kube
from bosun.dev import testing

KEEP_ALL = {
    "BOSUN_RUN_TTL_SECONDS": "0",
    "BOSUN_RUN_HISTORY_SUCCEEDED": "0",
    "BOSUN_RUN_HISTORY_FAILED": "0",
}
"""Operator settings that turn retention off, so that every Run stays present."""


@dataclasses.dataclass
class Sample:
    runs: int
    listed: int
    """How many Runs the operator says it listed at start (its log), as a check."""
    rss_kib: int
    peak_kib: int
    ready_seconds: float
    bytes_per_run: int
    """JSON size of one such Run as the API returns it (with managedFields)."""
    managed_fields_bytes: int
    """How much of that is ``metadata.managedFields``."""
    heap_per_run: int
    """Python heap of that Run parsed into dicts: the floor of any in-memory copy of it."""
    source: str = "this"
    """Where the operator's code came from: this tree, or the ``--compare`` one."""

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def finished_status() -> kube.Obj:
    """A Succeeded Run's status, for when no real one is at hand (the CLI): every field a real
    runner and operator write, with a short output."""
    stamp = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp,
            "observedGeneration": 1,
        }
        for kind, value, reason, message in (
            ("Queued", "False", "Admitted", "Admitted as attempt 1"),
            ("Running", "False", "AttemptSucceeded", "Attempt 1 succeeded"),
            ("AwaitingApproval", "False", "NoPendingCalls", "No tool call waits for approval"),
            ("Succeeded", "True", "RunnerSucceeded", "The agent answered"),
        )
    ]
    attempt = {
        "number": 1,
        "job": "x-a1",
        "pod": "x-a1-abcde",
        "startTime": stamp,
        "endTime": stamp,
        "outcome": "Succeeded",
        "reason": "RunnerSucceeded",
        "exitCode": 0,
        "epoch": 1,
    }
    usage = {
        "inputTokens": 412,
        "outputTokens": 57,
        "totalTokens": 469,
        "modelCalls": 2,
        "toolCalls": 1,
        "deniedCalls": 0,
    }
    return {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "conditions": conditions,
        "attempts": [attempt],
        "lease": {"name": "x", "holder": "x-a1-abcde", "transitions": 1},
        "startTime": stamp,
        "completionTime": stamp,
        "output": "The refund of 100 for order 1234 was issued; the customer was told.",
        "usage": usage,
        "steps": 2,
    }


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
PAST = "2026-01-01T00:00:00Z"


def aged(value: Any) -> Any:
    """``value`` with every RFC 3339 time in it set to ``PAST``, the same size give or take a
    fraction. Retention keeps a Run for the hour its usage counts in budgets, so a status copied
    from a Run that just finished would keep every copy for an hour."""
    if isinstance(value, dict):
        return {key: aged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [aged(item) for item in value]
    if isinstance(value, str) and STAMP.match(value):
        return PAST
    return value


def _settle(pid: int, quiet: float = 0.05, limit: float = 120.0) -> None:
    """Wait until the process spends under ``quiet`` CPU seconds per second."""
    deadline = time.monotonic() + limit
    last = _common.cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _common.cpu_seconds(pid)
        if now - last < quiet:
            return
        last = now


def measure(
    cluster: _common.Cluster,
    sizes: Sequence[int],
    status: kube.Obj,
    namespace: str = "bench-memory",
    *,
    threads: int = 8,
    compare: pathlib.Path | None = None,
) -> list[Sample]:
    """Operator RSS with each of ``sizes`` finished Runs present (sizes ascending); with
    ``compare``, also of an operator run from that source tree (``Sample.source``)."""
    rest = cluster.rest
    _common.create_namespace(rest, namespace)
    for obj in operator_bench.agent_objects(namespace, 10, "http://127.0.0.1:9/"):
        if obj["kind"] == "Agent":
            rest.create(obj)
    samples: list[Sample] = []
    present = 0
    for size in sizes:
        if size > present:
            _common.log(f"memory: creating finished Runs {present}..{size}")
            _create_finished(rest, namespace, range(present, size), status, threads)
            present = size
        one = rest.get(constants.API_VERSION, "runs", namespace, "done-00000")
        raw = json.dumps(one, separators=(",", ":")) if one else ""
        for source in (None, compare) if compare else (None,):
            samples.append(_sample(cluster, namespace, size, one, raw=raw, source=source))
    return samples


def _sample(
    cluster: _common.Cluster,
    namespace: str,
    size: int,
    one: kube.Obj | None,
    *,
    raw: str,
    source: pathlib.Path | None,
) -> Sample:
    """Start an operator (from ``source`` when given), wait for its listing, read its RSS."""
    env = {**operator_bench.runner_env("noop"), **KEEP_ALL}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    operator = testing.start_operator(cluster.handle, namespace, **env)
    try:
        earlier = len(_listings(operator.log_path))  # the log is shared per namespace
        ready = _common.wait_operator_ready(operator)
        listed = _wait_listing(operator.log_path, earlier)
        assert operator.proc is not None
        pid = operator.proc.pid
        _settle(pid)
        sample = Sample(
            runs=size,
            listed=listed,
            rss_kib=_common.rss_kib(pid),
            peak_kib=_common.rss_kib(pid, "VmHWM"),
            ready_seconds=round(ready, 2),
            bytes_per_run=len(raw),
            managed_fields_bytes=_managed_fields_bytes(one),
            heap_per_run=_heap_bytes(raw),
            source=str(source or "this"),
        )
        _common.log(
            f"memory: {size} Runs ({listed} listed, operator {sample.source})"
            f" → RSS {sample.rss_kib / 1024:.0f} MiB"
        )
        return sample
    finally:
        operator.stop()


@dataclasses.dataclass
class Retained:
    """An operator deleting finished Runs down to its history limit."""

    present: int
    kept: int
    seconds: float
    """From the operator's start to the last deletion."""
    rss_kib: int
    """RSS once it is done and idle."""
    peak_kib: int

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def retention(
    cluster: _common.Cluster, namespace: str = "bench-memory", keep: int = 1000
) -> Retained:
    """Start an operator that keeps ``keep`` succeeded Runs per Agent; time the deletions."""
    rest = cluster.rest
    present = len(_names(rest, namespace))
    env = {**operator_bench.runner_env("noop"), **KEEP_ALL}
    env["BOSUN_RUN_HISTORY_SUCCEEDED"] = str(keep)
    _common.log(f"retention: deleting {present} finished Runs down to {keep}")
    started = time.monotonic()
    operator = testing.start_operator(cluster.handle, namespace, **env)
    try:
        # The operator's own count, polled: listing 10,000 Runs over and over would load the
        # API server that the deletions go through.
        testing.until(
            lambda: _deleted(operator) >= present - keep,
            timeout=1800,
            interval=0.5,
            what=f"retention to delete down to {keep} Runs",
        )
        seconds = time.monotonic() - started
        assert operator.proc is not None
        _settle(operator.proc.pid)
        found = Retained(
            present=present,
            kept=len(_names(rest, namespace)),
            seconds=round(seconds, 1),
            rss_kib=_common.rss_kib(operator.proc.pid),
            peak_kib=_common.rss_kib(operator.proc.pid, "VmHWM"),
        )
    finally:
        operator.stop()
    _common.log(
        f"retention: {present - found.kept} Runs deleted in {found.seconds:.0f} s"
        f" → RSS {found.rss_kib / 1024:.0f} MiB"
    )
    return found


def _deleted(operator: testing.OperatorProcess) -> float:
    """Runs the operator says it deleted (``bosun_runs_deleted_total``, every reason)."""
    try:
        with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    found = re.findall(r"^bosun_runs_deleted_total\{[^}]*\} ([0-9.e+]+)$", text, re.MULTILINE)
    return sum(float(value) for value in found)


def _names(rest: kube.Rest, namespace: str) -> list[str]:
    return [r["metadata"]["name"] for r in rest.list(constants.API_VERSION, "runs", namespace)]


def _listings(log_path: pathlib.Path) -> list[int]:
    """The Run counts of every "Listed initial state" line in an operator log."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [int(n) for n in re.findall(r"Listed initial state runs=(\d+)", text)]


def _wait_listing(log_path: pathlib.Path, earlier: int) -> int:
    """The Run count of the first listing logged after the ``earlier`` ones."""
    found = testing.until(
        lambda: _listings(log_path)[earlier:], what="the operator's initial listing in its log"
    )
    return found[0]


def _managed_fields_bytes(run: kube.Obj | None) -> int:
    fields = ((run or {}).get("metadata") or {}).get("managedFields")
    return len(json.dumps(fields, separators=(",", ":"))) if fields else 0


def _heap_bytes(raw: str, copies: int = 200) -> int:
    """Bytes of Python heap one parsed copy of the JSON document ``raw`` takes."""
    if not raw:
        return 0
    tracemalloc.start()
    try:
        parsed = [json.loads(raw) for _ in range(copies)]
        used, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del parsed
    return used // copies


def _create_finished(
    rest: kube.Rest, namespace: str, indexes: range, status: kube.Obj, threads: int
) -> None:
    def work(offset: int) -> None:
        name = f"done-{indexes[offset]:05d}"
        run = operator_bench.run_object(namespace, name, "real")
        rest.create(run)
        rest.merge_patch(
            constants.API_VERSION,
            "runs",
            namespace,
            name,
            {"status": aged(status)},
            subresource="status",
        )

    _common.run_parallel(work, len(indexes), threads)


def growth_per_thousand(samples: Sequence[Sample]) -> float:
    """Least-squares slope of RSS over Runs present, in KiB per 1,000 Runs."""
    xs = [s.runs for s in samples]
    ys = [s.rss_kib for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000,10000", help="comma-separated, ascending")
    parser.add_argument(
        "--compare", type=pathlib.Path, help="another source tree's operator/ folder to measure too"
    )
    parser.add_argument(
        "--keep", type=int, default=1000, help="history limit of the retention step"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with _common.local_control_plane() as cluster:
        samples = measure(cluster, sizes, finished_status(), compare=args.compare)
        retained = retention(cluster, keep=args.keep)
    rows = [
        (
            s.runs,
            s.source,
            f"{s.rss_kib / 1024:.1f} MiB",
            f"{s.peak_kib / 1024:.1f} MiB",
            f"{s.ready_seconds}",
        )
        for s in samples
    ]
    print(_common.table(("Runs present", "operator", "RSS", "peak RSS", "ready after (s)"), rows))
    ours = [s for s in samples if s.source == "this"]
    print(f"\nGrowth: {growth_per_thousand(ours) / 1024:.1f} MiB per 1,000 Runs")
    deleted = retained.present - retained.kept
    print(
        f"Retention: {deleted} of {retained.present} Runs deleted in {retained.seconds} s"
        f" ({deleted / max(retained.seconds, 0.1):.0f}/s); RSS after"
        f" {retained.rss_kib / 1024:.1f} MiB (peak {retained.peak_kib / 1024:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
