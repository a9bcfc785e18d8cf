"""Whether a delivery comes from its sender, and what of it the sender vouched for.

Pure functions over the raw request, compared in constant time. Two HMAC-SHA256 schemes,
``sha256=<hex>`` under the Webhook's key:

- without a ``timestampHeader`` (GitHub's): the signature covers the raw body alone. The
  delivery id and the headers are then the sender's word, not signed, so the body names the
  Run (``identity``): a captured delivery re-sent under a new id answers with the Run it made.
- with one (Bosun's own): the signature covers ``<timestamp>.<delivery id>.<raw body>`` and a
  timestamp (Unix seconds) outside ``toleranceSeconds`` of the gateway's clock is refused, so a
  captured delivery cannot be replayed once the window has passed, nor under another id.

A bearer token vouches for the whole request, id included. ``identity`` is what names a
delivery's Run: exactly what the sender vouched for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

__all__ = ["PREFIX", "Delivery", "Unauthenticated", "check", "identity", "sign"]

PREFIX = "sha256="
_STAMP_DIGITS = 12
"""Unix seconds have 10 digits until the year 2286; more is not a time."""


class Unauthenticated(Exception):
    """The delivery is not the sender's: what is missing or wrong, never the expected value."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    delivery_id: str = ""


def sign(key: bytes, body: bytes, timestamp: str | None = None, delivery_id: str = "") -> str:
    """The ``sha256=<hex>`` signature a sender puts on ``body`` (with ``timestamp``: on
    ``<timestamp>.<delivery_id>.<body>``)."""
    signed = body if timestamp is None else f"{timestamp}.{delivery_id}.".encode() + body
    return PREFIX + hmac.new(key, signed, hashlib.sha256).hexdigest()


def identity(auth: Mapping[str, Any], delivery_id: str, body: bytes) -> str:
    """What names the Run: the delivery id when the sender vouched for it (a bearer token,
    or a timestamped signature, which covers it), else the signed body's digest."""
    method = auth.get("hmac")
    if method is not None and not method.get("timestampHeader"):
        return "sha256:" + hashlib.sha256(body).hexdigest()
    return delivery_id


def check(auth: Mapping[str, Any], key: bytes, delivery: Delivery, now: float) -> None:
    """Raise ``Unauthenticated`` unless ``delivery`` carries what ``auth`` (a Webhook's
    ``spec.auth``) asks for under ``key``."""
    if auth.get("hmac") is not None:
        _check_hmac(auth["hmac"], key, delivery, now)
    elif auth.get("bearer") is not None:
        _check_bearer(key, delivery.headers)
    else:  # the CRD requires one; an object stored otherwise is refused, not let through
        raise Unauthenticated("the Webhook sets no auth method")


def _check_hmac(spec: Mapping[str, Any], key: bytes, delivery: Delivery, now: float) -> None:
    headers = delivery.headers
    name = str(spec.get("signatureHeader") or "X-Bosun-Signature-256")
    given = headers.get(name.lower())
    if not given:
        raise Unauthenticated(f"missing {name} header")
    stamp_header = spec.get("timestampHeader")
    stamp: str | None = None
    if stamp_header:
        stamp = headers.get(str(stamp_header).lower(), "").strip()
        if not stamp:
            raise Unauthenticated(f"missing {stamp_header} header")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _STAMP_DIGITS):
            raise Unauthenticated(f"{stamp_header} is not Unix seconds")
        sent = int(stamp)
        tolerance = int(spec.get("toleranceSeconds") or 300)
        if abs(now - sent) > tolerance:
            raise Unauthenticated(
                f"{stamp_header} is {int(now - sent)}s from the gateway's clock, over the"
                f" tolerance of {tolerance}s"
            )
    expected = sign(key, delivery.body, stamp, delivery.delivery_id)
    if not hmac.compare_digest(given.strip().encode(errors="replace"), expected.encode()):
        raise Unauthenticated(f"{name} does not match the body")


def _check_bearer(key: bytes, headers: Mapping[str, str]) -> None:
    given = headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing Authorization: Bearer header")
    # Digests of both sides: equal lengths, so the comparison says nothing of the token's.
    sent = hashlib.sha256(token.encode(errors="replace")).digest()
    if not hmac.compare_digest(sent, hashlib.sha256(key).digest()):
        raise Unauthenticated("the bearer token does not match")
