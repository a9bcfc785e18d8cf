"""CEL through cel-python (``celpy``), one setup for all of Bosun: Policy ``when`` rules and
Webhook ``filter`` and ``input`` expressions.

The operator checks that expressions compile (a Policy's or a Webhook's readiness); the runner
evaluates rules, the gateway a Webhook's expressions (``text`` for one that yields a string).
Compiled programs are cached by source text. ``evaluate`` returns the boolean or raises
``CELError``: a parse error, an evaluation error (such as a missing field) and a result that is
not a boolean all raise, so the caller can fail closed. celpy (and its grammar) is loaded on the
first compile, not on import: a runner whose Policies have no ``when`` never pays for it.

Bounds, so that no expression and no model-written ``args`` can hang the runner. celpy parses
with lark's LALR parser (linear in the source) and evaluates by walking the parse tree, each
macro (``all``, ``exists``, ``map``, ``filter``) re-walking its body once per element; CEL has
no loops, but nested macros multiply and each level can double a list or a string. So: the
source is at most ``MAX_SOURCE_CHARS`` (the Policy schema's own limit) and its parse tree at
most ``MAX_NODES`` nodes, checked at compile (a Policy over them is not Ready); and evaluation
runs on a metered tree walker (``_MeteredEvaluator``) that charges every node it evaluates 1
plus the size of the value it produced (characters, bytes, elements or entries), fails once
the charge passes ``COST_LIMIT`` and checks a ``TIME_LIMIT_SECONDS`` deadline at every node.
No single node does more than linear work in the sizes already charged, so the meter bounds
both time and memory. Its exception is not one that celpy turns into a CEL error value, so
``||``, ``&&`` and the macros cannot swallow it: passing a bound always ends in
``CELLimitExceeded``, a ``CELError``, which governance treats as a denial.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import celpy
    import lark

__all__ = [
    "COST_LIMIT",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "PROGRAMS_KEPT",
    "TIME_LIMIT_SECONDS",
    "CELError",
    "CELLimitExceeded",
    "Evaluator",
    "activation",
]

MAX_SOURCE_CHARS = 4096
"""The longest expression compiled: the same as ``Policy.spec.rules[].when``'s maxLength."""
MAX_NODES = 20_000
"""The most parse-tree nodes an expression may have (celpy's tree has ~10 per operand)."""
COST_LIMIT = 1_000_000
"""What one evaluation may cost: 1 per node evaluated plus the size of each value produced."""
PROGRAMS_KEPT = 1024
"""Compiled programs kept, the least recently used dropped first."""
TIME_LIMIT_SECONDS = 1.0
"""The longest one evaluation may take, whatever its cost (a backstop for slow machines)."""


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


class CELLimitExceeded(CELError):
    """An expression is too long or too large, or its evaluation passed a cost or time bound."""


def activation(values: Mapping[str, Any]) -> dict[str, Any]:
    """CEL values for JSON-like Python values (``args``, ``agent``, ``run``)."""
    from celpy import adapter  # noqa: PLC0415 - deliberate: celpy loads on first use

    try:
        return {name: adapter.json_to_cel(value) for name, value in values.items()}
    except (RecursionError, ValueError, TypeError, OverflowError) as err:
        raise CELError(f"the values cannot be given to CEL: {type(err).__name__}: {err}") from err


class _OverBudget(Exception):
    """Raised inside celpy when a bound is passed. Deliberately not a ``ValueError``,
    ``TypeError`` or ``KeyError``: celpy turns those into CEL error values, which ``||`` could
    then discard."""


