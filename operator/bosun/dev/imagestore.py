"""The node emulator's local images: unpacked root filesystems and their configs.

``imagebuild`` puts each image it builds here; the node emulator runs containers from here, the
way a kubelet runs what its container runtime has pulled (with no registry: an image that is not
here is ``ErrImageNeverPull``). Layout, under ``<cache>/bosun/images`` (``BOSUN_IMAGE_STORE``
moves it)::

    index.json             {"ghcr.io/bosun-dev/bosun-runner:0.1.0": "<key>", ...}
    store/<key>/rootfs/    the image's root filesystem
    store/<key>/image.json its config (user, env, entrypoint, cmd, workingDir, labels), base, size

References are normalised as Docker does (``busybox`` is ``docker.io/library/busybox:latest``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "PRUNE_GRACE_SECONDS",
    "STORE_ENV",
    "Store",
    "StoreError",
    "StoredImage",
    "normalise",
]

STORE_ENV = "BOSUN_IMAGE_STORE"
PRUNE_GRACE_SECONDS = 3600.0


class StoreError(RuntimeError):
    """The store is unreadable or an image in it is incomplete."""


def normalise(reference: str) -> str:
    """``registry/repository:tag`` (or ``@digest``) with Docker's defaults filled in."""
    name, at, digest = reference.partition("@")
    first, slash, _ = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}"
        if "/" not in name.removeprefix("docker.io/"):
            name = f"docker.io/library/{name.removeprefix('docker.io/')}"
    if at:
        return f"{name}@{digest}"
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """One image in the store."""

    reference: str
    key: str
    folder: pathlib.Path
    config: Mapping[str, Any]

    @property
    def rootfs(self) -> pathlib.Path:
        return self.folder / "rootfs"

    @property
    def user(self) -> str:
        return str(self.config.get("user") or "")

    @property
    def env(self) -> list[str]:
        return list(self.config.get("env") or [])

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("entrypoint") or [])

    @property
    def cmd(self) -> list[str]:
        return list(self.config.get("cmd") or [])

    @property
    def working_dir(self) -> str:
        return str(self.config.get("workingDir") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("labels") or {})

    @property
    def size_bytes(self) -> int:
        return int(self.config.get("sizeBytes") or 0)

    @property
    def base(self) -> str:
        return str(self.config.get("base") or "")

    @property
    def base_id(self) -> str:
        return str(self.config.get("baseId") or "")


def _disk_usage(folder: pathlib.Path) -> int:
    """Bytes the files under ``folder`` take, each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            stat = os.lstat(os.path.join(dirpath, name))
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_blocks * 512
    return total


class Store:
    """The image store in one folder."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> Store:
        override = os.environ.get(STORE_ENV)
        if override:
            return cls(pathlib.Path(override))
        from bosun.dev import provision  # noqa: PLC0415 - the cache folder's one definition

        return cls(provision.cache_root() / "images")

    # --- reading --------------------------------------------------------------------------

    def _index(self) -> dict[str, str]:
        path = self.root / "index.json"
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise StoreError(f"{path} is unreadable: {err}") from err
        return {str(k): str(v) for k, v in loaded.items()}

    def references(self) -> list[str]:
        return sorted(self._index())

    def lookup(self, reference: str) -> StoredImage | None:
        """The image ``reference`` names, or None when the store has none under that name."""
        ref = normalise(reference)
        key = self._index().get(ref)
        return None if key is None else self.get(ref, key)

    def get(self, reference: str, key: str) -> StoredImage | None:
        """The image with ``key`` when it is complete in the store."""
        folder = self.root / "store" / key
        try:
            config = json.loads((folder / "image.json").read_text())
        except (OSError, ValueError):
            return None
        if not (folder / "rootfs").is_dir():
            return None
        return StoredImage(normalise(reference), key, folder, config)

    # --- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str = ".lock") -> Iterator[None]:
        """Serialise writers of the index (``.lock``), or builders (``.build.lock``: two test
        sessions building at once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / name).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def point(self, reference: str, key: str) -> None:
        """Make ``reference`` name the image with ``key`` (the one it named is retired)."""
        with self.locked():
            index = self._index()
            old = index.get(normalise(reference))
            if old not in (None, key):
                self._retire(old)
            index[normalise(reference)] = key
            self._write_index(index)

    def remove(self, reference: str) -> None:
        """Forget ``reference`` (its files stay until ``prune``)."""
        with self.locked():
            index = self._index()
            old = index.pop(normalise(reference), None)
            if old is not None:
                self._retire(old)
            self._write_index(index)

    def _write_index(self, index: Mapping[str, str]) -> None:
        """Replace index.json at once (the caller holds the lock)."""
        tmp = self.root / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.root / "index.json")

    def add(
        self,
        reference: str,
        key: str,
        base: tuple[str, str],
        unpack: Callable[[pathlib.Path], Mapping[str, Any]],
    ) -> StoredImage:
        """Unpack an image under ``key`` (``unpack`` fills a rootfs folder and returns the
        config), name it ``reference`` and drop images no name points at any more."""
        (self.root / "store").mkdir(parents=True, exist_ok=True)
        staging = self.root / "store" / f".{key}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        config = dict(unpack(staging / "rootfs"))
        config.update(
            reference=normalise(reference),
            key=key,
            base=base[0],
            baseId=base[1],
            sizeBytes=_disk_usage(staging / "rootfs"),
        )
        (staging / "image.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        final = self.root / "store" / key
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        self.point(reference, key)
        self.prune()
        image = self.get(reference, key)
        if image is None:
            raise StoreError(f"{final} is incomplete right after it was written")
        return image

    def derive(
        self, source: StoredImage, reference: str, change: Callable[[pathlib.Path], None]
    ) -> StoredImage:
        """A copy of ``source`` under ``reference``, changed by ``change`` on its rootfs; for
        tests that need a broken image. The copy hard-links the files, so ``change`` may delete
        or replace files but never write into one (that would change ``source`` too)."""
        key = f"{source.key}-{normalise(reference).encode().hex()[:16]}"

        def unpack(rootfs: pathlib.Path) -> Mapping[str, Any]:
            shutil.copytree(source.rootfs, rootfs, symlinks=True, copy_function=os.link)
            change(rootfs)
            return source.config

        return self.add(reference, key, (source.base, source.base_id), unpack)

    def _retire(self, key: str) -> None:
        folder = self.root / "store" / key
        if folder.is_dir():
            (folder / ".retired").touch()

    def prune(self, grace_seconds: float = PRUNE_GRACE_SECONDS) -> None:
        """Delete stored images that no reference has named for ``grace_seconds``: a pod
        started from one just before it was replaced may still run from it."""
        keep = set(self._index().values())
        cutoff = time.time() - grace_seconds
        for folder in (self.root / "store").iterdir():
            if folder.name in keep or folder.name.startswith("."):
                continue
            marker = folder / ".retired"
            if not marker.exists():
                marker.touch()
            if marker.stat().st_mtime <= cutoff:
                shutil.rmtree(folder, ignore_errors=True)
