"""``bosun trace RUN``: the decision path of a Run, rendered from its journal.

``records`` reads a Run's journal without claiming it; ``render`` turns records into lines:
each model call with its tokens and timing, each governance decision with the policy and rule
that made it, each tool call and result, each attempt and how it ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bosun.runner import journal, journal_configmap, kubeapi, replay

__all__ = ["records", "render"]

PREVIEW = 120


def records(cluster: kubeapi.Cluster, run: str) -> list[journal.Record]:
    """Every journal record of Run ``run``, oldest first; the Run's uid is not needed to read."""
    return journal_configmap.ConfigMapBackend(cluster, run, run_uid="").read()


def _preview(text: Any) -> str:
    flat = text if isinstance(text, str) else json.dumps(text, separators=(",", ":"))
    flat = " ".join(flat.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def _who(record: journal.Record) -> str:
    policy, rule = record.get("policy"), record.get("rule")
    if policy and rule:
        return f"{policy}/{rule}"
    return str(rule or policy or "-")


def _line(record: journal.Record) -> str:
    kind = record.get("type")
    step = f"step {record['step']:<3}" if "step" in record else " " * 8
    if kind == journal.ATTEMPT_STARTED:
        return (
            f"attempt {record['attempt']} started (epoch {record['epoch']}, pod "
            f"{record.get('pod')}, {record.get('replayedRecords', 0)} records replayed)"
        )
    if kind == journal.MODEL_RESPONSE:
        turn = record["turn"]
        usage = turn.get("usage") or {}
        calls = [c["name"] for c in turn.get("toolCalls") or ()]
        said = f"tool calls: {', '.join(calls)}" if calls else f"answer: {_preview(turn['text'])}"
        return (
            f"{step} model {turn.get('model') or '-'} → {said} "
            f"[{usage.get('inputTokens', 0)} in / {usage.get('outputTokens', 0)} out, "
            f"{record.get('durationMs', 0)} ms]"
        )
    if kind == journal.DECISION:
        what = record.get("tool") or "model call"
        micros = f" ({record['decisionMicros']} µs)" if "decisionMicros" in record else ""
        detail = f": {record.get('message')}" if record.get("outcome") != replay.ALLOWED else ""
        extra = f" by {record['approvedBy']}" if record.get("approvedBy") else ""
        return f"{step} {what} {record.get('outcome')}{extra} — {_who(record)}{micros}{detail}"
    if kind == journal.TOOL_STARTED:
        return f"{step} {record.get('tool')} called (Idempotency-Key {record['idempotencyKey']})"
    if kind == journal.TOOL_RESULT:
        verdict = "error" if record.get("isError") else "ok"
        return (
            f"{step} {record.get('tool')} → {verdict} ({record.get('durationMs', 0)} ms): "
            f"{_preview(record.get('content', ''))}"
        )
    if kind == journal.RUN_FINISHED:
        return f"finished: {_preview(record.get('output', ''))}"
    if kind == "attemptEnded":
        return f"attempt {record['attempt']} ended: {record.get('reason')} {record.get('message')}"
    return f"{kind}: {_preview(record)}"


def render(entries: Iterable[journal.Record], run: str = "") -> str:
    """The decision path as text, one line per record, with a usage summary on top."""
    listed = list(entries)
    usage = replay.State.build(listed).usage()
    head = (
        f"Run {run}: {usage['modelCalls']} model calls, {usage['toolCalls']} tool calls, "
        f"{usage['deniedCalls']} denied, {usage['totalTokens']} tokens "
        f"({usage['inputTokens']} in / {usage['outputTokens']} out)"
    )
    lines = [head.replace("Run : ", "")]
    for record in listed:
        lines.append(
            f"{record.get('seq', '?'):>4}  {record.get('time', '')[11:23]}  {_line(record)}"
        )
    return "\n".join(lines)
