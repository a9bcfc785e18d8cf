"""Render the pod status a kubelet would write, from the emulator's memory and process facts.

Pure: ``render`` turns a ``model.PodState`` and the supervisor's ``model.Process`` facts into
the pod's ``status`` (phase, conditions, container states with exit code, signal and
termination message, restart counts and last states); ``reporter`` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bosun.dev.emulator import clock, model

__all__ = ["render"]


def _terminated(ended: model.Exit) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": ended.code,
        "reason": "Completed" if ended.code == 0 else "Error",
        "startedAt": clock.stamp(ended.started_at),
        "finishedAt": clock.stamp(ended.finished_at),
        "containerID": ended.container_id,
    }
    if ended.signal:
        state["signal"] = ended.signal
    if ended.message:
        state["message"] = ended.message
    return state


def _container_status(container: model.Container, proc: model.Process) -> dict[str, Any]:
    last = container.last_terminated
    status: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "restartCount": container.restart_count,
        "ready": proc.running and not container.paused,
        "started": proc.running,
        "lastState": {"terminated": _terminated(last)} if last else {},
    }
    if proc.running:
        status["containerID"] = proc.container_id
        started = clock.stamp(proc.started_at) if proc.started_at else ""
        status["state"] = {"running": {"startedAt": started}}
    elif proc.exit is not None:
        status["containerID"] = proc.exit.container_id
        status["state"] = {"terminated": _terminated(proc.exit)}
    else:
        waiting: dict[str, Any] = {"reason": container.waiting_reason or "ContainerCreating"}
        if container.waiting_message:
            waiting["message"] = container.waiting_message
        status["state"] = {"waiting": waiting}
    return status


def render(state: model.PodState, procs: Mapping[str, model.Process]) -> dict[str, Any]:
    """The pod's ``status`` as the kubelet would write it."""
    facts = [(c, procs.get(c.name, model.Process())) for c in state.containers]
    running = state.phase == "Running" and all(p.running and not c.paused for c, p in facts)
    ready = "True" if running else "False"
    started = clock.stamp(state.start_time)
    conditions = [
        {"type": kind, "status": value, "lastTransitionTime": started}
        for kind, value in (
            ("PodScheduled", "True"),
            ("Initialized", "True"),
            ("ContainersReady", ready),
            ("Ready", ready),
        )
    ]
    status: dict[str, Any] = {
        "phase": state.phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": started,
        "conditions": conditions,
        "containerStatuses": [_container_status(c, p) for c, p in facts],
    }
    if state.reason:
        status["reason"] = state.reason
        status["message"] = state.message or ""
    return status
