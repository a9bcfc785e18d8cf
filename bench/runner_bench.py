"""Benchmark of the runner's hot paths: governance decisions and journal writes.

    .venv/bin/python bench/runner_bench.py [--kubeconfig PATH] [--steps N] [--decisions N]

Governance: ``governance.decide_tool_call`` over 6 Policies with 40 rules (glob matches, CEL
``when`` expressions on arguments, agent and run, budgets), for a mix of calls. Journal: the
ConfigMap backend against a real API server (the local control plane is started in a
temporary folder unless ``--kubeconfig`` names a cluster), writing what one loop step writes:
the model response, the decision with the tool start, and the tool result. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from kubernetes import client

from bosun import cel, constants, kube
from bosun.api import agent as agent_api
from bosun.api import crdgen
from bosun.api import policy as policy_api
from bosun.api import tool as tool_api
from bosun.dev import daemon, kubeclient, provision
from bosun.runner import (
    conversation,
    governance,
    journal,
    journal_chunks,
    kubeapi,
    records,
)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _report(name: str, seconds: list[float], unit: str = "µs") -> None:
    scale = 1e6 if unit == "µs" else 1e3
    print(
        f"{name:<44} n={len(seconds):<6} median={statistics.median(seconds) * scale:9.1f} {unit}"
        f"  p99={_percentile(seconds, 0.99) * scale:9.1f} {unit}"
        f"  max={max(seconds) * scale:9.1f} {unit}"
    )


# --- governance ---------------------------------------------------------------------------------


def _policies(count: int = 6) -> list[policy_api.Policy]:
    """``count`` Policies of 8 rules each; every ``when`` expression is distinct."""
    policies = []
    for p in range(count):
        rules: list[dict[str, Any]] = [
            {"name": f"allow-{r}", "tools": [f"tool-{r}*", "lookup-*"], "action": "Allow"}
            for r in range(5)
        ]
        rules.append(
            {
                "name": "big",
                "tools": ["refund", "charge"],
                "when": f"double(args.amount) > {100 + p}.0",
                "action": "RequireApproval",
            }
        )
        rules.append(
            {
                "name": "team",
                "tools": ["*"],
                "when": f"agent.metadata.labels.team == 'billing' && "
                f"run.spec.input.startsWith('ticket') && size(args) < {10 + p}",
                "action": "Allow",
            }
        )
        rules.append({"name": "no-delete", "tools": [f"delete-{p}*"], "action": "Deny"})
        policies.append(
            policy_api.Policy.from_dict(
                {
                    "kind": "Policy",
                    "metadata": {"name": f"policy-{p}"},
                    "spec": {"rules": rules, "budgets": {"toolCallsPerHour": 1000}},
                }
            )
        )
    return policies


def bench_governance(count: int, policy_count: int = 6) -> list[float]:
    tools = ["refund", "charge", "tool-3x", "lookup-user", "delete-all", "unlisted"]
    agent_obj = {
        "kind": "Agent",
        "metadata": {"name": "a", "labels": {"team": "billing"}},
        "spec": {
            "model": {"provider": "scripted", "script": [{"reply": "x"}]},
            "tools": tools[:-1],
        },
    }
    agent = agent_api.Agent.from_dict(agent_obj)
    run = {"metadata": {"name": "r"}, "spec": {"agentRef": {"name": "a"}, "input": "ticket 42"}}
    policies = _policies(policy_count)
    evaluator = cel.Evaluator()
    timings: list[float] = []
    rng = random.Random(7)
    for n in range(count):
        name = tools[n % len(tools)]
        tool = tool_api.Tool.from_dict(
            {
                "kind": "Tool",
                "metadata": {"name": name},
                "spec": {"description": "d", "http": {"url": "http://t/x"}},
            }
        )
        args = {"amount": rng.randint(1, 300), "note": "x" * rng.randint(0, 200)}
        started = time.perf_counter()
        governance.decide_tool_call(
            agent=agent,
            policies=policies,
            tool_name=name,
            tool=tool,
            args=args,
            args_error=None,
            counters=governance.Counters(tool_calls_last_hour=n % 900),
            context={"agent": agent_obj, "run": run},
            evaluator=evaluator,
        )
        timings.append(time.perf_counter() - started)
    return timings


# --- journal ------------------------------------------------------------------------------------


def _step_records(step: int) -> list[list[records.Record]]:
    call = conversation.ToolCall(f"call_{step}", "lookup-user", {"user": f"u{step}", "n": step})
    turn = conversation.AssistantTurn("", (call,), conversation.TokenUsage(900 + step, 40), "m")
    result = json.dumps(
        {
            "user": f"u{step}",
            "orders": [{"id": i, "total": i * 3.5, "item": uuid.uuid4().hex} for i in range(12)],
        }
    )
    return [
        [records.ModelResponse(step=step, turn=turn, duration_ms=420.0)],
        [
            records.Decision(
                step=step,
                kind="tool",
                call_id=call.id,
                tool=call.name,
                outcome="allowed",
                action="Allow",
                reason="PolicyAllowed",
                message="",
                policy="p",
                rule="r",
                decision_micros=60,
            ),
            records.ToolStarted(
                step=step, call_id=call.id, tool=call.name, idempotency_key=uuid.uuid4().hex
            ),
        ],
        [
            records.ToolResult(
                step=step,
                call_id=call.id,
                tool=call.name,
                content=result,
                is_error=False,
                duration_ms=35.0,
            )
        ],
    ]


def _setup_namespace(
    api: client.ApiClient, kubectl: pathlib.Path, config: pathlib.Path
) -> tuple[str, str]:

    subprocess.run(
        [
            str(kubectl),
            f"--kubeconfig={config}",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
        ],
        input=crdgen.render_stream(),
        text=True,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(kubectl),
            f"--kubeconfig={config}",
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ],
        check=True,
        capture_output=True,
    )
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    custom = client.CustomObjectsApi(api)
    run = custom.create_namespaced_custom_object(
        constants.GROUP,
        constants.VERSION,
        namespace,
        "runs",
        {
            "apiVersion": constants.API_VERSION,
            "kind": "Run",
            "metadata": {"name": "bench"},
            "spec": {"agentRef": {"name": "a"}, "input": "bench"},
        },
    )
    return namespace, run["metadata"]["uid"]


def bench_journal(config: pathlib.Path, steps: int, chunk_kib: int) -> None:

    kubectl = provision.ensure(["kubectl"])["kubectl"]
    api = kubeclient.api_client(config)
    namespace, uid = _setup_namespace(api, kubectl, config)
    try:
        cluster = kubeapi.Cluster(namespace, kube.connect(config))
        backend = journal_chunks.ChunkBackend(cluster, "bench", uid, chunk_kib * 1024)
        the_journal = journal.Journal(backend, epoch=1, attempt=1)
        started = time.perf_counter()
        the_journal.open()
        open_seconds = time.perf_counter() - started
        per_step: list[float] = []
        for step in range(1, steps + 1):
            before = len(the_journal.write_seconds)
            for batch in _step_records(step):
                the_journal.write(*batch)
            per_step.append(sum(the_journal.write_seconds[before:]))
        _report("journal open (claim, empty)", [open_seconds], "ms")
        _report("journal write (one durable write)", the_journal.write_seconds, "ms")
        _report("journal writes per loop step (3 writes)", per_step, "ms")
        first, last = per_step[: steps // 10 or 1], per_step[-(steps // 10 or 1) :]
        print(
            f"{'per-step median, first vs last 10% of steps':<44} "
            f"{statistics.median(first) * 1e3:.1f} ms → {statistics.median(last) * 1e3:.1f} ms"
        )
        total = sum(len(journal_chunks.encode(c.records)) for c in backend.chunks)
        print(
            f"{'journal size':<44} {len(the_journal.records)} records, "
            f"{len(backend.chunks)} chunk(s), {total / 1024:.0f} KiB compressed"
        )
        reread = time.perf_counter()
        journal_chunks.ChunkBackend(cluster, "bench", uid).open(2)
        _report("journal open + replay load (all records)", [time.perf_counter() - reread], "ms")
        cluster.list_policies()  # warm-up: the first request to a fresh resource is slow
        policies = [time.perf_counter()]
        for _ in range(50):
            cluster.list_policies()
            policies.append(time.perf_counter())
        _report(
            "fresh Policy list through the API (empty)",
            [b - a for a, b in itertools.pairwise(policies)],
            "ms",
        )
    finally:
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=pathlib.Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--chunk-kib", type=int, default=128, help="journal chunk size")
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]}")
    for count in (1, 6):
        timings = bench_governance(args.decisions, count)
        rules = sum(len(p.spec.rules) for p in _policies(count))
        _report(f"governance decision ({count} policies, {rules} rules)", timings)
    if args.kubeconfig:
        bench_journal(args.kubeconfig, args.steps, args.chunk_kib)
        return 0

    with tempfile.TemporaryDirectory(prefix="bosun-bench-") as folder:
        state = daemon.up(pathlib.Path(folder), attached=True, log=lambda _m: None)
        try:
            bench_journal(state.kubeconfig, args.steps, args.chunk_kib)
        finally:
            daemon.down(pathlib.Path(folder), log=lambda _m: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
