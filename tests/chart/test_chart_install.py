"""`helm install` into the local control plane; the installed operator completes a Run.

The node emulator runs the chart's operator pod and the runner Jobs from the built images
(``make images``: ``ghcr.io/bosun-dev/bosun`` and ``bosun-runner`` at the chart's appVersion,
inside their own root filesystems, as their own user, read-only), with a real token of the
chart's ServiceAccount, so a Run that succeeds proves the shipped images and the chart's RBAC
are enough, and the namespaces are labelled for the PodSecurity "restricted" profile, so the
API server itself checks the operator pod and the runner Jobs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import chartkit
import pytest

from bosun import constants, contract, kube
from bosun.api import crdgen
from bosun.dev import cluster, imagebuild, testing
from bosun.dev import gateway as gateway_kit

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def _local_control_plane(
    control_plane: testing.ControlPlaneHandle, shipped_images: list[imagebuild.Built]
) -> None:
    if control_plane.folder is None:
        pytest.skip(
            "needs the local control plane's node emulator (its pods run from this checkout and "
            "listen on this machine); BOSUN_TEST_KUBECONFIG points elsewhere"
        )


API = constants.API_VERSION
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted",)
# Log lines that mean the API server's authorizer refused the operator (RBAC is short of
# something it does); kopf words its own warning differently. A namespace being deleted also
# answers 403, but without naming a user, so that does not count.
DENIED = ('forbidden: User "', "Not enough permissions")


class Release:
    """One helm release of the chart in its own namespace, with the operator's ports."""

    def __init__(self, control_plane: testing.ControlPlaneHandle, name: str) -> None:
        self.control_plane = control_plane
        self.name = name
        self.namespace = f"{name}-system"
        self.metrics_port = cluster.free_port()
        self.health_port = cluster.free_port()

    def helm(self, *args: str, check: bool = True) -> str:
        proc = chartkit.helm(
            *args,
            "--namespace",
            self.namespace,
            kubeconfig=self.control_plane.kubeconfig,
            check=check,
        )
        return proc.stdout

    def install(self, *sets: str) -> None:
        self.helm(
            "install",
            self.name,
            str(chartkit.CHART),
            "--wait",
            "--timeout",
            "3m",
            "--set",
            f"operator.metricsPort={self.metrics_port}",
            "--set",
            f"operator.healthPort={self.health_port}",
            *[arg for item in sets for arg in ("--set", item)],
        )

    def get(self, path: str) -> tuple[int, str]:
        """GET an operator endpoint; the emulated pod listens on this machine."""
        port = self.metrics_port if path == "/metrics" else self.health_port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, ""
        except OSError:
            return 0, ""

    def operator_pods(self) -> list[dict[str, Any]]:
        rest = self.control_plane.rest()
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"
        return rest.list("v1", "pods", self.namespace, label_selector=selector)

    def operator_log(self) -> str:
        """What every operator pod of this release printed (old pods too, after an upgrade)."""
        folder = self.control_plane.pods_folder
        if folder is None:
            return ""
        return "".join(
            f"--- {path.parent.name} ---\n{path.read_text(errors='replace')}"
            for path in sorted(folder.glob(f"{self.namespace}_*/operator.log"))
        )

    def denials(self) -> list[str]:
        return [line for line in self.operator_log().splitlines() if any(d in line for d in DENIED)]


@contextlib.contextmanager
def installed(release: Release, *sets: str) -> Iterator[Release]:
    """The release in a fresh "restricted" namespace; uninstalled afterwards, its log on failure."""
    control_plane = release.control_plane
    control_plane.kubectl("create", "namespace", release.namespace)
    control_plane.kubectl("label", "namespace", release.namespace, *RESTRICTED)
    try:
        release.install(*sets)
        yield release
    except Exception as err:
        raise AssertionError(f"{err}\n\n=== operator log ===\n{release.operator_log()}") from err
    finally:
        release.helm("uninstall", release.name, "--wait", "--timeout", "2m", check=False)
        control_plane.kubectl("delete", "namespace", release.namespace, "--wait=false", check=False)
        # The default RunnerClass is a post-install hook, which uninstall leaves behind; the
        # other tests' operators must not pick it up.
        selector = f"app.kubernetes.io/instance={release.name}"
        control_plane.kubectl("delete", "runnerclasses", "-l", selector, check=False)


