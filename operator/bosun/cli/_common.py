"""What every ``bosun`` command shares: how a known failure ends the command."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

__all__ = ["fail"]


def fail(message: str) -> NoReturn:
    """Print ``message`` as a one-line error and exit with status 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)
