"""Integration tests of the local control plane: real API server, Job controller and emulator."""

from __future__ import annotations

import base64
import json
import textwrap
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import exceptions

from bosun import constants, kube
from bosun.dev import testing

pytestmark = pytest.mark.cluster


def _job(name: str, command: list[str], image: str = "busybox", **pod: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": command}
    container.update(pod.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [container], **pod},
            },
        },
    }


def _job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    job = batch.read_namespaced_job(name, namespace)
    for condition in job.status.conditions or ():
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def _wait_job(
    cp: testing.ControlPlaneHandle, namespace: str, name: str, timeout: float = 60
) -> str:
    batch = client.BatchV1Api(cp.api_client())
    return testing.until(
        lambda: _job_condition(batch, namespace, name),
        timeout=timeout,
        what=f"Job {namespace}/{name} to finish",
    )


def _job_pod(core: client.CoreV1Api, namespace: str, job: str) -> client.V1Pod:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def _terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    return pod.status.container_statuses[0].state.terminated


def test_server_reports_its_version(control_plane: testing.ControlPlaneHandle) -> None:
    out = control_plane.kubectl("version", "-o", "json").stdout
    version = json.loads(out)["serverVersion"]
    assert version["gitVersion"] == control_plane.server_version
    assert version["gitVersion"].startswith("v1.")
    assert control_plane.minor >= 20


def test_job_completes_through_the_job_controller_and_emulator(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    batch = client.BatchV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("hello", ["sh", "-c", "echo hello; exit 0"]))
    assert _wait_job(control_plane, namespace, "hello") == "Complete"
    core = client.CoreV1Api(control_plane.api_client())
    pod = _job_pod(core, namespace, "hello")
    assert pod.spec.node_name == constants.EMULATOR_NODE_NAME
    assert pod.status.phase == "Succeeded"
    assert _terminated(pod).exit_code == 0
    assert control_plane.pod_log(namespace, pod.metadata.name, "main") == "hello\n"
    job = batch.read_namespaced_job("hello", namespace)
    assert job.status.succeeded == 1


def test_failing_command_fails_the_job_with_its_exit_code(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    batch = client.BatchV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("boom", ["sh", "-c", "exit 3"]))
    assert _wait_job(control_plane, namespace, "boom") == "Failed"
    core = client.CoreV1Api(control_plane.api_client())
    pod = _job_pod(core, namespace, "boom")
    assert pod.status.phase == "Failed"
    assert _terminated(pod).exit_code == 3
    assert _terminated(pod).reason == "Error"
    assert _terminated(pod).message is None


def test_termination_message_reaches_the_pod_status_as_the_kubelet_reports_it(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    batch = client.BatchV1Api(control_plane.api_client())
    # The file stands in for terminationMessagePath; the kubelet keeps its first 4096 bytes.
    script = 'printf "why: %05000d" 0 > "$BOSUN_TERMINATION_LOG"; exit 4'
    batch.create_namespaced_job(namespace, _job("told", ["sh", "-c", script]))
    assert _wait_job(control_plane, namespace, "told") == "Failed"
    pod = _job_pod(client.CoreV1Api(control_plane.api_client()), namespace, "told")
    message = _terminated(pod).message
    assert message.startswith("why: 000") and len(message) == 4096


def test_fault_hook_kill_is_seen_by_the_job_controller_as_a_failure(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client())
    batch = client.BatchV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("victim", ["sleep", "300"]))
    pod = testing.until(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="job-name=victim").items
                if p.status.phase == "Running"
            ),
            None,
        ),
        what="the victim pod to run",
    )
    core.patch_namespaced_pod(
        pod.metadata.name,
        namespace,
        {"metadata": {"annotations": {constants.ANNOTATION_EMULATOR_FAULT: "kill"}}},
    )
    assert _wait_job(control_plane, namespace, "victim") == "Failed"
    killed = _terminated(core.read_namespaced_pod(pod.metadata.name, namespace))
    assert killed.exit_code == 137
    assert killed.signal == 9


def test_environment_from_secrets_configmaps_and_downward_api(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "keys"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"level": "debug"}}
    )
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "token"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    check = (
        f'test "$TOKEN" = s3cret && test "$LEVEL" = debug && test "$POD_NS" = {namespace} '
        '&& test -n "$KUBERNETES_SERVICE_HOST"'
    )
    batch = client.BatchV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("env", ["sh", "-c", check], container={"env": env}))
    assert _wait_job(control_plane, namespace, "env") == "Complete"


def test_missing_secret_keeps_the_container_waiting_with_the_kubelet_reason(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client())
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    batch = client.BatchV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("nosecret", ["true"], container={"env": env}))

    def waiting_reason() -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=nosecret").items
        statuses = pods[0].status.container_statuses if pods else None
        if not statuses or not statuses[0].state.waiting:
            return None
        return f"{statuses[0].state.waiting.reason}: {statuses[0].state.waiting.message}"

    reason = testing.until(waiting_reason, what="the container to wait on its Secret")
    assert reason.startswith("CreateContainerConfigError")
    assert "absent" in reason


