"""Structured JSON logs: one object per line with run, attempt, step, tool and decision.

``configure`` installs the formatter on the root logger; ``bind`` gives a logger adapter that
stamps the run's identity on every line. Extra keys passed with ``extra={"fields": {...}}``
become top-level keys, so an audit line reads ``{"msg": "Denied tool call", "tool": ...}``.
Given the Secret values the runner holds, the formatter blanks them from every rendered line
(``redaction.blank``, which also catches their JSON-escaped form), whatever logged them.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, TextIO

from bosun.runner import redaction

__all__ = [
    "SCOPE",
    "IdentityFilter",
    "JSONFormatter",
    "RunLogger",
    "bind",
    "configure",
    "record",
]

SCOPE: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "log_scope", default=None
)
"""The identity of the Run the current thread works for, over the process's own: a pool
worker executes many Runs at once, each in its thread (and the threads it hands requests to,
which copy its context)."""

_RESERVED = {"time", "level", "logger", "msg"}


class JSONFormatter(logging.Formatter):
    """Render a record as one JSON object; exceptions go under ``error``; ``secrets`` are
    blanked from the whole line."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                if value is not None and key not in _RESERVED:
                    line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return redaction.blank(json.dumps(line, default=str, ensure_ascii=False), self.secrets)


class IdentityFilter(logging.Filter):
    """Stamps ``identity`` (run, namespace, attempt, pod, epoch) on every line; a line's own
    fields win. The dict is read at emit time, so keys added later (the epoch) show up."""

    def __init__(self, identity: Mapping[str, Any]) -> None:
        super().__init__()
        self.identity = identity

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        merged = dict(self.identity)
        merged.update(SCOPE.get() or {})
        if isinstance(fields, Mapping):
            merged.update(fields)
        record.fields = merged
        return True


def configure(
    level: str = "INFO",
    stream: TextIO | None = None,
    identity: Mapping[str, Any] | None = None,
    secrets: Sequence[str] = (),
) -> None:
    """Send every log line of the process as JSON to ``stream`` (stdout by default), with
    ``secrets`` blanked."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JSONFormatter(secrets))
    if identity is not None:
        handler.addFilter(IdentityFilter(identity))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries' request-level chatter is not the runner's story.
    for noisy in ("httpx", "httpx2", "httpcore", "mcp", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # celpy logs a function's arguments (model-written, possibly large) when a CEL bound stops
    # it; the stop itself is reported as the decision it causes.
    logging.getLogger("celpy").setLevel(logging.CRITICAL)


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds the run's identity and per-call fields to every line."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = dict(self.extra or {})
        fields.update(kwargs.pop("fields", None) or {})
        kwargs["extra"] = {"fields": fields}
        return msg, kwargs


def bind(name: str, **identity: Any) -> RunLogger:
    """A ``RunLogger`` over the named logger stamping ``identity`` (run, namespace, attempt)."""
    return RunLogger(logging.getLogger(name), identity)


def record(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as structured key=value pairs of the line."""
    logger.log(level, message, extra={"fields": fields})
