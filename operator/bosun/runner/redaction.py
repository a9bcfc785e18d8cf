"""Blanking the Secret values the runner holds out of text that leaves the pod.

The runner holds Secrets only as environment variables the operator injected (the model's API
key, ``contract.ENV_MODEL_API_KEY``, and every ``contract.SECRET_ENV_PREFIX`` variable, which
include the Tool headers' values); ``secrets`` picks them out. ``blank`` replaces each value in
every form it travels in, raw, JSON-escaped and percent-encoded, longest first so that a value
holding another is blanked whole. ``shorten`` blanks first and shortens after, so a secret cut
in half by the shortening cannot survive as a fragment; everything that bounds text on its way
out of the pod (journal, status, Events, logs, the termination message) must do it in that
order. Values shorter than ``MIN_SECRET_CHARS`` are left alone: blanking them would blank
ordinary words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib import parse

from bosun import contract

__all__ = ["MARK", "MIN_SECRET_CHARS", "blank", "is_secret_variable", "secrets", "shorten"]

MARK = "[redacted]"
MIN_SECRET_CHARS = 4


def is_secret_variable(name: str) -> bool:
    """Whether the environment variable ``name`` carries a Secret's value."""
    return name == contract.ENV_MODEL_API_KEY or name.startswith(contract.SECRET_ENV_PREFIX)


def secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """The Secret values in ``env`` worth blanking, longest first."""
    values = {v for k, v in env.items() if is_secret_variable(k) and len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(values, key=len, reverse=True))


def _forms(value: str) -> list[str]:
    forms = [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        parse.quote(value, safe=""),
        parse.quote_plus(value, safe=""),
    ]
    return sorted(set(forms), key=len, reverse=True)


def blank(text: str, values: Iterable[str]) -> str:
    """``text`` with every form of every value in ``values`` replaced by ``MARK``."""
    for value in values:
        if len(value) < MIN_SECRET_CHARS:
            continue
        for form in _forms(value):
            if form in text:
                text = text.replace(form, MARK)
    return text


def shorten(text: str, limit: int, values: Iterable[str]) -> str:
    """``text`` blanked, then cut to at most ``limit`` characters."""
    return blank(text, values)[:limit]
