"""Typed access to the fields of one stored journal record (``records.read``'s reader).

Anything that is not what the record's type expects (a missing field, a wrong type, a time
without a UTC offset) raises ``Unreadable``: the attempt ends rather than guess at a record.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final, NoReturn, cast

from bosun.runner import errors

__all__ = ["RECORD_INVALID", "Fields", "Unreadable"]

RECORD_INVALID: Final = "JournalRecordInvalid"


class Unreadable(errors.PermanentFailure):
    """A journal record this runner cannot read. Retrying would read it no better, and
    guessing at it could repeat a side effect, so the attempt ends permanently."""


class Fields:
    """Typed access to one stored record's fields; anything unexpected is ``Unreadable``."""

    def __init__(self, data: Mapping[str, Any], what: str) -> None:
        self.data = data
        self.what = what

    def fail(self, key: str, wanted: str) -> NoReturn:
        found = "missing" if key not in self.data else f"{self.data[key]!r}"
        raise Unreadable(RECORD_INVALID, f"{self.what}: {key} should be {wanted}, not {found}")

    def _value(self, key: str, kinds: tuple[type, ...], wanted: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, wanted)
            return None
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            self.fail(key, wanted)
        return value

    def text(self, key: str) -> str:
        return cast(str, self._value(key, (str,), "a string", required=True))

    def optional_text(self, key: str) -> str | None:
        return cast(str | None, self._value(key, (str,), "a string", required=False))

    def integer(self, key: str) -> int:
        return cast(int, self._value(key, (int,), "an integer", required=True))

    def optional_integer(self, key: str) -> int | None:
        return cast(int | None, self._value(key, (int,), "an integer", required=False))

    def number(self, key: str, default: float) -> float:
        value = self._value(key, (int, float), "a number", required=False)
        return default if value is None else float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._value(key, (bool,), "true or false", required=False)
        return default if value is None else bool(value)

    def mapping(self, key: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._value(key, (dict,), "an object", required=True))

    def moment(self, key: str) -> datetime.datetime | None:
        text = self.optional_text(key)
        if text is None:
            return None
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            self.fail(key, "an ISO 8601 time")
        if moment.tzinfo is None:
            self.fail(key, "a time with a UTC offset")
        return moment
