"""pytest fixtures for tests against the local control plane (a pytest plugin).

Load it with ``-p bosun.dev.testing`` (Bosun's pyproject does, in addopts). It provides
``control_plane`` (one real control plane per test session, started through the same supervisor
as ``bosun dev up`` and stopped even when tests fail), ``namespace`` (a fresh namespace per
test), ``bosun_crds``, ``operator`` (an operator process with a stand-in runner) and
``shipped_images`` (both images built from this tree, cached by content). When a
test that used a namespace fails, its report gains a section with the namespace's objects,
Events and the logs of its pods, of the operator and of the node emulator.
``BOSUN_TEST_KUBECONFIG`` points the fixtures at an existing cluster instead of starting one.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from bosun import kube, ops
from bosun.dev import cluster, daemon, imagebuild, images, kubeclient, provision
from bosun.dev import pki as pki_mod

__all__ = [
    "ControlPlaneHandle",
    "OperatorProcess",
    "bosun_crds",
    "control_plane",
    "namespace",
    "operator",
    "pytest_runtest_makereport",
    "scenario_size",
    "shipped_images",
    "start_operator",
    "until",
]

_T = TypeVar("_T")


def scenario_size(reduced: int, full: int) -> int:
    """The size of an e2e scenario: ``full`` under ``BOSUN_SOAK=1`` (make soak), else reduced."""
    return full if os.environ.get("BOSUN_SOAK") == "1" else reduced


def until(
    check: Callable[[], _T | None],
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str = "the condition",
    explain: Callable[[], str] | None = None,
) -> _T:
    """Poll ``check`` until it returns a truthy value and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclasses.dataclass
