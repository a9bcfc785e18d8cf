"""Model requests and tool calls that the pod's stop interrupts.

A request in flight when SIGTERM arrives (the Run deleted, cancelled or suspended) would
otherwise hold the runner until its own timeout, and the pod would sit ``Terminating`` for
the whole grace period. Each request runs on a worker thread while the attempt's thread
waits for either its answer or the stop; on stop the attempt ends ``Terminated`` at once and
the request is abandoned with the process. Nothing is lost: a tool call is journaled as
started before it is sent, so the next attempt treats it as a call of unknown outcome
(resent under its idempotency key, or handed to a human), and a model request that was
never answered is asked again.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from bosun.api import tool as tool_api
from bosun.runner import conversation, errors, providers, toolresults, tools

__all__ = ["Interrupter", "InterruptibleProvider", "InterruptibleTools"]

_T = TypeVar("_T")


class Interrupter:
    """Runs blocking requests so that ``stop`` ends the wait for them."""

    def __init__(self, stop: threading.Event, poll_seconds: float = 0.1) -> None:
        self.stop = stop
        self.poll_seconds = poll_seconds
        self.abandoned: list[str] = []
        """What was left running when the stop came; its client must not be closed under it."""

    def run(self, what: str, request: Callable[[], _T]) -> _T:
        """``request()``'s value or exception, or ``errors.Cancelled`` if the pod is stopped
        first. ``what`` names the request in the attempt's end message."""
        if self.stop.is_set():
            raise errors.Cancelled("Terminated", "the runner was asked to stop")
        outcome: dict[str, Any] = {}
        done = threading.Event()
        # The worker sees the caller's context: its trace span and its log fields.
        context = contextvars.copy_context()

        def work() -> None:
            try:
                outcome["value"] = context.run(request)
            except BaseException as err:  # handed to the waiting thread, which re-raises it
                outcome["error"] = err
            finally:
                done.set()

        threading.Thread(target=work, name="request", daemon=True).start()
        while not done.wait(self.poll_seconds):
            if self.stop.is_set():
                self.abandoned.append(what)
                raise errors.Cancelled(
                    "Terminated",
                    f"the runner was asked to stop during {what}; it was abandoned unanswered",
                )
        if "error" in outcome:
            raise outcome["error"]
        value: _T = outcome["value"]
        return value


class InterruptibleTools:
    """A ``tools.Caller`` whose calls ``interrupter`` can abandon."""

    def __init__(self, inner: tools.Caller, interrupter: Interrupter) -> None:
        self.inner = inner
        self.interrupter = interrupter

    def call(
        self, tool: tool_api.Tool, args: dict[str, Any], idempotency_key: str
    ) -> toolresults.ToolResult:
        return self.interrupter.run(
            f"the call to tool {tool.metadata.name}",
            lambda: self.inner.call(tool, args, idempotency_key),
        )

    def close(self) -> None:
        if not self.interrupter.abandoned:
            self.inner.close()


class InterruptibleProvider:
    """A ``providers.Provider`` whose requests ``interrupter`` can abandon."""

    def __init__(self, inner: providers.Provider, interrupter: Interrupter) -> None:
        self.inner = inner
        self.interrupter = interrupter
        self.provider = inner.provider
        self.model = inner.model

    def complete(self, request: conversation.ModelRequest) -> conversation.AssistantTurn:
        return self.interrupter.run(
            f"the request to model {self.model or self.provider}",
            lambda: self.inner.complete(request),
        )

    def close(self) -> None:
        if not self.interrupter.abandoned:
            self.inner.close()
