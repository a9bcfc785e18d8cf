"""e2e scenarios: whole-system behaviour under faults and load.

Fixtures come from ``bosun.dev.testing`` (loaded through pyproject's addopts). ``BOSUN_SOAK=1``
(``make soak``) runs the full sizes; by default each scenario runs a reduced size within
``make test``.
"""
