"""OpenTelemetry spans with the GenAI conventions, only when OpenTelemetry is available.

``configure`` sets up OTLP export when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the SDK and
exporter packages are installed; otherwise spans go to OpenTelemetry's no-op tracer (when only
the API is installed) or to a local stand-in (when nothing is). OpenTelemetry stays optional.
Spans carry only the attributes Bosun sets (names, models, token counts), never message text:
a span that ends in an exception records the exception's type as its error status, not the
exception's message or traceback, which may quote a response or a header.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

__all__ = ["Span", "configure", "shutdown", "span"]

log = logging.getLogger("bosun.runner.telemetry")


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


_state: dict[str, Any] = {"tracer": None}


def configure(endpoint: str | None, service: str = "bosun-runner") -> None:
    """Export spans to ``endpoint`` when the OpenTelemetry SDK is installed."""
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional dependency, tried at run time
    except ImportError:
        return
    if endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]  # noqa: PLC0415
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import Resource  # type: ignore[import-not-found]  # noqa: PLC0415
            from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found]  # noqa: PLC0415
            from opentelemetry.sdk.trace.export import (  # type: ignore[import-not-found]  # noqa: PLC0415
                BatchSpanProcessor,
            )
        except ImportError:
            log.warning("Skipped tracing: the OpenTelemetry SDK or OTLP exporter is missing")
        else:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
    _state["tracer"] = trace.get_tracer("bosun.runner")


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A span named ``name``; a no-op without OpenTelemetry."""
    tracer = _state["tracer"]
    if tracer is None:
        yield _NoSpan()
        return
    clean = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(
        name, attributes=clean, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as err:
            _failed(current, type(err).__name__)
            raise


def _failed(current: Any, kind: str) -> None:
    current.set_attribute("error.type", kind)
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional dependency, tried at run time
    except ImportError:
        return
    current.set_status(trace.Status(trace.StatusCode.ERROR, kind))


def shutdown() -> None:
    """Flush spans that are still buffered."""
    try:
        from opentelemetry import trace  # noqa: PLC0415 - optional dependency, tried at run time
    except ImportError:
        return
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "shutdown", None)
    if callable(flush):
        flush()
