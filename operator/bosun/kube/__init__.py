"""Bosun's one Kubernetes access layer: credentials, plain-dict REST calls and one set of errors.

The operator, the runner and the CLI reach the API server only through ``Rest`` (``connect``
builds one from a kubeconfig or a pod's service account) and catch only the errors below. It is
built on httpx alone: importing it does not load the official ``kubernetes`` client or kopf.
"""

from __future__ import annotations

from bosun.kube._credentials import Credentials, in_cluster_dir, kubeconfig_path, load
from bosun.kube._errors import (
    AlreadyExists,
    ApiError,
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from bosun.kube._rest import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    Obj,
    Rest,
    collection_path,
    connect,
    object_path,
    ssl_context,
)

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "AlreadyExists",
    "ApiError",
    "ConfigError",
    "Conflict",
    "Credentials",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Obj",
    "Rest",
    "Unavailable",
    "collection_path",
    "connect",
    "in_cluster_dir",
    "kubeconfig_path",
    "load",
    "object_path",
    "ssl_context",
]
