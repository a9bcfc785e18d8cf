"""A pool worker's claims on Runs: what an offer is, taking a Run's Lease, and giving it back.

An offer is a Run whose newest attempt names the worker's pool and has not ended
(``offered_attempt``). ``take`` claims the offered attempt by updating the Run's Lease with its
resourceVersion, one more ``leaseTransitions`` (the claim's fencing epoch) and the claim
annotation (attempt, worker, the worker's own Lease and its epoch); of workers racing, the API
server lets one through. A Lease an earlier attempt's worker still holds is taken only once
that worker's own Lease expired or moved to another epoch (``claimable``), as a Job's runner
waits out a live holder. ``give_back`` hands the Lease back, with the attempt's outcome or,
for an attempt the operator ended, without. ``Claim`` is one claimed Run's ``lease.Holder``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from bosun import contract, kube
from bosun.runner import errors, kubeapi, lease

__all__ = [
    "TAKEN",
    "Claim",
    "Identity",
    "claim_of",
    "claimable",
    "give_back",
    "offered_attempt",
    "take",
]

_Obj = dict[str, Any]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def offered_attempt(run: Mapping[str, Any], pool: str) -> int | None:
    """The number of the attempt ``run`` offers to the pool named ``pool``; None when it offers
    none (its newest attempt ran as a Job, ended, or belongs to another pool)."""
    attempts = (run.get("status") or {}).get("attempts") or ()
    if not attempts:
        return None
    newest = attempts[-1]
    if newest.get("pool") != pool or newest.get("endTime"):
        return None
    try:
        return int(newest["number"])
    except (KeyError, TypeError, ValueError):
        return None


def claim_of(lease_obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The claim annotation of a Run's Lease, parsed; None when absent or unreadable."""
    return contract.lease_note(lease_obj, contract.ANNOTATION_CLAIM)


class Claim:
    """One claimed Run's ``lease.Holder``: held while the worker's Lease is, until revoked
    (the operator ended the attempt, or the Run went away)."""

    def __init__(self, worker: lease.Holder, run: str) -> None:
        self.worker = worker
        self.run = run
        self.revoked: str | None = None

    def revoke(self, reason: str) -> None:
        self.revoked = self.revoked or reason

    def held(self) -> bool:
        return self.revoked is None and self.worker.held()

    def ensure_held(self) -> None:
        if self.revoked is not None:
            raise errors.LeaseLost(self.revoked, f"the claim on Run {self.run} was revoked")
        self.worker.ensure_held()


class Identity:
    """Who claims: the worker's pod, its own Lease and that Lease's epoch."""

    def __init__(self, pod: str, worker_lease: str, epoch: int, duration: float) -> None:
        self.pod = pod
        self.worker_lease = worker_lease
        self.epoch = epoch
        self.duration = duration


def claimable(
    cluster: kubeapi.ClusterAPI, current: _Obj, previous: Mapping[str, Any] | None
) -> bool:
    """Whether the Run's Lease may be claimed now: nobody holds it, or its holder (an earlier
    attempt's worker, or a Job's runner) stopped renewing."""
    spec = current.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    if previous is None:
        return lease.is_free(current, _now())  # a Job runner's: its own renewals decide
    try:
        worker = cluster.get_lease(str(previous.get("workerLease") or ""))
    except kube.NotFound:
        return lease.is_free(current, _now())  # gone: wait out the claim's own duration
    worker_spec = worker.get("spec") or {}
    if worker_spec.get("holderIdentity") != previous.get("worker") or int(
        worker_spec.get("leaseTransitions") or 0
    ) != int(previous.get("workerEpoch") or 0):
        return True  # that worker restarted: its claims went with its old epoch
    return lease.is_free(worker, _now())


TAKEN = -1
"""What ``take`` answers for an attempt another worker claimed already."""


def take(
    cluster: kubeapi.ClusterAPI, run: _Obj, number: int, who: Identity, *, blind: bool = False
) -> int | None:
    """Claim attempt ``number`` of ``run``: its epoch; ``TAKEN`` when another worker has it;
    None when it is not to be had now (held by an earlier attempt's live worker, not the
    Run's Lease yet, or another writer first). ``blind``: try the first attempt's claim in
    one request without reading the Lease first (``_take_fresh``)."""
    name = run["metadata"]["name"]
    lease_name = contract.lease_name(name)
    if blind and number == 1:
        first = _take_fresh(cluster, lease_name, run, number, who)
        if first is not None:
            return first
    try:
        current = cluster.get_lease(lease_name)
    except kube.NotFound:
        return None  # the operator creates it with the offer
    if not contract.owned_by_run(current, run):
        return None
    previous = claim_of(current)
    if previous is not None and int(previous.get("attempt") or 0) >= number:
        return TAKEN
    if not claimable(cluster, current, previous):
        return None
    taken = lease.acquired(current, who.pod, who.duration, _now())
    annotations = dict(taken["metadata"].get("annotations") or {})
    annotations.pop(contract.ANNOTATION_OUTCOME, None)
    annotations[contract.ANNOTATION_CLAIM] = _claim_note(number, who)
    taken["metadata"] = {**taken["metadata"], "annotations": annotations}
    try:
        stored = cluster.replace_lease(lease_name, taken)
    except kube.Conflict:
        return None  # another writer first: read again
    return int(stored["spec"]["leaseTransitions"])


