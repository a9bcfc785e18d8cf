"""Operator benchmark: admission latency and API writes per successful single-attempt Run.

Starts its own local control plane and operator (stand-in runner), creates N Runs, and measures
from an outside observer: the time from each Run's create call returning to its first Job
appearing in a watch (admission latency), the time to Succeeded (end-to-end), sustained
throughput, and the API server's own count of mutating requests (apiserver_request_total) per
Run, by resource. Prints a Markdown table; nothing here is asserted.

    .venv/bin/python bench/operator_bench.py --runs 200
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import statistics
import sys
import tempfile
import threading
import time

from bosun import constants, contract, kube
from bosun.dev import daemon, provision, testing

MUTATING = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def api_writes(rest: kube.Rest) -> collections.Counter[str]:
    """Mutating requests the API server has served so far, by resource."""
    response = rest.api.call_api(
        "/metrics",
        "GET",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    counts: collections.Counter[str] = collections.Counter()
    for line in response.data.decode().splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("verb") in MUTATING:
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[resource] += int(float(match.group("value")))
    return counts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def watch_jobs(
    rest: kube.Rest, namespace: str, seen: dict[str, float], stop: threading.Event
) -> None:
    path = kube.collection_path("batch/v1", "jobs", namespace)
    while not stop.is_set():
        try:
            _watch_once(rest, path, seen, stop)
        except Exception:
            time.sleep(0.2)


def _watch_once(rest: kube.Rest, path: str, seen: dict[str, float], stop: threading.Event) -> None:
    response = rest.api.call_api(
        path,
        "GET",
        query_params=[("watch", "true"), ("timeoutSeconds", "30")],
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    for line in response:
        event = json.loads(line)
        if event["type"] == "ADDED":
            run = event["object"]["metadata"]["labels"].get(constants.LABEL_RUN, "")
            seen.setdefault(run, time.monotonic())
        if stop.is_set():
            break


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="Runs created per second")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--runner",
        choices=("standin", "noop"),
        default="standin",
        help="standin: a Python stand-in that takes the Lease; noop: 'sh -c exit 0', which "
        "measures the operator without the cost of starting Python in every pod",
    )
    args = parser.parse_args()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="bosun-bench-"))
    state = daemon.up(folder, attached=True, log=lambda _m: None)
    handle = testing.ControlPlaneHandle(
        state.kubeconfig, folder, provision.ensure(["kubectl"])["kubectl"]
    )
    from bosun.api import crdgen

    handle.kubectl("apply", "--server-side", "-f", "-", input=crdgen.render_stream())
    names = [f"crd/{crdgen.crd_name(info)}" for info in crdgen.KINDS]
    handle.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    rest = kube.Rest(kube.api_client(state.kubeconfig))
    namespace = "bench"
    rest.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    testing.until(
        lambda: rest.get("v1", "serviceaccounts", namespace, "default"), what="default SA"
    )
    runner_env = {}
    if args.runner == "noop":
        runner_env = {
            "BOSUN_RUNNER_IMAGE": "busybox",
            "BOSUN_RUNNER_COMMAND": '["sh", "-c", "exit 0"]',
        }
    operator = testing.start_operator(
        handle,
        namespace,
        BOSUN_MAX_CONCURRENT_RUNS=str(args.concurrency),
        BOSUN_LEASE_DURATION_SECONDS="15",
        **runner_env,
    )
    stop = threading.Event()
    try:
        rest.create(
            {
                "apiVersion": constants.API_VERSION,
                "kind": "Agent",
                "metadata": {"name": "bench", "namespace": namespace},
                "spec": {
                    "model": {"provider": "scripted", "script": [{"reply": "ok"}]},
                    "concurrency": {"maxConcurrentRuns": args.concurrency},
                },
            }
        )
        testing.until(
            lambda: urllib_ok(operator.health_url.replace("healthz", "readyz")),
            what="operator ready",
        )
        job_seen: dict[str, float] = {}
        watcher = threading.Thread(
            target=watch_jobs, args=(rest, namespace, job_seen, stop), daemon=True
        )
        watcher.start()
        time.sleep(1.0)
        before = api_writes(rest)
        created: dict[str, float] = {}
        started = time.monotonic()
        for index in range(args.runs):
            name = f"bench-{index:05d}"
            target = started + index / args.rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rest.create(
                {
                    "apiVersion": constants.API_VERSION,
                    "kind": "Run",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "agentRef": {"name": "bench"},
                        "input": '{"standin": {"sleepSeconds": 0}}',
                    },
                }
            )
            created[name] = time.monotonic()
        done: dict[str, float] = {}

        def all_done() -> bool:
            for run in rest.list(constants.API_VERSION, "runs", namespace):
                name = run["metadata"]["name"]
                if (run.get("status") or {}).get("phase") == "Succeeded" and name not in done:
                    done[name] = time.monotonic()
            return len(done) == args.runs

        testing.until(all_done, timeout=1800, interval=0.25, what="all runs to succeed")
        elapsed = time.monotonic() - started
        time.sleep(2.0)
        after = api_writes(rest)
        attempts = [
            len((r.get("status") or {}).get("attempts") or [])
            for r in rest.list(constants.API_VERSION, "runs", namespace)
        ]
    finally:
        stop.set()
        operator.stop()
        daemon.down(folder, log=lambda _m: None)
    admission = [job_seen[n] - created[n] for n in created if n in job_seen]
    end_to_end = [done[n] - created[n] for n in created]
    delta = after - before
    total = sum(delta.values())
    print(
        f"# Operator benchmark ({args.runs} Runs at {args.rate}/s, "
        f"concurrency {args.concurrency}, runner {args.runner})"
    )
    print()
    print("| figure | value |")
    print("|---|---|")
    median_ms = statistics.median(admission) * 1000
    print(f"| admission latency (Run created → Job seen), median | {median_ms:.0f} ms |")
    print(f"| admission latency, p99 | {percentile(admission, 99) * 1000:.0f} ms |")
    print(
        f"| end-to-end (created → Succeeded seen), median | {statistics.median(end_to_end):.2f} s |"
    )
    print(f"| end-to-end, p99 | {percentile(end_to_end, 99):.2f} s |")
    print(f"| throughput | {args.runs / elapsed:.2f} Runs/s |")
    print(f"| attempts per Run | {statistics.mean(attempts):.2f} |")
    print(f"| API writes per Run (all clients) | {total / args.runs:.1f} |")
    print()
    print("| resource | writes per Run |")
    print("|---|---|")
    for resource, count in delta.most_common():
        print(f"| {resource} | {count / args.runs:.2f} |")
    example = contract.job_name("bench-00000", 1)
    print(f"\nJob names are deterministic: attempt 1 of bench-00000 is {example}")
    return 0


def urllib_ok(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
