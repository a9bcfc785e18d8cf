"""Operator memory (RSS) with thousands of finished Runs present, and how it grows.

Finished Runs are what accumulates in a real namespace, so that is what is measured: Runs
created while no operator runs, each given the status of a real Succeeded Run (copied from
one the real runner finished, so every object has a realistic size). For each size an
operator is started for the namespace; once it is ready (its initial listing done) and its
CPU use has settled, ``VmRSS`` of its process is read from /proc, with ``VmHWM`` (the peak).
The operator only watches the namespace; nothing it does with these Runs writes anything.

    .venv/bin/python bench/memory.py --sizes 0,1000,10000
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import pathlib
import re
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import _common
import operator_bench

from bosun import constants, kube
from bosun.dev import testing


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

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def finished_status() -> kube.Obj:
    """A Succeeded Run's status, for when no real one is at hand (the CLI)."""
    stamp = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": kind,
            "status": value,
            "reason": "RunnerSucceeded",
            "message": "Attempt 1 succeeded",
            "lastTransitionTime": stamp,
            "observedGeneration": 1,
        }
        for kind, value in (("Queued", "False"), ("Running", "False"), ("Succeeded", "True"))
    ]
    return {
        "phase": "Succeeded",
        "conditions": conditions,
        "attempts": [{"number": 1, "job": "x-1", "startTime": stamp, "outcome": "Succeeded"}],
        "startTime": stamp,
        "completionTime": stamp,
        "output": "done",
        "usage": {"modelCalls": 2, "toolCalls": 1},
    }


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
    threads: int = 8,
) -> list[Sample]:
    """Operator RSS with each of ``sizes`` finished Runs present (sizes ascending)."""
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
        operator = testing.start_operator(
            cluster.handle, namespace, **operator_bench.runner_env("noop")
        )
        try:
            earlier = len(_listings(operator.log_path))  # the log is shared per namespace
            ready = _common.wait_operator_ready(operator)
            listed = _wait_listing(operator.log_path, earlier)
            assert operator.proc is not None
            _settle(operator.proc.pid)
            pid = operator.proc.pid
            samples.append(
                Sample(
                    runs=size,
                    listed=listed,
                    rss_kib=_common.rss_kib(pid),
                    peak_kib=_common.rss_kib(pid, "VmHWM"),
                    ready_seconds=round(ready, 2),
                    bytes_per_run=len(raw),
                    managed_fields_bytes=_managed_fields_bytes(one),
                    heap_per_run=_heap_bytes(raw),
                )
            )
            _common.log(
                f"memory: {size} Runs ({listed} listed) → RSS {samples[-1].rss_kib / 1024:.0f} MiB"
            )
        finally:
            operator.stop()
    return samples


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
            {"status": copy.deepcopy(status)},
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
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with _common.local_control_plane() as cluster:
        samples = measure(cluster, sizes, finished_status())
    rows = [
        (
            s.runs,
            f"{s.rss_kib / 1024:.1f} MiB",
            f"{s.peak_kib / 1024:.1f} MiB",
            f"{s.ready_seconds}",
        )
        for s in samples
    ]
    print(_common.table(("Runs present", "RSS", "peak RSS", "ready after (s)"), rows))
    print(f"\nGrowth: {growth_per_thousand(samples) / 1024:.1f} MiB per 1,000 Runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
