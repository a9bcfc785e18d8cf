"""Tests of the runner (``bosun.runner``): unit tests and integration tests on the control plane."""
