"""The images as `make images` builds them (their root filesystems and configs in the node
emulator's image store): what a security reviewer looks for before running them."""

from __future__ import annotations

import os
import pathlib
import re
import stat
import subprocess
import tomllib

import chartkit
import lockfile
import pytest
from packaging import utils

from bosun.dev import imagebuild

pytestmark = pytest.mark.images

IDS = ["bosun", "bosun-runner"]
LOCKS = {"bosun": "operator.lock", "bosun-runner": "runner.lock"}
SITE = "opt/bosun/lib/python3.11/site-packages"
# Package managers, their seeds, and compilers: none may be on the final image's PATH.
TOOLS = ("apt", "apt-get", "dpkg", "pip", "pip3", "pip3.11", "easy_install", "gcc", "cc", "g++")


@pytest.fixture(params=IDS)
def image(
    request: pytest.FixtureRequest, shipped_images: list[imagebuild.Built]
) -> imagebuild.Built:
    return next(b for b in shipped_images if b.name == request.param)


def _walk(root: pathlib.Path) -> list[tuple[str, os.stat_result]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            found.append(("/" + os.path.relpath(path, root), os.lstat(path)))
    return found


def test_it_runs_as_a_numeric_non_root_user_that_has_a_name(image: imagebuild.Built) -> None:
    assert image.image.user == "65532:65532"
    passwd = (image.image.rootfs / "etc" / "passwd").read_text().splitlines()
    assert any(line.split(":")[2:4] == ["65532", "65532"] for line in passwd)


def test_nothing_is_writable_outside_tmp(image: imagebuild.Built) -> None:
    writable = []
    for path, info in _walk(image.image.rootfs):
        if stat.S_ISLNK(info.st_mode):
            continue
        world = info.st_mode & stat.S_IWOTH
        user = info.st_uid == 65532 and info.st_mode & stat.S_IWUSR
        group = info.st_gid == 65532 and info.st_mode & stat.S_IWGRP
        if (world or user or group) and path != "/tmp":
            writable.append(f"{path} {stat.filemode(info.st_mode)} {info.st_uid}:{info.st_gid}")
    assert writable == []
    tmp = os.lstat(image.image.rootfs / "tmp")
    assert stat.S_IMODE(tmp.st_mode) == 0o1777


def test_no_package_manager_or_compiler_is_left(image: imagebuild.Built) -> None:
    env = dict(item.partition("=")[::2] for item in image.image.env)
    dirs = env["PATH"].split(":")
    assert dirs[0] == "/opt/bosun/bin"
    root = image.image.rootfs
    present = [
        f"{d}/{tool}"
        for d in dirs
        for tool in TOOLS
        if os.path.lexists(root / d.lstrip("/") / tool)
    ]
    assert present == []
    pips = [str(p.relative_to(root)) for p in root.glob("**/site-packages/pip")]
    pips += [str(p.relative_to(root)) for p in root.glob("usr/**/ensurepip")]
    assert pips == []


def test_its_environment_holds_the_locks_packages_and_nothing_else(image: imagebuild.Built) -> None:
    installed: dict[str, str] = {}
    for info in (image.image.rootfs / SITE).glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        installed[utils.canonicalize_name(name)] = version
    pinned = {
        name: e.version
        for name, e in lockfile.parse(chartkit.REPO / "requirements" / LOCKS[image.name]).items()
    }
    project = tomllib.loads((chartkit.REPO / "pyproject.toml").read_text())["project"]
    assert installed == {**pinned, "bosun": project["version"]}


def test_it_carries_the_oci_labels_of_its_source(image: imagebuild.Built) -> None:
    labels = image.image.labels
    project = tomllib.loads((chartkit.REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.title"] == image.name
    revision = labels["org.opencontainers.image.revision"]
    found = re.fullmatch(r"([0-9a-f]{40})(-dirty)?", revision)
    assert found, revision
    # A commit of this repository: the tree the image was built from (or, with -dirty, its base).
    subprocess.run(
        ["git", "cat-file", "-e", f"{found.group(1)}^{{commit}}"], cwd=chartkit.REPO, check=True
    )


def test_the_runner_image_leaves_out_the_operator_the_cli_and_the_dev_tools(
    shipped_images: list[imagebuild.Built],
) -> None:
    runner = next(b for b in shipped_images if b.name == "bosun-runner")
    package = runner.image.rootfs / SITE / "bosun"
    assert (package / "runner" / "__main__.py").is_file()
    for gone in ("dev", "controller", "cli", "__main__.py", "ops.py"):
        assert not (package / gone).exists(), gone
    assert runner.image.entrypoint == ["python", "-m", "bosun.runner"]
    operator = next(b for b in shipped_images if b.name == "bosun")
    assert (operator.image.entrypoint, operator.image.cmd) == (["bosun"], ["operator"])