def _claim_note(number: int, who: Identity) -> str:
    return json.dumps(
        {
            "attempt": number,
            "worker": who.pod,
            "workerLease": who.worker_lease,
            "workerEpoch": who.epoch,
        },
        separators=(",", ":"),
    )


def _take_fresh(
    cluster: kubeapi.ClusterAPI, lease_name: str, run: _Obj, number: int, who: Identity
) -> int | None:
    """The first attempt's claim in one request, no read: a JSON patch that holds only while
    the Lease is as the operator made it (never taken: ``leaseTransitions`` 0, and this Run's
    UID in its owner reference). Otherwise (or if the server refuses the patch) None, and the
    claim goes the way of a read and an update (which tells a rival's claim from the rest)."""
    stamp = lease.format_time(_now())
    uid = run["metadata"].get("uid")
    operations: list[_Obj] = [
        {"op": "test", "path": "/spec/leaseTransitions", "value": 0},
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": uid},
        {"op": "add", "path": "/spec/holderIdentity", "value": who.pod},
        {"op": "add", "path": "/spec/acquireTime", "value": stamp},
        {"op": "add", "path": "/spec/renewTime", "value": stamp},
        {"op": "add", "path": "/spec/leaseDurationSeconds", "value": max(1, round(who.duration))},
        {"op": "replace", "path": "/spec/leaseTransitions", "value": 1},
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {contract.ANNOTATION_CLAIM: _claim_note(number, who)},
        },
    ]
    try:
        stored = cluster.patch_lease(lease_name, operations)
    except kube.ApiError:
        return None  # not as the operator made it (a test failed): read it and see
    return int(stored["spec"]["leaseTransitions"])


def give_back(
    cluster: kubeapi.ClusterAPI,
    lease_name: str,
    pod: str,
    epoch: int,
    outcome: Mapping[str, Any] | None,
) -> bool:
    """Hand the Run's Lease back if this claim still holds it, with ``outcome`` (what a Job's
    exit code and termination message say) or, for an attempt the operator ended, none. True
    once done or no longer ours; False on a conflict (read again and retry). First in one
    request that holds only while the claim does (``_give_back_blind``), else by a read and an
    update."""
    if _give_back_blind(cluster, lease_name, pod, epoch, outcome):
        return True
    current = cluster.get_lease(lease_name)
    spec = dict(current.get("spec") or {})
    if spec.get("holderIdentity") != pod or int(spec.get("leaseTransitions") or 0) != epoch:
        return True  # taken over: the attempt is someone else's now
    spec["holderIdentity"] = None
    spec["renewTime"] = lease.format_time(_now())
    meta = dict(current["metadata"])
    if outcome is not None:
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            contract.ANNOTATION_OUTCOME: json.dumps(dict(outcome), separators=(",", ":")),
        }
    try:
        cluster.replace_lease(lease_name, {**current, "metadata": meta, "spec": spec})
    except kube.Conflict:
        return False
    return True


def _pointer(key: str) -> str:
    """``key`` as one JSON pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _give_back_blind(
    cluster: kubeapi.ClusterAPI,
    lease_name: str,
    pod: str,
    epoch: int,
    outcome: Mapping[str, Any] | None,
) -> bool:
    """``give_back`` in one JSON patch, no read: it holds only while this worker holds the
    Lease at ``epoch`` (and the claim annotation is there). False when the server refuses it
    (a test failed: taken over, or changed), so the caller reads and sees."""
    operations: list[_Obj] = [
        {"op": "test", "path": "/spec/holderIdentity", "value": pod},
        {"op": "test", "path": "/spec/leaseTransitions", "value": epoch},
        {"op": "remove", "path": "/spec/holderIdentity"},
        {"op": "add", "path": "/spec/renewTime", "value": lease.format_time(_now())},
    ]
    if outcome is not None:
        operations.append(
            {
                "op": "add",
                "path": "/metadata/annotations/" + _pointer(contract.ANNOTATION_OUTCOME),
                "value": json.dumps(dict(outcome), separators=(",", ":")),
            }
        )
    try:
        cluster.patch_lease(lease_name, operations)
    except kube.NotFound:
        raise
    except kube.ApiError:
        return False
    return True
