"""Which local command the node emulator runs for a container image.

No container runtime exists here, so the node emulator keeps a known table from image names to
local commands. An image is matched by the last segment of its repository, without registry,
tag or digest (``ghcr.io/bosun-dev/bosun-runner:0.1.0`` matches ``bosun-runner``). A container
without ``command`` runs the image's entrypoint; a command whose first word the image
translates (``bosun`` → ``python -m bosun``) runs through this machine's Python, so the pod
runs the code of the checkout under test. Unknown images are refused with a clear reason.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence

__all__ = ["Image", "UnknownImageError", "known_images", "local_argv", "repository_name"]


@dataclasses.dataclass(frozen=True)
class Image:
    """How one image's commands map to local programs."""

    entrypoint: tuple[str, ...]
    translate: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


class UnknownImageError(ValueError):
    """The emulator has no local command for an image."""


def _python() -> tuple[str, ...]:
    return (sys.executable,)


def known_images() -> dict[str, Image]:
    """The images the emulator can run, by last repository segment."""
    python = _python()
    bosun = {
        "bosun": (*python, "-m", "bosun"),
        "python": python,
        "python3": python,
    }
    return {
        "bosun": Image(entrypoint=("bosun",), translate=bosun),
        # As runner-image/Dockerfile: ENTRYPOINT ["python", "-m", "bosun.runner"].
        "bosun-runner": Image(entrypoint=("python", "-m", "bosun.runner"), translate=bosun),
        "python": Image(entrypoint=("python3",), translate={"python": python, "python3": python}),
        "busybox": Image(entrypoint=("sh",)),
    }


def repository_name(image: str) -> str:
    """The last repository segment of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def local_argv(
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    images: Mapping[str, Image] | None = None,
) -> list[str]:
    """The argv to run locally for a container, per the Kubernetes command/args rules."""
    table = known_images() if images is None else images
    spec = table.get(repository_name(image))
    if spec is None:
        raise UnknownImageError(
            f"the node emulator has no local command for image {image!r}; "
            f"known images: {', '.join(sorted(table))}"
        )
    argv = list(command) if command else list(spec.entrypoint)
    argv += list(args or ())
    if not argv:
        raise UnknownImageError(f"image {image!r} has no entrypoint and the container no command")
    head = spec.translate.get(argv[0])
    if head is not None:
        argv = [*head, *argv[1:]]
    return argv
