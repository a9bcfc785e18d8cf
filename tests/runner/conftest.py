"""Fixtures for runner tests: the local servers and the harness (CRDs come from the plugin)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import pytest

from bosun.dev import testing

from . import harness


class _Server(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


@pytest.fixture
def servers() -> Iterator[Callable[[S], S]]:
    """Start a server now and stop it after the test, whatever happens."""
    started: list[_Server] = []

    def start(server: S) -> S:
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def kube(
    control_plane: testing.ControlPlaneHandle,
    namespace: str,
    bosun_crds: testing.ControlPlaneHandle,
    tmp_path: pathlib.Path,
) -> Iterator[harness.Harness]:
    handle = harness.Harness(control_plane, namespace, tmp_path)
    try:
        yield handle
    finally:
        handle.close()
