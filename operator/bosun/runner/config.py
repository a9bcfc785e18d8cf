"""The runner's settings: one typed object read from ``BOSUN_*`` environment variables.

The operator sets the contract variables (``contract.ENV_*``); the ``BOSUN_RUNNER_*`` ones are
optional tuning knobs with safe defaults (tests shorten the waits). Nothing else in the runner
reads the environment, except Tool headers whose values arrive as Secret-backed variables.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from bosun import contract, retry

__all__ = [
    "ENV_APPROVAL_POLL",
    "ENV_JOURNAL_CHUNK_BYTES",
    "ENV_LOG_LEVEL",
    "ENV_MAX_RETRY_AFTER",
    "ENV_MODEL_BACKOFF",
    "ENV_MODEL_MAX_BACKOFF",
    "ENV_MODEL_RESPONSE_MAX_BYTES",
    "ENV_MODEL_RETRIES",
    "ENV_OTLP_ENDPOINT",
    "ENV_STATUS_INTERVAL",
    "ENV_TOOL_RESPONSE_MAX_BYTES",
    "JOURNAL_RECORD_HEADROOM_BYTES",
    "JOURNAL_WRITE_MAX_BYTES",
    "MODEL_TURN_MAX_BYTES",
    "RESPONSE_MAX_BYTES",
    "ConfigError",
    "Settings",
]

_N = TypeVar("_N", int, float)

ENV_APPROVAL_POLL = "BOSUN_RUNNER_APPROVAL_POLL_SECONDS"
ENV_MODEL_RETRIES = "BOSUN_RUNNER_MODEL_MAX_RETRIES"
ENV_MODEL_BACKOFF = "BOSUN_RUNNER_MODEL_BACKOFF_SECONDS"
ENV_MODEL_MAX_BACKOFF = "BOSUN_RUNNER_MODEL_MAX_BACKOFF_SECONDS"
ENV_MAX_RETRY_AFTER = "BOSUN_RUNNER_MAX_RETRY_AFTER_SECONDS"
ENV_JOURNAL_CHUNK_BYTES = "BOSUN_RUNNER_JOURNAL_CHUNK_BYTES"
ENV_LOG_LEVEL = "BOSUN_RUNNER_LOG_LEVEL"
ENV_MODEL_RESPONSE_MAX_BYTES = "BOSUN_RUNNER_MODEL_RESPONSE_MAX_BYTES"
ENV_TOOL_RESPONSE_MAX_BYTES = "BOSUN_RUNNER_TOOL_RESPONSE_MAX_BYTES"
ENV_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_STATUS_INTERVAL = "BOSUN_RUNNER_STATUS_INTERVAL_SECONDS"


class ConfigError(ValueError):
    """A required variable is missing or a value does not parse."""


_MODEL = retry.MODEL_CALL_DEFAULTS

JOURNAL_WRITE_MAX_BYTES = 512 * 1024
"""The largest single journal write (its records as compressed JSON lines) that one chunk is
sure to hold. A write that does not fit the newest chunk starts a chunk of its own, so this is
what bounds a chunk's size: half of the API server's 1 MiB limit on a ConfigMap's data, which
leaves room for the base64 form a custom resource would store and for the metadata."""

JOURNAL_RECORD_HEADROOM_BYTES = 4 * 1024
"""What a record adds around the payload it holds: type, stamp, step, duration and zlib's
framing (at most 5 bytes per 16 KiB block of stored, incompressible data, plus 6)."""

RESPONSE_MAX_BYTES = 1024 * 1024
"""The default cap on the bytes of a model's or a tool's response body."""

MODEL_TURN_MAX_BYTES = JOURNAL_WRITE_MAX_BYTES - JOURNAL_RECORD_HEADROOM_BYTES
"""The largest model turn (its ``AssistantTurn.to_json`` as compact UTF-8 JSON, the form the
journal stores) a provider returns: its ``modelResponse`` record, written alone, then always
fits in one chunk. Compressing never grows data by more than the headroom above, so the bound
holds for any text, including text that does not compress."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the runner needs to know before it talks to anyone."""

    run_name: str
    namespace: str
    run_uid: str
    attempt: int
    pod_name: str
    lease_name: str
    lease_duration_seconds: float = float(contract.LEASE_DURATION_SECONDS)
    model_api_key: str = dataclasses.field(default="", repr=False)
    approval_poll_seconds: float = 2.0
    status_interval_seconds: float = 3.0
    """Progress (usage, steps) reaches the Run's status at most this often; approvals and the
    output at once."""
    model_max_retries: int = _MODEL.max_attempts - 1
    model_backoff_seconds: float = _MODEL.initial_backoff_seconds
    model_max_backoff_seconds: float = _MODEL.max_backoff_seconds
    max_retry_after_seconds: float = 300.0
    journal_chunk_bytes: int = 128 * 1024
    output_max_chars: int = 16 * 1024
    tool_result_max_chars: int = 32 * 1024
    model_response_max_bytes: int = RESPONSE_MAX_BYTES
    """Bytes of a model's HTTP response body read at most (after content decoding); a longer
    response fails the call (``providers.ModelResponseInvalid``) without being read further."""
    tool_response_max_bytes: int = RESPONSE_MAX_BYTES
    """Bytes of an HTTP or MCP tool's response read at most; the rest is not read and the
    result says it was truncated."""
    log_level: str = "INFO"
    otlp_endpoint: str | None = None
    namespace_labels: Mapping[str, str] | None = None
    """The Run's namespace's labels when the operator created this attempt (what
    ClusterPolicies' namespaceSelectors match); None when it passed none, and then a
    ClusterPolicy selecting namespaces by label denies every call (fail closed)."""

    @property
    def model_pacing(self) -> retry.Policy:
        """Tries and backoff of one model call: the retries configured here, after the first."""
        return dataclasses.replace(
            _MODEL,
            max_attempts=self.model_max_retries + 1,
            initial_backoff_seconds=self.model_backoff_seconds,
            max_backoff_seconds=self.model_max_backoff_seconds,
        )

    @property
    def lease_renew_seconds(self) -> float:
        """Renew well inside the lease: the contract's interval, or a third of a short lease."""
        return min(float(contract.LEASE_RENEW_SECONDS), self.lease_duration_seconds / 3)

    @property
    def identity(self) -> str:
        """The Lease holder identity: the pod, which is unique per attempt."""
        return self.pod_name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        missing = [
            name
            for name in (
                contract.ENV_RUN_NAME,
                contract.ENV_RUN_NAMESPACE,
                contract.ENV_RUN_UID,
                contract.ENV_ATTEMPT,
            )
            if not source.get(name)
        ]
        if missing:
            raise ConfigError(f"missing environment variables: {', '.join(missing)}")
        run = source[contract.ENV_RUN_NAME]
        return cls(
            run_name=run,
            namespace=source[contract.ENV_RUN_NAMESPACE],
            run_uid=source[contract.ENV_RUN_UID],
            attempt=_number(source, contract.ENV_ATTEMPT, int, 1),
            pod_name=source.get(contract.ENV_POD_NAME) or source.get("HOSTNAME") or run,
            lease_name=source.get(contract.ENV_LEASE_NAME) or contract.lease_name(run),
            **_tuning(source),
        )

    @classmethod
    def for_pool(cls, env: Mapping[str, str] | None = None) -> Settings:
        """A pool worker's settings: its pod and tuning; each claimed attempt then gets
        ``dataclasses.replace`` with its Run, attempt and Lease."""
        source = os.environ if env is None else env
        pod = source.get(contract.ENV_POD_NAME) or source.get("HOSTNAME") or ""
        namespace = source.get(contract.ENV_RUN_NAMESPACE) or ""
        if not pod or not namespace or not source.get(contract.ENV_POOL_AGENT):
            raise ConfigError(
                f"a pool worker needs {contract.ENV_POOL_AGENT}, {contract.ENV_RUN_NAMESPACE}"
                f" and {contract.ENV_POD_NAME}"
            )
        return cls(
            run_name="",
            namespace=namespace,
            run_uid="",
            attempt=0,
            pod_name=pod,
            lease_name=contract.worker_lease_name(pod),
            **_tuning(source),
        )


