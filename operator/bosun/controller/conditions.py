"""Conditions in the metav1.Condition shape: set one, keep the others, move time only on flips.

The types and reasons themselves are constants in ``bosun.constants``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Condition", "find", "is_true", "make", "now", "parse", "stamp", "stamp_precise"]

Condition = dict[str, Any]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_precise(moment: datetime.datetime) -> str:
    """RFC 3339 with microseconds, for times that must keep sub-second precision."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text).astimezone(datetime.UTC)


def find(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == kind:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> bool:
    condition = find(conditions, kind)
    return condition is not None and condition.get("status") == "True"


def make(
    previous: Iterable[Mapping[str, Any]] | None,
    kind: str,
    status: bool | None,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    at: datetime.datetime | None = None,
) -> Condition:
    """A condition of ``kind``; ``lastTransitionTime`` carries over unless the status flips."""
    text = "Unknown" if status is None else ("True" if status else "False")
    old = find(previous, kind)
    if old is not None and old.get("status") == text and old.get("lastTransitionTime"):
        moved = str(old["lastTransitionTime"])
    else:
        moved = stamp(at or now())
    condition: Condition = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": moved,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
