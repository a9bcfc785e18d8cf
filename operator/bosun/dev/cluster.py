"""Start and stop the processes of the local control plane.

``ControlPlane`` runs etcd, kube-apiserver (secure serving, client-certificate auth, RBAC, a
service-account issuer), kube-controller-manager (job, garbage-collector, namespace,
service-account and token controllers, among others) and the node emulator as child processes
of the calling process, on free ports, with their logs in ``DIR/logs``. It writes
``DIR/kubeconfig`` for an admin user and returns once the API server is ready and the
controllers have created the default ServiceAccount.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import yaml

from bosun.dev import pki as pki_mod
from bosun.dev import provision

__all__ = [
    "ADMIN_USER",
    "CONTROLLERS",
    "SA_ISSUER",
    "SERVICE_CIDR",
    "Component",
    "ControlPlane",
    "StartError",
    "die_with_parent",
    "free_port",
    "write_kubeconfig",
]

ADMIN_USER = "bosun-admin"
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "ttl-after-finished-controller",
    "cronjob-controller",
    "endpoints-controller",
    "endpointslice-controller",
    # Fills the built-in view, edit and admin roles (and the chart's roles aggregated into them).
    "clusterrole-aggregation-controller",
)
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class StartError(RuntimeError):
    """A control-plane component failed to start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent(argv: list[str], sig: str = "TERM") -> list[str]:
    """Wrap ``argv`` so the kernel signals the process when the thread that started it exits.

    Uses util-linux's ``setpriv --pdeathsig`` (the death signal survives ``exec``), so no
    Python code runs between fork and exec even in a threaded parent.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, f"--pdeathsig={sig}", "--", *argv]


def write_kubeconfig(
    path: pathlib.Path,
    server: str,
    *,
    ca: pathlib.Path,
    cert: pathlib.Path,
    key: pathlib.Path,
    user: str,
) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "bosun-local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": "bosun-local", "context": {"cluster": "bosun-local", "user": user}}],
        "current-context": "bosun-local",
    }
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    path.chmod(0o600)


@dataclasses.dataclass
class Component:
    name: str
    argv: list[str]
    log: pathlib.Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                die_with_parent(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost node would end it."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclasses.dataclass
class ControlPlane:
    """The local control plane, run as children of this process."""

    folder: pathlib.Path
    binaries: provision.Binaries
    emulator: bool = True
    components: list[Component] = dataclasses.field(default_factory=list)
    api_port: int = 0

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.folder / "kubeconfig"

    @property
    def logs(self) -> pathlib.Path:
        return self.folder / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 180.0, log: Callable[[str], None] = print) -> None:
        started = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        pki = pki_mod.create(
            self.folder / "pki",
            {
                "admin": (ADMIN_USER, "system:masters"),
                "controller-manager": ("system:kube-controller-manager", None),
            },
        )
        etcd_dir = self.folder / "etcd"
        shutil.rmtree(etcd_dir, ignore_errors=True)
        etcd_port, peer_port = free_port(), free_port()
        self.api_port = free_port()
        cm_port = free_port()
        write_kubeconfig(
            self.kubeconfig,
            self.server,
            ca=pki.ca_cert,
            cert=pki.client_cert("admin"),
            key=pki.client_key("admin"),
            user=ADMIN_USER,
        )
        cm_kubeconfig = self.folder / "controller-manager.kubeconfig"
        write_kubeconfig(
            cm_kubeconfig,
            self.server,
            ca=pki.ca_cert,
            cert=pki.client_cert("controller-manager"),
            key=pki.client_key("controller-manager"),
            user="system:kube-controller-manager",
        )
        etcd = Component(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=bosun",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=bosun=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.logs / "etcd.log",
        )
        apiserver = Component(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={pki.folder}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            self.logs / "kube-apiserver.log",
        )
        controller_manager = Component(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={cm_kubeconfig}",
                f"--authentication-kubeconfig={cm_kubeconfig}",
                f"--authorization-kubeconfig={cm_kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--leader-elect=false",
                # The defaults (20 QPS, 5 Job syncs) make the Job controller the bottleneck of
                # any load test long before the API server or Bosun is.
                "--kube-api-qps=300",
                "--kube-api-burst=500",
                "--concurrent-job-syncs=20",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--cert-dir={self.folder / 'controller-manager-certs'}",
                "--v=1",
            ],
            self.logs / "kube-controller-manager.log",
        )
        etcd.start()
        self.components.append(etcd)
        self._wait(f"http://127.0.0.1:{etcd_port}/health", etcd, started + timeout, ssl_ctx=None)
        log(f"Started etcd on port {etcd_port}")
        apiserver.start()
        self.components.append(apiserver)
        ctx = self._client_ssl(pki)
        self._wait(f"{self.server}/readyz", apiserver, started + timeout, ssl_ctx=ctx)
        log(f"Started kube-apiserver at {self.server}")
        controller_manager.start()
        self.components.append(controller_manager)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._wait(
            f"https://127.0.0.1:{cm_port}/healthz",
            controller_manager,
            started + timeout,
            ssl_ctx=insecure,
        )
        log("Started kube-controller-manager")
        if self.emulator:
            emulator = Component(
                "node-emulator",
                [
                    sys.executable,
                    "-m",
                    "bosun.dev.emulator",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--dir={self.folder / 'pods'}",
                    f"--ca={pki.ca_cert}",
                ],
                self.logs / "node-emulator.log",
                env=dict(os.environ),
            )
            emulator.start()
            self.components.append(emulator)
        self._wait_default_serviceaccount(ctx, started + timeout)
        log(f"Control plane ready in {time.monotonic() - started:.1f}s")

    def _client_ssl(self, pki: pki_mod.Pki) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.client_cert("admin")), str(pki.client_key("admin")))
        return ctx

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.alive():
                raise StartError(
                    f"{component.name} exited during start-up; last lines of {component.log}:\n"
                    + component.log_tail()
                )

    def _wait(
        self, url: str, component: Component, deadline: float, ssl_ctx: ssl.SSLContext | None
    ) -> None:
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=ssl_ctx) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise StartError(
                    f"{component.name} was not ready at {url} in time; last lines of "
                    f"{component.log}:\n{component.log_tail()}"
                )
            time.sleep(0.2)

    def _wait_default_serviceaccount(self, ctx: ssl.SSLContext, deadline: float) -> None:
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        while True:
            self._check_alive()
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(url, timeout=2, context=ctx) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                raise StartError("the default ServiceAccount was never created by the controllers")
            time.sleep(0.2)

    def dead_components(self) -> list[Component]:
        return [c for c in self.components if not c.alive()]

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()
