"""Shared test configuration: the local control plane fixtures come from a plugin."""

from __future__ import annotations

pytest_plugins = ["bosun.dev.testing"]
