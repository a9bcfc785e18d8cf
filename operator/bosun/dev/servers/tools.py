"""A tool server: ``/tools/NAME`` runs a named tool once per ``Idempotency-Key``.

It counts how often each key arrived (``seen``) and how often each tool really ran
(``executions``); a repeated key gets the stored response without running the tool again, and
a key that arrives while a request with it is still running waits for that one's response (the
IETF Idempotency-Key draft lets a server refuse it instead; either way it runs once).
"""

from __future__ import annotations

import collections
import threading
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
        self._running: dict[str, threading.Event] = {}

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
        while True:
            running: threading.Event | None = None
            with self.lock:
                if key:
                    if key in self.stored:
                        self.seen[key] += 1
                        return base.Reply(200, self.stored[key])
                    running = self._running.get(key)
                    if running is None:
                        self.seen[key] += 1
                        self._running[key] = threading.Event()
                if not key or running is None:
                    self.executions.append((name, args))
                    break
            if running is not None:
                running.wait(60)  # the same key in flight: its response is this one's
        try:
            result = self.tools[name](args)
            with self.lock:
                if key:
                    self.stored[key] = result
        finally:
            with self.lock:
                done = self._running.pop(key, None) if key else None
            if done is not None:
                done.set()
        return base.Reply(200, result)
