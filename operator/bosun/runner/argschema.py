"""Checking a tool call's arguments against the Tool's ``inputSchema`` in bounded time.

The arguments are written by the model, so nothing in checking them may take more than linear
time in their size. jsonschema's own ``pattern``, ``patternProperties`` and
``additionalProperties`` run Python's backtracking ``re``, where a pattern such as ``(a+)+$``
takes exponential time on a crafted string, and its ``uniqueItems`` compares objects pairwise.
``validate`` uses jsonschema with those keywords replaced: patterns run on RE2 (``google-re2``),
which matches in time linear in the input and refuses what it cannot match that way
(backreferences, lookaround); such a pattern, or one RE2 cannot parse, is a validation error
the model reads, never a crash. ``uniqueItems`` compares canonical forms through a set.
jsonschema's ``unevaluatedProperties`` re-runs ``patternProperties`` with ``re``, so a schema
that has both is refused with a message saying so. Every problem message is cut to
``MAX_PROBLEM_CHARS``: jsonschema quotes the offending value, which may be large.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import re2
from jsonschema import exceptions, protocols

__all__ = ["MAX_PROBLEMS", "MAX_PROBLEM_CHARS", "schema_problem", "validate"]

MAX_PROBLEMS = 5
MAX_PROBLEM_CHARS = 300

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr


class _UnsupportedPattern(Exception):
    def __init__(self, pattern: str, why: str) -> None:
        super().__init__(f"the tool's inputSchema pattern {pattern!r} is not supported: {why}")


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        why = err.args[0] if err.args else str(err)
        if isinstance(why, bytes):
            why = why.decode("utf-8", errors="replace")
        raise _UnsupportedPattern(pattern, str(why)) from err
    except (TypeError, ValueError) as err:
        raise _UnsupportedPattern(str(pattern), str(err)) from err


def _matches(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


_Errors = Iterator[exceptions.ValidationError]


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> _Errors:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield exceptions.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> _Errors:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> _Errors:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties") or {}
    patterns = list(schema.get("patternProperties") or ())
    extras = [
        key
        for key in instance
        if key not in properties and not any(_matches(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        names = ", ".join(repr(extra) for extra in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"
        yield exceptions.ValidationError(
            f"Additional properties are not allowed ({names} {verb} unexpected)"
        )


def _canonical(value: Any) -> Any:
    """A hashable form equal for values JSON Schema calls equal (1 and 1.0, not 1 and true)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list | tuple):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("other", repr(value))


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> _Errors:
    if not unique or not validator.is_type(instance, "array"):
        return
    if len({_canonical(item) for item in instance}) != len(instance):
        yield exceptions.ValidationError("the array has non-unique elements")


_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


@functools.cache
def _bounded(validator_class: type[protocols.Validator]) -> type[protocols.Validator]:
    """``validator_class`` with the keywords above in place of jsonschema's."""
    replaced = {k: v for k, v in _KEYWORDS.items() if k in validator_class.VALIDATORS}
    extended: type[protocols.Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        validator_class, replaced
    )
    return extended


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(k for k in node if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _shorten(text: str) -> str:
    if len(text) <= MAX_PROBLEM_CHARS:
        return text
    return text[: MAX_PROBLEM_CHARS - 1] + "…"


def schema_problem(schema: Mapping[str, Any], name: str = "the tool's inputSchema") -> str | None:
    """Why ``schema`` cannot be checked (not a JSON Schema, or a combination Bosun cannot
    check in linear time), or None."""
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(dict(schema))
    except exceptions.SchemaError as err:
        return f"{name} is invalid: {_shorten(err.message)}"
    if {"unevaluatedProperties", "patternProperties"} <= _keywords(schema):
        return (
            f"{name} combines unevaluatedProperties with patternProperties, "
            "which Bosun does not check (it cannot do so in linear time)"
        )
    return None


def validate(
    schema: dict[str, Any],
    args: Any,
    *,
    name: str = "the tool's inputSchema",
    subject: str = "invalid arguments",
) -> str | None:
    """None when ``args`` satisfy ``schema``; otherwise a message for the model, starting
    with ``subject``."""
    unusable = schema_problem(schema, name)
    if unusable is not None:
        return unusable
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        problems = sorted(
            _bounded(validator_class)(schema).iter_errors(args), key=lambda e: list(e.path)
        )
    except _UnsupportedPattern as err:
        return f"{subject}: {err}".replace("the tool's inputSchema", name)
    except RecursionError:
        return f"{subject}: nested too deeply to check"
    if not problems:
        return None
    parts = []
    for problem in problems[:MAX_PROBLEMS]:
        where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
        parts.append(f"{where}: {_shorten(problem.message)}")
    return f"{subject}: " + "; ".join(parts)
