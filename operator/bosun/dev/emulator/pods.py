"""The node emulator's pod state machine: pure decisions, no processes and no API calls.

From what the API says about a pod, what the emulator remembers of it (``model.PodState``), what
its processes did (``model.Process`` facts from the supervisor) and the time, these functions
say what to do (a ``model.Plan``), the way a kubelet would: deletion sends SIGTERM and SIGKILL
once the grace period is over, then deletes the pod; ``activeDeadlineSeconds`` fails a running
pod; the restart policy restarts an exited container after ``restart_delay``; the fault
annotation kills, loses, pauses or resumes a pod. ``decide_pod`` handles the pod as a whole and
says whether its containers come next, which ``decide_containers`` steps once their environment
is ``prepared``; ``settle`` derives the phase from the processes once the plan ran.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping

from bosun import constants, retry
from bosun.dev.emulator import clock, model

__all__ = [
    "TOKEN_SECONDS",
    "adopt",
    "decide_containers",
    "decide_pod",
    "prepared",
    "ref",
    "restart_delay",
    "settle",
    "token_written",
]

TOKEN_SECONDS = 3600
"""Lifetime asked for a pod's service-account token; it is renewed after 80% of it."""

_DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def restart_delay(restart_count: int) -> float:
    """Seconds before restart number ``restart_count`` (from 1): 1 s, doubling, at most 30 s
    (``retry.CONTAINER_RESTART``)."""
    return retry.CONTAINER_RESTART.bound(restart_count)


def adopt(pod: model.Pod, now: clock.Instant, *, lost: bool = False) -> model.PodState:
    """The first memory of a pod; ``lost`` when a previous emulator ran it (phase Running)."""
    containers = tuple(
        model.Container(
            name=c["name"],
            image=c.get("image", ""),
            waiting_reason=None if lost else "ContainerCreating",
        )
        for c in pod["spec"].get("containers", [])
    )
    return model.PodState(now.wall, containers, phase="Running" if lost else "Pending")


def _running(state: model.PodState, procs: Mapping[str, model.Process]) -> bool:
    return any(procs.get(c.name, model.Process()).running for c in state.containers)


def decide_pod(
    pod: model.Pod, state: model.PodState, procs: Mapping[str, model.Process], now: clock.Instant
) -> model.Plan:
    """Deletion, faults, a lost node, a finished pod and the active deadline, in that order."""
    if pod["metadata"].get("deletionTimestamp"):
        return _terminate(pod, state, procs, now)
    state, actions, notes = _fault(pod, state)
    if state.vanished:
        # A lost node: its processes are gone and nobody reports on the pod any more.
        return model.Plan(state, actions, notes)
    if state.phase in model.FINAL_PHASES:
        return model.Plan(state, actions, notes, report=True)
    deadline = pod["spec"].get("activeDeadlineSeconds")
    elapsed = (now.wall - state.start_time).total_seconds()
    if deadline is not None and state.phase == "Running" and elapsed > float(deadline):
        state = dataclasses.replace(
            state, phase="Failed", reason="DeadlineExceeded", message=_DEADLINE_MESSAGE
        )
        note = model.Note("Failed pod past its deadline")
        kill = model.PodAction.KILL_AND_WAIT
        return model.Plan(state, (*actions, kill), (*notes, note), report=True)
    return model.Plan(state, actions, notes, step=True, report=True)


def _terminate(
    pod: model.Pod, state: model.PodState, procs: Mapping[str, model.Process], now: clock.Instant
) -> model.Plan:
    actions: list[model.Action] = []
    notes: list[model.Note] = []
    if state.terminate_at is None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        state = dataclasses.replace(state, terminate_at=now.mono, kill_at=now.mono + float(grace))
        actions += [model.Signal(signal.SIGCONT), model.Signal(signal.SIGTERM)]
        notes.append(model.Note("Terminating", (("grace_seconds", grace),)))
    elif state.kill_at is not None and now.mono >= state.kill_at and _running(state, procs):
        actions.append(model.Signal(signal.SIGKILL))
    if not _running(state, procs):
        actions.append(model.PodAction.DELETE_NOW)
    return model.Plan(state, tuple(actions), tuple(notes))


