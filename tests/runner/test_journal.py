"""The journal: stamping, fencing, and the ConfigMap backend's chunks and conflicts."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bosun import contract, kube
from bosun.runner import errors, journal, journal_configmap, records

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
) -> journal_configmap.ConfigMapBackend:
    return journal_configmap.ConfigMapBackend(cluster, "run", "run-uid", chunk_bytes)


def test_configmap_backend_round_trips_compressed_records_owned_by_the_run() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    assert backend.open(1) == []
    backend.append([{"seq": 1, "type": "a", "text": "x" * 1000}])
    cm = cluster.configmaps[contract.journal_name("run", 0)]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "run-uid"
    assert cm["metadata"]["annotations"][journal_configmap.ANNOTATION_EPOCH] == "1"
    blob = base64.b64decode(cm["binaryData"]["s000000"])
    assert len(blob) < 200
    assert journal_configmap.decode(blob)[0]["text"] == "x" * 1000
    backend.append([{"seq": 2, "type": "b"}])
    cm = cluster.configmaps[contract.journal_name("run", 0)]
    assert sorted(cm["binaryData"]) == ["s000000"]
    assert cm["metadata"]["annotations"][journal_configmap.ANNOTATION_RECORDS] == "2"
    assert [r["type"] for r in _backend(cluster).open(2)] == ["a", "b"]


def test_configmap_backend_rewrites_only_its_newest_segment() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    backend.open(1)
    for n in range(60):
        noise = "".join(hashlib.sha256(f"{n}/{i}".encode()).hexdigest() for i in range(40))
        backend.append([{"seq": n + 1, "payload": noise}])
    [cm] = cluster.configmaps.values()
    segments = sorted(cm["binaryData"])
    assert len(segments) > 3
    assert all(len(base64.b64decode(cm["binaryData"][k])) <= 20 * 1024 for k in segments)
    assert [r["seq"] for r in _backend(cluster).open(2)] == list(range(1, 61))
    backend2 = _backend(cluster)
    backend2.open(3)
    backend2.append([{"seq": 61}])
    assert [r["seq"] for r in backend2.read()] == list(range(1, 62))


def test_configmap_backend_rolls_over_to_new_chunks() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster, chunk_bytes=300)
    backend.open(1)
    for n in range(40):
        noise = "".join(hashlib.sha256(f"{n}/{i}".encode()).hexdigest() for i in range(3))
        backend.append([{"seq": n + 1, "payload": noise}])
    assert len(cluster.configmaps) > 3
    sealed = [
        cm["metadata"]["annotations"][journal_configmap.ANNOTATION_SEALED]
        for _, cm in sorted(cluster.configmaps.items())
    ]
    assert sealed.count("false") == 1
    reread = _backend(cluster).open(2)
    assert [r["seq"] for r in reread] == list(range(1, 41))


def test_configmap_backend_fences_a_stale_writer() -> None:
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


def test_configmap_backend_stale_writer_cannot_roll_over_either() -> None:
    cluster = fakes.FakeCluster()
    stale = _backend(cluster, chunk_bytes=60)
    stale.open(1)
    stale.append([{"seq": 1, "p": "a" * 80}])
    _backend(cluster, chunk_bytes=60).open(2)
    with pytest.raises(errors.Fenced):
        stale.append([{"seq": 2, "p": "b" * 80}])
    assert contract.journal_name("run", 1) not in cluster.configmaps


def test_configmap_backend_reports_other_api_errors() -> None:
    cluster = fakes.FakeCluster()
    backend = _backend(cluster)
    backend.open(1)
    cluster.fail_next_replace = kube.ApiError(500, "InternalError", "etcd is sad")
    with pytest.raises(kube.ApiError):
        backend.append([{"seq": 1}])


def test_configmap_backend_refuses_to_grow_past_its_chunk_limit() -> None:
    cluster = fakes.FakeCluster()
    backend = journal_configmap.ConfigMapBackend(
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
