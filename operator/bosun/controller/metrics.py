"""The operator's Prometheus metrics, all named ``bosun_*``, and the endpoint serving them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "ACTIVE_RUNS",
    "ADMISSION_LATENCY",
    "ATTEMPTS",
    "ATTEMPTS_STARTED",
    "DEAD_LETTERS",
    "LEADER",
    "LEASE_TAKEOVERS",
    "POOLS",
    "QUEUE_DEPTH",
    "RECONCILE",
    "RECONCILE_ERRORS",
    "REGISTRY",
    "RETRIES",
    "RUNS",
    "RUNS_DELETED",
    "RUN_DURATION",
    "SCHEDULE_FIRES",
    "TOKENS",
    "TOOL_CALLS",
    "PoolFigures",
    "serve",
]

REGISTRY = prometheus_client.CollectorRegistry()

RUNS = prometheus_client.Counter(
    "bosun_runs_total",
    "Runs that reached a final phase, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
RUN_DURATION = prometheus_client.Histogram(
    "bosun_run_duration_seconds",
    "Time from a Run's creation to its final phase.",
    ["outcome"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
QUEUE_DEPTH = prometheus_client.Gauge(
    "bosun_queue_depth",
    "Runs waiting for their next attempt, by why they wait (AgentNotFound, WaitingForCapacity,"
    " BudgetExceeded, RetryScheduled, Reconciling); suspended and cancelled Runs do not count.",
    ["reason"],
    registry=REGISTRY,
)
ACTIVE_RUNS = prometheus_client.Gauge(
    "bosun_active_runs", "Runs with an attempt in progress.", registry=REGISTRY
)
ATTEMPTS = prometheus_client.Counter(
    "bosun_attempts_total", "Attempts that ended, by outcome.", ["outcome"], registry=REGISTRY
)
ATTEMPTS_STARTED = prometheus_client.Counter(
    "bosun_attempts_started_total", "Attempts started (a Job created).", registry=REGISTRY
)
DEAD_LETTERS = prometheus_client.Counter(
    "bosun_dead_letters_total", "Runs dead-lettered after their last attempt.", registry=REGISTRY
)
RUNS_DELETED = prometheus_client.Counter(
    "bosun_runs_deleted_total",
    "Finished Runs deleted by retention, by reason (TTLExpired, HistoryLimit).",
    ["reason"],
    registry=REGISTRY,
)
SCHEDULE_FIRES = prometheus_client.Counter(
    "bosun_schedule_fires_total",
    "Schedule fire times handled, by outcome: Fired (a Run created), Skipped (the overlap"
    " policy) or Missed (too late, or the Run refused).",
    ["outcome"],
    registry=REGISTRY,
)
RETRIES = prometheus_client.Counter(
    "bosun_retries_scheduled_total", "Retries scheduled with backoff.", registry=REGISTRY
)
LEASE_TAKEOVERS = prometheus_client.Counter(
    "bosun_lease_takeovers_total",
    "Attempts ended as Lost because their runner's Lease expired.",
    registry=REGISTRY,
)
TOOL_CALLS = prometheus_client.Counter(
    "bosun_tool_calls_total",
    "Tool calls of finished Runs, by outcome (executed, denied).",
    ["outcome"],
    registry=REGISTRY,
)
TOKENS = prometheus_client.Counter(
    "bosun_tokens_total",
    "Model tokens of finished Runs, by model and direction.",
    ["model", "direction"],
    registry=REGISTRY,
)
ADMISSION_LATENCY = prometheus_client.Histogram(
    "bosun_admission_latency_seconds",
    "Time from a Run's creation to its first Job.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RECONCILE = prometheus_client.Histogram(
    "bosun_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
LEADER = prometheus_client.Gauge(
    "bosun_leader", "1 while this operator replica leads and reconciles, else 0.", registry=REGISTRY
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "bosun_reconcile_errors_total", "Reconciles that raised, by kind.", ["kind"], registry=REGISTRY
)


PoolFigures = tuple[str, str, int, int, int, int]
"""(namespace, agent, waiting attempts, claimed attempts, free slots, ready workers)."""


class _PoolCollector(Collector):
    """Per pooled Agent, read from the operator's store at each scrape: what autoscaling
    watches (labels namespace and agent, bounded by the Agents that have a pool)."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[PoolFigures]] = tuple

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "agent"]
        waiting = GaugeMetricFamily(
            "bosun_pool_queue_depth",
            "Runs of a pooled Agent waiting for a worker: queued for admission, or offered and"
            " not yet claimed (scale the pool out while it stays above 0).",
            labels=labels,
        )
        claimed = GaugeMetricFamily(
            "bosun_pool_claimed_runs", "Attempts the pool's workers hold now.", labels=labels
        )
        free = GaugeMetricFamily(
            "bosun_pool_free_slots",
            "Attempts the pool's ready workers could take on now (runsPerWorker each).",
            labels=labels,
        )
        ready = GaugeMetricFamily(
            "bosun_pool_workers_ready", "Ready worker pods of the pool.", labels=labels
        )
        for namespace, agent, queued, held, slots, workers in self.source():
            waiting.add_metric([namespace, agent], queued)
            claimed.add_metric([namespace, agent], held)
            free.add_metric([namespace, agent], slots)
            ready.add_metric([namespace, agent], workers)
        yield from (waiting, claimed, free, ready)


POOLS = _PoolCollector()
"""Set ``POOLS.source`` to where the figures come from (the running controller's store)."""
REGISTRY.register(POOLS)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` in a background thread (0 disables it)."""
    if port:
        prometheus_client.start_http_server(port, registry=REGISTRY)