def _fault(
    pod: model.Pod, state: model.PodState
) -> tuple[model.PodState, tuple[model.Action, ...], tuple[model.Note, ...]]:
    annotations = pod["metadata"].get("annotations") or {}
    fault = annotations.get(constants.ANNOTATION_EMULATOR_FAULT)
    if fault == state.fault_seen:
        return state, (), ()
    state = dataclasses.replace(state, fault_seen=fault)
    sig = {
        "kill": signal.SIGKILL,
        "vanish": signal.SIGKILL,
        "pause": signal.SIGSTOP,
        "resume": signal.SIGCONT,
    }.get(fault or "")
    if sig is None:
        return state, (), ()
    if fault == "vanish":
        state = dataclasses.replace(state, vanished=True)
    elif fault in ("pause", "resume"):
        paused = tuple(dataclasses.replace(c, paused=fault == "pause") for c in state.containers)
        state = dataclasses.replace(state, containers=paused)
    return state, (model.Signal(sig),), (model.Note(f"Injected fault {fault}"),)


def decide_containers(
    pod: model.Pod, state: model.PodState, procs: Mapping[str, model.Process], now: clock.Instant
) -> model.Plan:
    """Apply the restart policy to exits not seen before and start idle containers when due."""
    restart = pod["spec"].get("restartPolicy", "Always")
    actions: list[model.Action] = []
    notes: list[model.Note] = []
    containers: list[model.Container] = []
    for current in state.containers:
        container = current
        proc = procs.get(container.name, model.Process())
        ended = proc.exit
        if ended is not None and proc.exits > container.exits_seen:
            container = dataclasses.replace(container, exits_seen=proc.exits)
            fields = (("container", container.name), ("exit_code", ended.code))
            notes.append(model.Note("Container exited", fields))
            if restart == "Always" or (restart == "OnFailure" and ended.code != 0):
                count = container.restart_count + 1
                container = dataclasses.replace(
                    container,
                    last_terminated=ended,
                    restart_count=count,
                    restart_at=now.mono + restart_delay(count),
                    waiting_reason="CrashLoopBackOff",
                )
                actions.append(model.Discard(container.name))
                ended = None
        if not proc.running and ended is None and now.mono >= container.restart_at:
            actions.append(model.Start(container.name))
            container = dataclasses.replace(container, waiting_reason=None, waiting_message=None)
        containers.append(container)
    if state.token_refresh_at and now.mono > state.token_refresh_at:
        actions.append(model.PodAction.REFRESH_TOKEN)
    state = dataclasses.replace(state, containers=tuple(containers))
    return model.Plan(state, tuple(actions), tuple(notes))


def settle(state: model.PodState, procs: Mapping[str, model.Process]) -> model.PodState:
    """The phase once the containers were stepped: Running, or final when every one ended."""
    if state.phase in model.FINAL_PHASES:
        return state
    facts = [procs.get(c.name, model.Process()) for c in state.containers]
    if any(p.running for p in facts):
        return dataclasses.replace(state, phase="Running")
    exits = [p.exit for p in facts]
    if all(e is not None for e in exits):
        failed = any(e is not None and e.code != 0 for e in exits)
        return dataclasses.replace(state, phase="Failed" if failed else "Succeeded")
    return state


def prepared(state: model.PodState, outcome: model.Outcome, now: clock.Instant) -> model.PodState:
    """Remember how preparing the containers went."""
    if isinstance(outcome, model.EnvReady):
        state = dataclasses.replace(state, env=outcome.env)
        return token_written(state, now) if outcome.token_written else state
    if isinstance(outcome, model.ImageMissing):
        # As a kubelet that may not pull: the pod stays Pending, the container waits.
        reason = "ErrImageNeverPull"
    else:
        reason = "CreateContainerConfigError"
    containers = tuple(
        dataclasses.replace(c, waiting_reason=reason, waiting_message=outcome.message)
        if c.name == outcome.container
        else c
        for c in state.containers
    )
    return dataclasses.replace(state, containers=containers)


def token_written(state: model.PodState, now: clock.Instant) -> model.PodState:
    """A fresh token is on disk; renew it after 80% of its lifetime."""
    return dataclasses.replace(state, token_refresh_at=now.mono + TOKEN_SECONDS * 0.8)


def ref(pod: model.Pod) -> str:
    """``namespace/name`` of a pod, for log lines."""
    return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
