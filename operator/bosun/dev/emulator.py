"""Play kubelet for one emulated Node: run pods' containers as local processes.

No kubelet can run on these machines, so the local control plane registers a Node and this
process stands in for its kubelet: it binds pending pods to the Node (there is no scheduler),
starts each container's command as a local process (see ``images``) with the environment the
kubelet would give it (``podenv``) plus in-cluster credentials (the API address, a real bound
service-account token and the CA in a folder named by ``BOSUN_SERVICEACCOUNT_DIR``), and reports
``Running`` then ``Succeeded``/``Failed`` with the real exit code. It honours deletion (SIGTERM,
then SIGKILL after the grace period), ``activeDeadlineSeconds`` and restart policies, and offers
a fault hook: the pod annotation ``emulator.bosun.dev/fault`` set to ``kill`` kills the pod's
processes abruptly and reports the failure, ``vanish`` kills them and reports nothing more (a
lost node: the pod stays Running in the API), ``pause`` stops them and ``resume`` continues.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib import parse

from kubernetes import client
from kubernetes.client import exceptions

from bosun import constants
from bosun.dev import cluster, images, kubeclient, podenv

log = logging.getLogger("bosun.emulator")

Pod = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
TOKEN_SECONDS = 3600
_RESYNC = 0.2
_FULL_RESYNC = 10.0
_WORKERS = 8
_HEARTBEAT = 20.0
_RESTART_BACKOFF = 1.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class ContainerRun:
    """One container of a pod, run as a local process group."""

    name: str
    image: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    restart_count: int = 0
    restart_after: float = 0.0
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str | None = None
    paused: bool = False
    lost: bool = False
    last_terminated: dict[str, Any] | None = None
    termination_log: pathlib.Path | None = None
    """The file standing in for ``terminationMessagePath``; what the process left there is the
    terminated state's ``message``, as the kubelet reports it."""

    def running(self) -> bool:
        return self.proc is not None and self.exit_code is None

    def send(self, sig: int) -> None:
        if self.running() and self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def reap(self) -> bool:
        """Record the exit of a finished process; True when it just finished."""
        if self.proc is None or self.exit_code is not None:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        self.finished_at = _now()
        if code < 0:
            self.signal = -code
            self.exit_code = 128 - code
        else:
            self.exit_code = code
        # Whatever the main process left in its group dies with it, as in a container.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return True

    def terminated_state(self) -> dict[str, Any]:
        assert self.exit_code is not None
        state: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else "Error",
            "startedAt": _stamp(self.started_at or _now()),
            "finishedAt": _stamp(self.finished_at or _now()),
            "containerID": self.container_id(),
        }
        if self.signal:
            state["signal"] = self.signal
        if self.termination_log is not None:
            with contextlib.suppress(OSError):
                with self.termination_log.open("rb") as handle:
                    message = handle.read(4096).decode("utf-8", "replace")
                if message:
                    state["message"] = message
        return state

    def container_id(self) -> str:
        return f"emulator://{self.proc.pid}" if self.proc else ""

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "restartCount": self.restart_count,
            "ready": self.running() and not self.paused,
            "started": self.running(),
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.running():
            status["containerID"] = self.container_id()
            status["state"] = {"running": {"startedAt": _stamp(self.started_at or _now())}}
        elif self.exit_code is not None:
            status["containerID"] = self.container_id()
            status["state"] = {"terminated": self.terminated_state()}
        else:
            waiting: dict[str, Any] = {"reason": self.waiting_reason or "ContainerCreating"}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            status["state"] = {"waiting": waiting}
        return status


@dataclasses.dataclass
class PodRun:
    """What the emulator knows and runs for one pod bound to its Node."""

    uid: str
    namespace: str
    name: str
    folder: pathlib.Path
    containers: list[ContainerRun]
    start_time: datetime.datetime = dataclasses.field(default_factory=_now)
    env: dict[str, dict[str, str]] | None = None
    phase: str = "Pending"
    reason: str | None = None
    message: str | None = None
    terminate_at: float | None = None
    kill_at: float | None = None
    token_refresh_at: float = 0.0
    fault_seen: str | None = None
    vanished: bool = False
    last_status: str = ""

    def any_running(self) -> bool:
        return any(c.running() for c in self.containers)

    def signal_all(self, sig: int) -> None:
        for container in self.containers:
            container.send(sig)


