"""Run the local control plane in the background and find it again.

``up`` starts a supervisor process (``python -m bosun.dev.daemon``) that owns every
control-plane process, waits until it reports ready in ``DIR/state.json`` and returns; calling
it again while that supervisor lives is harmless. ``down`` stops the supervisor, which stops its
children; the children also die with it if it is killed, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from bosun.dev import cluster, provision

__all__ = [
    "DEFAULT_DIR",
    "OPERATOR_FILE",
    "OPERATOR_NAMESPACE",
    "OPERATOR_RELEASE",
    "STATE_FILE",
    "Log",
    "State",
    "down",
    "locate",
    "main",
    "operator_health",
    "operator_info",
    "read_state",
    "start_operator",
    "up",
]

STATE_FILE = "state.json"
DEFAULT_DIR = pathlib.Path(".bosun/dev")

Log = Callable[[str], None]

# Supervisors this process started, kept so that ``down`` can reap them.
_STARTED: dict[pathlib.Path, subprocess.Popen[bytes]] = {}


@dataclasses.dataclass(frozen=True)
class State:
    """What a running supervisor reports about the control plane it owns."""

    folder: pathlib.Path
    pid: int
    server: str
    kubeconfig: pathlib.Path
    components: dict[str, int]

    @property
    def logs(self) -> pathlib.Path:
        return self.folder / "logs"


def _state_path(folder: pathlib.Path) -> pathlib.Path:
    return folder / STATE_FILE


def _is_supervisor(pid: int) -> bool:
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"bosun.dev.daemon" in cmdline


def read_state(folder: pathlib.Path) -> State | None:
    """The state of a live supervisor in ``folder``, or None when none runs there."""
    path = _state_path(folder)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(raw["pid"])
    if not raw.get("ready") or not _is_supervisor(pid):
        return None
    return State(
        folder=folder,
        pid=pid,
        server=raw["server"],
        kubeconfig=pathlib.Path(raw["kubeconfig"]),
        components={k: int(v) for k, v in raw["components"].items()},
    )


def up(
    folder: pathlib.Path = DEFAULT_DIR,
    *,
    attached: bool = False,
    timeout: float = 240.0,
    log: Log = print,
) -> State:
    """Start the control plane in the background (or find it running) and return its state.

    ``attached`` makes the supervisor die with the calling thread (for test sessions).
    """
    folder = folder.resolve()
    existing = read_state(folder)
    if existing is not None:
        log(f"Control plane already running (supervisor pid {existing.pid}) at {existing.server}")
        return existing
    provision.binaries(build=True, log=log)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    _state_path(folder).unlink(missing_ok=True)
    supervisor_log = folder / "logs" / "supervisor.log"
    argv = [sys.executable, "-m", "bosun.dev.daemon", f"--dir={folder}"]
    with supervisor_log.open("ab") as out:
        proc = subprocess.Popen(
            cluster.die_with_parent(argv) if attached else argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=not attached,
            env=dict(os.environ),
        )
    _STARTED[folder] = proc
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(folder)
        if state is not None:
            log(f"Control plane ready at {state.server}; kubeconfig: {state.kubeconfig}")
            if not attached:
                _remember(folder)
            return state
        if proc.poll() is not None:
            _STARTED.pop(folder, None)
            tail = "\n".join(supervisor_log.read_text(errors="replace").splitlines()[-40:])
            raise cluster.StartError(
                f"the control plane failed to start (exit code {proc.returncode}); "
                f"{supervisor_log}:\n{tail}"
            )
        if time.monotonic() > deadline:
            _kill_group(proc.pid, attached)
            raise cluster.StartError(f"the control plane was not ready in {timeout:.0f}s")
        time.sleep(0.2)


def _kill_group(pid: int, attached: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if attached:
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie child of ours counts as gone once reaped.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


OPERATOR_FILE = "operator.json"
OPERATOR_RELEASE = "bosun"
OPERATOR_NAMESPACE = "bosun-system"


def _operator_pid(folder: pathlib.Path) -> int | None:
    """The pid of an operator an older ``bosun demo`` ran as a local process."""
    try:
        pid = int(json.loads((folder / OPERATOR_FILE).read_text())["pid"])
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if b"operator" in cmdline and b"bosun" in cmdline else None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def operator_info(folder: pathlib.Path) -> dict[str, Any] | None:
    """The demo's operator in ``folder``'s control plane (``release``, ``namespace``, ``health``
    and ``metrics`` URLs), or None when none answers."""
    try:
        info: dict[str, Any] = json.loads((folder / OPERATOR_FILE).read_text())
    except (OSError, ValueError):
        return None
    if info.get("pid") is not None:
        return info if _operator_pid(folder) is not None else None
    return info if _answers(str(info.get("health", ""))) else None


def operator_health(folder: pathlib.Path) -> str | None:
    """The health URL of the demo's operator of ``folder``, or None when none runs."""
    info = operator_info(folder)
    return None if info is None else str(info["health"])


