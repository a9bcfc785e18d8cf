"""The journal's RunJournal chunks on the real API server, as the runner's ServiceAccount."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bosun import constants, contract, kube
from bosun.runner import conversation, errors, journal, journal_chunks, kubeapi, records

from . import harness

pytestmark = pytest.mark.cluster


def _note(n: int, pad: str = "") -> records.Record:
    """A record told apart by its ``step``."""
    return records.ToolResult(step=n, call_id="c", tool="note", content=pad)


def _backend(kube_: harness.Harness, chunk_bytes: int = 256 * 1024) -> journal_chunks.ChunkBackend:
    cluster = kubeapi.Cluster(kube_.namespace, kube.connect(kube_.kubeconfig("j")))
    return journal_chunks.ChunkBackend(cluster, "j", kube_.uids["j"], chunk_bytes)


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
    chunk = kube.get("RunJournal", contract.journal_name("j", 0))
    assert chunk["metadata"]["ownerReferences"][0]["uid"] == kube.uids["j"]
    assert chunk["metadata"]["annotations"][journal_chunks.ANNOTATION_SEALED] == "true"
    assert chunk["spec"] == {"runName": "j", "runUID": kube.uids["j"], "chunk": 0}


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


def test_a_run_whose_journal_began_in_config_maps_is_finished_from_them(
    kube: harness.Harness,
) -> None:
    """Migration: a Run of an earlier version, whose runner Role grants its ConfigMaps and
    whose journal is a ConfigMap owned by it (no controller mark), resumes from that journal
    and finishes in it; no RunJournal is ever made for it."""
    kube.agent("a", {"provider": "scripted", "script": [{"reply": "not asked"}]}, [])
    uid = kube.run("old", "a")
    account = contract.runner_account_name("old")
    names = [contract.journal_name("old", k) for k in range(contract.JOURNAL_MAX_CHUNKS)]
    legacy_rules = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": names,
            "verbs": ["get", "update", "patch"],
        },
    ]
    kube.rbac.create_namespaced_role(
        kube.namespace, {"metadata": {"name": "legacy-journal"}, "rules": legacy_rules}
    )
    kube.rbac.create_namespaced_role_binding(
        kube.namespace,
        {
            "metadata": {"name": "legacy-journal"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "legacy-journal",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": kube.namespace}],
        },
    )
    earlier = journal.Journal(journal.MemoryBackend(), epoch=1, attempt=1)
    earlier.open()
    earlier.write(records.AttemptStarted(pod="old-a1"))
    earlier.write(records.ModelResponse(step=1, turn=conversation.AssistantTurn("from before")))
    assert isinstance(earlier.backend, journal.MemoryBackend)
    blob = journal_chunks.encode(earlier.backend.store.records)
    kube.core.create_namespaced_config_map(
        kube.namespace,
        {
            "metadata": {
                "name": names[0],
                "labels": {
                    constants.LABEL_MANAGED_BY: "bosun",
                    journal_chunks.LABEL_COMPONENT: "journal",
                },
                "annotations": {journal_chunks.ANNOTATION_EPOCH: "1"},
                "ownerReferences": [
                    {"apiVersion": constants.API_VERSION, "kind": "Run", "name": "old", "uid": uid}
                ],
            },
            "binaryData": {"s000000": base64.b64encode(blob).decode()},
        },
    )

    runner = kube.start_runner("old", attempt=2)
    assert runner.wait(60) == contract.ExitCode.SUCCEEDED, kube.explain(runner)
    assert kube.status("old")["output"] == "from before"
    assert kube.list("RunJournal") == []
    stored = kube.core.read_namespaced_config_map(names[0], kube.namespace)
    kept = journal_chunks.records_of({"binaryData": stored.binary_data})
    assert [r["type"] for r in kept][:2] == ["attemptStarted", "modelResponse"]
    assert kept[-1]["type"] == "runFinished" and kept[-1]["attempt"] == 2
