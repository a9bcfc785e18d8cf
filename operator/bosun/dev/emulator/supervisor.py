"""Run the node emulator's containers as local process groups and say what became of them.

The supervisor starts a container's command in a session of its own (so the whole group can be
signalled, paused and killed, and dies with the emulator), with its output in the pod's folder
and an empty termination-message file named by ``BOSUN_TERMINATION_LOG``. ``processes`` reaps
what ended, reads what each process left in that file, kills what remained of its group (as a
container's end takes its children) and answers with ``model.Process`` facts. Times come from an
injectable ``clock.Clock``, so the stamps it records are whatever a test says they are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import pathlib
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence

from bosun import constants
from bosun.dev import cluster
from bosun.dev.emulator import clock, model

__all__ = ["Supervisor"]

log = logging.getLogger("bosun.emulator")

_MESSAGE_BYTES = 4096


@dataclasses.dataclass
class _Container:
    popen: subprocess.Popen[bytes] | None = None
    started_at: datetime.datetime | None = None
    exit: model.Exit | None = None
    exits: int = 0
    termination_log: pathlib.Path | None = None

    def running(self) -> bool:
        """Started and not reaped."""
        return self.popen is not None and self.exit is None

    def send(self, sig: int) -> None:
        if self.running() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def facts(self) -> model.Process:
        container_id = f"emulator://{self.popen.pid}" if self.popen else ""
        return model.Process(
            running=self.running(),
            started_at=self.started_at,
            container_id=container_id,
            exit=self.exit,
            exits=self.exits,
        )


@dataclasses.dataclass
class _Pod:
    label: str
    folder: pathlib.Path
    containers: dict[str, _Container]


class Supervisor:
    """The process groups of every pod the emulator runs, keyed by pod uid."""

    def __init__(self, time: clock.Clock) -> None:
        self._clock = time
        self._pods: dict[str, _Pod] = {}

    def track(self, uid: str, label: str, folder: pathlib.Path, names: Iterable[str]) -> None:
        """Know a pod's containers (none started) and the folder their files go to."""
        self._pods[uid] = _Pod(label, folder, {name: _Container() for name in names})

    def mark_lost(self, uid: str) -> None:
        """Record that a previous emulator ran this pod's containers and took them with it."""
        now = self._clock.now().wall
        for container in self._pods[uid].containers.values():
            container.exit = model.Exit(137, now, now, signal=signal.SIGKILL)
            container.exits += 1

    def tracked(self) -> list[str]:
        return list(self._pods)

    def processes(self, uid: str) -> dict[str, model.Process]:
        """Reap what ended and tell, per container, what its process is doing."""
        for container in self._pods[uid].containers.values():
            self._reap(container)
        return self.last_seen(uid)

    def last_seen(self, uid: str) -> dict[str, model.Process]:
        """The facts as of the last reap: a process that ended since still counts as running.

        The phase and the status are derived from these, so an exit shows only once the
        state machine has seen it and applied the restart policy.
        """
        return {name: c.facts() for name, c in self._pods[uid].containers.items()}

    def _reap(self, container: _Container) -> None:
        if container.popen is None or container.exit is not None:
            return
        code = container.popen.poll()
        if code is None:
            return
        finished = self._clock.now().wall
        # Whatever the main process left in its group dies with it, as in a container.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(container.popen.pid, signal.SIGKILL)
        container.exit = model.Exit(
            code=128 - code if code < 0 else code,
            started_at=container.started_at or finished,
            finished_at=finished,
            signal=-code if code < 0 else None,
            message=_read_message(container.termination_log),
            container_id=f"emulator://{container.popen.pid}",
        )
        container.exits += 1

    def start(self, uid: str, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """Start a container's process; a start that fails is an exit with 127 or 126."""
        pod = self._pods[uid]
        container = pod.containers[name]
        # Each start of the container gets an empty termination-message file.
        container.termination_log = pod.folder / f"{name}.termination-log"
        container.termination_log.write_bytes(b"")
        full_env = {**env, constants.EMULATOR_TERMINATION_LOG_ENV: str(container.termination_log)}
        with (pod.folder / f"{name}.log").open("ab") as out:
            try:
                # A pod's processes die with the emulator, as containers with a lost node.
                container.popen = subprocess.Popen(
                    cluster.die_with_parent(list(argv), "KILL"),
                    cwd=pod.folder,
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as err:
                now = self._clock.now().wall
                code = 127 if isinstance(err, FileNotFoundError) else 126
                container.popen, container.started_at = None, now
                container.exit = model.Exit(code, now, now)
                log.warning("Could not start container pod=%s error=%s", pod.label, err)
                return
        container.started_at = self._clock.now().wall
        container.exit = None
        log.info(
            "Started container pod=%s container=%s pid=%s argv=%s",
            pod.label,
            name,
            container.popen.pid,
            list(argv),
        )

    def discard(self, uid: str, name: str) -> None:
        """Forget a container's ended process, ahead of starting it again."""
        container = self._pods[uid].containers[name]
        container.popen, container.started_at, container.exit = None, None, None

    def signal(self, uid: str, sig: int) -> None:
        """Send ``sig`` to the process group of every running container of the pod."""
        for container in self._pods[uid].containers.values():
            container.send(sig)

    def kill_and_wait(self, uid: str) -> None:
        """SIGKILL every running container of the pod and reap each."""
        self.signal(uid, signal.SIGKILL)
        for container in self._pods[uid].containers.values():
            if container.popen is not None:
                container.popen.wait()
                self._reap(container)

    def forget(self, uid: str) -> None:
        """Kill a pod's processes (paused ones too), wait for them and stop tracking the pod."""
        pod = self._pods.pop(uid)
        for container in pod.containers.values():
            container.send(signal.SIGCONT)
            container.send(signal.SIGKILL)
        for container in pod.containers.values():
            if container.popen is not None:
                container.popen.wait()


def _read_message(path: pathlib.Path | None) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError), path.open("rb") as handle:
        return handle.read(_MESSAGE_BYTES).decode("utf-8", "replace")
    return ""
