"""Build Bosun's two images here, from their real Dockerfiles, and put them where the node
emulator runs them (``make images``, ``bosun dev images``).

The builder is docker or podman when one works, else Debian's ``buildah`` (installed with
apt-get when missing and this is root), with chroot isolation, so no container engine or daemon
is needed. The base is the Dockerfiles' default (the official slim Python) when it can be
pulled; where it cannot, ``imagebase`` makes the equivalent from Debian bookworm's own packages
(CPython 3.11, as the official base has) with ``debootstrap``, and the build gets it as
``BASE_IMAGE`` and its runtime-only twin as ``RUNTIME_IMAGE`` (the final stage). The machine's
CA bundle, when the package index needs one, reaches the build only as the ``ca-bundle`` build
secret. Each image is cached by the content of what its build reads (Dockerfile, locks,
pyproject.toml, README.md, operator/, the base), so an unchanged tree builds nothing. A built
image is exported into the image store (``imagestore``): its root filesystem and its config.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence

from bosun.dev import imagebase, imagestore

__all__ = [
    "IMAGES",
    "OFFICIAL_BASE",
    "REGISTRY",
    "Bases",
    "BuildError",
    "Built",
    "ImageSpec",
    "build_all",
    "builder",
    "content_key",
    "context_digest",
    "context_files",
    "ensure",
    "ignore_patterns",
    "ignored",
    "reference",
    "repo_root",
    "version",
]

REGISTRY = "ghcr.io/bosun-dev"
OFFICIAL_BASE = "docker.io/library/python:3.11-slim-bookworm"
_CA_CANDIDATES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
_PULL_TIMEOUT = 90.0


class BuildError(RuntimeError):
    """An image could not be built; the message says which step and why."""


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One shipped image: its repository name and its Dockerfile in the repository."""

    name: str
    dockerfile: str


IMAGES = (
    ImageSpec("bosun", "Dockerfile"),
    ImageSpec("bosun-runner", "runner-image/Dockerfile"),
)


@dataclasses.dataclass(frozen=True)
class Built:
    """A shipped image in the store, and whether this call built it."""

    name: str
    """The image's repository name, ``bosun`` or ``bosun-runner`` (``ImageSpec.name``)."""
    reference: str
    image: imagestore.StoredImage
    built: bool
    seconds: float


def _log(message: str) -> None:
    print(f"[bosun images] {message}", file=sys.stderr, flush=True)


def repo_root() -> pathlib.Path:
    """The checkout this module belongs to (the build context)."""
    return pathlib.Path(__file__).resolve().parents[3]


def version(root: pathlib.Path) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())
    return str(project["project"]["version"])


def reference(name: str, tag: str) -> str:
    """The reference the chart pulls, e.g. ``ghcr.io/bosun-dev/bosun-runner:0.1.0``."""
    return f"{REGISTRY}/{name}:{tag}"


# --- what a build reads ---------------------------------------------------------------------


