"""Unit tests of the kubelet-style environment resolution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bosun.dev import podenv

POD: dict[str, Any] = {
    "metadata": {
        "name": "run-1",
        "namespace": "team-a",
        "uid": "u-1",
        "labels": {"app": "bosun"},
        "annotations": {"note": "hi"},
    },
    "spec": {"nodeName": "bosun-emulator", "serviceAccountName": "runner"},
    "status": {"podIP": "127.0.0.1"},
}
SECRETS = {("team-a", "keys"): {"token": "s3cret"}}
CONFIGMAPS = {("team-a", "settings"): {"LEVEL": "debug", "MODE": "fast"}}


def _secret(namespace: str, name: str) -> Mapping[str, str] | None:
    return SECRETS.get((namespace, name))


def _configmap(namespace: str, name: str) -> Mapping[str, str] | None:
    return CONFIGMAPS.get((namespace, name))


def _env(container: dict[str, Any]) -> dict[str, str]:
    return podenv.container_env(POD, container, _secret, _configmap)


def test_literal_values_expand_earlier_variables() -> None:
    env = _env(
        {
            "env": [
                {"name": "A", "value": "one"},
                {"name": "B", "value": "$(A)-two-$(MISSING)-$$(A)"},
            ]
        }
    )
    assert env == {"A": "one", "B": "one-two-$(MISSING)-$(A)"}


def test_downward_api_fields() -> None:
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "APP": "metadata.labels['app']",
        "NOTE": "metadata.annotations['note']",
    }
    env = _env(
        {
            "env": [
                {"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()
            ]
        }
    )
    assert env == {
        "NAME": "run-1",
        "NS": "team-a",
        "UID": "u-1",
        "NODE": "bosun-emulator",
        "SA": "runner",
        "APP": "bosun",
        "NOTE": "hi",
    }


def test_secret_and_configmap_keys() -> None:
    env = _env(
        {
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "token"}}},
                {
                    "name": "LEVEL",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}},
                },
            ]
        }
    )
    assert env == {"TOKEN": "s3cret", "LEVEL": "debug"}


def test_env_from_with_prefix_and_env_overrides() -> None:
    env = _env(
        {
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "env": [{"name": "APP_MODE", "value": "slow"}],
        }
    )
    assert env == {"APP_LEVEL": "debug", "APP_MODE": "slow"}


def test_missing_secret_key_is_an_error_naming_it() -> None:
    container = {
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "nope"}}}]
    }
    with pytest.raises(podenv.EnvError, match="key 'nope' in Secret keys"):
        _env(container)


def test_missing_optional_reference_is_skipped() -> None:
    container = {
        "env": [
            {
                "name": "X",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            }
        ],
        "envFrom": [{"configMapRef": {"name": "gone", "optional": True}}],
    }
    assert _env(container) == {}


def test_missing_configmap_in_env_from_is_an_error() -> None:
    with pytest.raises(podenv.EnvError, match="configMap team-a/gone not found"):
        _env({"envFrom": [{"configMapRef": {"name": "gone"}}]})


def test_resource_field_ref_with_divisor() -> None:
    container = {
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "env": [
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
    }
    assert _env(container) == {"MEM": "64", "CPU": "1"}


def test_unsupported_field_path_is_an_error() -> None:
    container = {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}
    with pytest.raises(podenv.EnvError, match=r"spec\.bogus"):
        _env(container)
