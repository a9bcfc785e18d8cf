"""``bosun trace RUN``: the decision path of a Run, rendered from its journal.

``records`` reads a Run's journal without claiming it, as the typed records of
``bosun.runner.records``; ``render`` turns them into lines: each model call with its tokens
and timing, each governance decision with the policy and rule that made it, each tool call and
result, each attempt and how it ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# Imported under another name: ``records`` is this module's reading function.
from bosun.runner import journal_chunks, kubeapi, replay
from bosun.runner import records as kinds

__all__ = ["PREVIEW", "records", "render"]

PREVIEW = 120


def records(cluster: kubeapi.Cluster, run: str) -> list[kinds.Record]:
    """Every journal record of Run ``run``, oldest first. ``records.Unreadable`` names the
    first record this version of Bosun cannot read; ``errors.JournalUntrusted`` a chunk that
    was not written for this Run (its UID), which is never shown as if it were."""
    uid = str((cluster.get_run(run).get("metadata") or {}).get("uid") or "")
    stored = journal_chunks.ChunkBackend(cluster, run, run_uid=uid).read()
    return kinds.read_all(stored)


def _preview(text: Any) -> str:
    flat = text if isinstance(text, str) else json.dumps(text, separators=(",", ":"))
    flat = " ".join(flat.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def _who(record: kinds.Decision) -> str:
    policy, rule = record.policy, record.rule
    if policy and rule:
        return f"{policy}/{rule}"
    return str(rule or policy or "-")


def _step(step: int) -> str:
    return f"step {step:<3}"


def _line(record: kinds.Record) -> str:
    match record:
        case kinds.AttemptStarted():
            return (
                f"attempt {record.attempt} started (epoch {record.epoch}, pod "
                f"{record.pod}, {record.replayed_records} records replayed)"
            )
        case kinds.ModelResponse(turn=turn):
            usage = turn.usage
            calls = [c.name for c in turn.tool_calls]
            said = f"tool calls: {', '.join(calls)}" if calls else f"answer: {_preview(turn.text)}"
            return (
                f"{_step(record.step)} model {turn.model or '-'} → {said} "
                f"[{usage.input_tokens} in / {usage.output_tokens} out, "
                f"{record.duration_ms} ms]"
            )
        case kinds.Decision():
            what = record.tool or "model call"
            micros = f" ({record.decision_micros} µs)" if record.decision_micros is not None else ""
            detail = f": {record.message}" if record.outcome != kinds.Outcome.ALLOWED else ""
            extra = f" by {record.approved_by}" if record.approved_by else ""
            return (
                f"{_step(record.step)} {what} {record.outcome}{extra} — {_who(record)}"
                f"{micros}{detail}"
            )
        case kinds.ToolStarted():
            if not record.idempotency_key:
                return f"{_step(record.step)} {record.tool} called (not idempotent: no key sent)"
            return (
                f"{_step(record.step)} {record.tool} called "
                f"(Idempotency-Key {record.idempotency_key})"
            )
        case kinds.ToolResult():
            verdict = "error" if record.is_error else "ok"
            return (
                f"{_step(record.step)} {record.tool} → {verdict} ({record.duration_ms} ms): "
                f"{_preview(record.content)}"
            )
        case kinds.OutputRejected():
            return f"{_step(record.step)} answer returned to the model: {_preview(record.problems)}"
        case kinds.RunFinished():
            return f"finished: {_preview(record.output)}"
        case kinds.AttemptEnded():
            return f"attempt {record.attempt} ended: {record.reason} {record.message}"


def _unclosed(listed: list[kinds.Record], attempts: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """A closing line for each attempt whose journal stops without one (its runner was killed,
    lost its pod or its Lease mid-step), from what the Run's ``status.attempts`` say of it."""
    closed = {r.attempt for r in listed if isinstance(r, kinds.AttemptEnded | kinds.RunFinished)}
    started = [r.attempt for r in listed if isinstance(r, kinds.AttemptStarted)]
    said = {int(a.get("number", 0)): a for a in attempts}
    lines = {}
    for number in started:
        if number in closed:
            continue
        ended = said.get(number) or {}
        if ended.get("outcome"):
            reason = f" ({ended['reason']})" if ended.get("reason") else ""
            lines[number] = (
                f"attempt {number} ended {ended['outcome']}{reason} without a journal record"
                " (from the Run's status): a call it had started has an unknown outcome"
            )
    return lines


def render(
    entries: Iterable[kinds.Record],
    run: str = "",
    status: Mapping[str, Any] | None = None,
) -> str:
    """The decision path as text, one line per record, with a usage summary on top. With the
    Run's ``status``, attempts that ended without a word get a closing line, and a Run that
    never started says why."""
    listed = list(entries)
    status = status or {}
    usage = replay.State.build(listed).usage()
    head = (
        f"Run {run}: {usage['modelCalls']} model calls, {usage['toolCalls']} tool calls, "
        f"{usage['deniedCalls']} denied, {usage['totalTokens']} tokens "
        f"({usage['inputTokens']} in / {usage['outputTokens']} out)"
    )
    lines = [head.replace("Run : ", "")]
    if not listed:
        found = [c for c in status.get("conditions") or () if c.get("type") == "Queued"]
        queued: Mapping[str, Any] = found[0] if found else {}
        why = queued.get("message") or queued.get("reason") or "the operator has not admitted it"
        lines.append(f"  no attempt has started (phase {status.get('phase') or 'New'}): {why}")
    endings = _unclosed(listed, status.get("attempts") or ())
    for index, record in enumerate(listed):
        seq = record.seq or "?"
        moment = record.time.isoformat(timespec="milliseconds")[11:23] if record.time else ""
        lines.append(f"{seq:>4}  {moment}  {_line(record)}")
        following = listed[index + 1] if index + 1 < len(listed) else None
        if record.attempt in endings and (following is None or following.attempt != record.attempt):
            lines.append(f"{'':>4}  {'':12}  {endings.pop(record.attempt)}")
    return "\n".join(lines)
