"""A de-duplicating work queue of keys with delayed adds, in the manner of client-go's.

A key waits in the queue at most once; a key being processed is never handed to a second
worker, and if it is added meanwhile it is processed again once the first worker is done.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["WorkQueue"]

_K = TypeVar("_K", bound=Hashable)


class WorkQueue(Generic[_K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[_K] = []
        self._queued: set[_K] = set()
        self._processing: set[_K] = set()
        self._dirty: set[_K] = set()
        self._delayed: list[tuple[float, int, _K]] = []
        self._counter = itertools.count()
        self._shutdown = False

    def add(self, key: _K) -> None:
        with self._cond:
            if key in self._processing:
                self._dirty.add(key)
                return
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: _K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._counter), key))
            self._cond.notify()

    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; return seconds until the next one."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> _K | None:
        """The next key to process, or None on shutdown or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: _K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
