"""Unit tests of the node emulator's supervisor and loop with a fake clock and a fake API.

The processes are real (``sh``), so exits, signals and termination messages are what a pod
would see; the clock is fake, so restart backoff, the deletion grace period and
``activeDeadlineSeconds`` are moved past by the test instead of slept through. The only waiting
is for a real process to end, which takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bosun import constants
from bosun.dev import cluster
from bosun.dev.emulator import clock, kubelet, model, supervisor

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def now(self) -> clock.Instant:
        return clock.Instant(1000.0 + self.seconds, T0 + datetime.timedelta(seconds=self.seconds))

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


def wait_until(check: Any, timeout: float = 10.0) -> None:
    """Wait for a real process to do something (not for a timer of the emulator)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the process did not get there in time"
        time.sleep(0.01)


# --- the supervisor on its own -------------------------------------------------------------------


@pytest.fixture
def sup(tmp_path: pathlib.Path) -> Iterator[supervisor.Supervisor]:
    fake = FakeClock()
    fake.advance(5)
    made = supervisor.Supervisor(fake)
    made.track("u", "ns/p", tmp_path, ["main"])
    yield made
    made.forget("u")


def ended(sup: supervisor.Supervisor) -> model.Exit:
    wait_until(lambda: sup.processes("u")["main"].exit is not None)
    end = sup.processes("u")["main"].exit
    assert end is not None
    return end


def test_an_exit_carries_its_code_termination_message_and_clock_stamps(
    sup: supervisor.Supervisor,
) -> None:
    script = 'printf "out of tokens" > "$BOSUN_TERMINATION_LOG"; exit 3'
    sup.start("u", "main", ["sh", "-c", script], {"PATH": "/usr/bin:/bin"})
    end = ended(sup)
    assert (end.code, end.signal, end.message) == (3, None, "out of tokens")
    assert end.started_at == end.finished_at == T0 + datetime.timedelta(seconds=5)
    assert end.container_id.startswith("emulator://")
    assert sup.processes("u")["main"].exits == 1


def test_an_exit_shows_only_once_reaped(sup: supervisor.Supervisor) -> None:
    # The phase and status come from last_seen, so an exit the state machine has not seen yet
    # (and applied the restart policy to) must not show there.
    sup.start("u", "main", ["sh", "-c", "exit 1"], {"PATH": "/usr/bin:/bin"})
    time.sleep(0.3)  # long enough for the real process to end
    assert sup.last_seen("u")["main"].running
    assert sup.processes("u")["main"].exit is not None
    assert sup.last_seen("u")["main"].exit is not None


def test_a_signalled_process_exits_128_plus_the_signal(sup: supervisor.Supervisor) -> None:
    sup.start("u", "main", ["sleep", "30"], {"PATH": "/usr/bin:/bin"})
    assert sup.processes("u")["main"].running
    sup.signal("u", signal.SIGTERM)
    end = ended(sup)
    assert (end.code, end.signal) == (143, signal.SIGTERM)


def test_kill_and_wait_leaves_nothing_running(sup: supervisor.Supervisor) -> None:
    sup.start("u", "main", ["sleep", "30"], {"PATH": "/usr/bin:/bin"})
    sup.kill_and_wait("u")
    facts = sup.processes("u")["main"]
    assert not facts.running
    assert facts.exit is not None and facts.exit.code == 137


