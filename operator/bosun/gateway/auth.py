"""Whether a delivery comes from its sender: HMAC-SHA256 signatures and bearer tokens.

Pure functions over the raw request, compared in constant time (``hmac.compare_digest``). A
signature is ``sha256=<hex>`` of HMAC-SHA256 under the Webhook's key: of the raw body, or, when
the Webhook names a ``timestampHeader``, of ``<timestamp>.<raw body>`` with the timestamp
(Unix seconds) within ``toleranceSeconds`` of the gateway's clock, so a captured delivery
cannot be replayed once that window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

__all__ = ["PREFIX", "Unauthenticated", "check", "sign"]

PREFIX = "sha256="


class Unauthenticated(Exception):
    """The delivery is not the sender's: what is missing or wrong, never the expected value."""


def sign(key: bytes, body: bytes, timestamp: str | None = None) -> str:
    """The ``sha256=<hex>`` signature a sender puts on ``body`` (with ``timestamp``)."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    return PREFIX + hmac.new(key, signed, hashlib.sha256).hexdigest()


def check(
    auth: Mapping[str, Any], key: bytes, headers: Mapping[str, str], body: bytes, now: float
) -> None:
    """Raise ``Unauthenticated`` unless the delivery carries what ``auth`` (a Webhook's
    ``spec.auth``) asks for under ``key``. ``headers`` have lower-case names."""
    if auth.get("hmac") is not None:
        _check_hmac(auth["hmac"], key, headers, body, now)
    elif auth.get("bearer") is not None:
        _check_bearer(key, headers)
    else:  # the CRD requires one; an object stored otherwise is refused, not let through
        raise Unauthenticated("the Webhook sets no auth method")


def _check_hmac(
    spec: Mapping[str, Any], key: bytes, headers: Mapping[str, str], body: bytes, now: float
) -> None:
    name = str(spec.get("signatureHeader") or "X-Bosun-Signature-256")
    given = headers.get(name.lower())
    if not given:
        raise Unauthenticated(f"missing {name} header")
    stamp_header = spec.get("timestampHeader")
    stamp: str | None = None
    if stamp_header:
        stamp = headers.get(str(stamp_header).lower())
        if not stamp:
            raise Unauthenticated(f"missing {stamp_header} header")
        try:
            sent = int(stamp)
        except ValueError:
            raise Unauthenticated(f"{stamp_header} is not Unix seconds") from None
        tolerance = int(spec.get("toleranceSeconds") or 300)
        if abs(now - sent) > tolerance:
            raise Unauthenticated(
                f"{stamp_header} is {int(now - sent)}s from the gateway's clock, over the"
                f" tolerance of {tolerance}s"
            )
    expected = sign(key, body, stamp)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthenticated(f"{name} does not match the body")


def _check_bearer(key: bytes, headers: Mapping[str, str]) -> None:
    given = headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing Authorization: Bearer header")
    if not hmac.compare_digest(token.strip().encode(), key.strip()):
        raise Unauthenticated("the bearer token does not match")