def test_an_image_the_node_does_not_have_waits_with_err_image_never_pull(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    batch = client.BatchV1Api(control_plane.api_client())
    core = client.CoreV1Api(control_plane.api_client())
    batch.create_namespaced_job(namespace, _job("nginx", ["nginx"], image="nginx:1.27"))

    def waiting() -> tuple[str, str, str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=nginx").items
        statuses = pods[0].status.container_statuses if pods else None
        if not statuses or not statuses[0].state.waiting:
            return None
        state = statuses[0].state.waiting
        return pods[0].status.phase, state.reason, state.message

    phase, reason, message = testing.until(waiting, what="the container to wait on its image")
    assert (phase, reason) == ("Pending", "ErrImageNeverPull")
    assert message == 'Container image "nginx:1.27" is not present with pull policy of Never'


def test_active_deadline_fails_the_pod(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    batch = client.BatchV1Api(control_plane.api_client())
    job = _job("slow", ["sleep", "300"], activeDeadlineSeconds=2)
    batch.create_namespaced_job(namespace, job)
    assert _wait_job(control_plane, namespace, "slow") == "Failed"
    pod = _job_pod(client.CoreV1Api(control_plane.api_client()), namespace, "slow")
    assert pod.status.reason == "DeadlineExceeded"


def test_deleting_a_pod_stops_its_process_with_sigterm(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client())
    script = "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "sleeper"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 20,
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ],
            },
        },
    )
    testing.until(
        lambda: "started" in control_plane.pod_log(namespace, "sleeper", "main"),
        what="the sleeper to start",
    )
    core.delete_namespaced_pod("sleeper", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("sleeper", namespace)
        except exceptions.ApiException as err:
            return err.status == 404
        return False

    testing.until(gone, what="the pod to be deleted")
    assert "got-term" in control_plane.pod_log(namespace, "sleeper", "main")


def test_restart_policy_on_failure_restarts_the_container(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client())
    # Fails on the first start, succeeds on the second (state kept in the pod's folder).
    script = "if [ -f tried ]; then exit 0; fi; touch tried; exit 1"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "flaky"},
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ],
            },
        },
    )
    pod = testing.until(
        lambda: (
            (p := core.read_namespaced_pod("flaky", namespace)).status.phase == "Succeeded" and p
        ),
        what="the flaky pod to succeed after a restart",
    )
    assert pod.status.container_statuses[0].restart_count == 1
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1


_IN_POD_CHECK = textwrap.dedent(
    """
    import sys
    from bosun import kube
    rest = kube.connect()
    try:
        rest.request("GET", f"/api/v1/namespaces/{sys.argv[1]}/configmaps")
    except kube.ApiError as err:
        print("status", err.status)
        sys.exit(10 if err.status == 403 else 11)
    print("allowed")
    """
)


def test_rbac_denies_an_unprivileged_serviceaccount_until_a_rolebinding(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    """A pod's in-cluster identity is a real, RBAC-checked ServiceAccount token."""
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    batch = client.BatchV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})

    def job(name: str) -> dict[str, Any]:
        return _job(
            name,
            ["python", "-c", _IN_POD_CHECK, namespace],
            image="python:3.11",
            serviceAccountName="reader",
        )

    batch.create_namespaced_job(namespace, job("before"))
    assert _wait_job(control_plane, namespace, "before") == "Failed"
    denied = _job_pod(core, namespace, "before")
    assert _terminated(denied).exit_code == 10, control_plane.pod_log(
        namespace, denied.metadata.name, "main"
    )

    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "read-configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-reads"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-configmaps",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    batch.create_namespaced_job(namespace, job("after"))
    assert _wait_job(control_plane, namespace, "after") == "Complete"
    allowed = _job_pod(core, namespace, "after")
    assert "allowed" in control_plane.pod_log(namespace, allowed.metadata.name, "main")


_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.bosun.dev"},
    "spec": {
        "group": "test.bosun.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "min must not exceed max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_validation_rule_rejects_a_bad_object_with_its_message(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    if not control_plane.supports_cel:
        pytest.skip(
            f"CEL validation rules need Kubernetes >= 1.25; this API server is "
            f"{control_plane.server_version}"
        )
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=established", "crd/widgets.test.bosun.dev", "--timeout=60s"
    )
    good = {"apiVersion": "test.bosun.dev/v1", "kind": "Widget", "metadata": {"name": "ok"}}
    good["spec"] = {"min": 1, "max": 2}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(good))
    bad = {**good, "metadata": {"name": "bad"}, "spec": {"min": 3, "max": 2}}
    proc = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False
    )
    assert proc.returncode != 0
    assert "spec: Invalid value" in proc.stderr
    assert "min must not exceed max" in proc.stderr


def test_a_test_user_is_authenticated_as_itself_and_holds_only_what_it_is_granted(
    control_plane: testing.ControlPlaneHandle, namespace: str
) -> None:
    rest = control_plane.user_rest("alice@example.com", ("team-a", "testers"))
    try:
        review = rest.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        user = review["status"]["userInfo"]
        assert user["username"] == "alice@example.com"
        assert {"team-a", "testers", "system:authenticated"} <= set(user["groups"])
        with pytest.raises(kube.Forbidden):
            rest.list("v1", "configmaps", namespace)
        control_plane.kubectl(
            "create", "rolebinding", "alice-view", "--clusterrole=view",
            "--user=alice@example.com", "-n", namespace,
        )  # fmt: skip

        def may_list() -> bool:
            try:
                rest.list("v1", "configmaps", namespace)
            except kube.Forbidden:
                return False
            return True

        testing.until(may_list, 30, what="the view binding to take effect")
    finally:
        rest.close()
