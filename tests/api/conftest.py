"""Fixtures of the API tests (the CRDs come from the `bosun_crds` fixture of bosun.dev.testing)."""

from __future__ import annotations

import pytest

from bosun.dev import testing


@pytest.fixture
def cel(bosun_crds: testing.ControlPlaneHandle) -> None:
    """Skip, loudly, where the API server does not enforce CRD validation rules."""
    if not bosun_crds.supports_cel:
        pytest.skip(
            f"API server {bosun_crds.server_version} does not enforce CEL validation rules "
            "(x-kubernetes-validations need Kubernetes >= 1.25): this check is NOT covered"
        )
