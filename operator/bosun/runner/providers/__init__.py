"""Model providers: OpenAI-compatible chat completions, Anthropic Messages, and scripted.

``build`` picks one from an Agent's ``spec.model``; every provider turns a provider-neutral
``ModelRequest`` into an ``AssistantTurn`` with the usage the provider reported.
"""

from __future__ import annotations

from bosun.runner.providers.base import (
    ModelRejected,
    ModelResponseInvalid,
    ModelUnavailable,
    Provider,
    RetryPolicy,
)
from bosun.runner.providers.factory import build

__all__ = [
    "ModelRejected",
    "ModelResponseInvalid",
    "ModelUnavailable",
    "Provider",
    "RetryPolicy",
    "build",
]
