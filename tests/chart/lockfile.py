"""Reading the images' hash-locked requirements (requirements/*.lock, written by ``make lock``).

A lock is pip's requirements format as ``uv pip compile --generate-hashes`` writes it: one
``name==version`` per entry, continued by its ``--hash=sha256:…`` lines and followed by the
``# via`` comments that say which requirement pulled it in (``bosun (pyproject.toml)`` for a
direct requirement of the project). The target environment is the images' own: CPython 3.11 on
Linux x86_64, the same one the Makefile's ``lock`` target resolves for.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import tomllib

from packaging import requirements, utils

__all__ = ["DIRECT", "TARGET", "Entry", "parse", "project_requirements"]

REPO = pathlib.Path(__file__).resolve().parents[2]
# What a ``# via`` line names when the project itself asked for the package.
DIRECT = "bosun (pyproject.toml)"
# Marker values of the images (python:3.11-slim-bookworm on x86_64).
TARGET: dict[str, str] = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.0",
    "python_version": "3.11",
    "sys_platform": "linux",
}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=(?P<algorithm>\w+):(?P<digest>[0-9a-f]+)")


@dataclasses.dataclass
class Entry:
    """One pinned distribution of a lock."""

    name: str  # normalized (PEP 503)
    version: str
    hashes: list[str] = dataclasses.field(default_factory=list)  # "sha256:…"
    via: set[str] = dataclasses.field(default_factory=set)  # normalized names, or DIRECT


def parse(path: pathlib.Path) -> dict[str, Entry]:
    """The entries of a lock by normalized name; a line it cannot read is an error."""
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    in_via = False
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        pin = _PIN.match(raw)
        if pin:
            current = Entry(utils.canonicalize_name(pin["name"]), pin["version"])
            if current.name in entries:
                raise ValueError(f"{path}:{number}: {current.name} is pinned twice")
            entries[current.name] = current
            in_via = False
            continue
        if current is None:
            if not line.startswith("#"):
                raise ValueError(f"{path}:{number}: not a pin: {raw!r}")
            continue
        hashed = _HASH.search(line)
        if hashed:
            current.hashes.append(f"{hashed['algorithm']}:{hashed['digest']}")
        elif line == "# via":
            in_via = True
        elif line.startswith("# via "):
            current.via.add(_via(line.removeprefix("# via ")))
            in_via = False
        elif in_via and line.startswith("#   "):
            current.via.add(_via(line.removeprefix("#   ")))
        elif not line.startswith("#"):
            raise ValueError(f"{path}:{number}: unexpected line: {raw!r}")
    return entries


def _via(text: str) -> str:
    text = text.strip()
    return text if text == DIRECT else utils.canonicalize_name(text)


def project_requirements(*extras: str) -> list[requirements.Requirement]:
    """pyproject.toml's base dependencies plus those of ``extras``, as the images see them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    found = [requirements.Requirement(text) for text in texts]
    # evaluate() lays TARGET over this interpreter's values (and extra="").
    return [req for req in found if req.marker is None or req.marker.evaluate(TARGET)]
