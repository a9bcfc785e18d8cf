"""Structured outputs: the final answer checked against the Agent's ``outputSchema``.

``check`` takes the model's final text and returns the JSON to store as the Run's output, or
the problems to send back to the model. The answer may be wrapped in one Markdown code fence
(``` or ```json), as models often do; what is inside must be one JSON value that validates.
Validation is ``argschema``'s: linear-time patterns (RE2), bounded messages. A schema that is
not a JSON Schema is the Agent author's mistake, not the model's: ``schema_problem`` names it
and the attempt fails (``InvalidOutputSchema``) before any model call.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from bosun.runner import argschema

__all__ = ["NAME", "Checked", "check", "schema_problem"]

NAME = "the Agent's spec.outputSchema"


@dataclasses.dataclass(frozen=True)
class Checked:
    output: str | None
    """The answer's JSON, compact, when it satisfies the schema."""
    problems: str | None
    """Why it does not, for the model."""


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    return argschema.schema_problem(schema, NAME)


def _unfenced(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        inner = stripped[3:-3]
        first, _, rest = inner.partition("\n")
        return (rest if first.strip().lower() in ("", "json") else inner).strip()
    return stripped


def check(schema: dict[str, Any], text: str) -> Checked:
    body = _unfenced(text)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as err:
        return Checked(None, f"the answer is not JSON ({err})")
    problems = argschema.validate(schema, value, name=NAME, subject="the answer is invalid")
    if problems is not None:
        return Checked(None, problems)
    return Checked(json.dumps(value, separators=(",", ":"), ensure_ascii=False), None)
