"""The journal: the durable, append-only record of a Run that lets a later attempt resume.

Every model response, governance decision, tool call start and tool result is written before
the next step. ``Journal`` stamps each entry (sequence number, fencing epoch, attempt, time),
checks that this runner still holds the Lease (``guard``), and hands the entries to a
``Backend``. A backend is opened for one epoch: opening claims the journal for that epoch and
fails with ``errors.Fenced`` when a newer epoch already claimed it; every later append fails
the same way once a newer epoch has claimed it. ``MemoryBackend`` serves unit tests; the
default for clusters is ``journal_configmap.ConfigMapBackend``.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bosun.runner import errors

__all__ = ["Backend", "Journal", "MemoryBackend", "MemoryStore", "Record"]

Record = dict[str, Any]

# Record types.
ATTEMPT_STARTED = "attemptStarted"
MODEL_RESPONSE = "modelResponse"
DECISION = "decision"
TOOL_STARTED = "toolStarted"
TOOL_RESULT = "toolResult"
RUN_FINISHED = "runFinished"


class Backend(Protocol):
    """Durable storage of one Run's records, fenced by epoch."""

    def open(self, epoch: int) -> list[Record]:
        """Load every record and claim the journal for ``epoch``."""
        ...

    def append(self, records: Sequence[Record]) -> None:
        """Store ``records`` durably after the ones already stored."""
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
        self.records: list[Record] = []
        self.write_seconds: list[float] = []

    def open(self) -> list[Record]:
        self.guard()
        self.records = list(self.backend.open(self.epoch))
        return self.records

    def write(self, *entries: Record) -> list[Record]:
        """Stamp and store ``entries`` as one durable write; return the stamped records."""
        self.guard()
        stamp = self.now().isoformat(timespec="milliseconds")
        stamped = []
        for offset, entry in enumerate(entries):
            record = {
                "seq": len(self.records) + offset + 1,
                "epoch": self.epoch,
                "attempt": self.attempt,
                "time": stamp,
            }
            record.update(entry)
            stamped.append(record)
        started = time.perf_counter()
        self.backend.append(stamped)
        self.write_seconds.append(time.perf_counter() - started)
        self.records.extend(stamped)
        return stamped


@dataclasses.dataclass
class MemoryStore:
    """What a ``MemoryBackend`` keeps; share one between backends to model two runners."""

    records: list[Record] = dataclasses.field(default_factory=list)
    epoch: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class MemoryBackend:
    """An in-process backend with the same fencing rules as the durable ones."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.epoch = 0

    def open(self, epoch: int) -> list[Record]:
        with self.store.lock:
            if self.store.epoch > epoch:
                raise errors.Fenced("JournalFenced", f"claimed by epoch {self.store.epoch}")
            self.store.epoch = epoch
            self.epoch = epoch
            return [dict(r) for r in self.store.records]

    def append(self, records: Sequence[Record]) -> None:
        with self.store.lock:
            if self.store.epoch != self.epoch:
                raise errors.Fenced("JournalFenced", f"claimed by epoch {self.store.epoch}")
            self.store.records.extend(dict(r) for r in records)