def _last_path() -> pathlib.Path:
    return provision.cache_root() / "dev-last"


def _remember(folder: pathlib.Path) -> None:
    """Note ``folder`` as the last background control plane, so ``bosun dev status`` finds it
    from any directory."""
    with contextlib.suppress(OSError):
        _last_path().parent.mkdir(parents=True, exist_ok=True)
        _last_path().write_text(str(folder))


def locate(folder: pathlib.Path | None) -> tuple[State | None, list[pathlib.Path]]:
    """The running control plane of ``folder``; with no ``folder``, of ``DEFAULT_DIR`` under
    the working directory, else of the last one ``up`` started in the background. Also
    returns every folder it looked in."""
    candidates = [folder.resolve()] if folder is not None else [DEFAULT_DIR.resolve()]
    if folder is None:
        with contextlib.suppress(OSError):
            last = pathlib.Path(_last_path().read_text().strip())
            if last not in candidates:
                candidates.append(last)
    for candidate in candidates:
        state = read_state(candidate)
        if state is not None:
            return state, candidates
    return None, candidates


def start_operator(
    folder: pathlib.Path, state: State, chart: pathlib.Path, watch: str, log: Log = print
) -> str:
    """Install the Helm ``chart`` into this control plane (once): the operator Deployment on
    the built operator image, with the chart's CRDs and RBAC, watching namespace ``watch``.
    Returns its health URL; ``down`` stops it with the control plane."""
    folder = folder.resolve()
    running = operator_health(folder)
    if running is not None:
        log("Operator already running")
        return running
    helm = provision.ensure(["helm"], log=log)["helm"]
    metrics_port, health_port = cluster.free_port(), cluster.free_port()
    sets = {
        "operator.watchNamespaces": f"{{{watch}}}",
        "operator.metricsPort": str(metrics_port),
        "operator.healthPort": str(health_port),
    }
    argv = [str(helm), "upgrade", "--install", OPERATOR_RELEASE, str(chart)]
    argv += ["--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "3m"]
    argv += [f"--kubeconfig={state.kubeconfig}"]
    argv += [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise cluster.StartError(f"helm install of the operator failed:\n{proc.stderr.strip()}")
    health = f"http://127.0.0.1:{health_port}"
    info = {
        "release": OPERATOR_RELEASE,
        "namespace": OPERATOR_NAMESPACE,
        "health": health,
        "metrics": f"http://127.0.0.1:{metrics_port}",
    }
    (folder / OPERATOR_FILE).write_text(json.dumps(info))
    log(
        f"Installed the chart: operator Deployment {OPERATOR_NAMESPACE}/{OPERATOR_RELEASE}-operator"
    )
    return health


def _stop_operator(folder: pathlib.Path) -> None:
    """Stop an operator an older demo ran as a local process (a pod stops with the node)."""
    pid = _operator_pid(folder)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while not _pid_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (folder / OPERATOR_FILE).unlink(missing_ok=True)


def down(folder: pathlib.Path = DEFAULT_DIR, timeout: float = 40.0, log: Log = print) -> bool:
    """Stop the control plane in ``folder`` (and its operator); False when none was running."""
    folder = folder.resolve()
    _stop_operator(folder)
    state = read_state(folder)
    if state is None:
        log(f"No control plane running in {folder}")
        return False
    pids = [state.pid, *state.components.values()]
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while not all(_pid_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    _state_path(folder).unlink(missing_ok=True)
    started = _STARTED.pop(folder, None)
    if started is not None:
        started.wait()
    log(f"Control plane in {folder} stopped")
    return True


def _serve(folder: pathlib.Path) -> int:
    """The supervisor's main loop: start everything, report ready, stop on a signal."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    plane = cluster.ControlPlane(folder, provision.binaries(build=False))
    try:
        plane.start(log=lambda m: print(m, flush=True))
        state = {
            "pid": os.getpid(),
            "ready": True,
            "server": plane.server,
            "kubeconfig": str(plane.kubeconfig),
            "components": {c.name: c.proc.pid for c in plane.components if c.proc},
        }
        tmp = _state_path(folder).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(_state_path(folder))
        reported: set[str] = set()
        while not stop.wait(1.0):
            for component in plane.dead_components():
                if component.name not in reported:
                    reported.add(component.name)
                    print(f"Component {component.name} exited; see {component.log}", flush=True)
    except cluster.StartError as err:
        print(f"Start failed: {err}", flush=True)
        return 1
    finally:
        plane.stop()
        _state_path(folder).unlink(missing_ok=True)
        print("Stopped the control plane", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bosun.dev.daemon")
    parser.add_argument("--dir", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    return _serve(args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
