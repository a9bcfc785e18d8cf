"""A tool server: ``/tools/NAME`` runs a named tool once per ``Idempotency-Key``.

It counts how often each key arrived (``seen``) and how often each tool really ran
(``executions``); a repeated key gets the stored response without running the tool again.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any
from urllib import parse

from . import base

__all__ = ["ToolFn", "ToolServer"]

ToolFn = Callable[[dict[str, Any]], Any]


class ToolServer(base.JSONServer):
    def __init__(self, tools: dict[str, ToolFn] | None = None) -> None:
        super().__init__()
        self.tools: dict[str, ToolFn] = tools or {}
        self.seen: collections.Counter[str] = collections.Counter()
        self.executions: list[tuple[str, dict[str, Any]]] = []
        self.stored: dict[str, Any] = {}

    def url_for(self, name: str) -> str:
        return f"{self.url}/tools/{name}"

    def calls(self, name: str) -> list[dict[str, Any]]:
        return [args for tool, args in self.executions if tool == name]

    def handle(self, request: base.Request) -> base.Reply:
        parsed = parse.urlparse(request.path)
        name = parsed.path.removeprefix("/tools/")
        if name not in self.tools:
            return base.Reply(404, {"error": f"no tool {name}"})
        if request.method in ("GET", "DELETE"):
            args: dict[str, Any] = dict(parse.parse_qsl(parsed.query))
        else:
            args = request.body or {}
        key = request.headers.get("idempotency-key")
        with self.lock:
            if key:
                self.seen[key] += 1
                if key in self.stored:
                    return base.Reply(200, self.stored[key])
            self.executions.append((name, args))
        result = self.tools[name](args)
        with self.lock:
            if key:
                self.stored[key] = result
        return base.Reply(200, result)
