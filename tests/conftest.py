"""Shared test configuration.

The local control plane fixtures come from the pytest plugin ``bosun.dev.testing``, loaded for
every test run by ``addopts`` in pyproject.toml; ``chart_user_roles`` adds the chart's roles
for people, so tests can act as real tenants bound to them.
"""

from __future__ import annotations

import pytest

from bosun.dev import testing
from chart import chartkit


@pytest.fixture(scope="session")
def chart_user_roles(control_plane: testing.ControlPlaneHandle) -> dict[str, str]:
    """The chart's ClusterRoles for people (view, edit, approver), rendered by the real helm
    and applied once: tests bind real users to them, as a platform team would. Returns the
    role names by purpose."""
    text = chartkit.helm(
        "template",
        chartkit.RELEASE,
        str(chartkit.CHART),
        "--namespace",
        chartkit.NAMESPACE,
        "--kube-version",
        chartkit.KUBE_VERSION,
        "--show-only",
        "templates/rbac-users.yaml",
    ).stdout
    control_plane.kubectl("apply", "-f", "-", input=text)
    names = [o["metadata"]["name"] for o in chartkit.parse(text)]
    return {purpose: next(n for n in names if n.endswith(f"-{purpose}")) for purpose in
            ("view", "edit", "approver")}  # fmt: skip
