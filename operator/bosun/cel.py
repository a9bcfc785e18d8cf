"""CEL for Policy ``when`` expressions, through cel-python (``celpy``): one setup for all of Bosun.

The operator checks that rules compile (a Policy's readiness); the runner evaluates them.
Compiled programs are cached by source text. ``evaluate`` returns the boolean or raises
``CELError``: a parse error, an evaluation error (such as a missing field) and a result that is
not a boolean all raise, so the caller can fail closed. celpy (and its grammar) is loaded on the
first compile, not on import: a runner whose Policies have no ``when`` never pays for it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import celpy

__all__ = ["CELError", "Evaluator", "activation"]


class CELError(ValueError):
    """An expression did not compile, failed to evaluate, or did not yield a boolean."""

    def __init__(
        self, message: str, detail: str = "", *, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.detail = detail or message
        """The CEL library's own words (for a compile error, the parser's message)."""
        self.line, self.column = line, column
        """Where a compile error is in the expression (1-based), when the parser said."""

    def where(self, source: str) -> str:
        """``at line L, column C (near '...')`` for a compile error, else an empty string."""
        if self.line is None or self.column is None:
            return ""
        lines = source.splitlines() or [""]
        text = lines[min(self.line, len(lines)) - 1]
        near = text[max(0, self.column - 1) : self.column + 11] or "the end"
        return f" at line {self.line}, column {self.column} (near {near!r})"


def activation(values: Mapping[str, Any]) -> dict[str, Any]:
    """CEL values for JSON-like Python values (``args``, ``agent``, ``run``)."""
    from celpy import adapter  # noqa: PLC0415 - deliberate: celpy loads on first use

    return {name: adapter.json_to_cel(value) for name, value in values.items()}


class Evaluator:
    """Compiles once, evaluates many times; safe to share between threads."""

    def __init__(self) -> None:
        self._env: celpy.Environment | None = None
        self._programs: dict[str, celpy.Runner] = {}
        self._lock = threading.Lock()

    def _environment(self) -> celpy.Environment:
        import celpy  # noqa: PLC0415 - deliberate: its grammar costs ~50 ms at start-up

        with self._lock:
            if self._env is None:
                self._env = celpy.Environment()
            return self._env

    def program(self, source: str) -> celpy.Runner:
        with self._lock:
            cached = self._programs.get(source)
        if cached is not None:
            return cached
        env = self._environment()
        try:
            program = env.program(env.compile(source))
        except Exception as err:  # celpy raises several parser exception types
            line, column = getattr(err, "line", None), getattr(err, "column", None)
            raise CELError(
                f"does not compile: {err}",
                str(err),
                line=line if isinstance(line, int) else None,
                column=column if isinstance(column, int) else None,
            ) from err
        with self._lock:
            self._programs[source] = program
        return program

    def evaluate(self, source: str, values: Mapping[str, Any]) -> bool:
        program = self.program(source)
        try:
            result = program.evaluate(dict(values))
        except Exception as err:  # CELEvalError and whatever a custom function raises
            raise CELError(f"failed to evaluate: {err}") from err
        if isinstance(result, Exception):
            raise CELError(f"failed to evaluate: {result}")
        from celpy import celtypes  # noqa: PLC0415 - loaded with the program above

        if not isinstance(result, celtypes.BoolType):
            raise CELError(f"yielded {type(result).__name__}, not a boolean")
        return bool(result)
