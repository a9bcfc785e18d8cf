"""The journal: the durable, append-only record of a Run that lets a later attempt resume.

Every model response, governance decision, tool call start and tool result is written before
the next step. ``Journal`` takes and returns the typed records of ``records``: it stamps each
entry (sequence number, fencing epoch, attempt, time, format version), checks that this runner
still holds the Lease (``guard``), and hands the entries' JSON form to a ``Backend``; opening
reads the stored records back into their types (``records.Unreadable`` ends the attempt when
one cannot be read). A backend is opened for one epoch: opening claims the journal for that
epoch and fails with ``errors.Fenced`` when a newer epoch already claimed it; every later
append fails the same way once a newer epoch has claimed it. ``MemoryBackend`` serves unit
tests; the default for clusters is ``journal_chunks.ChunkBackend``.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bosun.runner import errors, records

__all__ = ["Backend", "Journal", "MemoryBackend", "MemoryStore", "Stored"]

Stored = dict[str, Any]
"""A record in its storage form: the JSON object of ``records.Record.to_json``."""


class Backend(Protocol):
    """Durable storage of one Run's records, fenced by epoch."""

    def open(self, epoch: int) -> list[Stored]:
        """Load every record and claim the journal for ``epoch``."""
        ...

    def append(self, entries: Sequence[Stored]) -> None:
        """Store ``entries`` durably after the ones already stored."""
        ...


class Journal:
    """The runner's handle on its journal for one attempt."""

    def __init__(
        self,
        backend: Backend,
        epoch: int,
        attempt: int,
        guard: Callable[[], None] = lambda: None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.backend = backend
        self.epoch = epoch
        self.attempt = attempt
        self.guard = guard
        self.now = now
        self.records: list[records.Record] = []
        self.write_seconds: list[float] = []
        self.deferred: list[records.Record] = []
        """Stamped records waiting for the next write (``defer``)."""

    def open(self) -> list[records.Record]:
        """Claim the journal and read every record so far (``records.Unreadable`` when one
        cannot be read: nothing is written to a journal this runner does not understand)."""
        self.guard()
        self.records = records.read_all(self.backend.open(self.epoch))
        return self.records

    def _stamp(self, entries: Sequence[records.Record]) -> list[records.Record]:
        now = self.now()
        # Stored with millisecond precision: keep the same moment in memory.
        moment = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        return [
            entry.stamped(
                seq=len(self.records) + offset + 1,
                epoch=self.epoch,
                attempt=self.attempt,
                time=moment,
            )
            for offset, entry in enumerate(entries)
        ]

    def defer(self, *entries: records.Record) -> list[records.Record]:
        """Stamp ``entries`` now and store them with the next ``write``, in the same durable
        write: a model response goes with the decision and tool call start it leads to (or
        with the Run's end), which is all that must precede the next step. Lost with the
        attempt if it ends before the next write, like a model request never answered."""
        stamped = self._stamp(entries)
        self.records.extend(stamped)
        self.deferred.extend(stamped)
        return stamped

    def write(self, *entries: records.Record) -> list[records.Record]:
        """Stamp and store ``entries`` (after any deferred ones) as one durable write; return
        the records of ``entries``, stamped."""
        self.guard()
        stamped = self._stamp(entries)
        started = time.perf_counter()
        self.backend.append([record.to_json() for record in (*self.deferred, *stamped)])
        self.write_seconds.append(time.perf_counter() - started)
        self.deferred.clear()
        self.records.extend(stamped)
        return stamped


@dataclasses.dataclass
class MemoryStore:
    """What a ``MemoryBackend`` keeps; share one between backends to model two runners."""

    records: list[Stored] = dataclasses.field(default_factory=list)
    epoch: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class MemoryBackend:
    """An in-process backend with the same fencing rules as the durable ones."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.epoch = 0

    def open(self, epoch: int) -> list[Stored]:
        with self.store.lock:
            if self.store.epoch > epoch:
                raise errors.Fenced("JournalFenced", f"claimed by epoch {self.store.epoch}")
            self.store.epoch = epoch
            self.epoch = epoch
            return [dict(r) for r in self.store.records]

    def append(self, entries: Sequence[Stored]) -> None:
        with self.store.lock:
            if self.store.epoch != self.epoch:
                raise errors.Fenced("JournalFenced", f"claimed by epoch {self.store.epoch}")
            self.store.records.extend(dict(r) for r in entries)
