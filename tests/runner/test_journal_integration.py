"""The ConfigMap journal against the real API server, as the runner's ServiceAccount."""

from __future__ import annotations

import hashlib

import pytest

from bosun import contract, kube
from bosun.runner import errors, journal, journal_configmap, kubeapi, records

from . import harness

pytestmark = pytest.mark.cluster


def _note(n: int, pad: str = "") -> records.Record:
    """A record told apart by its ``step``."""
    return records.ToolResult(step=n, call_id="c", tool="note", content=pad)


def _backend(
    kube_: harness.Harness, chunk_bytes: int = 256 * 1024
) -> journal_configmap.ConfigMapBackend:
    cluster = kubeapi.Cluster(kube_.namespace, kube.connect(kube_.kubeconfig("j")))
    return journal_configmap.ConfigMapBackend(cluster, "j", kube_.uids["j"], chunk_bytes)


def test_a_stale_epoch_cannot_write_once_a_newer_one_claimed_the_journal(
    kube: harness.Harness,
) -> None:
    kube.agent("a", {"provider": "scripted", "script": [{"reply": "x"}]}, [])
    kube.run("j", "a")
    stale = journal.Journal(_backend(kube, chunk_bytes=400), epoch=1, attempt=1)
    stale.open()
    for n in range(12):
        pad = "".join(hashlib.sha256(f"{n}/{i}".encode()).hexdigest() for i in range(4))
        stale.write(_note(n, pad))
    assert len(stale.backend.chunks) > 1  # type: ignore[attr-defined]

    fresh = journal.Journal(_backend(kube, chunk_bytes=400), epoch=2, attempt=2)
    assert [r.step for r in fresh.open() if isinstance(r, records.ToolResult)] == list(range(12))
    with pytest.raises(errors.Fenced) as caught:
        stale.write(_note(-1))
    assert caught.value.reason == "JournalFenced"
    with pytest.raises(errors.Fenced):
        journal.Journal(_backend(kube), epoch=1, attempt=3).open()
    fresh.write(_note(12))

    stored = kube.journal("j")
    assert [r["step"] for r in stored] == list(range(13))
    assert [r["epoch"] for r in stored][-1] == 2
    # Chunks are owned by the Run and labelled for it.
    cm = kube.core.read_namespaced_config_map(contract.journal_name("j", 0), kube.namespace)
    assert cm.metadata.owner_references[0].uid == kube.uids["j"]
    assert cm.metadata.annotations[journal_configmap.ANNOTATION_SEALED] == "true"


def test_a_runner_ends_permanently_on_a_journal_from_a_newer_runner_and_adds_nothing(
    kube: harness.Harness,
) -> None:
    kube.agent("a", {"provider": "scripted", "script": [{"reply": "x"}]}, [])
    kube.run("j", "a")
    newer = {**records.AttemptStarted(seq=1, epoch=1, attempt=1).to_json(), "formatVersion": 99}
    backend = _backend(kube)
    backend.open(1)
    backend.append([newer])

    runner = kube.start_runner("j", attempt=2)
    assert runner.wait(60) == contract.ExitCode.FAILED_PERMANENT, kube.explain()
    ended = [line for line in runner.lines() if line.get("msg") == "Ended attempt"]
    assert [line["reason"] for line in ended] == ["JournalFormatUnsupported"], kube.explain()
    assert "formatVersion 99" in ended[0]["detail"]
    assert kube.journal("j") == [newer]
