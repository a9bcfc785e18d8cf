"""The journal: stamping, fencing, and the chunk backend's chunks, conflicts and migration."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bosun import contract, kube
from bosun.runner import errors, journal, journal_chunks, records

from . import fakes


def _entry(name: str) -> records.Record:
    """A record told apart by its ``reason``."""
    return records.AttemptEnded(reason=name, exit_code=0)


def test_journal_stamps_records_and_checks_the_lease_first() -> None:
    lease = fakes.FakeLease()
    j = journal.Journal(journal.MemoryBackend(), epoch=3, attempt=2, guard=lease.ensure_held)
    assert j.open() == []
    [first, second] = j.write(_entry("a"), _entry("b"))
    assert (first.seq, second.seq, first.epoch, first.attempt) == (1, 2, 3, 2)
    lease.lose()
    with pytest.raises(errors.LeaseLost):
        j.write(_entry("c"))
    assert len(j.records) == 2


def test_memory_backend_fences_an_older_epoch() -> None:
    store = journal.MemoryStore()
    old = journal.Journal(journal.MemoryBackend(store), epoch=1, attempt=1)
    old.open()
    old.write(_entry("x"))
    new = journal.Journal(journal.MemoryBackend(store), epoch=2, attempt=2)
    assert [r.reason for r in new.open() if isinstance(r, records.AttemptEnded)] == ["x"]
    with pytest.raises(errors.Fenced):
        old.write(_entry("stale"))
    with pytest.raises(errors.Fenced):
        journal.Journal(journal.MemoryBackend(store), epoch=1, attempt=3).open()


def _backend(
    cluster: fakes.FakeCluster, chunk_bytes: int = 512 * 1024
) -> journal_chunks.ChunkBackend:
    return journal_chunks.ChunkBackend(cluster, "run", "run-uid", chunk_bytes)


def test_chunk_backend_round_trips_compressed_records_owned_by_the_run() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    assert backend.open(1) == []
    backend.append([{"seq": 1, "type": "a", "text": "x" * 1000}])
    cm = cluster.journals[contract.journal_name("run", 0)]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "run-uid"
    assert cm["metadata"]["annotations"][journal_chunks.ANNOTATION_EPOCH] == "1"
    blob = base64.b64decode(cm["binaryData"]["s000000"])
    assert len(blob) < 200
    assert journal_chunks.decode(blob)[0]["text"] == "x" * 1000
    backend.append([{"seq": 2, "type": "b"}])
    cm = cluster.journals[contract.journal_name("run", 0)]
    assert sorted(cm["binaryData"]) == ["s000000"]
    assert cm["metadata"]["annotations"][journal_chunks.ANNOTATION_RECORDS] == "2"
    assert [r["type"] for r in _backend(cluster).open(2)] == ["a", "b"]


def test_a_new_journal_is_run_journals_naming_their_run() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    backend.open(1)
    backend.append([{"seq": 1, "type": "a"}])
    chunk = cluster.journals[contract.journal_name("run", 0)]
    assert (chunk["apiVersion"], chunk["kind"]) == ("bosun.dev/v1alpha1", "RunJournal")
    assert chunk["spec"] == {"runName": "run", "runUID": "run-uid", "chunk": 0}
    [owner] = chunk["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Run", "run-uid", True)
    assert cluster.configmaps == {}


def test_a_journal_begun_in_config_maps_goes_on_in_config_maps() -> None:
    """Migration: a Run whose runner of an earlier version wrote ConfigMaps (owned by the Run,
    without the controller mark) is resumed from them and continued there, never split."""
    blob = journal_chunks.encode([{"seq": 1, "type": "a"}])
    cluster = fakes.FakeCluster()
    cluster.configmaps[contract.journal_name("run", 0)] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": contract.journal_name("run", 0),
            "resourceVersion": "1",
            "labels": {
                "app.kubernetes.io/managed-by": "bosun",
                journal_chunks.LABEL_COMPONENT: "journal",
            },
            "annotations": {journal_chunks.ANNOTATION_EPOCH: "1"},
            "ownerReferences": [
                {"apiVersion": "bosun.dev/v1alpha1", "kind": "Run", "name": "run", "uid": "run-uid"}
            ],
        },
        "binaryData": {"s000000": base64.b64encode(blob).decode()},
    }
    backend = _backend(cluster)
    assert [r["type"] for r in backend.open(2)] == ["a"]
    backend.append([{"seq": 2, "type": "b"}])
    assert cluster.journals == {}
    assert [r["type"] for r in _backend(cluster).open(3)] == ["a", "b"]


def test_chunk_backend_rewrites_only_its_newest_segment() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    backend.open(1)
    for n in range(60):
        noise = "".join(hashlib.sha256(f"{n}/{i}".encode()).hexdigest() for i in range(40))
        backend.append([{"seq": n + 1, "payload": noise}])
    [cm] = cluster.journals.values()
    segments = sorted(cm["binaryData"])
    assert len(segments) > 3
    assert all(len(base64.b64decode(cm["binaryData"][k])) <= 20 * 1024 for k in segments)
    assert [r["seq"] for r in _backend(cluster).open(2)] == list(range(1, 61))
    backend2 = _backend(cluster)
    backend2.open(3)
    backend2.append([{"seq": 61}])
    assert [r["seq"] for r in backend2.read()] == list(range(1, 62))


def test_chunk_backend_rolls_over_to_new_chunks() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster, chunk_bytes=300)
    backend.open(1)
    for n in range(40):
        noise = "".join(hashlib.sha256(f"{n}/{i}".encode()).hexdigest() for i in range(3))
        backend.append([{"seq": n + 1, "payload": noise}])
    assert len(cluster.journals) > 3
    sealed = [
        cm["metadata"]["annotations"][journal_chunks.ANNOTATION_SEALED]
        for _, cm in sorted(cluster.journals.items())
    ]
    assert sealed.count("false") == 1
    reread = _backend(cluster).open(2)
    assert [r["seq"] for r in reread] == list(range(1, 41))


def test_chunk_backend_fences_a_stale_writer() -> None:
    cluster = fakes.FakeCluster()
    stale = _backend(cluster)
    stale.open(1)
    stale.append([{"seq": 1}])
    fresh = _backend(cluster)
    fresh.open(2)
    with pytest.raises(errors.Fenced) as caught:
        stale.append([{"seq": 2}])
    assert caught.value.reason == "JournalFenced"
    fresh.append([{"seq": 2}])
    with pytest.raises(errors.Fenced):
        _backend(cluster).open(1)
    assert [r["seq"] for r in _backend(cluster).read()] == [1, 2]


def test_chunk_backend_stale_writer_cannot_roll_over_either() -> None:
    cluster = fakes.FakeCluster()
    stale = _backend(cluster, chunk_bytes=60)
    stale.open(1)
    stale.append([{"seq": 1, "p": "a" * 80}])
    _backend(cluster, chunk_bytes=60).open(2)
    with pytest.raises(errors.Fenced):
        stale.append([{"seq": 2, "p": "b" * 80}])
    assert contract.journal_name("run", 1) not in cluster.journals


def test_chunk_backend_reports_other_api_errors() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    backend.open(1)
    backend.append([{"seq": 1}])  # creates the first chunk; the next append replaces it
    cluster.fail_next_replace = kube.ApiError(500, "InternalError", "etcd is sad")
    with pytest.raises(kube.ApiError):
        backend.append([{"seq": 2}])


def test_chunk_backend_refuses_to_grow_past_its_chunk_limit() -> None:
    cluster = fakes.FakeCluster()
    backend = journal_chunks.ChunkBackend(
        cluster,
        "run",
        "uid",
        chunk_bytes=10,
        max_chunks=2,
    )
    backend.open(1)
    backend.append([{"seq": 1}])
    backend.append([{"seq": 2}])
    with pytest.raises(errors.PermanentFailure) as caught:
        backend.append([{"seq": 3}])
    assert caught.value.reason == "JournalFull"


def test_a_chunk_labelled_for_another_agent_is_never_read() -> None:
    # A pool worker may create chunks labelled with its own Agent only, and it can read every
    # Run's UID: a chunk of this Run labelled for another Agent is a plant, not this journal.
    cluster = fakes.FakeCluster()
    planted = journal_chunks.ChunkBackend(cluster, "run", "run-uid", agent="mallory")
    planted.open(5)
    planted.append([{"seq": 1, "type": "runFinished"}])
    chunk = cluster.journals[contract.journal_name("run", 0)]
    assert chunk["metadata"]["labels"]["bosun.dev/agent"] == "mallory"
    with pytest.raises(errors.JournalUntrusted, match="labelled for Agent mallory"):
        journal_chunks.ChunkBackend(cluster, "run", "run-uid", agent="payer").open(6)
    # The Run's own Agent reads it; so does `bosun trace`, which names no Agent.
    assert journal_chunks.ChunkBackend(cluster, "run", "run-uid", agent="mallory").open(6)
    assert _backend(cluster).read()


def test_a_new_journal_is_created_by_its_first_write_and_a_rival_is_fenced() -> None:
    cluster = fakes.FakeCluster()
    first, rival = _backend(cluster), _backend(cluster)
    assert first.open(1) == [] and rival.open(2) == []
    assert cluster.journals == {}  # opening a new journal writes nothing
    rival.append([{"seq": 1, "type": "a"}])
    chunk = cluster.journals[contract.journal_name("run", 0)]
    assert chunk["metadata"]["annotations"][journal_chunks.ANNOTATION_EPOCH] == "2"
    with pytest.raises(errors.Fenced) as caught:
        first.append([{"seq": 1, "type": "b"}])
    assert caught.value.reason == "JournalConflict"
    assert [r["type"] for r in _backend(cluster).read()] == ["a"]
