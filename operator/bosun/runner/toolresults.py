"""What one tool call produced, as the transports report it and the loop reads it.

``ToolResult`` is the outcome the model sees; ``Attempted`` is how one send over a transport
went (a result, or a failure and whether resending is safe); ``render_content`` turns a JSON
result into compact text. The transports (``tool_http``, ``tool_mcp``) and the executor
(``tools``) share these, so neither imports the other.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["Attempted", "ToolResult", "render_content"]


@dataclasses.dataclass(frozen=True)
class ToolResult:
    """What a call produced: ``content`` for the model, ``is_error`` when it failed."""

    content: str
    is_error: bool = False
    status: int | None = None


@dataclasses.dataclass(frozen=True)
class Attempted:
    """How one send went: a result, or a failure that is ``retryable`` and whose request may
    or may not have reached the server (``maybe_sent``)."""

    result: ToolResult | None = None
    failure: str | None = None
    retryable: bool = False
    maybe_sent: bool = True
    retry_after: float | None = None


def render_content(value: Any) -> str:
    """A tool's JSON result as compact text for the model."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