def test_a_start_that_fails_is_an_exit_127_that_was_never_reaped(
    sup: supervisor.Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the setpriv wrapper, exec itself fails in the emulator (as with no setpriv here).
    monkeypatch.setattr(cluster, "die_with_parent", lambda argv, sig: argv)
    sup.start("u", "main", ["/nonexistent/program"], {})
    facts = sup.processes("u")["main"]
    assert facts.exit is not None and facts.exit.code == 127
    assert facts.exits == 0


def test_lost_containers_ended_with_sigkill(sup: supervisor.Supervisor) -> None:
    sup.mark_lost("u")
    facts = sup.processes("u")["main"]
    assert facts.exit is not None
    assert (facts.exit.code, facts.exit.signal, facts.exits) == (137, signal.SIGKILL, 1)


def test_discard_makes_the_container_idle_and_keeps_the_exit_count(
    sup: supervisor.Supervisor,
) -> None:
    sup.start("u", "main", ["sh", "-c", "exit 1"], {"PATH": "/usr/bin:/bin"})
    ended(sup)
    sup.discard("u", "main")
    assert sup.processes("u")["main"] == model.Process(exits=1)


# --- the loop with a fake API --------------------------------------------------------------------


class FakeNode:
    name = constants.EMULATOR_NODE_NAME

    def heartbeat(self) -> None:
        pass

    def bind(self, pod: model.Pod) -> None:
        raise AssertionError("the test's pods are bound already")


@dataclasses.dataclass
class FakePodApi:
    reports: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)

    def report(self, uid: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.reports.append(status)

    def forget(self, uid: str) -> None:
        pass

    def delete_now(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(uid)

    def request_token(self, *args: Any) -> str:
        return "token"

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return None


class FakeSource:
    def __init__(self) -> None:
        self.wake, self.stopping = threading.Event(), threading.Event()

    def snapshot(self) -> dict[str, model.Pod]:
        return {}

    def take_dirty(self) -> set[str]:
        return set()

    def mark_dirty(self, uid: str) -> None:
        pass


@dataclasses.dataclass
class Rig:
    emulator: kubelet.Emulator
    api: FakePodApi
    clock: FakeClock

    def tick(self, pod: model.Pod) -> dict[str, Any]:
        self.emulator.reconcile(pod)
        return self.api.reports[-1]

    def container(self, pod: model.Pod) -> dict[str, Any]:
        status: dict[str, Any] = self.tick(pod)["containerStatuses"][0]
        return status

    def settled(self, pod: model.Pod, state: str) -> dict[str, Any]:
        """Tick until the container is in ``state`` (its process got there)."""
        wait_until(lambda: state in self.container(pod)["state"])
        return self.container(pod)


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[Rig]:
    fake, api = FakeClock(), FakePodApi()
    emulator = kubelet.Emulator(
        FakeNode(),
        api,
        FakeSource(),
        folder=tmp_path,
        ca_file=tmp_path / "ca.crt",
        api_address=("127.0.0.1", "6443"),
        time=fake,
    )
    yield Rig(emulator, api, fake)
    emulator.shutdown()


def a_pod(script: str, **spec: Any) -> model.Pod:
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    return {
        "metadata": {"namespace": "ns", "name": "p", "uid": "uid-1"},
        "spec": {"nodeName": constants.EMULATOR_NODE_NAME, "containers": [container], **spec},
    }


def test_a_crashing_container_restarts_after_one_then_two_seconds(rig: Rig) -> None:
    pod = a_pod("exit 1")
    assert rig.tick(pod)["phase"] == "Running"
    assert rig.settled(pod, "waiting")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert rig.container(pod)["restartCount"] == 1
    rig.clock.advance(0.75)
    assert "waiting" in rig.container(pod)["state"]
    rig.clock.advance(0.25)
    assert "waiting" not in rig.container(pod)["state"]
    assert rig.settled(pod, "waiting")["restartCount"] == 2
    rig.clock.advance(1.5)
    assert "waiting" in rig.container(pod)["state"]
    rig.clock.advance(0.5)
    assert "waiting" not in rig.container(pod)["state"]


def test_a_pod_that_ignores_sigterm_is_killed_after_its_grace_period(rig: Rig) -> None:
    pod = a_pod("trap '' TERM; echo ready; exec sleep 60", restartPolicy="Never")
    rig.tick(pod)
    log = rig.emulator.folder / "ns_p_uid-1" / "main.log"
    wait_until(lambda: log.exists() and "ready" in log.read_text())
    pod["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=5)
    rig.emulator.reconcile(pod)
    rig.clock.advance(4.9)
    time.sleep(0.2)  # a process that heeded SIGTERM would be gone by now
    rig.emulator.reconcile(pod)
    assert rig.api.deleted == []
    rig.clock.advance(0.1)
    rig.emulator.reconcile(pod)
    wait_until(lambda: rig.emulator.reconcile(pod) or "uid-1" in rig.api.deleted)


def test_a_pod_past_its_active_deadline_fails_with_its_container_killed(rig: Rig) -> None:
    pod = a_pod("sleep 60", activeDeadlineSeconds=10, restartPolicy="Never")
    assert rig.tick(pod)["phase"] == "Running"
    rig.clock.advance(10)
    assert rig.tick(pod)["phase"] == "Running"
    rig.clock.advance(0.5)
    status = rig.tick(pod)
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def test_the_termination_message_is_reported_when_the_container_fails(rig: Rig) -> None:
    pod = a_pod('echo "budget exhausted" > "$BOSUN_TERMINATION_LOG"; exit 4', restartPolicy="Never")
    rig.tick(pod)
    terminated = rig.settled(pod, "terminated")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (4, "budget exhausted\n")
    assert rig.api.reports[-1]["phase"] == "Failed"
