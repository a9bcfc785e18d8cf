"""The node emulator's loop: look at the pods that need it, decide with ``pods``, then act.

``Emulator`` is the thin executor between the pure state machine and the world. Each pass of
``run_forever`` takes the pods the watch marked dirty plus those with live processes (all of
them every ten seconds), and ``reconcile`` binds a pending pod, or reads its processes from the
``supervisor``, asks ``pods.decide_pod``/``pods.decide_containers`` what to do, does it (signals,
starts, token files, the final delete) and reports the rendered status through the
``reporter``. It also resolves each container's local command (``images``) and environment
(``podenv``, plus the in-cluster variables and service-account folder a kubelet would give).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import sys
import threading
from typing import Any, Protocol

from bosun import constants
from bosun.dev import container, images, imagestore, podenv
from bosun.dev.emulator import clock, model, pods, status, supervisor

__all__ = ["Emulator", "NodeApi", "PodApi", "PodSource"]

log = logging.getLogger("bosun.emulator")

_RESYNC = 0.2
_FULL_RESYNC = 10.0
_WORKERS = 8
_HEARTBEAT = 20.0


class NodeApi(Protocol):
    """The node-level API calls (``node.Node``)."""

    name: str

    def heartbeat(self) -> None: ...
    def bind(self, pod: model.Pod) -> None: ...


class PodApi(Protocol):
    """The pod-level API calls (``reporter.Reporter``)."""

    def report(self, uid: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    def forget(self, uid: str) -> None: ...
    def delete_now(self, namespace: str, name: str, uid: str) -> None: ...
    def request_token(
        self, namespace: str, account: str, pod_name: str, pod_uid: str, seconds: int
    ) -> str: ...
    def secret(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def configmap(self, namespace: str, name: str) -> dict[str, str] | None: ...


class PodSource(Protocol):
    """Where the pods come from (``node.PodWatch``)."""

    wake: threading.Event
    stopping: threading.Event

    def snapshot(self) -> dict[str, model.Pod]: ...
    def take_dirty(self) -> set[str]: ...
    def mark_dirty(self, uid: str) -> None: ...


@dataclasses.dataclass
class _Run:
    """A pod the emulator tracks: who it is, where its files go, what it remembers."""

    namespace: str
    name: str
    uid: str
    folder: pathlib.Path
    state: model.PodState
    launches: dict[str, images.LocalCommand | container.Launch] = dataclasses.field(
        default_factory=dict
    )
    """How each container starts, decided when the pod was prepared."""


class Emulator:
    """The node emulator: one Node, its pods, their processes."""

    def __init__(
        self,
        node: NodeApi,
        pod_api: PodApi,
        source: PodSource,
        *,
        folder: pathlib.Path,
        ca_file: pathlib.Path,
        api_address: tuple[str, str],
        time: clock.Clock | None = None,
        image_store: imagestore.Store | None = None,
    ) -> None:
        self.node = node
        self.pod_api = pod_api
        self.source = source
        self.folder = folder
        self.ca_file = ca_file
        self.api_host, self.api_port = api_address
        self.clock = time or clock.SystemClock()
        self.supervisor = supervisor.Supervisor(self.clock)
        self.runs: dict[str, _Run] = {}
        self.image_table = images.known_images()
        self.image_store = image_store

    # --- the loop -------------------------------------------------------------------------------

    def _due(self, snapshot: dict[str, model.Pod], full: bool) -> list[model.Pod]:
        """Pods worth a look now: changed ones, ones with live processes, or all on a resync."""
        dirty = self.source.take_dirty()
        if full:
            return list(snapshot.values())
        live = {
            uid
            for uid, run in self.runs.items()
            if run.state.phase not in model.FINAL_PHASES or run.state.terminate_at is not None
        }
        return [snapshot[uid] for uid in dirty | live if uid in snapshot]

    def _reconcile_safely(self, pod: model.Pod) -> None:
        try:
            self.reconcile(pod)
        except Exception:
            log.exception("Reconcile failed pod=%s", pods.ref(pod))
            self.source.mark_dirty(pod["metadata"]["uid"])

    def run_forever(self) -> None:
        last_heartbeat = last_resync = self.clock.now().mono
        # Pod processes are started from these threads; they live as long as the emulator,
        # which matters because a pod's death signal is tied to the thread that started it.
        with concurrent.futures.ThreadPoolExecutor(_WORKERS, thread_name_prefix="pod") as pool:
            while not self.source.stopping.is_set():
                self.source.wake.wait(_RESYNC)
                self.source.wake.clear()
                snapshot = self.source.snapshot()
                full = self.clock.now().mono - last_resync > _FULL_RESYNC
                if full:
                    last_resync = self.clock.now().mono
                list(pool.map(self._reconcile_safely, self._due(snapshot, full)))
                for uid in list(self.runs):
                    if uid not in snapshot:
                        self._forget(uid)
                if self.clock.now().mono - last_heartbeat > _HEARTBEAT:
                    last_heartbeat = self.clock.now().mono
                    with contextlib.suppress(Exception):
                        self.node.heartbeat()

    def shutdown(self) -> None:
        self.source.stopping.set()
        for uid in list(self.runs):
            self._forget(uid)

    def _forget(self, uid: str) -> None:
        run = self.runs.pop(uid)
        self.supervisor.forget(uid)
        self.pod_api.forget(uid)
        log.info("Forgot pod pod=%s/%s", run.namespace, run.name)

    # --- one pod ----------------------------------------------------------------------------------

    def reconcile(self, pod: model.Pod) -> None:
        spec, meta = pod.get("spec", {}), pod["metadata"]
        if not spec.get("nodeName"):
            if not meta.get("deletionTimestamp"):
                self.node.bind(pod)
            return
        if spec["nodeName"] != self.node.name:
            return
        uid = meta["uid"]
        run = self.runs.get(uid)
        if run is None:
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp"):
                self.pod_api.delete_now(meta["namespace"], meta["name"], uid)
                return
            if phase in model.FINAL_PHASES:
                return
            run = self._adopt(pod, lost=phase == "Running")
        now = self.clock.now()
        plan = pods.decide_pod(pod, run.state, self.supervisor.processes(uid), now)
        self._execute(pod, run, plan)
        if plan.step:
            if run.state.env is None:
                run.state = pods.prepared(run.state, self._prepare(pod, run), now)
            if run.state.env is not None:
                procs = self.supervisor.processes(uid)
                self._execute(pod, run, pods.decide_containers(pod, run.state, procs, now))
                run.state = pods.settle(run.state, self.supervisor.last_seen(uid))
        if plan.report:
            rendered = status.render(run.state, self.supervisor.last_seen(uid))
            self.pod_api.report(uid, run.namespace, run.name, rendered)

    def _adopt(self, pod: model.Pod, lost: bool) -> _Run:
        """Track a pod; ``lost`` marks containers a previous emulator ran and took with it."""
        meta = pod["metadata"]
        folder = self.folder / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        # Root's alone, as the kubelet's pod folders: tokens, Secret values and volumes inside.
        folder.chmod(0o700)
        state = pods.adopt(pod, self.clock.now(), lost=lost)
        names = [c.name for c in state.containers]
        self.supervisor.track(meta["uid"], pods.ref(pod), folder, names)
        if lost:
            self.supervisor.mark_lost(meta["uid"])
            log.info("Found pod whose containers were lost pod=%s", pods.ref(pod))
        run = _Run(meta["namespace"], meta["name"], meta["uid"], folder, state)
        self.runs[run.uid] = run
        return run

    def _execute(self, pod: model.Pod, run: _Run, plan: model.Plan) -> None:
        run.state = plan.state
        for note in plan.notes:
            fields = "".join(f" {key}={value}" for key, value in note.fields)
            log.info("%s pod=%s%s", note.text, pods.ref(pod), fields)
        for action in plan.actions:
            match action:
                case model.Signal(sig=sig):
                    self.supervisor.signal(run.uid, sig)
                case model.PodAction.KILL_AND_WAIT:
                    self.supervisor.kill_and_wait(run.uid)
                case model.Start(container=name):
                    self._start(pod, run, name)
                case model.Discard(container=name):
                    self.supervisor.discard(run.uid, name)
                case model.PodAction.DELETE_NOW:
                    self.pod_api.delete_now(run.namespace, run.name, run.uid)
                case model.PodAction.REFRESH_TOKEN:
                    self._write_token(pod, run)
                    run.state = pods.token_written(run.state, self.clock.now())

    # --- what a container is given ------------------------------------------------------------

    def _prepare(self, pod: model.Pod, run: _Run) -> model.Outcome:
        """Resolve every container's image and env (and, from an image, how to launch it), and
        write the token when one is mounted."""
        envs: dict[str, dict[str, str]] = {}
        launches: dict[str, images.LocalCommand | container.Launch] = {}
        volumes: dict[str, pathlib.Path] | None = None
        for spec in pod["spec"].get("containers", []):
            name = spec["name"]
            try:
                found = self._resolve(spec)
            except images.UnknownImageError as err:
                if not _waiting(run.state, name, "ErrImageNeverPull"):
                    log.warning("Image not present pod=%s error=%s", pods.ref(pod), err)
                return model.ImageMissing(name, str(err))
            try:
                secret, configmap = self.pod_api.secret, self.pod_api.configmap
                envs[name] = podenv.container_env(pod, spec, secret, configmap)
                if isinstance(found, images.FromImage):
                    if volumes is None:
                        volumes = self._pod_files(pod, run)
                    launches[name] = self._launch(
                        pod, run, spec, found, envs[name], volumes=volumes
                    )
                else:
                    launches[name] = found
            except (podenv.EnvError, container.ConfigError) as err:
                return model.EnvMissing(name, str(err))
        run.launches = launches
        wants_token = _token_volume(pod) is not None
        if wants_token:
            self._write_token(pod, run)
        return model.EnvReady(envs, token_written=wants_token)

    def _resolve(self, spec: dict[str, Any]) -> images.LocalCommand | images.FromImage:
        return images.resolve(
            spec.get("image", ""),
            spec.get("command"),
            spec.get("args"),
            store=self.image_store,
            table=self.image_table,
        )

    def _pod_files(self, pod: model.Pod, run: _Run) -> dict[str, pathlib.Path]:
        """What a kubelet makes for a pod's containers: its hostname and hosts files and a
        folder per emptyDir volume (returned by volume name)."""
        volumes: dict[str, pathlib.Path] = {}
        for volume in pod["spec"].get("volumes") or ():
            if "emptyDir" in volume:
                folder = run.folder / "volumes" / volume["name"]
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o777)
                volumes[volume["name"]] = folder
        name = pod["metadata"]["name"]
        (run.folder / "hostname").write_text(f"{name}\n")
        (run.folder / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"
        )
        return volumes

    def _launch(
        self,
        pod: model.Pod,
        run: _Run,
        spec: dict[str, Any],
        found: images.FromImage,
        env: dict[str, str],
        *,
        volumes: dict[str, pathlib.Path],
    ) -> container.Launch:
        """How to start a container from its image (ConfigError when it cannot be)."""
        return container.plan(
            pod,
            spec,
            found.image,
            workdir=run.folder / f"{spec['name']}.container",
            env={**self._kubelet_env(pod), **env},
            token_dir=run.folder / "serviceaccount",
            volumes=volumes,
        )

    def _write_token(self, pod: model.Pod, run: _Run) -> None:
        account = pod["spec"].get("serviceAccountName") or "default"
        token = self.pod_api.request_token(
            run.namespace, account, run.name, run.uid, pods.TOKEN_SECONDS
        )
        sa_dir = run.folder / "serviceaccount"
        sa_dir.mkdir(exist_ok=True)
        tmp = sa_dir / ".token.tmp"
        tmp.write_text(token)
        # The projected volume's defaultMode, 0644 unless it says otherwise, as the kubelet.
        mode = int(((_token_volume(pod) or {}).get("projected") or {}).get("defaultMode", 0o644))
        tmp.chmod(mode)
        tmp.replace(sa_dir / "token")
        shutil.copyfile(self.ca_file, sa_dir / "ca.crt")
        (sa_dir / "namespace").write_text(run.namespace)
        for name in ("ca.crt", "namespace"):
            (sa_dir / name).chmod(mode)

    def _kubelet_env(self, pod: model.Pod) -> dict[str, str]:
        """What a kubelet sets in every container: the hostname and the API server's address."""
        return {
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": self.api_port,
            "KUBERNETES_SERVICE_PORT_HTTPS": self.api_port,
            "KUBERNETES_PORT": f"tcp://{self.api_host}:{self.api_port}",
        }

    def _base_env(self, run: _Run, *, local: bool) -> dict[str, str]:
        """The environment of a local command, or of the launcher of an image's container."""
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        # PYTHONPATH: a local command (and the launcher) runs the checkout the emulator runs.
        for name in ("LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH"):
            if name in os.environ:
                env[name] = os.environ[name]
        if local:
            env["HOME"] = str(run.folder)
            if (run.folder / "serviceaccount" / "token").exists():
                env[constants.EMULATOR_SERVICEACCOUNT_DIR_ENV] = str(run.folder / "serviceaccount")
        return env

    def _start(self, pod: model.Pod, run: _Run, name: str) -> None:
        launch = run.launches[name]
        if isinstance(launch, container.Launch):
            path = run.folder / f"{name}.launch.json"
            launch.dump(path)
            # -P: the pod's folder (the working directory) is not on the launcher's path.
            argv = [sys.executable, "-P", "-m", "bosun.dev.container", str(path)]
            self.supervisor.start(run.uid, name, argv, self._base_env(run, local=False))
            return
        pod_env = (run.state.env or {}).get(name, {})
        env = {**self._base_env(run, local=True), **self._kubelet_env(pod), **pod_env}
        self.supervisor.start(run.uid, name, launch.argv, env)


def _waiting(state: model.PodState, name: str, reason: str) -> bool:
    return any(c.name == name and c.waiting_reason == reason for c in state.containers)


def _token_volume(pod: model.Pod) -> dict[str, Any] | None:
    """The pod's projected volume with a service-account token, if it has one."""
    volumes = pod["spec"].get("volumes") or ()
    return next((v for v in volumes if container.is_token_volume(v)), None)
