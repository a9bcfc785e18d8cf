"""Requests in flight end the attempt when the pod is stopped (pure: threads, no servers)."""

from __future__ import annotations

import threading

import pytest

from bosun.runner import errors, interrupt


def test_a_request_that_answers_returns_its_value_and_its_exception() -> None:
    runner = interrupt.Interrupter(threading.Event(), poll_seconds=0.01)
    assert runner.run("a request", lambda: 42) == 42

    def fails() -> int:
        raise errors.RetryableFailure("ModelUnavailable", "HTTP 503")

    with pytest.raises(errors.RetryableFailure, match="HTTP 503"):
        runner.run("a request", fails)
    assert runner.abandoned == []


def test_stop_abandons_the_request_in_flight_and_keeps_its_client_open() -> None:
    stop, started, never = threading.Event(), threading.Event(), threading.Event()
    runner = interrupt.Interrupter(stop, poll_seconds=0.01)

    def hangs() -> int:
        started.set()
        never.wait(600)
        return 1

    threading.Thread(target=lambda: started.wait(30) and stop.set(), daemon=True).start()
    try:
        with pytest.raises(errors.Cancelled, match="during the call to tool charge") as ended:
            runner.run("the call to tool charge", hangs)
    finally:
        never.set()
    assert ended.value.reason == "Terminated"
    assert runner.abandoned == ["the call to tool charge"]

    closed: list[str] = []

    class Caller:
        def call(self, *_: object) -> None:
            raise AssertionError("not called")

        def close(self) -> None:
            closed.append("tools")

    interrupt.InterruptibleTools(Caller(), runner).close()  # type: ignore[arg-type]
    assert closed == []


def test_a_stopped_runner_sends_nothing_new() -> None:
    stop = threading.Event()
    stop.set()
    sent: list[int] = []
    with pytest.raises(errors.Cancelled):
        interrupt.Interrupter(stop).run("a request", lambda: sent.append(1))
    assert sent == []