class Emulator:
    """The node emulator: one Node, its pods, their processes."""

    def __init__(
        self,
        api: client.ApiClient,
        folder: pathlib.Path,
        ca_file: pathlib.Path,
        node_name: str = constants.EMULATOR_NODE_NAME,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.folder = folder
        self.ca_file = ca_file
        self.node_name = node_name
        self.pods: dict[str, Pod] = {}
        self.dirty: set[str] = set()
        self.runs: dict[str, PodRun] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        host = parse.urlparse(api.configuration.host)
        self.api_host = host.hostname or "127.0.0.1"
        self.api_port = str(host.port or 443)
        self.image_table = images.known_images()

    # --- the Node -----------------------------------------------------------------------------

    def register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "bosun.dev/emulated": "true",
                },
            },
        }
        with contextlib.suppress(exceptions.ApiException):
            self.core.create_node(node, _preload_content=False)
        self.heartbeat()
        log.info("Registered node name=%s", self.node_name)

    def heartbeat(self) -> None:
        now = _stamp(_now())
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "1000", "ephemeral-storage": "100Gi"}
        status = {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "bosun node emulator is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "nodeInfo": {
                    "machineID": "bosun-emulator",
                    "systemUUID": "bosun-emulator",
                    "bootID": "bosun-emulator",
                    "kernelVersion": os.uname().release,
                    "osImage": "bosun node emulator",
                    "containerRuntimeVersion": "emulator://0.1",
                    "kubeletVersion": "v1.34.0-emulated",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }
        self.core.patch_node_status(
            self.node_name, status, _preload_content=False, _content_type=MERGE_PATCH
        )

    # --- watching pods ------------------------------------------------------------------------

    def _list(self) -> str:
        response = self.core.list_pod_for_all_namespaces(_preload_content=False)
        body = json.loads(response.data)
        with self.lock:
            self.pods = {p["metadata"]["uid"]: p for p in body["items"]}
            self.dirty.update(self.pods)
        self.wake.set()
        return str(body["metadata"]["resourceVersion"])

    def watch_forever(self) -> None:
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._list()
                response = self.core.list_pod_for_all_namespaces(
                    watch=True,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=60,
                    _preload_content=False,
                    _request_timeout=90,
                )
                for line in response:
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    with self.lock:
                        if kind == "DELETED":
                            self.pods.pop(obj["metadata"]["uid"], None)
                        else:
                            self.pods[obj["metadata"]["uid"]] = obj
                            self.dirty.add(obj["metadata"]["uid"])
                    self.wake.set()
                response.release_conn()
            except Exception as err:
                if self.stopping.is_set():
                    return
                log.warning("Watch of pods failed, relisting error=%r", err)
                version = ""
                self.stopping.wait(1.0)

    # --- reconciling ----------------------------------------------------------------------------

    def _due(self, pods: dict[str, Pod], full: bool) -> list[Pod]:
        """Pods worth a look now: changed ones, ones with live processes, or all on a resync."""
        with self.lock:
            dirty, self.dirty = self.dirty, set()
        if full:
            return list(pods.values())
        live = {
            uid
            for uid, run in self.runs.items()
            if run.phase not in ("Succeeded", "Failed") or run.terminate_at is not None
        }
        return [pods[uid] for uid in dirty | live if uid in pods]

    def _reconcile_safely(self, pod: Pod) -> None:
        try:
            self.reconcile(pod)
        except Exception:
            log.exception("Reconcile failed pod=%s", _ref(pod))
            with self.lock:
                self.dirty.add(pod["metadata"]["uid"])

    def run_forever(self) -> None:
        last_heartbeat = last_resync = time.monotonic()
        # Pod processes are started from these threads; they live as long as the emulator,
        # which matters because a pod's death signal is tied to the thread that started it.
        with concurrent.futures.ThreadPoolExecutor(_WORKERS, thread_name_prefix="pod") as pool:
            while not self.stopping.is_set():
                self.wake.wait(_RESYNC)
                self.wake.clear()
                with self.lock:
                    pods = dict(self.pods)
                full = time.monotonic() - last_resync > _FULL_RESYNC
                if full:
                    last_resync = time.monotonic()
                list(pool.map(self._reconcile_safely, self._due(pods, full)))
                for uid in list(self.runs):
                    if uid not in pods:
                        self._forget(uid)
                if time.monotonic() - last_heartbeat > _HEARTBEAT:
                    last_heartbeat = time.monotonic()
                    with contextlib.suppress(Exception):
                        self.heartbeat()

    def reconcile(self, pod: Pod) -> None:
        spec = pod.get("spec", {})
        meta = pod["metadata"]
        if not spec.get("nodeName"):
            if not meta.get("deletionTimestamp"):
                self._bind(pod)
            return
        if spec["nodeName"] != self.node_name:
            return
        uid = meta["uid"]
        run = self.runs.get(uid)
        phase = (pod.get("status") or {}).get("phase")
        if run is None:
            if meta.get("deletionTimestamp"):
                self._delete_now(pod)
                return
            if phase in ("Succeeded", "Failed"):
                return
            run = self._new_run(pod, lost=phase == "Running")
            self.runs[uid] = run
        if meta.get("deletionTimestamp"):
            self._terminate(pod, run)
            return
        self._apply_fault(pod, run)
        if run.vanished:
            # A lost node: its processes are gone and nobody reports on the pod any more.
            for container in run.containers:
                container.reap()
            return
        if run.phase in ("Succeeded", "Failed"):
            self._report(pod, run)
            return
        self._step(pod, run)
        self._report(pod, run)

    def _bind(self, pod: Pod) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.core.create_namespaced_binding(meta["namespace"], binding, _preload_content=False)
            log.info("Bound pod pod=%s node=%s", _ref(pod), self.node_name)
        except exceptions.ApiException as err:
            if err.status not in (404, 409):
                raise

    def _new_run(self, pod: Pod, lost: bool = False) -> PodRun:
        """Track a pod; ``lost`` marks containers a previous emulator ran and took with it."""
        meta = pod["metadata"]
        folder = self.folder / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        containers = [
            ContainerRun(name=c["name"], image=c.get("image", ""))
            for c in pod["spec"].get("containers", [])
        ]
        run = PodRun(meta["uid"], meta["namespace"], meta["name"], folder, containers)
        if lost:
            run.phase = "Running"
            for container in containers:
                container.started_at = container.finished_at = _now()
                container.exit_code, container.signal, container.lost = 137, signal.SIGKILL, True
                container.waiting_reason = None
            log.info("Found pod whose containers were lost pod=%s", _ref(pod))
        return run

    def _step(self, pod: Pod, run: PodRun) -> None:
        spec = pod["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        elapsed = (_now() - run.start_time).total_seconds()
        if deadline is not None and run.phase == "Running" and elapsed > float(deadline):
            self._fail_deadline(run)
            return
        if run.env is None and not self._prepare(pod, run):
            return
        restart = spec.get("restartPolicy", "Always")
        by_name = {c["name"]: c for c in spec.get("containers", [])}
        for container in run.containers:
            if container.reap() or container.lost:
                container.lost = False
                log.info(
                    "Container exited pod=%s container=%s exit_code=%s",
                    _ref(pod),
                    container.name,
                    container.exit_code,
                )
                code = container.exit_code
                if restart == "Always" or (restart == "OnFailure" and code != 0):
                    container.last_terminated = container.terminated_state()
                    container.restart_count += 1
                    delay = min(_RESTART_BACKOFF * 2 ** (container.restart_count - 1), 30.0)
                    container.restart_after = time.monotonic() + delay
                    container.proc, container.exit_code, container.signal = None, None, None
                    container.waiting_reason = "CrashLoopBackOff"
            idle = container.proc is None and container.exit_code is None
            if idle and time.monotonic() >= container.restart_after:
                self._start(pod, run, container, by_name[container.name])
        if run.phase == "Failed":
            return
        if any(c.running() for c in run.containers):
            run.phase = "Running"
        elif all(c.exit_code is not None for c in run.containers):
            failed = any(c.exit_code != 0 for c in run.containers)
            run.phase = "Failed" if failed else "Succeeded"
        if run.token_refresh_at and time.monotonic() > run.token_refresh_at:
            self._write_token(pod, run)

    def _prepare(self, pod: Pod, run: PodRun) -> bool:
        """Resolve every container's env and credentials; False while something is missing."""
        envs: dict[str, dict[str, str]] = {}
        for spec in pod["spec"].get("containers", []):
            container = next(c for c in run.containers if c.name == spec["name"])
            try:
                images.local_argv(
                    spec.get("image", ""), spec.get("command"), spec.get("args"), self.image_table
                )
            except images.UnknownImageError as err:
                run.phase, run.reason, run.message = "Failed", "UnknownImage", str(err)
                container.waiting_reason, container.waiting_message = "ErrImagePull", str(err)
                log.warning("Failed pod with unknown image pod=%s error=%s", _ref(pod), err)
                return False
            try:
                envs[spec["name"]] = podenv.container_env(pod, spec, self._secret, self._configmap)
            except podenv.EnvError as err:
                container.waiting_reason = "CreateContainerConfigError"
                container.waiting_message = str(err)
                return False
        if self._wants_token(pod):
            self._write_token(pod, run)
        run.env = envs
        return True

    def _wants_token(self, pod: Pod) -> bool:
        for volume in pod["spec"].get("volumes") or ():
            for source in (volume.get("projected") or {}).get("sources") or ():
                if source.get("serviceAccountToken"):
                    return True
        return False

    def _write_token(self, pod: Pod, run: PodRun) -> None:
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        response = self.core.create_namespaced_service_account_token(
            account, meta["namespace"], request, _preload_content=False
        )
        token = json.loads(response.data)["status"]["token"]
        sa_dir = run.folder / "serviceaccount"
        sa_dir.mkdir(exist_ok=True)
        tmp = sa_dir / ".token.tmp"
        tmp.write_text(token)
        tmp.chmod(0o600)
        tmp.replace(sa_dir / "token")
        shutil.copyfile(self.ca_file, sa_dir / "ca.crt")
        (sa_dir / "namespace").write_text(meta["namespace"])
        run.token_refresh_at = time.monotonic() + TOKEN_SECONDS * 0.8

    def _base_env(self, pod: Pod, run: PodRun) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(run.folder),
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": self.api_port,
            "KUBERNETES_SERVICE_PORT_HTTPS": self.api_port,
            "KUBERNETES_PORT": f"tcp://{self.api_host}:{self.api_port}",
        }
        for name in ("LANG", "LC_ALL", "TZ", "VIRTUAL_ENV"):
            if name in os.environ:
                env[name] = os.environ[name]
        if (run.folder / "serviceaccount" / "token").exists():
            env[constants.EMULATOR_SERVICEACCOUNT_DIR_ENV] = str(run.folder / "serviceaccount")
        return env

    def _start(
        self, pod: Pod, run: PodRun, container: ContainerRun, spec: Mapping[str, Any]
    ) -> None:
        argv = images.local_argv(
            spec.get("image", ""), spec.get("command"), spec.get("args"), self.image_table
        )
        env = self._base_env(pod, run)
        env.update((run.env or {}).get(container.name, {}))
        # Each start of the container gets an empty termination-message file.
        container.termination_log = run.folder / f"{container.name}.termination-log"
        container.termination_log.write_bytes(b"")
        env[constants.EMULATOR_TERMINATION_LOG_ENV] = str(container.termination_log)
        log_path = run.folder / f"{container.name}.log"
        with log_path.open("ab") as out:
            try:
                # A pod's processes die with the emulator, as containers with a lost node.
                container.proc = subprocess.Popen(
                    cluster.die_with_parent(argv, "KILL"),
                    cwd=run.folder,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as err:
                container.exit_code = 127 if isinstance(err, FileNotFoundError) else 126
                container.started_at = container.finished_at = _now()
                container.waiting_reason = None
                log.warning("Could not start container pod=%s error=%s", _ref(pod), err)
                return
        container.started_at = _now()
        container.waiting_reason = container.waiting_message = None
        log.info(
            "Started container pod=%s container=%s pid=%s argv=%s",
            _ref(pod),
            container.name,
            container.proc.pid,
            argv,
        )

    def _fail_deadline(self, run: PodRun) -> None:
        run.signal_all(signal.SIGKILL)
        for container in run.containers:
            if container.proc is not None:
                container.proc.wait()
                container.reap()
        run.phase, run.reason = "Failed", "DeadlineExceeded"
        run.message = "Pod was active on the node longer than the specified deadline"
        log.info("Failed pod past its deadline pod=%s/%s", run.namespace, run.name)

    def _apply_fault(self, pod: Pod, run: PodRun) -> None:
        annotations = pod["metadata"].get("annotations") or {}
        fault = annotations.get(constants.ANNOTATION_EMULATOR_FAULT)
        if fault == run.fault_seen:
            return
        run.fault_seen = fault
        if fault == "kill":
            log.info("Injected fault kill pod=%s", _ref(pod))
            run.signal_all(signal.SIGKILL)
        elif fault == "vanish":
            log.info("Injected fault vanish pod=%s", _ref(pod))
            run.signal_all(signal.SIGKILL)
            run.vanished = True
        elif fault == "pause":
            log.info("Injected fault pause pod=%s", _ref(pod))
            run.signal_all(signal.SIGSTOP)
            for container in run.containers:
                container.paused = True
        elif fault == "resume":
            log.info("Injected fault resume pod=%s", _ref(pod))
            run.signal_all(signal.SIGCONT)
            for container in run.containers:
                container.paused = False

    def _terminate(self, pod: Pod, run: PodRun) -> None:
        meta = pod["metadata"]
        now = time.monotonic()
        if run.terminate_at is None:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            run.terminate_at = now
            run.kill_at = now + float(grace)
            run.signal_all(signal.SIGCONT)
            run.signal_all(signal.SIGTERM)
            log.info("Terminating pod=%s grace_seconds=%s", _ref(pod), grace)
        elif run.kill_at is not None and now >= run.kill_at and run.any_running():
            run.signal_all(signal.SIGKILL)
        for container in run.containers:
            container.reap()
        if not run.any_running():
            self._delete_now(pod)

    def _delete_now(self, pod: Pod) -> None:
        meta = pod["metadata"]
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], body=options, _preload_content=False
            )
        except exceptions.ApiException as err:
            if err.status not in (404, 409):
                raise

    def _forget(self, uid: str) -> None:
        run = self.runs.pop(uid)
        run.signal_all(signal.SIGCONT)
        run.signal_all(signal.SIGKILL)
        for container in run.containers:
            if container.proc is not None:
                container.proc.wait()
        log.info("Forgot pod pod=%s/%s", run.namespace, run.name)

    def _report(self, pod: Pod, run: PodRun) -> None:
        running = run.phase == "Running" and all(
            c.running() and not c.paused for c in run.containers
        )
        ready = "True" if running else "False"
        started = _stamp(run.start_time)
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": started},
            {"type": "Ready", "status": ready, "lastTransitionTime": started},
        ]
        status: dict[str, Any] = {
            "phase": run.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": started,
            "conditions": conditions,
            "containerStatuses": [c.status() for c in run.containers],
        }
        if run.reason:
            status["reason"] = run.reason
            status["message"] = run.message or ""
        rendered = json.dumps(status, sort_keys=True)
        if rendered == run.last_status:
            return
        try:
            self.core.patch_namespaced_pod_status(
                run.name,
                run.namespace,
                {"status": status},
                _preload_content=False,
                _content_type=MERGE_PATCH,
            )
        except exceptions.ApiException as err:
            if err.status == 404:
                return
            raise
        run.last_status = rendered
        log.info("Reported pod status pod=%s phase=%s", _ref(pod), run.phase)

    # --- Secret and ConfigMap lookups (the kubelet reads them; so does its stand-in) -----------

    def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            response = self.core.read_namespaced_secret(name, namespace, _preload_content=False)
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise
        data = json.loads(response.data).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            response = self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
        except exceptions.ApiException as err:
            if err.status == 404:
                return None
            raise
        data: dict[str, str] = json.loads(response.data).get("data") or {}
        return data

    def shutdown(self) -> None:
        self.stopping.set()
        for uid in list(self.runs):
            self._forget(uid)


def _ref(pod: Pod) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bosun.dev.emulator")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dir", type=pathlib.Path, required=True)
    parser.add_argument("--ca", type=pathlib.Path, required=True)
    parser.add_argument("--node-name", default=constants.EMULATOR_NODE_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    args.dir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(kubeclient.api_client(args.kubeconfig), args.dir, args.ca, args.node_name)

    def _on_signal(signum: int, _frame: object) -> None:
        emulator.stopping.set()
        emulator.wake.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.register_node()
    watcher = threading.Thread(target=emulator.watch_forever, name="pod-watch", daemon=True)
    watcher.start()
    try:
        emulator.run_forever()
    finally:
        emulator.shutdown()
        log.info("Stopped node emulator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
