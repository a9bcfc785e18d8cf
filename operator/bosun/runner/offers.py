"""A pool worker's book of offers: which attempts its Agent's Runs offer, and which to try now.

``Offers`` takes every Run the worker's watch brings (``seen``) and keeps the ones whose newest
attempt is offered to the pool, minus those another worker (or this one) already took. Who
tries an offer first is decided by rendezvous hashing over the workers seen holding attempts
lately: the preferred worker tries at once (in one request, ``claims.take(blind=True)``), the
others only ``STAGGER_SECONDS`` later, when reading the Lease mostly shows it taken, which
costs no write. Thread-safe: the watch thread feeds it, the claim thread reads it.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Container
from typing import Any

from bosun.runner import claims

__all__ = ["PEER_SECONDS", "RETRY_SECONDS", "STAGGER_SECONDS", "Offers"]

_Obj = dict[str, Any]

RETRY_SECONDS = 1.0
"""How soon to look again at an offer not to be had (an earlier attempt's live worker holds
its Lease, or a claim failed)."""
STAGGER_SECONDS = 0.1
"""How long a worker that is not the preferred one waits before it tries an offer."""
PEER_SECONDS = 120.0
"""A worker seen holding an attempt within this long counts as a peer."""


class Offers:
    """The offers of one pool, as one worker sees them."""

    def __init__(self, pool: str, me: str) -> None:
        self.pool = pool
        self.me = me
        self._lock = threading.Lock()
        self._offered: dict[str, tuple[int, _Obj, float]] = {}
        """Runs offering an attempt: (attempt, Run, when first seen offering it)."""
        self._taken: dict[str, int] = {}
        """The attempt of each Run that a worker (another, or this one) claimed."""
        self._peers: dict[str, float] = {}
        """Other workers of the pool, by when they were last seen holding an attempt."""
        self._retry_at: dict[str, float] = {}

    def seen(self, run: _Obj) -> None:
        name = run["metadata"]["name"]
        number = claims.offered_attempt(run, self.pool)
        attempts = (run.get("status") or {}).get("attempts") or ()
        worker = attempts[-1].get("pod") if attempts and attempts[-1].get("pool") else None
        with self._lock:
            if worker and worker != self.me:
                self._peers[str(worker)] = time.monotonic()
            if number is None or self._taken.get(name) == number:
                self._offered.pop(name, None)
            elif self._offered.get(name, (None,))[0] != number:
                self._offered[name] = (number, run, time.monotonic())

    def forget(self, name: str) -> None:
        with self._lock:
            self._offered.pop(name, None)
            self._taken.pop(name, None)
            self._retry_at.pop(name, None)

    def taken(self, name: str, number: int) -> None:
        """Attempt ``number`` of Run ``name`` has its worker: not tried again."""
        with self._lock:
            self._taken[name] = number
            self._offered.pop(name, None)

    def retry_later(self, name: str) -> None:
        with self._lock:
            self._retry_at[name] = time.monotonic() + RETRY_SECONDS

    def _peer_names(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [p for p, at in self._peers.items() if now - at < PEER_SECONDS]

    def preferred(self, name: str, peers: list[str] | None = None) -> bool:
        """Whether this worker should try the offer of Run ``name`` first: the highest hash
        of (worker, Run) among the workers seen lately (rendezvous hashing)."""
        others = self._peer_names() if peers is None else peers
        return max([self.me, *others], key=lambda p: zlib.crc32(f"{p}/{name}".encode())) == (
            self.me
        )

    def due(self, busy: Container[str]) -> tuple[list[tuple[str, int, _Obj]], float]:
        """The offers to try now (none of the Runs in ``busy``), preferred ones first, and how
        long until the next one is due."""
        peers = self._peer_names()
        now = time.monotonic()
        found, wait = [], RETRY_SECONDS
        with self._lock:
            for name, (number, run, seen_at) in self._offered.items():
                if name in busy:
                    continue
                stagger = 0.0 if self.preferred(name, peers) else STAGGER_SECONDS
                at = max(self._retry_at.get(name, 0.0), seen_at + stagger)
                if at > now:
                    wait = min(wait, at - now)
                    continue
                found.append((stagger, name, number, run))
        found.sort(key=lambda o: (o[0], o[1]))
        return [(name, number, run) for _, name, number, run in found], max(0.005, wait)
