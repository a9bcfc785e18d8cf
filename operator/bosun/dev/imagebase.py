"""The base images ``make images`` makes from Debian's packages where the official one cannot be
pulled: CPython 3.11 on Debian bookworm, as ``python:3.11-slim-bookworm`` has.

``debootstrap`` installs the packages into a folder once. Two bases come out of it:

- the build base (``BUILD``), the whole tree less package lists, archives and documentation:
  what the Dockerfiles' build stage needs (a shell, venv with ensurepip, the CA certificates);
- the runtime base (``RUNTIME``): only the files of the packages Python needs at run time (the
  interpreter, its standard library and shared libraries, CA certificates, time zones, and the
  shell and core utilities the final stage's one RUN uses), with dpkg's database cut down to
  them. No package manager, no Perl, no debconf: what the images run, and nothing to install
  more with.

Both put ``python`` and ``python3`` in /usr/local/bin, where the official image has them, so an
environment made in one runs in the other.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat
from collections.abc import Callable, Iterable

__all__ = [
    "BUILD",
    "MIRROR",
    "PACKAGES",
    "RUNTIME",
    "RUNTIME_SEEDS",
    "SUITE",
    "Run",
    "keep_closure",
    "make_build_tree",
    "make_runtime_tree",
]

BUILD = "localhost/bosun/python:3.11-slim-bookworm"
RUNTIME = "localhost/bosun/python:3.11-runtime-bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the official slim base has that the Dockerfiles use: CPython 3.11 with venv (ensurepip
# and its wheels; Debian's venv needs distutils), and the CA certificates.
PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",
    "python3-lib2to3",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "ca-certificates",
)
# The runtime base: these packages and what they depend on, less what is only there to install
# or configure packages (their maintainer scripts have run already, in the build tree).
RUNTIME_SEEDS = (
    "python3.11-minimal",
    "libpython3.11-stdlib",
    # manylinux wheels may link the system's C++ runtime (google-re2 does).
    "libstdc++6",
    "base-files",
    "netbase",
    "tzdata",
    "media-types",
    "dash",
    "coreutils",
    "findutils",
)
_NEVER = frozenset(
    {"dpkg", "apt", "debconf", "debconf-2.0", "perl-base", "openssl", "debianutils", "awk"}
)
# Left out of both: package lists and downloaded archives, documentation, manual pages,
# translations; and of the runtime base also glibc's iconv modules (CPython has its own codecs).
_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
)
_RUNTIME_SKIP = re.compile(
    r"^/(usr/share/(doc|man|info|locale|lintian|bug)|usr/lib/x86_64-linux-gnu/gconv)(/|$)"
)
# Files that maintainer scripts wrote, which no package lists.
_GENERATED = (
    "etc/passwd",
    "etc/group",
    "etc/ld.so.cache",
    "etc/nsswitch.conf",
    "etc/localtime",
    "etc/timezone",
    "etc/ssl/certs",
    "usr/bin/sh",
)
_MERGED_USR = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_EMPTY = {"dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "root": 0o700, "home": 0o755}

Run = Callable[[list[str]], object]


def _python_links(rootfs: pathlib.Path) -> None:
    (rootfs / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        link = rootfs / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to("/usr/bin/python3.11")


def make_build_tree(rootfs: pathlib.Path, run: Run) -> None:
    """debootstrap the packages into ``rootfs`` and prune it into the build base's tree."""
    include = ",".join(PACKAGES)
    # --force-check-gpg: the packages come over http; their signatures must check.
    argv = ["debootstrap", "--force-check-gpg", "--variant=minbase", f"--include={include}"]
    run([*argv, SUITE, str(rootfs), MIRROR])
    shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
    for relative in _PRUNE:
        target = rootfs / relative
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    # Device nodes are the runtime's to provide; an image carries none.
    for node in (rootfs / "dev").iterdir():
        if node.is_dir() and not node.is_symlink():
            shutil.rmtree(node)
        else:
            node.unlink()
    _python_links(rootfs)


# --- the runtime subset --------------------------------------------------------------------


