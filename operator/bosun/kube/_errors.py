"""The errors of Bosun's Kubernetes access layer: one set for the operator, the runner and the CLI.

An API server's refusal becomes an ``ApiError`` with the HTTP status and the ``reason`` and
``message`` of the ``metav1.Status`` it answered with; the common cases have subclasses, so callers
catch a type (``NotFound``, ``AlreadyExists``, ``Conflict``, ``Forbidden``, ``Invalid``) instead of
comparing numbers. A request that got no answer at all is ``Unavailable``.
"""

from __future__ import annotations

import json

__all__ = [
    "AlreadyExists",
    "ApiError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Unavailable",
    "from_response",
]


class ConfigError(RuntimeError):
    """No usable Kubernetes credentials were found."""


class ApiError(RuntimeError):
    """The API server refused or failed a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        """The HTTP status code (0 when no answer came)."""
        self.reason = reason
        """The Status reason (``NotFound``, ``AlreadyExists``, ...) or the HTTP reason phrase."""
        self.message = message
        """The API server's own explanation (the Status message), for people."""


class NotFound(ApiError):
    """The object (or its namespace or kind) does not exist."""


class AlreadyExists(ApiError):
    """An object of that name already exists."""


class Conflict(ApiError):
    """The object changed since it was read (a stale resourceVersion)."""


class Forbidden(ApiError):
    """RBAC or an admission policy refused the request."""


class Invalid(ApiError):
    """The object failed validation (schema, CEL rule or admission policy)."""


class Unavailable(ApiError):
    """The API server could not be reached, or did not answer in time."""


def from_response(status: int, phrase: str, body: bytes) -> ApiError:
    """The error for an unsuccessful answer: its status and the Status object in its body."""
    reason, message = phrase, body.decode(errors="replace")[:2000]
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        reason = str(payload.get("reason") or phrase)
        message = str(payload.get("message") or "")[:2000]
    if status == 404:
        return NotFound(status, reason, message)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(status, reason, message)
    if status == 403:
        return Forbidden(status, reason, message)
    if status == 422:
        return Invalid(status, reason, message)
    return ApiError(status, reason, message)