def _crd(rest: kube.Rest, info: Any) -> dict[str, Any] | None:
    return rest.get(
        "apiextensions.k8s.io/v1", "customresourcedefinitions", None, crdgen.crd_name(info)
    )


def _restrict(control_plane: testing.ControlPlaneHandle, namespace: str) -> None:
    control_plane.kubectl("label", "--overwrite", "namespace", namespace, *RESTRICTED)


def _adopt_crds(control_plane: testing.ControlPlaneHandle, release: str, namespace: str) -> None:
    """Let a release take over Bosun CRDs applied earlier with kubectl (see the chart README)."""
    names = control_plane.kubectl(
        "get", "crd", "-l", "app.kubernetes.io/part-of=bosun", "-o", "name"
    ).stdout.split()
    if not names:
        return
    control_plane.kubectl("label", "--overwrite", *names, "app.kubernetes.io/managed-by=Helm")
    control_plane.kubectl(
        "annotate",
        "--overwrite",
        *names,
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
    )


def _agent_and_run(rest: kube.Rest, namespace: str, run: str, agent: str = "scripted") -> None:
    objs = [
        {
            "apiVersion": API,
            "kind": "Agent",
            "metadata": {"name": agent, "namespace": namespace},
            "spec": {"model": {"provider": "scripted", "script": [{"reply": "done"}]}},
        },
        {
            "apiVersion": API,
            "kind": "Run",
            "metadata": {"name": run, "namespace": namespace},
            "spec": {
                "agentRef": {"name": agent},
                "input": "hello",
            },
        },
    ]
    for obj in objs:
        rest.create(obj)


def _phase(rest: kube.Rest, namespace: str, run: str) -> str | None:
    obj = rest.get(API, "runs", namespace, run) or {}
    phase: str | None = (obj.get("status") or {}).get("phase")
    return phase


def _succeeds(rest: kube.Rest, namespace: str, run: str, release: Release) -> None:
    def succeeded() -> bool:
        denials = release.denials()
        assert not denials, "the API server refused the operator:\n" + "\n".join(denials[:5])
        return _phase(rest, namespace, run) == "Succeeded"

    testing.until(
        succeeded,
        timeout=120,
        interval=0.3,
        what=f"Run {namespace}/{run} to succeed",
        explain=lambda: f"phase: {_phase(rest, namespace, run)}",
    )


def _can(
    control_plane: testing.ControlPlaneHandle, account: str, namespace: str | None, *what: str
) -> bool:
    args = ["auth", "can-i", *what, f"--as={account}"]
    args += ["--namespace", namespace] if namespace else []
    return control_plane.kubectl(*args, check=False).stdout.strip() == "yes"


def _ready(release: Release) -> None:
    testing.until(
        lambda: release.get("/readyz")[0] == 200,
        timeout=60,
        interval=0.3,
        what="the operator's /readyz (leading and synced)",
    )
    assert release.get("/healthz")[0] == 200


def _check_operator_identity(release: Release) -> str:
    """The operator pod runs as the chart's ServiceAccount with in-cluster credentials."""
    (pod,) = release.operator_pods()
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert spec["serviceAccountName"] == release.name
    assert "KUBECONFIG" not in {e["name"] for e in container.get("env", [])}
    assert container["command"] == ["bosun", "operator"]
    return f"system:serviceaccount:{release.namespace}:{release.name}"


