"""Human approvals of paused tool calls, bound to the call's arguments.

An Approval names a Run and a ``callHash`` (``bosun.api.approval.call_hash``: SHA-256 over
the tool and its canonical arguments), so approving a refund of 100 never approves a refund
of 10000. ``decision_for`` picks the Approval that settles a call (a denial wins over an
approval); ``Waiter`` polls until one arrives or the call's approval times out (then denied).
``create_approval`` and ``resolve_call`` serve ``bosun approve`` / ``bosun deny``.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import pydantic

from bosun import kube
from bosun.api import approval as approval_api
from bosun.runner import kubeapi, records

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Outcome",
    "Waiter",
    "call_hash",
    "create_approval",
    "decision_for",
    "parse_all",
    "refusal",
    "resolve_call",
]

log = logging.getLogger("bosun.runner.approvals")

DEFAULT_TIMEOUT_SECONDS = 86400

Outcome = Literal["Approved", "Denied", "Expired"]


def call_hash(tool: str, args: dict[str, Any]) -> str:
    return approval_api.call_hash(tool, args)


def parse_all(items: Iterable[dict[str, Any]]) -> list[approval_api.Approval]:
    """Approvals that parse; a malformed one is skipped (and can never approve anything)."""
    parsed = []
    for item in items:
        try:
            parsed.append(approval_api.Approval.from_dict(item))
        except pydantic.ValidationError:
            log.warning(
                "Ignored malformed approval",
                extra={"fields": {"approval": (item.get("metadata") or {}).get("name")}},
            )
    return parsed


def decision_for(
    approvals: Iterable[approval_api.Approval], run: str, hash_: str
) -> approval_api.Approval | None:
    """The Approval that decides call ``hash_`` of Run ``run``; Denied wins over Approved."""
    matching = [a for a in approvals if a.spec.run_name == run and a.spec.call_hash == hash_]
    denied = [a for a in matching if a.spec.decision == "Denied"]
    if denied:
        return denied[0]
    return matching[0] if matching else None


class Waiter:
    """Polls the namespace's Approvals for one paused call."""

    def __init__(
        self,
        cluster: kubeapi.ClusterAPI,
        run: str,
        *,
        poll_seconds: float,
        check: Callable[[], None],
        on_ignored: Callable[[approval_api.Approval], None],
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.cluster = cluster
        self.run = run
        self.poll_seconds = poll_seconds
        self.check = check
        self.on_ignored = on_ignored
        self.sleep = sleep
        self.now = now
        self.ignored: set[str] = set()

    def lookup(self, hash_: str) -> approval_api.Approval | None:
        approvals = parse_all(self.cluster.list_approvals())
        for approval in approvals:
            name = approval.metadata.name or ""
            if (
                approval.spec.run_name == self.run
                and approval.spec.call_hash != hash_
                and name not in self.ignored
            ):
                self.ignored.add(name)
                self.on_ignored(approval)
        return decision_for(approvals, self.run, hash_)

    def wait(
        self, hash_: str, expires: datetime.datetime
    ) -> tuple[Outcome, approval_api.Approval | None]:
        """Block until call ``hash_`` is decided or ``expires`` passes. ``check`` runs on every
        poll and may raise (a lost lease, a cancelled Run) to abandon the wait."""
        while True:
            self.check()
            try:
                found = self.lookup(hash_)
            except kube.ApiError as err:
                log.warning("Failed to list approvals", extra={"fields": {"status": err.status}})
                found = None
            if found is not None:
                return found.spec.decision, found
            remaining = (expires - self.now()).total_seconds()
            if remaining <= 0:
                return "Expired", None
            self.sleep(min(self.poll_seconds, remaining))


def resolve_call(run: dict[str, Any], call: str) -> str:
    """The full callHash for ``call``: a full hash, or a unique prefix of one pending call."""
    if len(call) == 64:
        return call.lower()
    pending = [
        str(p.get("callHash", "")) for p in (run.get("status") or {}).get("pendingApprovals") or ()
    ]
    matches = [h for h in pending if h.startswith(call.lower())]
    if len(matches) != 1:
        name = (run.get("metadata") or {}).get("name")
        raise ValueError(
            f"{call!r} matches {len(matches)} pending calls of Run {name}"
            + (f": {', '.join(h[:12] for h in matches)}" if matches else "")
        )
    return matches[0]


def create_approval(
    cluster: kubeapi.ClusterAPI,
    run: str,
    call: str,
    decision: approval_api.Decision,
    *,
    reason: str | None = None,
    approved_by: str | None = None,
) -> dict[str, Any]:
    """Record a human decision on call ``call`` (a hash or a unique pending prefix) of Run
    ``run``; ``approved_by`` defaults to the user the client authenticates as."""
    hash_ = resolve_call(cluster.get_run(run), call)
    who = approved_by or cluster.whoami()
    if not who:
        raise ValueError("could not tell who you are; pass approved_by")
    body = approval_api.Approval(
        metadata={"name": f"{run[:200]}-{hash_[:16]}", "namespace": cluster.namespace},
        spec=approval_api.ApprovalSpec(
            run_name=run, call_hash=hash_, decision=decision, reason=reason, approved_by=who
        ),
    ).to_dict()
    return cluster.create_approval(body)


def refusal(verdict: str, found: approval_api.Approval | None) -> tuple[records.Outcome, str]:
    """The journal outcome and the message of a wait that did not end in approval: a human's
    denial (naming who, and why), or the approval's expiry."""
    if verdict == "Denied":
        reason = (found.spec.reason if found else None) or ""
        approved_by = found.spec.approved_by if found else None
        return records.Outcome.APPROVAL_DENIED, f"denied by {approved_by}: {reason}"
    return records.Outcome.APPROVAL_EXPIRED, "nobody decided before the approval timed out"