class ControlPlaneHandle:
    """What tests get from the ``control_plane`` fixture."""

    kubeconfig: pathlib.Path
    folder: pathlib.Path | None
    kubectl_path: pathlib.Path
    server_version: str = ""
    _rest: kube.Rest | None = dataclasses.field(default=None, repr=False)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - subprocess's own name
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster."""
        proc = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def api_client(self) -> client.ApiClient:
        """The official client (for tests that use its typed APIs)."""
        return kubeclient.api_client(self.kubeconfig)

    def rest(self) -> kube.Rest:
        """Bosun's own API access as the cluster admin: one shared, thread-safe client, closed
        when the control plane stops."""
        if self._rest is None:
            self._rest = kube.connect(self.kubeconfig)
        return self._rest

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> pathlib.Path:
        """A kubeconfig for ``user`` (in ``groups``) with a client certificate signed by the
        cluster's CA: requests made with it are authenticated and authorized as that user,
        not the admin. Only for the local control plane, whose CA key is at hand."""
        if self.folder is None:
            raise RuntimeError("an external cluster's CA does not sign our test users")
        pki = pki_mod.Pki(self.folder / "pki")
        stem = "user-" + re.sub(r"[^A-Za-z0-9_.-]", "_", user)
        path = self.folder / f"{stem}.kubeconfig"
        if not path.exists():
            pki_mod.issue_client(pki, stem, user, groups)
            server = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
            cluster.write_kubeconfig(
                path,
                server,
                ca=pki.ca_cert,
                cert=pki.client_cert(stem),
                key=pki.client_key(stem),
                user=user,
            )
        return path

    def bind(self, namespace: str, user: str, cluster_role: str) -> None:
        """Bind ``user`` to ``cluster_role`` in ``namespace``, as a tenant is bound (again: a
        no-op)."""
        name = re.sub(r"[^a-z0-9-]", "-", f"{cluster_role}-{user}".lower())[:63].strip("-")
        made = self.kubectl(
            "create", "rolebinding", name, f"--clusterrole={cluster_role}", f"--user={user}",
            "-n", namespace, check=False,
        )  # fmt: skip
        if made.returncode != 0 and "already exists" not in made.stderr:
            raise AssertionError(f"kubectl create rolebinding {name} failed:\n{made.stderr}")

    def user_rest(self, user: str, groups: tuple[str, ...] = ()) -> kube.Rest:
        """Bosun's API access as ``user``; the caller closes it."""
        return kube.connect(self.user_kubeconfig(user, groups))

    @property
    def minor(self) -> int:
        match = re.match(r"v1\.(\d+)", self.server_version)
        return int(match.group(1)) if match else 0

    @property
    def supports_cel(self) -> bool:
        """CRD validation rules are enforced from Kubernetes 1.25 on."""
        return self.minor >= 25

    @property
    def pods_folder(self) -> pathlib.Path | None:
        return self.folder / "pods" if self.folder else None

    def component_pid(self, name: str) -> int:
        """The pid of a control-plane process (``kube-apiserver``, ``etcd``, …) for fault tests."""
        if self.folder is None:
            raise RuntimeError("an external cluster's processes are not ours to signal")
        state = daemon.read_state(self.folder)
        if state is None:
            raise RuntimeError(f"no control plane runs in {self.folder}")
        return state.components[name]

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """A container's output as the node emulator captured it."""
        if self.pods_folder is None:
            return ""
        text = []
        for path in sorted(self.pods_folder.glob(f"{namespace}_{pod}_*/{container}.log")):
            text.append(path.read_text(errors="replace"))
        return "".join(text)

    def explain_namespace(self, namespace: str) -> str:
        """Objects, Events and logs of one namespace, for a failing test's report."""
        parts = []
        for args in (
            ("get", "all,configmaps,leases,serviceaccounts,roles,rolebindings", "-o", "wide"),
            ("get", "events", "--sort-by=.lastTimestamp"),
            ("get", "pods,jobs", "-o", "yaml"),
        ):
            proc = self.kubectl("-n", namespace, *args, check=False, timeout=30)
            parts.append(f"$ kubectl -n {namespace} {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        crd = self.kubectl("get", "bosun", "-n", namespace, "-o", "yaml", check=False, timeout=30)
        if crd.returncode == 0:
            parts.append(f"$ kubectl get bosun -n {namespace} -o yaml\n{crd.stdout}")
        if self.pods_folder is not None:
            for path in sorted(self.pods_folder.glob(f"{namespace}_*/*.log")):
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-60:])
                parts.append(f"--- {path.relative_to(self.pods_folder)} ---\n{tail}")
        if self.folder is not None:
            for path in sorted((self.folder / "logs").glob(f"*-{namespace}.log")):
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-150:])
                parts.append(f"--- {path.name} ---\n{tail}")
            emulator_log = self.folder / "logs" / "node-emulator.log"
            if emulator_log.exists():
                lines = [
                    line
                    for line in emulator_log.read_text(errors="replace").splitlines()
                    if f"{namespace}/" in line or "WARNING" in line or "ERROR" in line
                ]
                parts.append("--- node emulator (this namespace) ---\n" + "\n".join(lines[-80:]))
        return "\n\n".join(parts)


@pytest.fixture(scope="session")
def shipped_images() -> list[imagebuild.Built]:
    """Both shipped images, built from this tree (cached by content) for the node emulator."""
    try:
        return imagebuild.ensure()
    except imagebuild.BuildError as err:
        pytest.fail(f"the images cannot be built (make images): {err}")


@pytest.fixture(scope="session")
def bosun_crds(control_plane: ControlPlaneHandle) -> ControlPlaneHandle:
    """The control plane with Bosun's CRDs (rendered from the models) applied and established.

    The committed ``crds/`` are drift-checked against the same rendering.
    """

    ops.install_crds(control_plane.rest(), manager="bosun-tests")
    return control_plane


