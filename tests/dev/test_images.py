"""Unit tests of what the node emulator runs for an image: the store first, else a local command."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest

from bosun.dev import images, imagestore


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("docker.io/library/python:3.11", "python"),
        ("checkout.invalid/bosun-runner:0.1.0", "checkout.invalid/bosun-runner"),
        ("ghcr.io/bosun-dev/bosun-runner:0.1.0", "ghcr.io/bosun-dev/bosun-runner"),
        ("registry:5000/team/bosun@sha256:abc", "registry:5000/team/bosun"),
    ],
)
def test_repository_name_strips_tag_and_digest_and_docker_hub_defaults(
    image: str, name: str
) -> None:
    assert images.repository_name(image) == name


@pytest.mark.parametrize(
    ("reference", "normal"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("python:3.11", "docker.io/library/python:3.11"),
        ("team/app", "docker.io/team/app:latest"),
        ("ghcr.io/bosun-dev/bosun-runner:0.1.0", "ghcr.io/bosun-dev/bosun-runner:0.1.0"),
        ("localhost/broken/bosun-runner", "localhost/broken/bosun-runner:latest"),
        ("registry:5000/team/bosun@sha256:abc", "registry:5000/team/bosun@sha256:abc"),
    ],
)
def test_references_are_normalised_as_docker_does(reference: str, normal: str) -> None:
    assert imagestore.normalise(reference) == normal


def test_command_replaces_entrypoint_and_args_follow() -> None:
    argv = images.local_argv("busybox", ["sh", "-c"], ["exit 3"])
    assert argv == ["sh", "-c", "exit 3"]


def test_args_alone_follow_the_entrypoint() -> None:
    assert images.local_argv("busybox", None, ["-c", "true"]) == ["sh", "-c", "true"]


def test_the_checkout_images_run_through_this_python_only_under_their_own_registry() -> None:
    argv = images.local_argv(images.CHECKOUT_OPERATOR, None, ["operator"])
    assert argv == [sys.executable, "-m", "bosun", "operator"]
    runner = images.local_argv(f"{images.CHECKOUT_RUNNER}:0.1.0", None, None)
    assert runner == [sys.executable, "-m", "bosun.runner"]
    # The shipped references are not mapped to the checkout any more.
    with pytest.raises(images.UnknownImageError, match="not present with pull policy of Never"):
        images.local_argv("ghcr.io/bosun-dev/bosun-runner:0.1.0", None, None)


def test_an_image_the_node_lacks_says_so_as_the_kubelet_does() -> None:
    with pytest.raises(images.UnknownImageError) as caught:
        images.local_argv("nginx:1.27", None, None)
    assert (
        str(caught.value) == 'Container image "nginx:1.27" is not present with pull policy of Never'
    )


def _store_with(tmp_path: pathlib.Path, reference: str) -> imagestore.Store:
    store = imagestore.Store(tmp_path / "images")

    def unpack(rootfs: pathlib.Path) -> dict[str, Any]:
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "bin" / "tool").write_text("#!/bin/sh\n")
        return {"user": "65532:65532", "entrypoint": ["tool"], "cmd": ["--help"]}

    store.add(reference, "k1", ("base", "id"), unpack)
    return store


def test_a_stored_image_runs_from_the_store_under_any_spelling_of_its_reference(
    tmp_path: pathlib.Path,
) -> None:
    store = _store_with(tmp_path, "ghcr.io/bosun-dev/bosun-runner:0.1.0")
    found = images.resolve("ghcr.io/bosun-dev/bosun-runner:0.1.0", None, None, store=store)
    assert isinstance(found, images.FromImage)
    assert found.image.entrypoint == ["tool"] and found.image.user == "65532:65532"
    assert (found.image.rootfs / "bin" / "tool").is_file()
    assert found.image.size_bytes > 0
    # Another tag is another image, which the node does not have.
    with pytest.raises(images.UnknownImageError):
        images.resolve("ghcr.io/bosun-dev/bosun-runner:0.2.0", None, None, store=store)
    # The checkout registry never reaches the store, the stand-ins are local commands.
    local = images.resolve(images.CHECKOUT_RUNNER, None, None, store=store)
    assert local == images.LocalCommand([sys.executable, "-m", "bosun.runner"])
    assert images.resolve("busybox", ["true"], None, store=store) == images.LocalCommand(["true"])


def test_a_derived_image_leaves_its_source_untouched_and_unused_images_are_pruned(
    tmp_path: pathlib.Path,
) -> None:
    store = _store_with(tmp_path, "example.test/app:1")
    source = store.lookup("example.test/app:1")
    assert source is not None
    broken = store.derive(
        source, "localhost/broken/app:1", lambda root: (root / "bin/tool").unlink()
    )
    assert not (broken.rootfs / "bin" / "tool").exists()
    assert (source.rootfs / "bin" / "tool").is_file()
    store.remove("localhost/broken/app:1")
    store.prune(grace_seconds=3600)
    # Kept a while: a pod may still run from it.
    assert broken.folder.exists()
    store.prune(grace_seconds=0)
    assert not broken.folder.exists() and source.folder.exists()
    assert store.references() == ["example.test/app:1"]