def ignore_patterns(root: pathlib.Path) -> list[str]:
    """The .dockerignore's patterns, in order."""
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """Docker's rule for a context path: the last pattern that matches it (or a folder above
    it) wins; ``!`` lets it back in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes):
            verdict = not negate
    return verdict


def context_files(root: pathlib.Path) -> list[pathlib.Path]:
    """The files a build of ``root`` sends as its context (the .dockerignore applied), sorted."""
    patterns = ignore_patterns(root)
    reincluded = [p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")]
    files: list[pathlib.Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = pathlib.Path(dirpath).relative_to(root).as_posix()
        prefix = "" if here == "." else f"{here}/"
        # A folder that is ignored, with nothing under it let back in, is not walked.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not ignored(prefix + d, patterns)
            or any(r.startswith(prefix + d + "/") or r == prefix + d for r in reincluded)
        )
        files += [root / (prefix + f) for f in filenames if not ignored(prefix + f, patterns)]
    return sorted(files)


def context_digest(root: pathlib.Path) -> bytes:
    """A digest of the build context (names and contents), the same for both images."""
    digest = hashlib.sha256()
    for path in context_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.digest()


def content_key(
    root: pathlib.Path, spec: ImageSpec, base: str, base_id: str, context: bytes
) -> str:
    """A digest of everything the image's build reads (``context``: ``context_digest``, then
    its Dockerfile and the base): a different key, a different image."""
    digest = hashlib.sha256(context)
    digest.update(f"base={base}@{base_id}\n".encode())
    digest.update(spec.dockerfile.encode() + b"\0")
    digest.update(hashlib.sha256((root / spec.dockerfile).read_bytes()).digest())
    return digest.hexdigest()[:32]


def _revision(root: pathlib.Path) -> str:
    """The commit the tree is at, ``-dirty`` when the image's inputs differ from it."""
    try:
        head = _run(["git", "rev-parse", "HEAD"], cwd=root).strip()
        # What the .dockerignore lets back into the context, and the Dockerfiles.
        paths = [p[1:].rstrip("/") for p in ignore_patterns(root) if p.startswith("!")]
        paths += [spec.dockerfile for spec in IMAGES]
        dirty = _run(["git", "status", "--porcelain", "--", *paths], cwd=root).strip()
    except BuildError:
        return "unknown"
    return f"{head}-dirty" if dirty else head


def _ca_bundle() -> pathlib.Path | None:
    for name in _CA_CANDIDATES:
        value = os.environ.get(name)
        if value and pathlib.Path(value).is_file():
            return pathlib.Path(value)
    system = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
    return system if system.is_file() else None


# --- the tools ------------------------------------------------------------------------------


