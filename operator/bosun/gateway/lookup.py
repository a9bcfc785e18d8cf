"""What a delivery needs from the API server, read fresh or from a few seconds ago.

The gateway keeps no state of its own: a Webhook and the key in its Secret are read with a GET and
kept for ``TTL_SECONDS`` (at most ``CACHE_ENTRIES`` of them), so a burst of deliveries costs one
read of each, and an edited Webhook or a rotated Secret applies within seconds on every replica.
What is absent (or not the gateway's to read) is remembered as briefly, so a flood of deliveries to
unknown hooks costs at most one read per hook per TTL. Per-Webhook token buckets (``Buckets``) live
here too: in each replica, the only state besides these copies.
"""

from __future__ import annotations

import base64
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from bosun import constants, kube

__all__ = [
    "CACHE_ENTRIES",
    "KEY_MIN_BYTES",
    "TTL_SECONDS",
    "Buckets",
    "KeyUnreadable",
    "Lookup",
    "Obj",
]

TTL_SECONDS = 3.0
CACHE_ENTRIES = 4096
"""Webhooks and keys kept (the least recently used go first)."""
KEY_MIN_BYTES = 16
"""The shortest key accepted: an empty or short one would let anyone sign or guess it."""

Obj = dict[str, Any]


class KeyUnreadable(Exception):
    """The Webhook's Secret, or its key, cannot be read: say why in the gateway's log."""


class Lookup:
    """Webhooks and Secret keys by (namespace, name), each read at most once per TTL."""

    def __init__(
        self, rest: kube.Rest, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rest = rest
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[str, str, str], tuple[float, Any]] = (
            collections.OrderedDict()
        )

    def _cached(self, key: tuple[str, str, str], read: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._cache.move_to_end(key)
                return hit[1]
        value = read()  # Unavailable propagates: nothing is cached then
        with self._lock:
            self._cache[key] = (now, value)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def webhook(self, namespace: str, name: str) -> Obj | None:
        """The Webhook, or None when it does not exist or is not the gateway's to read."""

        def read() -> Obj | None:
            try:
                return self.rest.get(constants.API_VERSION, "webhooks", namespace, name)
            except kube.Forbidden:
                return None

        found: Obj | None = self._cached(("webhooks", namespace, name), read)
        return found

    def key(self, namespace: str, secret: str, key: str) -> bytes:
        """The value of ``key`` in Secret ``secret``; ``KeyUnreadable`` says why not."""

        def read() -> bytes | str:
            try:
                found = self.rest.get("v1", "secrets", namespace, secret)
            except kube.Forbidden:
                return (
                    f"the gateway may not read Secret {namespace}/{secret}: grant it get on"
                    " that Secret by name (the chart's gateway.secretNames, or a Role)"
                )
            if found is None:
                return f"Secret {namespace}/{secret} not found"
            data = (found.get("data") or {}).get(key)
            if data is None:
                return f"Secret {namespace}/{secret} has no key {key}"
            try:
                value = base64.b64decode(data, validate=True).rstrip(b"\r\n")
            except ValueError:
                return f"Secret {namespace}/{secret} key {key} is not base64"
            if len(value) < KEY_MIN_BYTES:  # an empty or guessable key would let anyone in
                return (
                    f"Secret {namespace}/{secret} key {key} is shorter than {KEY_MIN_BYTES}"
                    " bytes: deliveries are refused until it is longer"
                )
            return value

        value = self._cached(("secrets", namespace, f"{secret}\0{key}"), read)
        if isinstance(value, str):
            raise KeyUnreadable(value)
        assert isinstance(value, bytes)
        return value


class Buckets:
    """A token bucket per Webhook (``spec.rateLimit``): ``take`` spends one token or says how
    many seconds until one is there."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, hook: tuple[str, str], rate: float, burst: int) -> float:
        """0 when a token was taken; else the seconds until the next one."""
        now = self.clock()
        with self._lock:
            if hook not in self._state and len(self._state) >= CACHE_ENTRIES:
                self._state.clear()  # only Webhooks that exist get here: a reset refills
            tokens, then = self._state.get(hook, (float(burst), now))
            tokens = min(float(burst), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._state[hook] = (tokens - 1.0, now)
                return 0.0
            self._state[hook] = (tokens, now)
            return (1.0 - tokens) / rate