@dataclasses.dataclass
class OperatorProcess:
    """``bosun operator`` run as a real process, watching one namespace, for a test."""

    kubeconfig: pathlib.Path
    namespace: str
    log_path: pathlib.Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['BOSUN_METRICS_PORT']}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.env['BOSUN_HEALTH_PORT']}/healthz"

    def start(self) -> None:
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cluster.die_with_parent([sys.executable, "-m", "bosun", "operator"]),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def kill(self) -> None:
        """Kill the operator abruptly (SIGKILL), as a crashed process or a lost node would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


def start_operator(
    control_plane: ControlPlaneHandle, namespace: str, **env: str
) -> OperatorProcess:
    """Start an operator for ``namespace`` with a stand-in runner unless ``env`` says otherwise."""
    settings = {
        "BOSUN_NAMESPACES": namespace,
        "BOSUN_LEADER_NAMESPACE": namespace,
        "BOSUN_LEADER_LEASE_SECONDS": "4",
        # Short enough for fast takeovers, long enough that a loaded 2-core machine renews in time.
        "BOSUN_LEASE_DURATION_SECONDS": "5",
        "BOSUN_START_TIMEOUT_SECONDS": "45",
        # The checkout's code, not the built image (images.CHECKOUT_RUNNER): fast, and what a
        # test of work in progress needs; tests on the shipped image name it instead.
        "BOSUN_RUNNER_IMAGE": images.CHECKOUT_RUNNER,
        "BOSUN_RUNNER_COMMAND": '["python", "-m", "bosun.dev.standin"]',
        "BOSUN_METRICS_PORT": str(cluster.free_port()),
        "BOSUN_HEALTH_PORT": str(cluster.free_port()),
    }
    settings.update(env)
    logs = control_plane.folder / "logs" if control_plane.folder else pathlib.Path("/tmp")
    process = OperatorProcess(
        control_plane.kubeconfig, namespace, logs / f"operator-{namespace}.log", settings
    )
    process.start()
    return process


@pytest.fixture
def operator(
    control_plane: ControlPlaneHandle, namespace: str, bosun_crds: ControlPlaneHandle
) -> Iterator[OperatorProcess]:
    """A running operator for this test's namespace, stopped afterwards."""
    process = start_operator(control_plane, namespace)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneHandle]:
    external = os.environ.get("BOSUN_TEST_KUBECONFIG")
    kubectl = provision.ensure(["kubectl"])["kubectl"]
    if external:
        handle = ControlPlaneHandle(pathlib.Path(external), None, kubectl)
        handle.server_version = _server_version(handle)
        try:
            yield handle
        finally:
            handle.close()
        return
    folder = tmp_path_factory.mktemp("control-plane")
    state = daemon.up(folder, attached=True, log=lambda _m: None)
    try:
        handle = ControlPlaneHandle(state.kubeconfig, folder, kubectl)
        handle.server_version = _server_version(handle)
        yield handle
        handle.close()
    finally:
        daemon.down(folder, log=lambda _m: None)


def _server_version(handle: ControlPlaneHandle) -> str:
    info = client.VersionApi(handle.api_client()).get_code()
    return str(info.git_version)


@pytest.fixture
def namespace(control_plane: ControlPlaneHandle, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespace({"metadata": {"name": name, "labels": {"bosun.dev/test": "true"}}})
    # Pods need the namespace's default ServiceAccount, which a controller creates.
    until(
        lambda: _has_default_sa(core, name),
        timeout=60,
        what=f"the default ServiceAccount in {name}",
    )
    request.node.stash[_NAMESPACE_KEY] = (control_plane, name)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


_NAMESPACE_KEY = pytest.StashKey[tuple[ControlPlaneHandle, str]]()


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    items: list[Any] = core.list_namespaced_service_account(namespace).items
    return any(sa.metadata.name == "default" for sa in items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed and _NAMESPACE_KEY in item.stash:
        handle, name = item.stash[_NAMESPACE_KEY]
        try:
            text = handle.explain_namespace(name)
        except Exception as err:
            text = f"could not collect the namespace's state: {err!r}"
        report.sections.append((f"bosun: state of namespace {name}", text))
    return report
