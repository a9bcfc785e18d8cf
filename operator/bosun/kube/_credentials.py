"""Where Bosun's Kubernetes credentials come from: a kubeconfig, or a pod's service account.

``load`` reads an explicit kubeconfig path, else ``KUBECONFIG`` (its first file), else
``~/.kube/config``; failing those, inside a pod, the service-account token and CA (the folder
defaults to the standard mount and can be moved with ``BOSUN_SERVICEACCOUNT_DIR``, which the node
emulator of the local control plane sets, since its pods share one filesystem). Supported are
what Bosun's users and pods have: client certificates, bearer tokens and token files; exec
plugins and basic auth are refused with a clear message. Secrets stay out of ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from bosun import constants
from bosun.kube import _errors

__all__ = ["Credentials", "in_cluster_dir", "kubeconfig_path", "load"]

_DEFAULT_SA_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REREAD_SECONDS = 60.0  # service-account tokens rotate; the kubelet refreshes the file


@dataclasses.dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server."""

    server: str
    ca_pem: str | None = None
    """The CA bundle that signs the server's certificate (None: the system's trust store)."""
    insecure: bool = False
    client_cert_pem: str | None = None
    client_key_pem: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    token_file: pathlib.Path | None = None
    """Read again every minute, so a rotated token is picked up."""
    namespace: str | None = None
    """The kubeconfig context's namespace, or the pod's own."""
    _cache: dict[str, Any] = dataclasses.field(
        default_factory=dict, repr=False, compare=False, hash=False
    )
    _lock: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, repr=False, compare=False, hash=False
    )

    def bearer_token(self) -> str | None:
        """The token to send, re-read from ``token_file`` when it may have rotated."""
        if self.token_file is None:
            return self.token
        with self._lock:
            read_at = self._cache.get("read_at")
            if read_at is None or time.monotonic() - read_at > _TOKEN_REREAD_SECONDS:
                try:
                    self._cache["token"] = self.token_file.read_text().strip()
                except OSError as err:
                    raise _errors.ConfigError(
                        f"cannot read token file {self.token_file}: {err}"
                    ) from err
                self._cache["read_at"] = time.monotonic()
            token: str = self._cache["token"]
            return token


def in_cluster_dir() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get(constants.EMULATOR_SERVICEACCOUNT_DIR_ENV, str(_DEFAULT_SA_DIR))
    )


def kubeconfig_path(explicit: str | os.PathLike[str] | None = None) -> pathlib.Path | None:
    """The kubeconfig that would be used, or None when there is none (in a pod)."""
    if explicit:
        return pathlib.Path(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return pathlib.Path(env.split(os.pathsep)[0])
    home = pathlib.Path.home() / ".kube" / "config"
    return home if home.exists() else None


def load(kubeconfig: str | os.PathLike[str] | None = None) -> Credentials:
    """The credentials of the kubeconfig's current context or, failing that, the pod's."""
    path = kubeconfig_path(kubeconfig)
    if path is not None:
        if not path.exists():
            raise _errors.ConfigError(f"kubeconfig {path} does not exist")
        return _from_kubeconfig(path)
    return _in_cluster()


def _in_cluster() -> Credentials:
    sa_dir = in_cluster_dir()
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host or not (sa_dir / "token").exists():
        raise _errors.ConfigError(
            "no kubeconfig found (set KUBECONFIG or pass --kubeconfig) and not running in a pod"
        )
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server_host = f"[{host}]" if ":" in host else host
    namespace_file = sa_dir / "namespace"
    try:
        ca_pem = (sa_dir / "ca.crt").read_text()
    except OSError as err:
        # A pod's API server is verified against the cluster's CA, never the system's store.
        raise _errors.ConfigError(f"cannot read the cluster CA {sa_dir / 'ca.crt'}: {err}") from err
    return Credentials(
        server=f"https://{server_host}:{port}",
        ca_pem=ca_pem,
        token_file=sa_dir / "token",
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def _named(entries: Any, name: str, what: str, path: pathlib.Path) -> Mapping[str, Any]:
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(what)
            return body if isinstance(body, Mapping) else {}
    raise _errors.ConfigError(f"kubeconfig {path}: no {what} named {name!r}")


def _pem(
    section: Mapping[str, Any], data_key: str, file_key: str, base: pathlib.Path
) -> str | None:
    data, file = section.get(data_key), section.get(file_key)
    try:
        if data:
            return base64.b64decode(str(data), validate=True).decode()
        if file:
            return (base / str(file)).read_text()
    except (ValueError, OSError) as err:  # binascii.Error and UnicodeDecodeError are ValueErrors
        which = data_key if data else f"{file_key} {file}"
        raise _errors.ConfigError(
            f"kubeconfig: {which} is unreadable ({type(err).__name__})"
        ) from err
    return None


def _from_kubeconfig(path: pathlib.Path) -> Credentials:
    # Deliberate lazy import: a runner in its pod reads no kubeconfig and never loads YAML.
    import yaml  # noqa: PLC0415

    try:
        with path.open() as stream:
            config = yaml.safe_load(stream) or {}
    except yaml.MarkedYAMLError as err:
        # The position only: the parser's message would quote the line, which may hold a secret.
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _errors.ConfigError(f"kubeconfig {path} is not valid YAML{where}") from err
    except (OSError, yaml.YAMLError) as err:
        raise _errors.ConfigError(
            f"kubeconfig {path} is unreadable ({type(err).__name__})"
        ) from err
    if not isinstance(config, Mapping):
        raise _errors.ConfigError(f"kubeconfig {path} is not a mapping")
    current = config.get("current-context")
    if not current:
        raise _errors.ConfigError(f"kubeconfig {path} has no current-context")
    context = _named(config.get("contexts"), str(current), "context", path)
    cluster = _named(config.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(config.get("users"), str(context.get("user")), "user", path)
    for unsupported in ("exec", "auth-provider", "username"):
        if unsupported in user:
            raise _errors.ConfigError(
                f"kubeconfig {path}: user {context.get('user')!r} uses {unsupported}, which"
                " Bosun does not support; use a client certificate or a token"
            )
    base = path.parent
    cert = _pem(user, "client-certificate-data", "client-certificate", base)
    key = _pem(user, "client-key-data", "client-key", base)
    if (cert is None) != (key is None):
        raise _errors.ConfigError(
            f"kubeconfig {path}: user {context.get('user')!r} has a client certificate or key"
            " without the other"
        )
    token_file = user.get("tokenFile")
    server = cluster.get("server")
    if not server:
        raise _errors.ConfigError(
            f"kubeconfig {path}: cluster {context.get('cluster')!r} has no server"
        )
    return Credentials(
        server=str(server).rstrip("/"),
        ca_pem=_pem(cluster, "certificate-authority-data", "certificate-authority", base),
        insecure=str(cluster.get("insecure-skip-tls-verify", False)).lower() == "true",
        client_cert_pem=cert,
        client_key_pem=key,
        token=str(user["token"]) if user.get("token") else None,
        token_file=base / str(token_file) if token_file else None,
        namespace=str(context["namespace"]) if context.get("namespace") else None,
    )
