"""Unit tests of the node emulator's pure pod state machine and status rendering."""

from __future__ import annotations

import dataclasses
import datetime
import signal
from typing import Any

import pytest

from bosun import constants
from bosun.dev.emulator import clock, model, pods, status

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def at(seconds: float) -> clock.Instant:
    return clock.Instant(100.0 + seconds, T0 + datetime.timedelta(seconds=seconds))


def pod(**spec: Any) -> model.Pod:
    return {
        "metadata": {"namespace": "ns", "name": "p", "uid": "u-1"},
        "spec": {
            "nodeName": constants.EMULATOR_NODE_NAME,
            "containers": [{"name": "main", "image": "busybox"}],
            **spec,
        },
    }


def ready_state(**changes: Any) -> model.PodState:
    """A pod whose container's environment is resolved, with ``changes`` applied."""
    state = pods.prepared(pods.adopt(pod(), at(0)), model.EnvReady({"main": {}}), at(0))
    return dataclasses.replace(state, **changes)


def exited(code: int, *, exits: int = 1, message: str = "") -> dict[str, model.Process]:
    end = model.Exit(code, T0, T0, message=message, container_id="emulator://7")
    return {"main": model.Process(exit=end, exits=exits)}


RUNNING = {"main": model.Process(running=True, started_at=T0, container_id="emulator://7")}
IDLE: dict[str, model.Process] = {"main": model.Process()}


@pytest.mark.parametrize(
    ("count", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (7, 30.0), (50, 30.0)],
)
def test_restart_delay_doubles_from_one_second_up_to_thirty(count: int, delay: float) -> None:
    assert pods.restart_delay(count) == delay


# --- restart policies and backoff ---------------------------------------------------------------


def test_an_exit_under_always_is_discarded_and_restarted_after_the_backoff() -> None:
    plan = pods.decide_containers(pod(), ready_state(phase="Running"), exited(1), at(10))
    container = plan.state.containers[0]
    assert plan.actions == (model.Discard("main"),)
    assert container.restart_count == 1
    assert container.restart_at == at(11).mono
    assert container.waiting_reason == "CrashLoopBackOff"
    assert container.last_terminated is not None
    assert container.last_terminated.code == 1
    assert plan.notes[0].text == "Container exited"

    early = pods.decide_containers(pod(), plan.state, IDLE, at(10.99))
    assert early.actions == ()
    due = pods.decide_containers(pod(), plan.state, IDLE, at(11))
    assert due.actions == (model.Start("main"),)
    assert due.state.containers[0].waiting_reason is None


def test_the_second_restart_waits_twice_as_long() -> None:
    first = pods.decide_containers(pod(), ready_state(phase="Running"), exited(1), at(0))
    second = pods.decide_containers(pod(), first.state, exited(1, exits=2), at(5))
    assert second.state.containers[0].restart_count == 2
    assert second.state.containers[0].restart_at == at(7).mono


def test_an_exit_already_handled_is_not_handled_again() -> None:
    first = pods.decide_containers(pod(restartPolicy="Never"), ready_state(), exited(1), at(0))
    again = pods.decide_containers(pod(restartPolicy="Never"), first.state, exited(1), at(1))
    assert first.notes and not again.notes
    assert again.actions == ()


@pytest.mark.parametrize(
    ("policy", "code", "restarts", "phase"),
    [
        ("Always", 0, True, "Running"),
        ("Always", 1, True, "Running"),
        ("OnFailure", 0, False, "Succeeded"),
        ("OnFailure", 2, True, "Running"),
        ("Never", 0, False, "Succeeded"),
        ("Never", 1, False, "Failed"),
    ],
)
def test_restart_policy_table(policy: str, code: int, restarts: bool, phase: str) -> None:
    spec = pod(restartPolicy=policy)
    plan = pods.decide_containers(spec, ready_state(phase="Running"), exited(code), at(0))
    assert (model.Discard("main") in plan.actions) is restarts
    procs = IDLE if restarts else exited(code)
    assert pods.settle(plan.state, procs).phase == phase


def test_a_new_container_starts_at_once_and_the_pod_runs() -> None:
    plan = pods.decide_containers(pod(), ready_state(), IDLE, at(0))
    assert plan.actions == (model.Start("main"),)
    assert pods.settle(plan.state, RUNNING).phase == "Running"
    assert pods.settle(plan.state, IDLE).phase == "Pending"


def test_a_due_token_is_refreshed() -> None:
    state = pods.token_written(ready_state(phase="Running"), at(0))
    assert state.token_refresh_at == at(pods.TOKEN_SECONDS * 0.8).mono
    late = at(pods.TOKEN_SECONDS * 0.8 + 1)
    refresh = model.PodAction.REFRESH_TOKEN
    assert refresh in pods.decide_containers(pod(), state, RUNNING, late).actions
    assert refresh not in pods.decide_containers(pod(), state, RUNNING, at(1)).actions


# --- deletion and its grace period ---------------------------------------------------------------


def deleting(**meta: Any) -> model.Pod:
    deleted = pod(terminationGracePeriodSeconds=20)
    deleted["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", **meta)
    return deleted


def test_deletion_sends_sigterm_and_sigkill_once_the_grace_period_is_over() -> None:
    first = pods.decide_pod(deleting(), ready_state(phase="Running"), RUNNING, at(0))
    assert first.actions == (model.Signal(signal.SIGCONT), model.Signal(signal.SIGTERM))
    assert first.state.kill_at == at(20).mono
    assert not first.report and not first.step

    assert pods.decide_pod(deleting(), first.state, RUNNING, at(19.9)).actions == ()
    late = pods.decide_pod(deleting(), first.state, RUNNING, at(20))
    assert late.actions == (model.Signal(signal.SIGKILL),)
    gone = pods.decide_pod(deleting(), first.state, exited(137), at(21))
    assert gone.actions == (model.PodAction.DELETE_NOW,)


