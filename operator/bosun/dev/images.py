"""What the node emulator runs for a container image.

An image in the local image store (``imagestore``, filled by ``make images``) runs from its own
root filesystem (``emulator.container``): Bosun's two shipped images are there under the
references the chart uses, ``ghcr.io/bosun-dev/bosun:0.1.0`` and
``ghcr.io/bosun-dev/bosun-runner:0.1.0``. Two kinds of reference run a local command instead:

- under ``checkout.invalid/`` (a registry that cannot exist), Bosun's images mapped to this
  checkout's code through this machine's Python: the fast path, for tests that say so by naming
  it (``CHECKOUT_RUNNER``);
- the stand-ins ``python`` and ``busybox``, for the plain pods tests make.

Anything else is not present, as on a node that may not pull: the kubelet's
``ErrImageNeverPull``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence

from bosun.dev import container, imagestore

__all__ = [
    "CHECKOUT_OPERATOR",
    "CHECKOUT_REGISTRY",
    "CHECKOUT_RUNNER",
    "FromImage",
    "Image",
    "LocalCommand",
    "UnknownImageError",
    "known_images",
    "local_argv",
    "repository_name",
    "resolve",
]

CHECKOUT_REGISTRY = "checkout.invalid"
CHECKOUT_OPERATOR = f"{CHECKOUT_REGISTRY}/bosun"
CHECKOUT_RUNNER = f"{CHECKOUT_REGISTRY}/bosun-runner"


@dataclasses.dataclass(frozen=True)
class Image:
    """How one image's commands map to local programs."""

    entrypoint: tuple[str, ...]
    translate: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


class UnknownImageError(ValueError):
    """The node has no such image (and may not pull one)."""


@dataclasses.dataclass(frozen=True)
class LocalCommand:
    """Run ``argv`` on this machine."""

    argv: list[str]


@dataclasses.dataclass(frozen=True)
class FromImage:
    """Run the container from a stored image."""

    image: imagestore.StoredImage


def _python() -> tuple[str, ...]:
    return (sys.executable,)


def known_images() -> dict[str, Image]:
    """The local-command images, by reference without tag (see the module docstring)."""
    python = _python()
    bosun = {
        "bosun": (*python, "-m", "bosun"),
        "python": python,
        "python3": python,
    }
    return {
        CHECKOUT_OPERATOR: Image(entrypoint=("bosun",), translate=bosun),
        # As runner-image/Dockerfile: ENTRYPOINT ["python", "-m", "bosun.runner"].
        CHECKOUT_RUNNER: Image(entrypoint=("python", "-m", "bosun.runner"), translate=bosun),
        "python": Image(entrypoint=("python3",), translate={"python": python, "python3": python}),
        "busybox": Image(entrypoint=("sh",)),
    }


def repository_name(image: str) -> str:
    """An image reference without tag or digest (``checkout.invalid/bosun-runner:x`` gives
    ``checkout.invalid/bosun-runner``, ``docker.io/library/busybox`` gives ``busybox``)."""
    head, _, last = imagestore.normalise(image).split("@", 1)[0].rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}".removeprefix("docker.io/library/")


def local_argv(
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    images: Mapping[str, Image] | None = None,
) -> list[str]:
    """The argv to run locally for a local-command image, per the Kubernetes rules."""
    table = known_images() if images is None else images
    spec = table.get(repository_name(image))
    if spec is None:
        raise UnknownImageError(
            f'Container image "{image}" is not present with pull policy of Never'
        )
    argv = container.argv_for(spec.entrypoint, (), command, args)
    if not argv:
        raise UnknownImageError(f"image {image!r} has no entrypoint and the container no command")
    head = spec.translate.get(argv[0])
    if head is not None:
        argv = [*head, *argv[1:]]
    return argv


def resolve(
    image: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    *,
    store: imagestore.Store | None,
    table: Mapping[str, Image] | None = None,
) -> LocalCommand | FromImage:
    """What to run for a container: from the store first, else a local command."""
    if store is not None and not image.startswith(f"{CHECKOUT_REGISTRY}/"):
        try:
            stored = store.lookup(image)
        except imagestore.StoreError as err:
            raise UnknownImageError(f"image store unreadable: {err}") from err
        if stored is not None:
            return FromImage(stored)
    return LocalCommand(local_argv(image, command, args, table))
