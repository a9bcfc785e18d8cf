"""CEL for Policy ``when`` expressions, through cel-python (``celpy``).

Compiled programs are cached by source text. ``evaluate`` returns the boolean or raises
``CELError``: a parse error, an evaluation error (such as a missing field) and a result that is
not a boolean all raise, so the caller can fail closed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import celpy
from celpy import adapter, celtypes

__all__ = ["CELError", "Evaluator", "activation"]


class CELError(ValueError):
    """An expression did not compile, failed to evaluate, or did not yield a boolean."""


def activation(values: Mapping[str, Any]) -> dict[str, Any]:
    """CEL values for JSON-like Python values (``args``, ``agent``, ``run``)."""
    return {name: adapter.json_to_cel(value) for name, value in values.items()}


class Evaluator:
    """Compiles once, evaluates many times; safe to share between threads."""

    def __init__(self) -> None:
        self._env = celpy.Environment()
        self._programs: dict[str, celpy.Runner] = {}
        self._lock = threading.Lock()

    def program(self, source: str) -> celpy.Runner:
        with self._lock:
            cached = self._programs.get(source)
        if cached is not None:
            return cached
        try:
            program = self._env.program(self._env.compile(source))
        except Exception as err:  # celpy raises several parser exception types
            raise CELError(f"does not compile: {err}") from err
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
        if not isinstance(result, celtypes.BoolType):
            raise CELError(f"yielded {type(result).__name__}, not a boolean")
        return bool(result)
