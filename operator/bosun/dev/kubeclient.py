"""The official ``kubernetes`` client, for the dev tooling alone (the node emulator, test fixtures).

Bosun itself talks to API servers through ``bosun.kube``; the local control plane's node
emulator and the test fixtures use the generated client's typed APIs, built here from the same
kubeconfig or in-cluster rules. Nothing outside ``bosun.dev`` and the tests imports this module.
"""

from __future__ import annotations

import os

from kubernetes import client, config

from bosun import kube

__all__ = ["api_client"]


def api_client(kubeconfig: str | os.PathLike[str] | None = None) -> client.ApiClient:
    """An API client for the kubeconfig or, failing that, the in-cluster identity."""
    path = kube.kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    if path is not None:
        if not path.exists():
            raise kube.ConfigError(f"kubeconfig {path} does not exist")
        config.load_kube_config(config_file=str(path), client_configuration=configuration)
        return client.ApiClient(configuration)
    sa_dir = kube.in_cluster_dir()
    if "KUBERNETES_SERVICE_HOST" not in os.environ or not (sa_dir / "token").exists():
        raise kube.ConfigError(
            "no kubeconfig found (set KUBECONFIG or pass --kubeconfig) and not running in a pod"
        )
    loader = config.incluster_config.InClusterConfigLoader(
        token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt")
    )
    loader.load_and_set(configuration)
    return client.ApiClient(configuration)
