"""Human approvals of paused tool calls, bound to the call's arguments.

An Approval names a Run and a ``callHash`` (``bosun.api.approval.call_hash``: SHA-256 over
the tool and its canonical arguments), so approving a refund of 100 never approves a refund
of 10000; and it names the Run's UID and the call (step, call id), so it decides that one call
only (``Binding.refuses`` says why an Approval does not). ``decision_for`` picks the Approval
that settles a call (a denial wins over an approval); ``Waiter`` polls until one arrives or
the call's approval times out (then denied). ``create_approval`` and ``resolve_call`` serve
``bosun approve`` / ``bosun deny``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import pydantic

from bosun import constants, kube
from bosun.api import approval as approval_api
from bosun.runner import kubeapi, records

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MIN_CALL_PREFIX",
    "Binding",
    "Outcome",
    "Waiter",
    "call_hash",
    "command",
    "create_approval",
    "created",
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


def _meta(approval: approval_api.Approval, key: str) -> Any:
    return (approval.metadata.model_extra or {}).get(key)


def created(obj: dict[str, Any]) -> datetime.datetime | None:
    """When an object (a Run, as read from the API) was created."""
    return _time((obj.get("metadata") or {}).get("creationTimestamp"))


def _time(value: object) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Binding:
    """The one call an Approval must name to decide it."""

    run: str
    run_uid: str
    run_created: datetime.datetime | None
    step: int
    call_id: str
    call_hash: str
    used: frozenset[str] = frozenset()
    """Approvals that other calls of this Run already used (from the journal)."""

    def refuses(self, approval: approval_api.Approval) -> str | None:
        """None when ``approval`` decides this call, else why it does not."""
        spec = approval.spec
        if spec.run_name != self.run:
            return f"the Approval is for Run {spec.run_name}"
        if spec.call_hash != self.call_hash:
            return "the Approval's callHash does not match this call"
        owners = [o for o in _meta(approval, "ownerReferences") or () if isinstance(o, dict)]
        if any(o.get("kind") == "Run" and o.get("uid") != self.run_uid for o in owners):
            return "the Approval is owned by another Run of this name"
        if spec.run_uid is not None and spec.run_uid != self.run_uid:
            return "the Approval names another Run of this name (runUID differs)"
        if spec.run_uid is None:
            # A legacy Approval: only one made after this Run was (timestamps are whole
            # seconds: the same second is not after), and never used twice.
            created = _time(_meta(approval, "creationTimestamp"))
            if self.run_created is not None and (created is None or created <= self.run_created):
                return "the Approval is older than this Run (it has no runUID)"
        if spec.step is not None or spec.call_id is not None:
            if (spec.step, spec.call_id) != (self.step, self.call_id):
                return (
                    f"the Approval decides another call with these arguments (step {spec.step},"
                    f" call {spec.call_id})"
                )
        elif (approval.metadata.name or "") in self.used:
            return "the Approval was already used by another call of this Run"
        return None


def decision_for(
    approvals: Iterable[approval_api.Approval], binding: Binding
) -> approval_api.Approval | None:
    """The Approval that decides the call of ``binding``; Denied wins over Approved."""
    matching = [a for a in approvals if binding.refuses(a) is None]
    denied = [a for a in matching if a.spec.decision == "Denied"]
    if denied:
        return denied[0]
    return matching[0] if matching else None


class Waiter:
    """Polls the namespace's Approvals for one paused call."""

    def __init__(
        self,
        cluster: kubeapi.ClusterAPI,
        binding: Binding,
        *,
        poll_seconds: float,
        check: Callable[[], None],
        on_ignored: Callable[[approval_api.Approval, str], None],
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.cluster = cluster
        self.binding = binding
        self.poll_seconds = poll_seconds
        self.check = check
        self.on_ignored = on_ignored
        self.sleep = sleep
        self.now = now
        self.ignored: set[str] = set()

    def lookup(self) -> approval_api.Approval | None:
        approvals = parse_all(self.cluster.list_approvals())
        for approval in approvals:
            name = approval.metadata.name or ""
            why = self.binding.refuses(approval)
            if approval.spec.run_name == self.binding.run and why and name not in self.ignored:
                self.ignored.add(name)
                self.on_ignored(approval, why)
        return decision_for(approvals, self.binding)

    def wait(self, expires: datetime.datetime) -> tuple[Outcome, approval_api.Approval | None]:
        """Block until the call is decided or ``expires`` passes. ``check`` runs on every poll
        and may raise (a lost lease, a cancelled Run) to abandon the wait."""
        while True:
            self.check()
            try:
                found = self.lookup()
            except kube.ApiError as err:
                log.warning("Failed to list approvals", extra={"fields": {"status": err.status}})
                found = None
            if found is not None:
                return found.spec.decision, found
            remaining = (expires - self.now()).total_seconds()
            if remaining <= 0:
                return "Expired", None
            self.sleep(min(self.poll_seconds, remaining))


MIN_CALL_PREFIX = 6
"""The shortest prefix of a callHash that names a call: an empty or one-letter CALL (an unset
shell variable, a typo) must never decide whatever happens to be pending."""

_CALL = re.compile(rf"[0-9a-f]{{{MIN_CALL_PREFIX},64}}")


def command(verb: str, namespace: str, run: str, call_hash: str) -> str:
    """The command that decides a paused call, ready to paste: ``bosun approve -n NS RUN HASH``."""
    return f"bosun {verb} -n {namespace} {run} {call_hash[:12]}"


def resolve_call(
    run: dict[str, Any], call: str, decided: Iterable[approval_api.Approval] = ()
) -> str:
    """The full callHash for ``call``: a full hash, or a unique prefix (at least
    ``MIN_CALL_PREFIX`` hex characters) of one pending call. ``decided`` are the Run's
    Approvals, to say so when ``call`` names a call that was already decided."""
    wanted = call.strip().lower()
    meta = run.get("metadata") or {}
    name = meta.get("name")
    pending = [p for p in (run.get("status") or {}).get("pendingApprovals") or () if p]
    listed = "; ".join(f"{str(p.get('callHash', ''))[:12]} (tool {p.get('tool')})" for p in pending)
    waiting = f" Pending calls of Run {name}: {listed}." if pending else ""
    if not _CALL.fullmatch(wanted):
        raise ValueError(
            f"CALL {call!r} is not a call hash: give the callHash of a pending call, or at least"
            f" its first {MIN_CALL_PREFIX} hex characters.{waiting}"
        )
    if len(wanted) == 64:
        return wanted
    matches = [h for p in pending if (h := str(p.get("callHash", ""))).startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        for approval in decided:
            if approval.spec.run_name == name and approval.spec.call_hash.startswith(wanted):
                raise ValueError(
                    f"call {wanted} of Run {name} was already decided: {approval.spec.decision}"
                    f" by {approval.spec.approved_by} (approval {approval.metadata.name})"
                )
    raise ValueError(
        f"{call!r} matches {len(matches)} pending calls of Run {name}"
        + (f": {', '.join(h[:12] for h in matches)}" if matches else "")
        + f".{waiting}"
    )


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
    ``run``; ``approved_by`` defaults to the user the client authenticates as. The Approval is
    owned by the Run and names its UID and, for a pending call, the call's step and id."""
    run_obj = cluster.get_run(run)
    hash_ = resolve_call(run_obj, call, parse_all(cluster.list_approvals()))
    who = approved_by or cluster.whoami()
    if not who:
        raise ValueError("could not tell who you are; pass approved_by")
    meta = run_obj.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    pending = [
        p
        for p in (run_obj.get("status") or {}).get("pendingApprovals") or ()
        if p and p.get("callHash") == hash_
    ]
    step = pending[0].get("step") if pending else None
    call_id = pending[0].get("callID") if pending else None
    name = f"{run[:200]}-{hash_[:16]}"
    if step is not None and call_id:
        which = hashlib.sha256(f"{step}/{call_id}".encode()).hexdigest()[:8]
        name = f"{run[:180]}-{hash_[:12]}-{which}"
    body = approval_api.Approval(
        metadata={
            "name": name,
            "namespace": cluster.namespace,
            "ownerReferences": [
                {"apiVersion": constants.API_VERSION, "kind": "Run", "name": run, "uid": uid}
            ],
        },
        spec=approval_api.ApprovalSpec(
            run_name=run,
            run_uid=uid or None,
            step=step,
            call_id=call_id,
            call_hash=hash_,
            decision=decision,
            reason=reason,
            approved_by=who,
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