def _run(
    argv: Sequence[str],
    *,
    cwd: pathlib.Path | None = None,
    timeout: float = 1800,
    env: Mapping[str, str] | None = None,
) -> str:
    """``argv``'s output; BuildError with the end of what it printed when it fails."""
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=full_env,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BuildError(f"{argv[0]}: {err}") from err
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise BuildError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _works(argv: Sequence[str]) -> bool:
    try:
        return (
            subprocess.run(list(argv), capture_output=True, timeout=30, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(
            f"{', '.join(packages)} missing; on Debian: apt-get install {' '.join(packages)}"
        )
    _log(f"Installing {', '.join(packages)} from Debian")
    env_argv = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    try:
        _run(env_argv, timeout=900)
    except BuildError:
        _run(["apt-get", "update"], timeout=900)
        _run(env_argv, timeout=900)


def builder() -> str:
    """``docker`` or ``podman`` when one can build here, else ``buildah`` (installed if need be)."""
    forced = os.environ.get("BOSUN_IMAGE_BUILDER")
    if forced:
        return forced
    if shutil.which("docker") and _works(["docker", "info"]):
        return "docker"
    if shutil.which("podman") and _works(["podman", "info"]):
        return "podman"
    if shutil.which("buildah") is None:
        _apt_install("buildah")
    return "buildah"


def _image_id(tool: str, ref: str) -> str | None:
    argv = [tool, "image", "inspect", "--format", "{{.Id}}", ref]
    if tool == "buildah":
        argv = ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref]
    try:
        return _run(argv, timeout=60).strip() or None
    except BuildError:
        return None


def _pull(tool: str, ref: str) -> bool:
    try:
        _run([tool, "pull", "--quiet" if tool == "docker" else "-q", ref], timeout=_PULL_TIMEOUT)
    except BuildError as err:
        _log(f"Cannot pull {ref}: {str(err).splitlines()[-1]}")
        return False
    return True


# --- the base -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bases:
    """The build stage's base and the final stage's, with their image ids."""

    build: str
    runtime: str
    ids: str

    @property
    def made(self) -> bool:
        return self.build == imagebase.BUILD


def _bases(tool: str, cache: pathlib.Path) -> Bases:
    """The official base if present or pullable (both stages), else the two made here."""
    forced = os.environ.get("BOSUN_BASE_IMAGE")
    if forced:
        found = _image_id(tool, forced)
        if not found:
            raise BuildError(f"BOSUN_BASE_IMAGE={forced} is not an image {tool} has")
        return Bases(forced, forced, found)
    official, ids = _image_id(tool, OFFICIAL_BASE), _made_ids(tool)
    if official is None and ids is None and _pull(tool, OFFICIAL_BASE):
        official = _image_id(tool, OFFICIAL_BASE)
    if official:
        return Bases(OFFICIAL_BASE, OFFICIAL_BASE, official)
    if ids is None:
        _make_bases(tool, cache / "base")
        ids = _made_ids(tool)
    if ids is None:
        raise BuildError(f"{imagebase.BUILD} or {imagebase.RUNTIME} is missing after being made")
    return Bases(imagebase.BUILD, imagebase.RUNTIME, ids)


def _made_ids(tool: str) -> str | None:
    build, runtime = _image_id(tool, imagebase.BUILD), _image_id(tool, imagebase.RUNTIME)
    return f"{build},{runtime}" if build and runtime else None


def _make_bases(tool: str, folder: pathlib.Path) -> None:
    """Both bases from one debootstrap of Debian bookworm's packages."""
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap")
    started = time.monotonic()
    tree, runtime = folder / "tree", folder / "runtime"
    for old in (tree, runtime):
        if old.exists():
            shutil.rmtree(old)
    tree.mkdir(parents=True)
    _log(f"Making {imagebase.BUILD} with debootstrap ({imagebase.SUITE}, {imagebase.MIRROR})")
    imagebase.make_build_tree(tree, lambda argv: _run(argv, timeout=1800))
    kept = imagebase.make_runtime_tree(tree, runtime)
    _import_rootfs(tool, tree, imagebase.BUILD)
    _import_rootfs(tool, runtime, imagebase.RUNTIME)
    shutil.rmtree(tree)
    shutil.rmtree(runtime)
    _log(
        f"Made {imagebase.BUILD} and {imagebase.RUNTIME} ({len(kept)} packages)"
        f" in {time.monotonic() - started:.0f}s"
    )


def _import_rootfs(tool: str, rootfs: pathlib.Path, ref: str) -> None:
    path = "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    if tool != "buildah":
        with tempfile.TemporaryDirectory() as tmp:
            archive = pathlib.Path(tmp) / "rootfs.tar"
            _run(["tar", "-C", str(rootfs), "-cf", str(archive), "."])
            changes = ["--change", f"ENV {path}", "--change", "ENV LANG=C.UTF-8"]
            _run([tool, "import", *changes, "--change", 'CMD ["python3"]', str(archive), ref])
        return
    container = _run(["buildah", "from", "scratch"]).strip()
    try:
        mount = pathlib.Path(_run(["buildah", "mount", container]).strip())
        _run(["cp", "-a", f"{rootfs}/.", f"{mount}/"])
        _run(["buildah", "umount", container])
        config = ["--env", path, "--env", "LANG=C.UTF-8", "--cmd", "python3"]
        _run(["buildah", "config", *config, container])
        _run(["buildah", "commit", "--quiet", container, ref])
    finally:
        _works(["buildah", "rm", container])


# --- the images -----------------------------------------------------------------------------


def _build(
    tool: str, root: pathlib.Path, spec: ImageSpec, ref: str, *, bases: Bases, tag: str
) -> None:
    argv = [tool, "build"] if tool != "buildah" else ["buildah", "build", "--isolation", "chroot"]
    argv += ["--layers"] if tool == "buildah" else []
    argv += ["-f", str(root / spec.dockerfile), "-t", ref]
    argv += ["--build-arg", f"BASE_IMAGE={bases.build}"]
    argv += ["--build-arg", f"RUNTIME_IMAGE={bases.runtime}", "--build-arg", f"VERSION={tag}"]
    argv += ["--build-arg", f"REVISION={_revision(root)}"]
    ca = _ca_bundle()
    if ca is not None:
        argv += ["--secret", f"id=ca-bundle,src={ca}"]
    if tool == "buildah" and bases.made:
        # Never reach for a registry: the bases are local.
        argv += ["--pull-never"]
    buildkit = {"DOCKER_BUILDKIT": "1"} if tool == "docker" else None
    _run([*argv, str(root)], timeout=3600, env=buildkit)


def _export(tool: str, ref: str, destination: pathlib.Path) -> dict[str, object]:
    """Unpack the image's root filesystem into ``destination`` and return its config."""
    destination.mkdir(parents=True)
    if tool == "buildah":
        raw = json.loads(_run(["buildah", "inspect", "--type", "image", ref]))
        config = raw["OCIv1"].get("config") or {}
        image_id = raw.get("FromImageID", "")
        container = _run(["buildah", "from", "--pull-never", ref]).strip()
        try:
            mount = _run(["buildah", "mount", container]).strip()
            _run(["cp", "-a", f"{mount}/.", f"{destination}/"])
        finally:
            _works(["buildah", "umount", container])
            _works(["buildah", "rm", container])
    else:
        raw = json.loads(_run([tool, "image", "inspect", ref]))[0]
        config = raw.get("Config") or {}
        image_id = raw.get("Id", "")
        container = _run([tool, "create", ref]).strip()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                archive = pathlib.Path(tmp) / "rootfs.tar"
                _run([tool, "export", "-o", str(archive), container])
                _run(["tar", "-C", str(destination), "-xpf", str(archive)])
        finally:
            _works([tool, "rm", container])
    return {
        "id": image_id,
        "user": config.get("User") or "",
        "env": config.get("Env") or [],
        "entrypoint": config.get("Entrypoint") or [],
        "cmd": config.get("Cmd") or [],
        "workingDir": config.get("WorkingDir") or "",
        "labels": config.get("Labels") or {},
    }


def ensure(
    names: Sequence[str] | None = None,
    *,
    root: pathlib.Path | None = None,
    store: imagestore.Store | None = None,
) -> list[Built]:
    """Both shipped images (or ``names``) in the store, built only where the content changed."""
    root = root or repo_root()
    store = store or imagestore.Store.default()
    tag = version(root)
    wanted = [spec for spec in IMAGES if names is None or spec.name in names]
    results: list[Built] = []
    tool: str | None = None
    bases: Bases | None = None
    context = context_digest(root)
    for spec in wanted:
        ref = reference(spec.name, tag)
        current = store.lookup(ref)
        started = time.monotonic()
        if current is not None and current.key == content_key(
            root, spec, current.base, current.base_id, context
        ):
            results.append(Built(spec.name, ref, current, built=False, seconds=0.0))
            continue
        # One build at a time per store (two test sessions), each exporting its own result.
        with store.locked(".build.lock"):
            tool = tool or builder()
            bases = bases or _bases(tool, store.root)
            key = content_key(root, spec, bases.build, bases.ids, context)
            cached = store.get(ref, key)
            if cached is None:
                _log(f"Building {ref} with {tool} on {bases.build} and {bases.runtime}")
                _build(tool, root, spec, ref, bases=bases, tag=tag)
                unpack = functools.partial(_export, tool, ref)
                cached = store.add(ref, key, (bases.build, bases.ids), unpack)
            else:
                store.point(ref, key)
        results.append(Built(spec.name, ref, cached, True, time.monotonic() - started))
        _log(f"{ref}: {cached.size_bytes / 1e6:.0f} MB ({time.monotonic() - started:.0f}s)")
    return results


def build_all() -> list[Built]:
    """``make images``: both images, each reported with its size and whether it was built."""
    results = ensure()
    for result in results:
        state = f"built in {result.seconds:.0f}s" if result.built else "up to date"
        print(f"{result.reference}  {result.image.size_bytes / 1e6:.0f} MB  {state}")
    return results