def _approval(namespace: str, name: str, approved_by: str) -> str:
    return json.dumps(
        {
            "apiVersion": API,
            "kind": "Approval",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "runName": "some-run",
                "callHash": "0" * 64,
                "decision": "Approved",
                "approvedBy": approved_by,
            },
        }
    )


def _check_approval_policy(
    control_plane: testing.ControlPlaneHandle, release: Release, namespace: str
) -> None:
    """An Approval must name its creator: alice cannot record that mallory approved."""
    control_plane.kubectl(
        "create",
        "rolebinding",
        "alice-approves",
        f"--clusterrole={release.name}-approver",
        "--user=alice",
        "--namespace",
        namespace,
    )

    def denied() -> bool:
        proc = control_plane.kubectl(
            "create",
            "--as=alice",
            "-f",
            "-",
            input=_approval(namespace, "lie", "mallory"),
            check=False,
        )
        if proc.returncode == 0:
            # The policy was not active yet; take the record back and try again.
            control_plane.kubectl("delete", "approval", "lie", "-n", namespace, check=False)
            return False
        assert "spec.approvedBy must be the user making the request: alice" in proc.stderr, (
            proc.stderr
        )
        return True

    testing.until(denied, timeout=60, interval=0.5, what="the approval policy to deny a lie")
    control_plane.kubectl(
        "create", "--as=alice", "-f", "-", input=_approval(namespace, "honest", "alice")
    )


def _check_missing_secret_shows_on_the_run(
    control_plane: testing.ControlPlaneHandle, rest: kube.Rest, namespace: str, release: Release
) -> None:
    """The operator cannot read Secrets, so a missing one is told by the runner pod's
    CreateContainerConfigError, on the Run; once the Secret exists, the Run goes on."""
    agent = {
        "apiVersion": API,
        "kind": "Agent",
        "metadata": {"name": "keyed", "namespace": namespace},
        "spec": {
            "model": {
                "provider": "scripted",
                "script": [{"reply": "done"}],
                "apiKeySecretRef": {"name": "llm", "key": "token"},
            }
        },
    }
    rest.create(agent)
    testing.until(
        lambda: _ready_condition(rest, namespace, "keyed") == "True",
        timeout=60,
        what="Agent keyed to be Ready (its Secret is not looked up)",
    )
    rest.create(
        {
            "apiVersion": API,
            "kind": "Run",
            "metadata": {"name": "keyed", "namespace": namespace},
            "spec": {
                "agentRef": {"name": "keyed"},
                "input": "hello",
            },
        }
    )

    def not_starting() -> dict[str, Any] | None:
        run = rest.get(API, "runs", namespace, "keyed") or {}
        for condition in (run.get("status") or {}).get("conditions") or ():
            if condition["type"] == "Running" and condition["reason"] == "RunnerNotStarting":
                return dict(condition)
        return None

    condition = testing.until(
        not_starting, timeout=60, interval=0.5, what="Run keyed to say its runner cannot start"
    )
    assert "CreateContainerConfigError" in condition["message"]
    assert "llm" in condition["message"]
    events = rest.list("v1", "events", namespace)
    assert any(
        e.get("reason") == "RunnerNotStarting" and e["involvedObject"]["name"] == "keyed"
        for e in events
    )
    control_plane.kubectl(
        "create", "secret", "generic", "llm", "--from-literal=token=t", "-n", namespace
    )
    _succeeds(rest, namespace, "keyed", release)


def _ready_condition(rest: kube.Rest, namespace: str, agent: str) -> str | None:
    obj = rest.get(API, "agents", namespace, agent) or {}
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition["type"] == "Ready":
            return str(condition["status"])
    return None


