"""Unit tests of the emulator's image table."""

from __future__ import annotations

import sys

import pytest

from bosun.dev import images


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("ghcr.io/bosun-dev/bosun-runner:0.1.0", "bosun-runner"),
        ("registry:5000/team/bosun@sha256:abc", "bosun"),
        ("localhost:5000/python:3.11-slim", "python"),
    ],
)
def test_repository_name_strips_registry_tag_and_digest(image: str, name: str) -> None:
    assert images.repository_name(image) == name


def test_command_replaces_entrypoint_and_args_follow() -> None:
    argv = images.local_argv("busybox", ["sh", "-c"], ["exit 3"])
    assert argv == ["sh", "-c", "exit 3"]


def test_args_alone_follow_the_entrypoint() -> None:
    assert images.local_argv("busybox", None, ["-c", "true"]) == ["sh", "-c", "true"]


def test_bosun_commands_run_through_this_python() -> None:
    argv = images.local_argv("ghcr.io/bosun-dev/bosun:0.1.0", None, ["operator"])
    assert argv == [sys.executable, "-m", "bosun", "operator"]
    runner = images.local_argv("ghcr.io/bosun-dev/bosun-runner:0.1.0", None, None)
    assert runner == [sys.executable, "-m", "bosun.runner"]


def test_unknown_image_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(images.UnknownImageError, match=r"nginx.*known images: bosun"):
        images.local_argv("nginx:1.27", None, None)
