"""Unit tests of how the node emulator starts a container from its image (``container.plan``)."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

import pytest

from bosun.dev import container

TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclasses.dataclass
class FakeImage:
    user: str = "65532:65532"
    env: tuple[str, ...] = ("PATH=/opt/bosun/bin:/usr/bin", "HOME=/tmp", "LANG=C.UTF-8")
    entrypoint: tuple[str, ...] = ("python", "-m", "bosun.runner")
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    rootfs: pathlib.Path = pathlib.Path("/images/runner/rootfs")


def _pod(**pod_sc: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "run-a1", "namespace": "team"},
        "spec": {
            "securityContext": pod_sc,
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {
                    "name": "kube-api-access-x",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                },
            ],
        },
    }


def _container(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "runner",
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "kube-api-access-x", "mountPath": TOKEN, "readOnly": True},
        ],
    }
    spec.update(fields)
    return spec


def _plan(pod: dict[str, Any], spec: dict[str, Any], image: Any = None) -> container.Launch:
    return container.plan(
        pod,
        spec,
        image or FakeImage(),
        workdir=pathlib.Path("/pods/p/runner.container"),
        env={"BOSUN_RUN": "a", "HOME": "/override"},
        token_dir=pathlib.Path("/pods/p/serviceaccount"),
        volumes={"tmp": pathlib.Path("/pods/p/volumes/tmp")},
    )


@pytest.mark.parametrize(
    ("command", "args", "cmd", "argv"),
    [
        (None, None, (), ["python", "-m", "bosun.runner"]),
        (None, ["--x"], ("--default",), ["python", "-m", "bosun.runner", "--x"]),
        (None, None, ("--default",), ["python", "-m", "bosun.runner", "--default"]),
        (["sh", "-c"], None, ("--default",), ["sh", "-c"]),
        (["sh", "-c"], ["exit 3"], ("--default",), ["sh", "-c", "exit 3"]),
    ],
)
def test_command_replaces_the_entrypoint_and_args_the_cmd(
    command: list[str] | None, args: list[str] | None, cmd: tuple[str, ...], argv: list[str]
) -> None:
    launch = _plan(_pod(), _container(command=command, args=args), FakeImage(cmd=cmd))
    assert launch.argv == argv


def test_the_image_user_env_and_mounts_with_the_pods_env_on_top() -> None:
    launch = _plan(_pod(runAsNonRoot=True), _container())
    assert (launch.uid, launch.gid, launch.groups) == (65532, 65532, [])
    assert launch.env["PATH"] == "/opt/bosun/bin:/usr/bin"
    assert launch.env["HOME"] == "/override" and launch.env["BOSUN_RUN"] == "a"
    mounts = {m.target: m for m in launch.mounts}
    assert mounts["/tmp"] == container.Mount("/pods/p/volumes/tmp", "/tmp", False)
    assert mounts[TOKEN] == container.Mount("/pods/p/serviceaccount", TOKEN, True)
    assert mounts["/etc/hosts"].is_file and mounts["/etc/hosts"].read_only
    assert launch.cwd == "/" and not launch.read_only_root
    assert launch.termination_path == "/dev/termination-log"


def test_the_pod_and_container_security_context_override_the_image() -> None:
    spec = _container(
        securityContext={"runAsUser": 1001, "readOnlyRootFilesystem": True},
        workingDir="/work",
        terminationMessagePath="/tmp/done",
    )
    launch = _plan(_pod(runAsUser=2000, runAsGroup=3000, fsGroup=4000), spec)
    assert (launch.uid, launch.gid, launch.groups) == (1001, 3000, [4000])
    assert launch.read_only_root and launch.cwd == "/work"
    assert launch.termination_path == "/tmp/done"


@pytest.mark.parametrize(
    ("image_user", "pod_sc", "message"),
    [
        ("", {"runAsNonRoot": True}, "runAsNonRoot and image will run as root"),
        ("0:0", {"runAsNonRoot": True}, "runAsNonRoot and image will run as root"),
        ("65532", {"runAsNonRoot": True, "runAsUser": 0}, "image will run as root"),
        ("app", {"runAsNonRoot": True}, "non-numeric user (app), cannot verify"),
    ],
)
def test_run_as_non_root_refuses_root_as_the_kubelet_does(
    image_user: str, pod_sc: dict[str, Any], message: str
) -> None:
    with pytest.raises(container.ConfigError, match=re.escape(message)) as caught:
        _plan(_pod(**pod_sc), _container(), FakeImage(user=image_user))
    assert "pod: team/run-a1, container: runner" in str(caught.value)


def test_a_volume_kind_it_cannot_provide_is_a_config_error() -> None:
    pod = _pod()
    pod["spec"]["volumes"].append({"name": "data", "hostPath": {"path": "/etc"}})
    spec = _container(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    with pytest.raises(container.ConfigError, match=r"'data' of kind \['hostPath'\]"):
        _plan(pod, spec)
    with pytest.raises(container.ConfigError, match="names no volume"):
        _plan(_pod(), _container(volumeMounts=[{"name": "nope", "mountPath": "/x"}]))


def test_paths_resolve_inside_the_root_even_through_absolute_links(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")
    (root / "escape").symlink_to("../../..")
    inside = container._inside(root, TOKEN)
    assert inside == root / "run" / "secrets" / "kubernetes.io" / "serviceaccount"
    assert container._inside(root, "/escape/etc/passwd") == root / "etc" / "passwd"
    (root / "loop").symlink_to("/loop")
    with pytest.raises(OSError, match="too many symbolic links"):
        container._inside(root, "/loop/x")


def test_a_launch_survives_its_json_file(tmp_path: pathlib.Path) -> None:
    launch = _plan(_pod(), _container())
    launch.dump(tmp_path / "launch.json")
    assert container.Launch.load(tmp_path / "launch.json") == launch


def test_capabilities_are_a_runtimes_defaults_less_what_the_pod_drops() -> None:
    defaults = _plan(_pod(), _container()).capabilities
    assert defaults == sorted(container.CAPABILITIES[n] for n in container.DEFAULT_CAPABILITIES)
    # Never the ones that would let a root process out of this launcher's chroot.
    assert not {18, 27} & set(defaults)
    dropped = _plan(_pod(), _container(securityContext={"capabilities": {"drop": ["ALL"]}}))
    assert dropped.capabilities == []
    some = {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}
    assert _plan(_pod(), _container(securityContext=some)).capabilities == [10]
    more = {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}
    with pytest.raises(container.ConfigError, match=r"\['SYS_ADMIN'\] cannot be added"):
        _plan(_pod(), _container(securityContext=more))


def test_sub_paths_are_refused_and_mounts_go_outer_first() -> None:
    spec = _container(volumeMounts=[{"name": "tmp", "mountPath": "/tmp", "subPath": "x"}])
    with pytest.raises(container.ConfigError, match=r"\['subPath'\] not supported"):
        _plan(_pod(), spec)
    nested = _container(
        volumeMounts=[
            {"name": "tmp", "mountPath": "/data/inner/deep"},
            {"name": "tmp", "mountPath": "/data"},
        ]
    )
    targets = [m.target for m in _plan(_pod(), nested).mounts]
    assert targets.index("/data") < targets.index("/data/inner/deep")


def test_an_image_user_without_a_group_gets_its_primary_group_from_the_image(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1500::/:/bin/sh\n"
    )
    launch = _plan(_pod(), _container(), FakeImage(user="1000", rootfs=tmp_path))
    assert (launch.uid, launch.gid) == (1000, 1500)
    unknown = _plan(_pod(), _container(), FakeImage(user="2000", rootfs=tmp_path))
    assert (unknown.uid, unknown.gid) == (2000, 0)