def _tuning(source: Mapping[str, str]) -> dict[str, Any]:
    """The settings every runner reads the same way, Job or pool worker."""
    return dict(
        lease_duration_seconds=_number(
            source, contract.ENV_LEASE_DURATION, float, float(contract.LEASE_DURATION_SECONDS)
        ),
        model_api_key=source.get(contract.ENV_MODEL_API_KEY, ""),
        approval_poll_seconds=_number(source, ENV_APPROVAL_POLL, float, 2.0),
        status_interval_seconds=_number(source, ENV_STATUS_INTERVAL, float, 3.0),
        model_max_retries=_number(source, ENV_MODEL_RETRIES, int, _MODEL.max_attempts - 1),
        model_backoff_seconds=_number(
            source, ENV_MODEL_BACKOFF, float, _MODEL.initial_backoff_seconds
        ),
        model_max_backoff_seconds=_number(
            source, ENV_MODEL_MAX_BACKOFF, float, _MODEL.max_backoff_seconds
        ),
        max_retry_after_seconds=_number(source, ENV_MAX_RETRY_AFTER, float, 300.0),
        journal_chunk_bytes=_number(source, ENV_JOURNAL_CHUNK_BYTES, int, 128 * 1024),
        model_response_max_bytes=_positive(
            _number(source, ENV_MODEL_RESPONSE_MAX_BYTES, int, RESPONSE_MAX_BYTES),
            ENV_MODEL_RESPONSE_MAX_BYTES,
        ),
        tool_response_max_bytes=_positive(
            _number(source, ENV_TOOL_RESPONSE_MAX_BYTES, int, RESPONSE_MAX_BYTES),
            ENV_TOOL_RESPONSE_MAX_BYTES,
        ),
        log_level=source.get(ENV_LOG_LEVEL, "INFO").upper(),
        otlp_endpoint=source.get(ENV_OTLP_ENDPOINT) or None,
        namespace_labels=_labels(source.get(contract.ENV_NAMESPACE_LABELS)),
    )


def _number(source: Mapping[str, str], name: str, kind: type[_N], default: _N) -> _N:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from err
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def _labels(raw: str | None) -> Mapping[str, str] | None:
    """The namespace's labels from their JSON object; None when not given."""
    if raw is None or raw == "":
        return None
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{contract.ENV_NAMESPACE_LABELS} is not JSON: {err}") from err
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise ConfigError(f"{contract.ENV_NAMESPACE_LABELS} is not an object of strings")
    return dict(parsed)


def _positive(value: int, name: str) -> int:
    if value <= 0:
        raise ConfigError(f"{name}={value} must be positive")
    return value