def _status(tree: pathlib.Path) -> list[tuple[dict[str, str], str]]:
    """The stanzas of dpkg's status file: the fields (continuation lines joined) and the text."""
    stanzas: list[tuple[dict[str, str], str]] = []
    for block in (tree / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package"):
            stanzas.append((fields, block.strip("\n")))
    return stanzas


def _names(relation: str) -> list[list[str]]:
    """``a (>= 1) | b, c:any`` as [[a, b], [c]]."""
    groups = []
    for group in relation.split(","):
        names = [re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        groups.append([n for n in names if n])
    return [g for g in groups if g]


def keep_closure(
    stanzas: Iterable[dict[str, str]], seeds: Iterable[str], never: Iterable[str] = _NEVER
) -> set[str]:
    """The installed packages ``seeds`` need, through Depends and Pre-Depends, never ``never``;
    of alternatives the first installed one, a virtual package by what provides it."""
    installed = {s["Package"]: s for s in stanzas if "installed" in s.get("Status", "installed")}
    provides: dict[str, str] = {}
    for name, stanza in installed.items():
        for group in _names(stanza.get("Provides", "")):
            provides.setdefault(group[0], name)
    banned = set(never)
    keep: set[str] = set()
    todo = list(seeds)
    while todo:
        name = todo.pop()
        name = name if name in installed else provides.get(name, name)
        if name in keep or name in banned or name not in installed:
            continue
        keep.add(name)
        stanza = installed[name]
        relations = ", ".join(filter(None, (stanza.get("Depends"), stanza.get("Pre-Depends"))))
        for group in _names(relations):
            chosen = next((alt for alt in group if alt in installed or alt in provides), group[0])
            todo.append(chosen)
    return keep


def _listed(tree: pathlib.Path, package: str) -> list[str]:
    info = tree / "var/lib/dpkg/info"
    for name in (f"{package}.list", f"{package}:amd64.list", f"{package}:all.list"):
        if (info / name).exists():
            return (info / name).read_text().splitlines()
    return []


def _copy(tree: pathlib.Path, rootfs: pathlib.Path, relative: str) -> None:
    source, target = tree / relative, rootfs / relative
    info = os.lstat(source)
    if stat.S_ISDIR(info.st_mode):
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, stat.S_IMODE(info.st_mode))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        return
    if stat.S_ISLNK(info.st_mode):
        target.symlink_to(os.readlink(source))
    else:
        shutil.copy2(source, target, follow_symlinks=False)
    os.lchown(target, info.st_uid, info.st_gid)


def make_runtime_tree(tree: pathlib.Path, rootfs: pathlib.Path) -> set[str]:
    """Copy into ``rootfs`` only what the runtime packages of ``tree`` installed; return them."""
    stanzas = _status(tree)
    keep = keep_closure((fields for fields, _ in stanzas), RUNTIME_SEEDS)
    rootfs.mkdir(parents=True)
    os.chmod(rootfs, 0o755)
    (rootfs / "usr").mkdir()
    for link, target in _MERGED_USR.items():
        (rootfs / target).mkdir(parents=True, exist_ok=True)
        (rootfs / link).symlink_to(target)
    for package in sorted(keep):
        for path in _listed(tree, package):
            if (
                path in ("/.", "")
                or _RUNTIME_SKIP.match(path)
                or not os.path.lexists(tree / path[1:])
            ):
                continue
            _copy(tree, rootfs, path.lstrip("/"))
    for relative in _GENERATED:
        source = tree / relative
        if source.is_dir() and not source.is_symlink():
            for found in sorted(source.rglob("*")):
                _copy(tree, rootfs, str(found.relative_to(tree)))
        elif os.path.lexists(source):
            _copy(tree, rootfs, relative)
    for name, mode in _EMPTY.items():
        (rootfs / name).mkdir(exist_ok=True)
        os.chmod(rootfs / name, mode)
    for name in ("tmp", "var/tmp"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
        os.chmod(rootfs / name, 0o1777)
    # dpkg's database, cut down to what is there, so scanners still see the packages.
    status = rootfs / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    kept = [text for fields, text in stanzas if fields["Package"] in keep]
    status.write_text("\n\n".join(kept) + "\n")
    _python_links(rootfs)
    return keep
