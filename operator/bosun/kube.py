"""The one place Bosun builds Kubernetes API clients.

Loads a kubeconfig (an explicit path, ``KUBECONFIG``, or ``~/.kube/config``) or, inside a pod,
the in-cluster service-account credentials. The service-account folder defaults to the standard
mount path and can be moved with ``BOSUN_SERVICEACCOUNT_DIR`` (the node emulator of the local
control plane sets it, since its pods share one filesystem).
"""

from __future__ import annotations

import os
import pathlib

from kubernetes import client, config

from bosun import constants

__all__ = ["ConfigError", "api_client", "in_cluster_dir"]

_DEFAULT_SA_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(RuntimeError):
    """No usable Kubernetes credentials were found."""


def in_cluster_dir() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get(constants.EMULATOR_SERVICEACCOUNT_DIR_ENV, str(_DEFAULT_SA_DIR))
    )


def _kubeconfig_path(explicit: str | os.PathLike[str] | None) -> pathlib.Path | None:
    if explicit:
        return pathlib.Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return pathlib.Path(env.split(os.pathsep)[0])
    home = pathlib.Path.home() / ".kube" / "config"
    return home if home.exists() else None


def api_client(kubeconfig: str | os.PathLike[str] | None = None) -> client.ApiClient:
    """Return an API client for the kubeconfig or, failing that, the in-cluster identity."""
    path = _kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    if path is not None:
        if not path.exists():
            raise ConfigError(f"kubeconfig {path} does not exist")
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        return client.ApiClient(configuration)
    sa_dir = in_cluster_dir()
    if "KUBERNETES_SERVICE_HOST" not in os.environ or not (sa_dir / "token").exists():
        raise ConfigError(
            "no kubeconfig found (set KUBECONFIG or pass --kubeconfig) and not running in a pod"
        )
    loader = config.incluster_config.InClusterConfigLoader(
        token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt")
    )
    loader.load_and_set(configuration)
    return client.ApiClient(configuration)