def test_cluster_wide_install_runs_a_run_and_upgrades_and_uninstalls(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    rest = control_plane.rest()
    _restrict(control_plane, namespace)
    release = Release(control_plane, f"bosun-{uuid.uuid4().hex[:6]}")
    # CRDs that other tests applied with kubectl are adopted, as the chart README describes.
    _adopt_crds(control_plane, release.name, release.namespace)
    with installed(release, "operator.clusterWide=true"):
        account = _check_operator_identity(release)
        _ready(release)

        _agent_and_run(rest, namespace, "first")
        _succeeds(rest, namespace, "first", release)
        job = contract.job_name("first", 1)
        pods = rest.list("v1", "pods", namespace, label_selector=f"job-name={job}")
        runner_account = contract.runner_account_name("first")
        assert pods and pods[0]["spec"]["serviceAccountName"] == runner_account

        # Least privilege, asked of the API server itself.
        assert _can(control_plane, account, namespace, "create", "jobs.batch")
        assert _can(control_plane, account, namespace, "patch", "runs.bosun.dev/status")
        assert not _can(control_plane, account, namespace, "list", "secrets")
        assert not _can(control_plane, account, namespace, "get", "secrets")
        assert not _can(control_plane, account, namespace, "delete", "leases.coordination.k8s.io")
        assert not _can(control_plane, account, namespace, "create", "pods")
        assert not _can(control_plane, account, namespace, "update", "runs.bosun.dev")
        assert not _can(control_plane, account, None, "create", "clusterroles")
        assert not _can(control_plane, account, namespace, "escalate", "roles")
        assert not _can(control_plane, account, namespace, "bind", "roles")

        status, metrics = release.get("/metrics")
        assert status == 200
        assert 'bosun_runs_total{outcome="Succeeded"} 1.0' in metrics

        _check_approval_policy(control_plane, release, namespace)

        # An upgrade reaches the CRDs (Helm never upgrades a chart's crds/ folder) and replaces
        # the operator (Recreate: the old leader lets go, the new pod leads and works).
        (old_pod,) = release.operator_pods()
        release.helm(
            "upgrade",
            release.name,
            str(chartkit.CHART),
            "--reuse-values",
            "--wait",
            "--timeout",
            "3m",
            "--set",
            "crds.annotations.bosun\\.dev/upgraded=yes",
            "--set",
            "operator.workers=2",
        )
        for info in crdgen.KINDS:
            crd = _crd(rest, info)
            assert crd is not None
            assert crd["metadata"]["annotations"]["bosun.dev/upgraded"] == "yes"
            assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        testing.until(
            lambda: (
                [p["metadata"]["uid"] for p in release.operator_pods()]
                not in ([], [old_pod["metadata"]["uid"]])
            ),
            timeout=60,
            what="the upgraded operator pod",
        )
        _ready(release)
        _agent_and_run(rest, namespace, "second")
        _succeeds(rest, namespace, "second", release)
        assert not release.denials(), release.operator_log()

    # Uninstalled: the operator and its RBAC are gone, the CRDs (and so the Runs) stay.
    gone = control_plane.kubectl("get", "clusterrole", f"{release.name}-operator", check=False)
    assert gone.returncode != 0
    for info in crdgen.KINDS:
        assert _crd(rest, info) is not None
    assert _phase(rest, namespace, "first") == "Succeeded"


def test_namespaced_install_watches_only_its_namespaces(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    """watchNamespaces: Roles instead of a ClusterRole, and nothing happens elsewhere."""
    rest = control_plane.rest()
    _restrict(control_plane, namespace)
    elsewhere = f"{namespace[:50]}-other"
    control_plane.kubectl("create", "namespace", elsewhere)
    gateway_port = cluster.free_port()
    try:
        with installed(
            Release(control_plane, f"bosun-{uuid.uuid4().hex[:6]}"),
            f"operator.watchNamespaces={{{namespace}}}",
            # The CRDs are managed outside this release here (bosun_crds applied them).
            "crds.install=false",
            "gateway.enabled=true",
            "gateway.replicas=1",
            f"gateway.port={gateway_port}",
            f"gateway.metricsPort={cluster.free_port()}",
            "gateway.secretNames={hook-key}",
        ) as release:
            account = _check_operator_identity(release)
            _ready(release)
            assert (
                control_plane.kubectl(
                    "get", "clusterrole", f"{release.name}-operator", check=False
                ).returncode
                != 0
            )
            _agent_and_run(rest, elsewhere, "ignored")
            _agent_and_run(rest, namespace, "watched")
            _succeeds(rest, namespace, "watched", release)
            assert _phase(rest, elsewhere, "ignored") is None
            assert _can(control_plane, account, namespace, "create", "jobs.batch")
            assert not _can(control_plane, account, elsewhere, "create", "jobs.batch")
            assert not _can(control_plane, account, elsewhere, "get", "secrets")
            assert not _can(control_plane, account, namespace, "get", "secrets")
            assert not _can(control_plane, account, release.namespace, "get", "secrets")
            _check_missing_secret_shows_on_the_run(control_plane, rest, namespace, release)
            _gateway_delivers(control_plane, namespace, release, gateway_port)
            assert not release.denials(), release.operator_log()
    finally:
        control_plane.kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)


def _gateway_delivers(
    control_plane: testing.ControlPlaneHandle, namespace: str, release: Release, port: int
) -> None:
    """The chart's gateway pod (the operator image, its own ServiceAccount's token) turns a
    signed delivery into a Run the installed operator completes; it may read the Secret it was
    granted by name, and nothing else."""
    rest = control_plane.rest()
    account = f"system:serviceaccount:{release.namespace}:{release.name}-gateway"
    assert _can(control_plane, account, namespace, "get", "secrets/hook-key")
    for verb, what in (("get", "secrets/other"), ("list", "secrets"), ("create", "jobs.batch"),
                       ("update", "runs.bosun.dev"), ("get", "webhooks.bosun.dev")):  # fmt: skip
        where = namespace if what != "webhooks.bosun.dev" else release.namespace
        assert not _can(control_plane, account, where, verb, what), (verb, what)
    key = b"chart-hook-key-of-the-test"
    rest.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook-key", "namespace": namespace},
            "data": {"key": base64.b64encode(key).decode()},
        }
    )
    rest.create(
        {
            "apiVersion": API,
            "kind": "Webhook",
            "metadata": {"name": "hook", "namespace": namespace},
            "spec": {
                "auth": {"hmac": {"secretRef": {"name": "hook-key", "key": "key"}}},
                "input": "'Say ' + body.word",
                "runTemplate": {"spec": {"agentRef": {"name": "scripted"}}},
            },
        }
    )
    url = f"http://127.0.0.1:{port}/hooks/{namespace}/hook"
    with gateway_kit.Sender(url, key) as sender:
        answer = sender.send({"word": "hello"}, "chart-delivery-1")
        assert answer.status_code == 202, answer.text
        run = answer.json()["run"]
        _succeeds(rest, namespace, run, release)
        assert sender.send({"word": "hello"}, "chart-delivery-1").status_code == 200


def test_default_install_watches_the_release_namespace_alone(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
) -> None:
    """With default values the operator is namespaced: Roles in its own namespace only."""
    rest = control_plane.rest()
    with installed(
        Release(control_plane, f"bosun-{uuid.uuid4().hex[:6]}"), "crds.install=false"
    ) as release:
        account = _check_operator_identity(release)
        _ready(release)
        gone = control_plane.kubectl("get", "clusterrole", f"{release.name}-operator", check=False)
        assert gone.returncode != 0
        _agent_and_run(rest, namespace, "ignored")
        _agent_and_run(rest, release.namespace, "home")
        _succeeds(rest, release.namespace, "home", release)
        assert _phase(rest, namespace, "ignored") is None
        assert _can(control_plane, account, release.namespace, "create", "jobs.batch")
        assert not _can(control_plane, account, namespace, "create", "jobs.batch")
        for where in (release.namespace, namespace):
            assert not _can(control_plane, account, where, "get", "secrets")
        assert not release.denials(), release.operator_log()
