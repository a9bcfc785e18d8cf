"""Fixtures of the chart tests: kubeconform schemas generated from the local API server."""

from __future__ import annotations

import pathlib
from typing import Any

import chartkit
import kubeschemas
import pytest

from bosun import constants
from bosun.dev import testing


def _published_kinds(doc: dict[str, Any]) -> set[str]:
    return {
        gvk["kind"]
        for definition in doc["definitions"].values()
        for gvk in definition.get("x-kubernetes-group-version-kind") or ()
        if gvk.get("group") == constants.GROUP
    }


@pytest.fixture(scope="session")
def kube_schemas(
    bosun_crds: testing.ControlPlaneHandle, tmp_path_factory: pytest.TempPathFactory
) -> pathlib.Path:
    """A kubeconform schema folder for this API server, Bosun's CRDs included."""
    rest = bosun_crds.rest()

    def openapi() -> dict[str, Any] | None:
        doc = rest.request("GET", "/openapi/v2")
        # A new CRD reaches the published OpenAPI document a moment after it is established.
        return doc if set(constants.KINDS) <= _published_kinds(doc) else None

    doc = testing.until(openapi, timeout=60, interval=0.5, what="Bosun's kinds in /openapi/v2")
    return kubeschemas.write(
        doc,
        tmp_path_factory.mktemp("kubeconform"),
        chartkit.server_version(bosun_crds.server_version),
    )
