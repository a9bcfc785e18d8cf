"""Shared test configuration.

The local control plane fixtures come from the pytest plugin ``bosun.dev.testing``, loaded for
every test run by ``addopts`` in pyproject.toml.
"""
