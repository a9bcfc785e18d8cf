"""`bosun dev up/status/down` as a user runs them: background processes, nothing left behind."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from bosun.dev import provision, testing

pytestmark = pytest.mark.cluster


def _bosun(
    *args: str, cwd: pathlib.Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bosun", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def _processes_under(folder: pathlib.Path) -> list[str]:
    """Processes whose command line or working directory mention ``folder``."""
    found = []
    needle = str(folder)
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_dev_up_twice_then_down_leaves_no_process(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "dev"
    # A private cache (for the note of the last control plane), with the binaries already built.
    binaries = provision.ensure(["kubectl"])["kubectl"].parent
    env = {"BOSUN_CACHE_DIR": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(binaries)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        first = _bosun("dev", "up", "--dir", str(folder), env=env)
        assert first.returncode == 0, first.stderr + first.stdout
        kubeconfig = folder / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in first.stdout
        second = _bosun("dev", "up", "--dir", str(folder))
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        status = _bosun("dev", "status", "--dir", str(folder))
        assert status.returncode == 0
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "node-emulator"):
            assert name in status.stdout
        assert "EXITED" not in status.stdout
        # From another directory, without --dir: the last background control plane is found.
        found = _bosun("dev", "status", cwd=elsewhere, env=env)
        assert found.returncode == 0, found.stdout + found.stderr
        assert f"Kubeconfig: {kubeconfig}" in found.stdout

        # A pod's process counts too: down must take it with the emulator.
        kubectl = provision.ensure(["kubectl"])["kubectl"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "long", "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "600"]}],
            },
        }
        subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(pod),
            text=True,
            check=True,
            capture_output=True,
        )
        testing.until(
            lambda: any("sleep 600" in p for p in _processes_under(folder)),
            what="the pod's process to start",
        )
    finally:
        down = _bosun("dev", "down", "--dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert _processes_under(folder) == []
    after = _bosun("dev", "status", "--dir", str(folder))
    assert after.returncode == 3
    assert "No control plane running" in after.stdout
    # Nothing runs: it says every place it looked.
    lost = _bosun("dev", "status", cwd=elsewhere, env=env)
    assert lost.returncode == 3
    assert f"looked in {elsewhere / '.bosun' / 'dev'}, {folder}" in lost.stdout