def test_the_deletion_grace_period_wins_over_the_spec_and_30_is_the_default() -> None:
    state = ready_state(phase="Running")
    short = pods.decide_pod(deleting(deletionGracePeriodSeconds=3), state, RUNNING, at(0))
    assert short.state.kill_at == at(3).mono
    bare = pod()
    bare["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pods.decide_pod(bare, state, RUNNING, at(0)).state.kill_at == at(30).mono


def test_a_deleted_pod_without_processes_is_deleted_at_once() -> None:
    plan = pods.decide_pod(deleting(), ready_state(), IDLE, at(0))
    assert plan.actions[-1] == model.PodAction.DELETE_NOW


# --- activeDeadlineSeconds -----------------------------------------------------------------------


def test_a_running_pod_past_its_active_deadline_is_killed_and_fails() -> None:
    spec = pod(activeDeadlineSeconds=10)
    state = ready_state(phase="Running")
    assert pods.decide_pod(spec, state, RUNNING, at(10)).step
    plan = pods.decide_pod(spec, state, RUNNING, at(10.5))
    assert plan.actions == (model.PodAction.KILL_AND_WAIT,)
    assert (plan.state.phase, plan.state.reason) == ("Failed", "DeadlineExceeded")
    assert plan.report and not plan.step


def test_the_active_deadline_does_not_apply_before_the_pod_runs() -> None:
    plan = pods.decide_pod(pod(activeDeadlineSeconds=1), ready_state(), IDLE, at(100))
    assert plan.step and plan.state.phase == "Pending"


# --- faults, finished pods, preparation ----------------------------------------------------------


def faulted(fault: str) -> model.Pod:
    spec = pod()
    spec["metadata"]["annotations"] = {constants.ANNOTATION_EMULATOR_FAULT: fault}
    return spec


@pytest.mark.parametrize(
    ("fault", "sig"),
    [
        ("kill", signal.SIGKILL),
        ("vanish", signal.SIGKILL),
        ("pause", signal.SIGSTOP),
        ("resume", signal.SIGCONT),
    ],
)
def test_a_fault_signals_the_pod_once(fault: str, sig: int) -> None:
    plan = pods.decide_pod(faulted(fault), ready_state(phase="Running"), RUNNING, at(0))
    assert plan.actions == (model.Signal(sig),)
    assert plan.state.containers[0].paused is (fault == "pause")
    assert plan.state.vanished is (fault == "vanish")
    assert (plan.step, plan.report) == ((False, False) if fault == "vanish" else (True, True))
    assert pods.decide_pod(faulted(fault), plan.state, RUNNING, at(1)).actions == ()


def test_a_finished_pod_is_only_reported() -> None:
    plan = pods.decide_pod(pod(), ready_state(phase="Succeeded"), exited(0), at(0))
    assert (plan.actions, plan.step, plan.report) == ((), False, True)


def test_a_missing_image_and_missing_env_both_wait_as_the_kubelet_does() -> None:
    state = pods.adopt(pod(), at(0))
    missing = pods.prepared(state, model.ImageMissing("main", "no image"), at(0))
    assert (missing.phase, missing.env) == ("Pending", None)
    assert missing.containers[0].waiting_reason == "ErrImageNeverPull"
    assert missing.containers[0].waiting_message == "no image"
    waiting = pods.prepared(state, model.EnvMissing("main", "Secret ns/s not found"), at(0))
    assert waiting.phase == "Pending" and waiting.env is None
    assert waiting.containers[0].waiting_reason == "CreateContainerConfigError"


def test_a_lost_pod_is_running_and_its_lost_exit_restarts() -> None:
    state = pods.adopt(pod(), at(0), lost=True)
    assert state.phase == "Running"
    state = pods.prepared(state, model.EnvReady({"main": {}}), at(0))
    plan = pods.decide_containers(pod(), state, exited(137), at(0))
    assert plan.actions == (model.Discard("main"),)


# --- rendering -----------------------------------------------------------------------------------


def test_the_termination_message_is_in_the_terminated_state() -> None:
    rendered = status.render(ready_state(phase="Failed"), exited(3, message="out of tokens"))
    terminated = rendered["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert terminated["message"] == "out of tokens"
    assert rendered["phase"] == "Failed"


def test_a_restarted_container_shows_its_last_state_and_waits_in_backoff() -> None:
    plan = pods.decide_containers(
        pod(), ready_state(phase="Running"), exited(1, message="x"), at(0)
    )
    rendered = status.render(plan.state, IDLE)["containerStatuses"][0]
    assert rendered["restartCount"] == 1
    assert rendered["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert rendered["lastState"]["terminated"]["message"] == "x"


def test_a_paused_container_is_not_ready() -> None:
    running = status.render(ready_state(phase="Running"), RUNNING)
    assert {c["type"]: c["status"] for c in running["conditions"]}["Ready"] == "True"
    paused = pods.decide_pod(faulted("pause"), ready_state(phase="Running"), RUNNING, at(0))
    rendered = status.render(paused.state, RUNNING)
    assert {c["type"]: c["status"] for c in rendered["conditions"]}["Ready"] == "False"
    assert rendered["containerStatuses"][0]["ready"] is False
