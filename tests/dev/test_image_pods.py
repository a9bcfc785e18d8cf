"""Pods run from the built images: the node emulator runs the container inside the image's root
filesystem, as the image's user, with the pod's environment and volumes, the service-account token
where the kubelet mounts it and a read-only root when the pod asks for one."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from bosun import kube
from bosun.dev import imagebuild, testing

pytestmark = pytest.mark.cluster

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Runs inside the runner image: what it is, what it may write, and a real API call with the
# mounted token and CA, all reported through the termination message.
PROBE = textwrap.dedent(
    f"""
    import json, os, pathlib, ssl, urllib.request
    facts = {{"uid": os.getuid(), "gid": os.getgid(), "python": os.path.realpath("/proc/self/exe"),
             "home": os.environ["HOME"], "run": os.environ["BOSUN_PROBE"], "pid": os.getpid(),
             "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
    facts["caps"] = {{k: int(status[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")}}
    for place in ("/etc/probe", "/opt/bosun/probe", "/tmp/probe"):
        try:
            pathlib.Path(place).write_text("x")
            facts[place] = "written"
        except OSError as err:
            facts[place] = err.strerror
    token = pathlib.Path("{TOKEN_DIR}/token").read_text()
    context = ssl.create_default_context(cafile="{TOKEN_DIR}/ca.crt")
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ["KUBERNETES_SERVICE_PORT"]
    namespace = pathlib.Path("{TOKEN_DIR}/namespace").read_text()
    request = urllib.request.Request(
        f"https://{{host}}:{{port}}/api/v1/namespaces/{{namespace}}/pods?limit=1",
        headers={{"Authorization": f"Bearer {{token}}"}},
    )
    try:
        urllib.request.urlopen(request, context=context, timeout=10)
        facts["api"] = 200
    except urllib.error.HTTPError as err:
        facts["api"] = err.code
    pathlib.Path("/dev/termination-log").write_text(json.dumps(facts))
    """
)


def _pod(name: str, namespace: str, image: str, **container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": ["python", "-c", PROBE],
        "env": [{"name": "BOSUN_PROBE", "value": name}],
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spec.update(container)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True},
            "containers": [spec],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def _status(rest: kube.Rest, namespace: str, name: str) -> dict[str, Any]:
    pod = rest.get("v1", "pods", namespace, name) or {}
    return pod.get("status") or {}


def _state(rest: kube.Rest, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    """The container's ``terminated`` or ``waiting`` state (not the ContainerCreating one)."""
    for status in _status(rest, namespace, name).get("containerStatuses") or ():
        state = (status.get("state") or {}).get(kind) or {}
        if state and state.get("reason") != "ContainerCreating":
            return dict(state)
    return None


def _runner(images: list[imagebuild.Built]) -> str:
    return next(b.reference for b in images if b.name == "bosun-runner")


def test_a_pod_runs_inside_the_runner_image_as_its_user_with_a_read_only_root(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    shipped_images: list[imagebuild.Built],
) -> None:
    rest = control_plane.rest()
    runner = _runner(shipped_images)
    rest.create(_pod("probe", namespace, runner))
    ended = testing.until(
        lambda: _state(rest, namespace, "probe", "terminated"),
        timeout=120,
        what="the probe pod to end",
        explain=lambda: control_plane.explain_namespace(namespace),
    )
    assert ended["exitCode"] == 0, ended
    facts = json.loads(ended["message"])
    # The image's USER (65532), its own Python, its HOME; the pod's env.
    assert (facts["uid"], facts["gid"]) == (65532, 65532)
    assert facts["python"].startswith("/usr/bin/python3") or facts["python"].startswith(
        "/usr/local"
    )
    assert facts["home"] == "/tmp" and facts["run"] == "probe"
    # PID 1 of a PID namespace of its own: no other process is visible.
    assert facts["pid"] == 1 and facts["pids"] == [1]
    # capabilities: drop ALL leaves none, not even in the bounding set.
    assert facts["caps"] == {"CapEff": 0, "CapPrm": 0, "CapBnd": 0}
    # Read-only root; /tmp is the pod's emptyDir.
    assert facts["/etc/probe"] == facts["/opt/bosun/probe"] == "Read-only file system"
    assert facts["/tmp/probe"] == "written"
    # The token the kubelet mounts authenticates as the pod's ServiceAccount (which may not
    # list pods: 403, not 401).
    assert facts["api"] == 403


def test_run_as_non_root_refuses_a_root_user_and_a_missing_image_waits(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    shipped_images: list[imagebuild.Built],
) -> None:
    rest = control_plane.rest()
    runner = _runner(shipped_images)
    root = {**RESTRICTED, "runAsUser": 0}
    rest.create(_pod("as-root", namespace, runner, securityContext=root))
    missing = runner.rsplit(":", 1)[0] + ":0.0.0-missing"
    rest.create(_pod("missing", namespace, missing))
    refused = testing.until(
        lambda: _state(rest, namespace, "as-root", "waiting"), what="the root pod to be refused"
    )
    assert refused["reason"] == "CreateContainerConfigError"
    assert "runAsNonRoot and image will run as root" in refused["message"]
    absent = testing.until(
        lambda: _state(rest, namespace, "missing", "waiting"), what="the image to be missed"
    )
    assert absent["reason"] == "ErrImageNeverPull"
    assert missing in absent["message"]
    assert _status(rest, namespace, "missing")["phase"] == "Pending"
