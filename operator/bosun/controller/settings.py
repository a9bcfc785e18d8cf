"""The operator's settings: one typed object read from ``BOSUN_*`` environment variables."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from bosun import contract
from bosun.controller import fairshare

__all__ = ["Settings"]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from err


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A setting that is a number of things or seconds: an integer, 0 or more."""
    value = _int(env, name, default)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the operator can be configured with."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means the whole cluster (BOSUN_NAMESPACES, comma-separated)."""
    max_concurrent_runs: int = 100
    """Operator-wide cap on Runs with an active attempt (BOSUN_MAX_CONCURRENT_RUNS)."""
    runner_image: str = "ghcr.io/bosun-dev/bosun-runner:0.1.0"
    """Image of the runner container (BOSUN_RUNNER_IMAGE)."""
    runner_command: tuple[str, ...] = ()
    """Command of the runner container; empty uses the image's entrypoint
    (BOSUN_RUNNER_COMMAND, a JSON list)."""
    runner_env: tuple[tuple[str, str], ...] = ()
    """Extra environment for every runner container, such as the runner's own tunables
    (BOSUN_RUNNER_ENV, a JSON object of strings)."""
    lease_duration_seconds: int = contract.LEASE_DURATION_SECONDS
    """How long a runner's Lease lives without renewal (BOSUN_LEASE_DURATION_SECONDS)."""
    start_timeout_seconds: int = 600
    """How long an attempt's runner may take to acquire the Run's Lease before the attempt is
    ended as Lost and retried: covers pods that never start or die before they begin
    (BOSUN_START_TIMEOUT_SECONDS)."""
    attempt_timeout_seconds: int = 3600
    """activeDeadlineSeconds of an attempt's Job when the Agent sets no runTimeoutSeconds
    (BOSUN_ATTEMPT_TIMEOUT_SECONDS)."""
    workers: int = 4
    """Reconcile workers (BOSUN_WORKERS)."""
    metrics_port: int = 8080
    """Port of the /metrics endpoint; 0 disables it (BOSUN_METRICS_PORT)."""
    health_port: int = 8081
    """Port of the /healthz liveness endpoint; 0 disables it (BOSUN_HEALTH_PORT)."""
    leader_election: bool = True
    """Only the holder of the operator's Lease reconciles (BOSUN_LEADER_ELECTION)."""
    leader_namespace: str = "default"
    """Namespace of the leader-election Lease (BOSUN_LEADER_NAMESPACE; the chart sets the
    release namespace)."""
    leader_lease_seconds: int = 15
    """Leader Lease duration (BOSUN_LEADER_LEASE_SECONDS)."""

    max_concurrent_runs_per_namespace: int = 0
    """Cap on one namespace's Runs with an active attempt; 0 means none beyond the
    operator-wide cap (BOSUN_MAX_CONCURRENT_RUNS_PER_NAMESPACE)."""
    fair_share_weights: tuple[tuple[str, float], ...] = ()
    """Share of the operator-wide slots per namespace, relative to 1 for a namespace not
    listed (BOSUN_FAIR_SHARE_WEIGHTS, a JSON object of positive numbers)."""
    priority_classes: tuple[tuple[str, fairshare.PriorityClass], ...] = ()
    """The priority classes Runs may name (BOSUN_PRIORITY_CLASSES, a JSON object: name ->
    ``{"value": int, "namespaces": [...]}``, an empty or absent list allowing every namespace)."""
    default_priority_class: str = ""
    """The class of a Run that names none (BOSUN_DEFAULT_PRIORITY_CLASS); empty: tier 0."""

    usage_interval_seconds: int = 5
    """How soon after a Run changes its Agent's hourly usage is published again, batching the
    changes in between (BOSUN_USAGE_INTERVAL_SECONDS)."""

    run_ttl_seconds: int = 604_800
    """ttlSecondsAfterFinished of Runs that set none: a finished Run is deleted this long after
    its completionTime; 0 keeps such Runs (BOSUN_RUN_TTL_SECONDS, default 7 days)."""
    run_history_succeeded: int = 1000
    """Succeeded Runs kept per Agent whose spec.history sets none; 0 keeps every one
    (BOSUN_RUN_HISTORY_SUCCEEDED)."""
    run_history_failed: int = 1000
    """Failed, Cancelled and Duplicate Runs kept per Agent whose spec.history sets none; 0 keeps
    every one (BOSUN_RUN_HISTORY_FAILED)."""
    retention_interval_seconds: int = 300
    """Longest time between two retention sweeps; a sweep also runs when the next TTL it knows
    of expires and soon after an Agent changes (BOSUN_RETENTION_INTERVAL_SECONDS)."""

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.fair_share_weights)

    @property
    def classes(self) -> dict[str, fairshare.PriorityClass]:
        return dict(self.priority_classes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        command: tuple[str, ...] = ()
        raw_command = env.get("BOSUN_RUNNER_COMMAND")
        if raw_command:
            parsed = json.loads(raw_command)
            if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
                raise ValueError("BOSUN_RUNNER_COMMAND must be a JSON list of strings")
            command = tuple(parsed)
        runner_env: tuple[tuple[str, str], ...] = ()
        raw_env = env.get("BOSUN_RUNNER_ENV")
        if raw_env:
            parsed_env = json.loads(raw_env)
            if not isinstance(parsed_env, dict) or not all(
                isinstance(v, str) for v in parsed_env.values()
            ):
                raise ValueError("BOSUN_RUNNER_ENV must be a JSON object of strings")
            runner_env = tuple(sorted(parsed_env.items()))
        namespaces = tuple(
            ns.strip() for ns in env.get("BOSUN_NAMESPACES", "").split(",") if ns.strip()
        )
        return cls(
            namespaces=namespaces,
            max_concurrent_runs=_int(env, "BOSUN_MAX_CONCURRENT_RUNS", cls.max_concurrent_runs),
            runner_image=env.get("BOSUN_RUNNER_IMAGE", cls.runner_image),
            runner_command=command,
            runner_env=runner_env,
            lease_duration_seconds=_int(
                env, "BOSUN_LEASE_DURATION_SECONDS", cls.lease_duration_seconds
            ),
            start_timeout_seconds=_int(
                env, "BOSUN_START_TIMEOUT_SECONDS", cls.start_timeout_seconds
            ),
            attempt_timeout_seconds=_int(
                env, "BOSUN_ATTEMPT_TIMEOUT_SECONDS", cls.attempt_timeout_seconds
            ),
            workers=max(1, _int(env, "BOSUN_WORKERS", cls.workers)),
            metrics_port=_int(env, "BOSUN_METRICS_PORT", cls.metrics_port),
            health_port=_int(env, "BOSUN_HEALTH_PORT", cls.health_port),
            leader_election=_bool(env, "BOSUN_LEADER_ELECTION", cls.leader_election),
            leader_namespace=env.get("BOSUN_LEADER_NAMESPACE", cls.leader_namespace),
            leader_lease_seconds=_int(env, "BOSUN_LEADER_LEASE_SECONDS", cls.leader_lease_seconds),
            max_concurrent_runs_per_namespace=max(
                0, _int(env, "BOSUN_MAX_CONCURRENT_RUNS_PER_NAMESPACE", 0)
            ),
            fair_share_weights=_weights(env.get("BOSUN_FAIR_SHARE_WEIGHTS")),
            priority_classes=_classes(env.get("BOSUN_PRIORITY_CLASSES")),
            default_priority_class=env.get("BOSUN_DEFAULT_PRIORITY_CLASS", ""),
            usage_interval_seconds=max(
                1, _int(env, "BOSUN_USAGE_INTERVAL_SECONDS", cls.usage_interval_seconds)
            ),
            run_ttl_seconds=_count(env, "BOSUN_RUN_TTL_SECONDS", cls.run_ttl_seconds),
            run_history_succeeded=_count(
                env, "BOSUN_RUN_HISTORY_SUCCEEDED", cls.run_history_succeeded
            ),
            run_history_failed=_count(env, "BOSUN_RUN_HISTORY_FAILED", cls.run_history_failed),
            retention_interval_seconds=max(
                1, _int(env, "BOSUN_RETENTION_INTERVAL_SECONDS", cls.retention_interval_seconds)
            ),
        )


def _weights(raw: str | None) -> tuple[tuple[str, float], ...]:
    if not raw:
        return ()
    parsed = json.loads(raw)
    if not isinstance(parsed, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in parsed.values()
    ):
        raise ValueError("BOSUN_FAIR_SHARE_WEIGHTS must be a JSON object of positive numbers")
    return tuple(sorted((str(k), float(v)) for k, v in parsed.items()))


def _classes(raw: str | None) -> tuple[tuple[str, fairshare.PriorityClass], ...]:
    if not raw:
        return ()
    parsed = json.loads(raw)
    problem = "BOSUN_PRIORITY_CLASSES must map names to {value: integer, namespaces: [names]}"
    if not isinstance(parsed, dict):
        raise ValueError(problem)
    classes = []
    for name, spec in parsed.items():
        value = spec.get("value") if isinstance(spec, dict) else None
        namespaces = (spec.get("namespaces") or []) if isinstance(spec, dict) else None
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not isinstance(namespaces, list)
            or not all(isinstance(n, str) for n in namespaces)
        ):
            raise ValueError(f"{problem}; {name!r} is not")
        classes.append((str(name), fairshare.PriorityClass(value, frozenset(namespaces))))
    return tuple(sorted(classes, key=lambda c: c[0]))
