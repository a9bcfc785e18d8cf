"""The journal backend: compressed, chunked objects owned by the Run, fenced by epoch.

Chunk ``k`` is the RunJournal ``contract.journal_name(run, k)`` (``bosun.api.journal``; a
Kind of its own, so the built-in view and edit roles do not read it). Its ``binaryData`` holds
segments (``s000000``, ``s000001``, …), each a run of records as zlib-compressed JSON lines.
Every durable write rewrites only the newest segment, by a JSON merge patch that carries the
chunk's resourceVersion as a precondition, so two writers can never both succeed and a write
costs about the same at step 500 as at step 1. A segment that reaches ``SEGMENT_BYTES`` is left
as it is and the next write starts a new one (few keys keep the API server's field tracking
cheap); a chunk that would outgrow ``chunk_bytes`` is sealed (also version-checked) and the
next chunk created. Each chunk records the epoch of its last writer in an annotation; opening
the journal stamps the newest chunk with the opener's epoch, after which any runner with an
older epoch fails every write (``errors.Fenced``). Chunks carry a controller owner reference
to the Run's UID, so the garbage collector deletes the journal with it; an object named like
a chunk without one (forged, or copied from another Run) is never read
(``errors.JournalUntrusted``). Chunks written before the reference was marked controller
carry it unmarked, which is accepted: the UID is what binds a chunk to its Run.

A journal begun before RunJournals existed is a set of ConfigMaps of the same names, with the
same layout; a runner that finds one (its Run's Role, made by the operator of that time, still
grants them) goes on in ConfigMaps for that Run, so no journal is ever split across the two.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from collections.abc import Sequence
from typing import Any

from bosun import constants, contract, kube
from bosun.runner import errors, journal, kubeapi

__all__ = [
    "ANNOTATION_EPOCH",
    "ANNOTATION_RECORDS",
    "ANNOTATION_SEALED",
    "ENTRY_PREFIX",
    "LABEL_COMPONENT",
    "SEGMENT_BYTES",
    "ChunkBackend",
    "decode",
    "encode",
    "records_of",
]

ANNOTATION_EPOCH = f"{constants.GROUP}/journal-epoch"
ANNOTATION_SEALED = f"{constants.GROUP}/journal-sealed"
ANNOTATION_RECORDS = f"{constants.GROUP}/journal-records"
LABEL_COMPONENT = "app.kubernetes.io/component"
ENTRY_PREFIX = "s"
SEGMENT_BYTES = 16 * 1024
_CLAIM_TRIES = 5


def encode(records: Sequence[journal.Stored]) -> bytes:
    lines = "".join(
        json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records
    )
    return zlib.compress(lines.encode("utf-8"), 6)


def decode(blob: bytes) -> list[journal.Stored]:
    text = zlib.decompress(blob).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def _entry(index: int) -> str:
    return f"{ENTRY_PREFIX}{index:06d}"


def records_of(body: dict[str, Any]) -> list[journal.Stored]:
    """The records of one chunk (a RunJournal or a legacy ConfigMap), in write order."""
    entries = body.get("binaryData") or {}
    records: list[journal.Stored] = []
    for key in sorted(k for k in entries if k.startswith(ENTRY_PREFIX)):
        records.extend(decode(base64.b64decode(entries[key])))
    return records


@dataclasses.dataclass
class _Chunk:
    index: int
    name: str
    resource_version: str
    records: list[journal.Stored]
    segment: int  # index of the newest segment
    segment_records: list[journal.Stored]  # its records
    base_size: int  # compressed bytes of the older segments
    segment_size: int  # compressed bytes of the newest segment
    epoch: int
    sealed: bool

    @property
    def size(self) -> int:
        return self.base_size + self.segment_size


class ChunkBackend:
    """Journal chunks next to the Run: RunJournals, or a legacy journal's ConfigMaps."""

    def __init__(
        self,
        cluster: kubeapi.ClusterAPI,
        run_name: str,
        run_uid: str,
        chunk_bytes: int = 128 * 1024,
        max_chunks: int = contract.JOURNAL_MAX_CHUNKS,
        *,
        agent: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.agent = agent
        """The Run's Agent, labelled on the chunks this backend creates (what the pool-worker
        admission policy holds a worker's journal writes to)."""
        self.run_name = run_name
        self.run_uid = run_uid
        self.chunk_bytes = chunk_bytes
        self.max_chunks = max_chunks
        self.epoch = 0
        self.chunks: list[_Chunk] = []
        self._fresh = False
        """Opened on a journal with no chunk yet: the first append creates chunk 0."""
        self.kind: kubeapi.ChunkKind | None = None
        """Where this journal lives; decided when it is first read."""

    def _where(self) -> kubeapi.ChunkKind:
        """RunJournal, unless reading chunk 0 found this Run's journal begun in ConfigMaps."""
        return self.kind or "RunJournal"

    def _get(self, index: int, name: str) -> dict[str, Any]:
        """Chunk ``index``; the first read of chunk 0 also decides where the journal lives."""
        if self.kind is not None or index != 0:
            return self.cluster.get_chunk(self._where(), name)
        try:
            body = self.cluster.get_chunk("RunJournal", name)
        except kube.NotFound:
            try:
                body = self.cluster.get_chunk("ConfigMap", name)
            except (kube.NotFound, kube.Forbidden):
                # A new journal: a runner of today's Role may not even read ConfigMaps.
                self.kind = "RunJournal"
                raise kube.NotFound(404, "NotFound", name) from None
            self.kind = "ConfigMap"
            return body
        self.kind = "RunJournal"
        return body

    # --- reading -------------------------------------------------------------------------------

    def _trusted(self, name: str, meta: dict[str, Any]) -> None:
        """Fail unless the chunk was written for this Run by Bosun."""
        labels = meta.get("labels") or {}
        owners = [o for o in meta.get("ownerReferences") or () if isinstance(o, dict)]
        ours = [
            o
            for o in owners
            if o.get("kind") == "Run"
            and o.get("apiVersion") == constants.API_VERSION
            and o.get("uid") == self.run_uid
            and o.get("name") == self.run_name
        ]
        controllers = [o for o in owners if o.get("controller")]
        # A pool worker may create chunks labelled with its own Agent only (the pool-worker
        # admission policy): one labelled with another Agent than the Run's was not written
        # by a runner of this Run, whatever its owner reference says.
        agent = labels.get(constants.LABEL_AGENT)
        foreign = agent is not None and self.agent is not None and agent != self.agent
        if (
            not ours
            or foreign
            or any(o not in ours for o in controllers)
            or labels.get(LABEL_COMPONENT) != "journal"
            or labels.get(constants.LABEL_MANAGED_BY) != "bosun"
        ):
            named = ", ".join(f"{o.get('kind')} {o.get('name')} ({o.get('uid')})" for o in owners)
            if foreign:
                named += f"; labelled for Agent {agent}"
            raise errors.JournalUntrusted(
                "JournalUntrusted",
                f"{self._where()} {name} is named like this Run's journal but was not written for"
                f" it (owners: {named or 'none'}); it was not read. Delete it, then"
                f" `bosun redrive {self.run_name}`",
            )

    def _read(self, index: int) -> _Chunk | None:
        name = contract.journal_name(self.run_name, index)
        try:
            body = self._get(index, name)
        except kube.NotFound:
            return None
        meta = body.get("metadata") or {}
        self._trusted(name, meta)
        annotations = meta.get("annotations") or {}
        entries = body.get("binaryData") or {}
        keys = sorted(k for k in entries if k.startswith(ENTRY_PREFIX))
        sizes = {k: len(base64.b64decode(entries[k])) for k in keys}
        newest = keys[-1] if keys else _entry(0)
        last = decode(base64.b64decode(entries[newest])) if keys else []
        return _Chunk(
            index=index,
            name=name,
            resource_version=str(meta.get("resourceVersion", "")),
            records=records_of(body),
            segment=int(newest[len(ENTRY_PREFIX) :]),
            segment_records=last,
            base_size=sum(v for k, v in sizes.items() if k != newest),
            segment_size=sizes.get(newest, 0),
            epoch=int(annotations.get(ANNOTATION_EPOCH, "0")),
            sealed=annotations.get(ANNOTATION_SEALED) == "true",
        )

    def _load(self) -> list[_Chunk]:
        chunks: list[_Chunk] = []
        for index in range(self.max_chunks):
            chunk = self._read(index)
            if chunk is None:
                break
            chunks.append(chunk)
            if not chunk.sealed:
                break
        return chunks

    def read(self) -> list[journal.Stored]:
        """Every record, without claiming the journal (for ``bosun trace``)."""
        return [r for c in self._load() for r in c.records]

    # --- writing -------------------------------------------------------------------------------

    def _annotations(self, records: int, sealed: bool) -> dict[str, str]:
        return {
            ANNOTATION_EPOCH: str(self.epoch),
            ANNOTATION_RECORDS: str(records),
            ANNOTATION_SEALED: "true" if sealed else "false",
        }

    def _create(
        self, index: int, records: Sequence[journal.Stored], blob: bytes | None = None
    ) -> _Chunk:
        if index >= self.max_chunks:
            raise errors.PermanentFailure(
                "JournalFull", f"the journal reached {self.max_chunks} chunks"
            )
        name = contract.journal_name(self.run_name, index)
        data: dict[str, str] = {}
        size = 0
        if records:
            blob = encode(records) if blob is None else blob
            data[_entry(0)] = base64.b64encode(blob).decode()
            size = len(blob)
        kind = self._where()
        api_version = kubeapi.CHUNK_KINDS[kind][0]
        labels = {
            constants.LABEL_RUN: contract.pod_labels(self.run_name, 0)[constants.LABEL_RUN],
            constants.LABEL_MANAGED_BY: "bosun",
            LABEL_COMPONENT: "journal",
        }
        if self.agent and len(self.agent) <= 63:  # a label value's limit
            labels[constants.LABEL_AGENT] = self.agent
        body: dict[str, Any] = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": self.cluster.namespace,
                "labels": labels,
                "annotations": self._annotations(len(records), sealed=False),
                "ownerReferences": [
                    {
                        "apiVersion": constants.API_VERSION,
                        "kind": "Run",
                        "name": self.run_name,
                        "uid": self.run_uid,
                        "controller": True,
                    }
                ],
            },
            "binaryData": data,
        }
        if kind == "RunJournal":
            body["spec"] = {"runName": self.run_name, "runUID": self.run_uid, "chunk": index}
        created = self.cluster.create_chunk(kind, body)
        version = str((created.get("metadata") or {}).get("resourceVersion", ""))
        return _Chunk(
            index, name, version, list(records), 0, list(records), 0, size, self.epoch, False
        )

    def _patch(
        self,
        chunk: _Chunk,
        records: Sequence[journal.Stored] = (),
        sealed: bool = False,
    ) -> _Chunk:
        """Add ``records`` (or only restamp the chunk), if the chunk is unchanged."""
        segment, kept, base = chunk.segment, list(chunk.segment_records), chunk.base_size
        blob = b""
        if records:
            blob = encode([*kept, *records])
            if kept and len(blob) > SEGMENT_BYTES:
                # The newest segment is full: leave it as it is and start the next one.
                segment, kept, base = segment + 1, [], chunk.size
                blob = encode(records)
        total = len(chunk.records) + len(records)
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": chunk.resource_version,
                "annotations": self._annotations(total, sealed),
            }
        }
        if records:
            patch["binaryData"] = {_entry(segment): base64.b64encode(blob).decode()}
        try:
            patched = self.cluster.patch_chunk(self._where(), chunk.name, patch)
        except kube.Conflict as err:
            current = self._read(chunk.index)
            if current is not None and current.epoch > self.epoch:
                raise errors.Fenced(
                    "JournalFenced", f"{chunk.name} was claimed by epoch {current.epoch}"
                ) from err
            raise errors.Fenced(
                "JournalConflict", f"{chunk.name} changed under this runner"
            ) from err
        return dataclasses.replace(
            chunk,
            resource_version=str((patched.get("metadata") or {}).get("resourceVersion", "")),
            records=[*chunk.records, *records],
            segment=segment,
            segment_records=[*kept, *records],
            base_size=base,
            segment_size=len(blob) if records else chunk.segment_size,
            epoch=self.epoch,
            sealed=sealed,
        )

    def open(self, epoch: int) -> list[journal.Stored]:
        self.epoch = epoch
        for _ in range(_CLAIM_TRIES):
            chunks = self._load()
            newest = max((c.epoch for c in chunks), default=0)
            if newest > epoch:
                raise errors.Fenced("JournalFenced", f"the journal was claimed by epoch {newest}")
            if not chunks:
                # A new journal: chunk 0 is created by the first append, with the records and
                # this epoch (one write less per attempt); a rival that created it first
                # fences that append.
                self.chunks, self._fresh = [], True
                return []
            try:
                chunks[-1] = self._patch(chunks[-1])
            except kube.AlreadyExists:
                continue
            except errors.Fenced as err:
                if err.reason == "JournalFenced":
                    raise
                continue
            self.chunks = chunks
            return [r for c in chunks for r in c.records]
        raise errors.Fenced("JournalConflict", "could not claim the journal")

    def append(self, records: Sequence[journal.Stored]) -> None:
        if not self.chunks and self._fresh:
            try:
                self.chunks = [self._create(0, records)]
            except kube.AlreadyExists as err:
                raise errors.Fenced(
                    "JournalConflict", "the journal was begun by another runner"
                ) from err
            self._fresh = False
            return
        if not self.chunks:
            raise errors.Fenced("JournalNotOpen", "append before open")
        last = self.chunks[-1]
        blob = encode(records)
        if last.records and last.size + len(blob) > self.chunk_bytes:
            self.chunks[-1] = self._patch(last, sealed=True)
            try:
                self.chunks.append(self._create(last.index + 1, records, blob))
            except kube.AlreadyExists as err:
                raise errors.Fenced(
                    "JournalConflict", f"chunk {last.index + 1} was written by another runner"
                ) from err
            return
        self.chunks[-1] = self._patch(last, records)