class _Meter:
    """What one evaluation has left to spend, in cost and in time."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.left = limit
        self.clock = clock
        self.deadline = clock() + seconds
        self.limit, self.seconds = limit, seconds

    def charge(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise _OverBudget(f"its evaluation cost more than {self.limit}")
        if self.clock() > self.deadline:
            raise _OverBudget(f"its evaluation took longer than {self.seconds:g}s")


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | dict | tuple):
        return len(value)
    return 0


def _metered_runner_class(limit: int, seconds: float) -> type[celpy.Runner]:
    """celpy's interpreted runner, walking the tree with a ``_Meter`` per evaluation."""
    import celpy  # noqa: PLC0415 - deliberate: celpy loads on first use
    from celpy import evaluation  # noqa: PLC0415

    class _MeteredEvaluator(evaluation.Evaluator):
        meter: _Meter

        def sub_evaluator(self, ast: lark.Tree[Any]) -> evaluation.Evaluator:
            nested = _MeteredEvaluator(ast, activation=self.activation)
            nested.meter = self.meter
            return nested

        def _visit_tree(self, tree: lark.Tree[Any]) -> Any:
            # lark's Interpreter evaluates every node here; celpy's ``visit`` goes through it.
            self.meter.charge(1)
            value = super()._visit_tree(tree)
            self.meter.charge(_size(value))
            return value

    class _MeteredRunner(celpy.InterpretedRunner):
        def evaluate(self, context: Any) -> Any:
            walker = _MeteredEvaluator(ast=self.ast, activation=self.new_activation())
            walker.meter = _Meter(limit, seconds)
            return walker.evaluate(context)

    return _MeteredRunner


class Evaluator:
    """Compiles once, evaluates many times; safe to share between threads."""

    def __init__(
        self,
        cost_limit: int = COST_LIMIT,
        time_limit_seconds: float = TIME_LIMIT_SECONDS,
        max_nodes: int = MAX_NODES,
    ) -> None:
        self._env: celpy.Environment | None = None
        self._programs: collections.OrderedDict[str, celpy.Runner] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.cost_limit, self.time_limit_seconds = cost_limit, time_limit_seconds
        self.max_nodes = max_nodes

    def _environment(self) -> celpy.Environment:
        import celpy  # noqa: PLC0415 - deliberate: its grammar costs ~50 ms at start-up

        with self._lock:
            if self._env is None:
                runner = _metered_runner_class(self.cost_limit, self.time_limit_seconds)
                self._env = celpy.Environment(runner_class=runner)
            return self._env

    def program(self, source: str) -> celpy.Runner:
        with self._lock:
            cached = self._programs.get(source)
            if cached is not None:
                self._programs.move_to_end(source)
                return cached
        if len(source) > MAX_SOURCE_CHARS:
            raise CELLimitExceeded(f"is longer than {MAX_SOURCE_CHARS} characters")
        env = self._environment()
        try:
            tree = env.compile(source)
            nodes = sum(1 for _ in tree.iter_subtrees())
            if nodes > self.max_nodes:
                raise CELLimitExceeded(
                    f"is too large: {nodes} parse-tree nodes, over {self.max_nodes}"
                )
            program = env.program(tree)
        except CELLimitExceeded:
            raise
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
            while len(self._programs) > PROGRAMS_KEPT:  # tenants' edits cannot grow it forever
                self._programs.popitem(last=False)
        return program

    def _result(self, source: str, values: Mapping[str, Any]) -> Any:
        program = self.program(source)
        try:
            result = program.evaluate(dict(values))
        except _OverBudget as err:
            raise CELLimitExceeded(f"was stopped: {err}") from err
        except Exception as err:  # CELEvalError and whatever a custom function raises
            raise CELError(f"failed to evaluate: {err}") from err
        if isinstance(result, Exception):
            raise CELError(f"failed to evaluate: {result}")
        return result

    def evaluate(self, source: str, values: Mapping[str, Any]) -> bool:
        result = self._result(source, values)
        from celpy import celtypes  # noqa: PLC0415 - loaded with the program above

        if not isinstance(result, celtypes.BoolType):
            raise CELError(f"yielded {type(result).__name__}, not a boolean")
        return bool(result)

    def text(self, source: str, values: Mapping[str, Any]) -> str:
        """Evaluate an expression that must yield a string (a Webhook's ``input``)."""
        result = self._result(source, values)
        if not isinstance(result, str):  # celpy's StringType, or a plain str from a function
            raise CELError(f"yielded {type(result).__name__}, not a string")
        return str(result)
