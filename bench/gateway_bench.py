"""The Webhook gateway: signed deliveries in, Runs stored, at a fixed rate and saturated.

    .venv/bin/python bench/gateway_bench.py [--rate R] [--paced N] [--batch N] [--threads T]

One ``bosun gateway`` process (the checkout's code) on the local control plane, one Webhook
(HMAC-SHA256, a CEL filter and input). Three loads, each delivery with its own id and
signature: ``--paced`` deliveries at ``--rate`` per second (open loop: sent on schedule
whatever the answers), a saturating ``--batch`` from ``--threads`` senders, and the same batch
again as redeliveries (each answered 200 with the Run the first made). Latency is the sender's,
request sent to answer read; a 202 is sent only after the API server stored the Run. Also the
gateway's CPU and peak RSS per load, and a check that every 202 has its Run. No operator runs:
this is the gateway's path alone. Prints figures; asserts nothing. ``report.py`` runs the same.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import statistics
import sys
import threading
import time
from typing import Any

import _common

from bosun import constants, contract
from bosun.dev import gateway as gateway_kit
from bosun.gateway import auth

KEY = b"bench-signing-key"


@dataclasses.dataclass
class GatewayLoad:
    name: str
    deliveries: int
    offered_rate: float | None
    seconds: float
    throughput: float
    """Answers per second, first send to last answer."""
    latency_median: float
    latency_p99: float
    statuses: dict[str, int]
    gateway_cpu_ms_per_delivery: float
    gateway_peak_rss_mib: float
    apiserver_cpu_ms_per_delivery: float

    def summary(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def _payload(delivery: str) -> dict[str, Any]:
    """A GitHub-like issue event; each delivery's own (the event names itself, as GitHub's
    do), and the same when it is redelivered."""
    issue = {"number": len(delivery), "title": f"Issue {delivery}", "body": "x" * 400}
    return {"action": "opened", "issue": issue, "event": delivery}


def _load(
    cluster: _common.Cluster,
    gateway: gateway_kit.GatewayProcess,
    sender: gateway_kit.Sender,
    name: str,
    ids: list[str],
    *,
    rate: float | None,
    threads: int,
) -> GatewayLoad:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    assert gateway.proc is not None
    meter = _common.CpuMeter(
        {"gateway": gateway.proc.pid, "apiserver": cluster.state.components["kube-apiserver"]}
    )
    senders = threads if rate is None else max(threads, 64)
    connected = threading.Barrier(senders + 1)
    clock: dict[str, float] = {}

    def sender_loop(first: int) -> None:
        sender.connect()  # each sender's HTTP client made before the clock starts
        connected.wait()
        for index in range(first, len(ids), senders):
            if rate is not None:
                delay = clock["started"] + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent = time.perf_counter()
            try:
                status = str(sender.send(_payload(ids[index]), ids[index]).status_code)
            except Exception as err:  # counted, not raised: a benchmark reports what happened
                status = type(err).__name__
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    workers = [threading.Thread(target=sender_loop, args=(n,)) for n in range(senders)]
    for worker in workers:
        worker.start()
    before = meter.sample()
    started = clock["started"] = time.monotonic()
    connected.wait()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started
    spent = meter.delta(before, meter.sample())
    return GatewayLoad(
        name=name,
        deliveries=len(ids),
        offered_rate=rate,
        seconds=seconds,
        throughput=len(ids) / seconds,
        latency_median=statistics.median(latencies),
        latency_p99=_common.percentile(latencies, 99),
        statuses=statuses,
        gateway_cpu_ms_per_delivery=spent["gateway"] * 1000 / len(ids),
        gateway_peak_rss_mib=_common.rss_kib(gateway.proc.pid, "VmHWM") / 1024,
        apiserver_cpu_ms_per_delivery=spent["apiserver"] * 1000 / len(ids),
    )


def gateway_phase(
    cluster: _common.Cluster, rate: float, paced: int, batch: int, threads: int
) -> dict[str, Any]:
    """The three loads against one gateway; their figures, and the 202s without a Run."""
    namespace = _common.create_namespace(cluster.rest, "bench-gateway")
    rest = cluster.rest
    rest.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook-key", "namespace": namespace},
            "data": {"key": base64.b64encode(KEY).decode()},
        }
    )
    rest.create(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Webhook",
            "metadata": {"name": "issues", "namespace": namespace},
            "spec": {
                "auth": {"hmac": {"secretRef": {"name": "hook-key", "key": "key"}}},
                "filter": "body.action == 'opened'",
                "input": "'Triage issue #' + string(body.issue.number) + ': ' + body.issue.title",
                "runTemplate": {"spec": {"agentRef": {"name": "triage"}}},
            },
        }
    )
    folder = cluster.handle.folder
    assert folder is not None
    gateway = gateway_kit.GatewayProcess(
        cluster.state.kubeconfig, (namespace,), folder / "logs" / "gateway-bench.log"
    )
    gateway.start()
    try:
        url = f"{gateway.url}/hooks/{namespace}/issues"
        with gateway_kit.Sender(url, KEY) as sender:
            paced_ids = [f"paced-{n}" for n in range(paced)]
            batch_ids = [f"batch-{n}" for n in range(batch)]
            loads = [
                _load(cluster, gateway, sender, "paced", paced_ids, rate=rate, threads=threads),
                _load(cluster, gateway, sender, "batch", batch_ids, rate=None, threads=threads),
                _load(cluster, gateway, sender, "redelivered", batch_ids, rate=None,
                      threads=threads),
            ]  # fmt: skip
    finally:
        gateway.stop()
    stored = {r["metadata"]["name"] for r in rest.list(constants.API_VERSION, "runs", namespace)}
    bodies = {json.dumps(_payload(d)).encode() for d in [*paced_ids, *batch_ids]}
    wanted = {
        contract.webhook_run_name("issues", auth.identity({"hmac": {}}, "", body))
        for body in bodies
    }
    return {
        "threads": threads,
        "loads": [load.summary() for load in loads],
        "runsStored": len(stored),
        "deliveriesWithoutRun": len(wanted - stored),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    with _common.local_control_plane() as cluster:
        found = gateway_phase(cluster, args.rate, args.paced, args.batch, args.threads)
    rows = [
        (
            load["name"],
            load["deliveries"],
            f"{load['offered_rate']:g}/s" if load["offered_rate"] else f"{args.threads} senders",
            f"{load['throughput']:.1f}/s",
            f"{load['latency_median'] * 1000:.1f} ms",
            f"{load['latency_p99'] * 1000:.1f} ms",
            ", ".join(f"{k}: {v}" for k, v in sorted(load["statuses"].items())),
            f"{load['gateway_cpu_ms_per_delivery']:.1f} ms",
            f"{load['gateway_peak_rss_mib']:.0f} MiB",
        )
        for load in found["loads"]
    ]
    header = ("load", "deliveries", "offered", "answered", "median", "p99", "statuses",
              "gateway CPU each", "gateway RSS peak")  # fmt: skip
    print(_common.table(header, rows))
    print(f"Runs stored: {found['runsStored']}; deliveries without a Run: "
          f"{found['deliveriesWithoutRun']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
