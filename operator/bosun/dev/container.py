"""Run one container from its image's root filesystem, as a container runtime would.

``plan`` (pure) turns a pod's container, its image (``imagestore.StoredImage``) and the pod's
folder into a ``Launch``: the command by the Kubernetes rules (``command`` replaces the image's
entrypoint, ``args`` its cmd), the user (``runAsUser``/``runAsGroup`` over the image's numeric
``USER``; ``runAsNonRoot`` refuses root the way the kubelet does), the environment (the image's,
then the pod's), the working directory and the mounts: the pod's emptyDir volumes, the
service-account token where the pod mounts it, the kubelet's ``/etc/hosts`` and
``/etc/hostname``, and the termination-message file. ``python -m bosun.dev.container
LAUNCH.json`` then does it: in a mount namespace of its own it puts a fresh overlay over the
image (so nothing a container writes reaches the image or the next container), mounts /proc, a
small /dev and the volumes, makes the root read-only when ``readOnlyRootFilesystem`` is set,
chroots, drops to the user with no_new_privs and execs the command. The network namespace is the
node's, as with ``hostNetwork``: the API server and test servers are on this machine's loopback.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ConfigError", "Launch", "Mount", "main", "plan"]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# <sys/mount.h> and <sched.h>
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_CLONE_NEWNS = 0x00020000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


class ConfigError(ValueError):
    """The container cannot be created as specified (the kubelet's CreateContainerConfigError)."""


@dataclasses.dataclass(frozen=True)
class Mount:
    """A host path mounted at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool = False
    is_file: bool = False


@dataclasses.dataclass(frozen=True)
class Launch:
    """Everything ``main`` needs to start the container; written as JSON next to the pod."""

    rootfs: str
    workdir: str
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int]
    cwd: str
    read_only_root: bool
    mounts: list[Mount]
    termination_path: str = DEFAULT_TERMINATION_PATH

    def dump(self, path: pathlib.Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def load(cls, path: pathlib.Path) -> Launch:
        raw = json.loads(path.read_text())
        raw["mounts"] = [Mount(**m) for m in raw["mounts"]]
        return cls(**raw)


def argv_for(
    entrypoint: Sequence[str],
    cmd: Sequence[str],
    command: Sequence[str] | None,
    args: Sequence[str] | None,
) -> list[str]:
    """The Kubernetes rules: ``command`` replaces ENTRYPOINT (and drops CMD), ``args`` CMD."""
    if command:
        return [*command, *(args or [])]
    return [*entrypoint, *(args if args else cmd)]


def _numeric_user(user: str) -> tuple[int | None, int | None]:
    """``uid[:gid]`` of an image's USER; (None, None) when it is empty, a name stays unknown."""
    if not user:
        return 0, None
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else None
    gid = int(group) if group.isdigit() else None
    return uid, gid


def _user(
    pod_sc: Mapping[str, Any], sc: Mapping[str, Any], image_user: str, where: str
) -> tuple[int, int, list[int]]:
    image_uid, image_gid = _numeric_user(image_user)
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", image_uid))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image_gid))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if uid is None:
        if non_root:
            raise ConfigError(
                f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                f"cannot verify user is non-root ({where})"
            )
        raise ConfigError(f"image user {image_user!r} is not numeric; the emulator needs a uid")
    if non_root and int(uid) == 0:
        raise ConfigError(f"container has runAsNonRoot and image will run as root ({where})")
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or ()]
    if pod_sc.get("fsGroup") is not None:
        groups.insert(0, int(pod_sc["fsGroup"]))
    return int(uid), int(gid if gid is not None else 0), groups


def _image_env(image_env: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in image_env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def plan(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    image: Any,
    *,
    workdir: pathlib.Path,
    env: Mapping[str, str],
    token_dir: pathlib.Path | None,
    volumes: Mapping[str, pathlib.Path],
) -> Launch:
    """How to start container ``spec`` of ``pod`` from ``image`` (an ``imagestore.StoredImage``).

    ``env`` is the pod's environment for it (kubelet variables included), ``volumes`` the host
    folder of each emptyDir volume, ``token_dir`` the service-account folder when one is written.
    """
    meta = pod["metadata"]
    where = f"pod: {meta.get('namespace')}/{meta.get('name')}, container: {spec['name']}"
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = spec.get("securityContext") or {}
    uid, gid, groups = _user(pod_sc, sc, image.user, where)
    argv = argv_for(image.entrypoint, image.cmd, spec.get("command"), spec.get("args"))
    if not argv:
        raise ConfigError(f"no command specified ({where})")
    full_env = {**_image_env(image.env), **env}
    full_env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    full_env.setdefault("HOME", "/")
    mounts: list[Mount] = []
    by_name = {v["name"]: v for v in pod["spec"].get("volumes") or ()}
    for vm in spec.get("volumeMounts") or ():
        volume = by_name.get(vm["name"])
        if volume is None:
            raise ConfigError(f"volumeMount {vm['name']!r} names no volume of the pod ({where})")
        read_only = bool(vm.get("readOnly"))
        if "emptyDir" in volume:
            source = volumes[vm["name"]]
        elif _is_token_volume(volume) and token_dir is not None:
            source, read_only = token_dir, True
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(f"volume {vm['name']!r} of kind {kinds} is not supported here")
        mounts.append(Mount(str(source), vm["mountPath"], read_only))
    for name in ("hosts", "hostname"):
        mounts.append(Mount(str(workdir.parent / name), f"/etc/{name}", True, is_file=True))
    return Launch(
        rootfs=str(image.rootfs),
        workdir=str(workdir),
        argv=argv,
        env=full_env,
        uid=uid,
        gid=gid,
        groups=groups,
        cwd=spec.get("workingDir") or image.working_dir or "/",
        read_only_root=bool(sc.get("readOnlyRootFilesystem")),
        mounts=mounts,
        termination_path=spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH,
    )


def _is_token_volume(volume: Mapping[str, Any]) -> bool:
    sources = (volume.get("projected") or {}).get("sources") or ()
    return any(source.get("serviceAccountToken") for source in sources)


# --- the launcher (runs as root, between the emulator and the container's process) ------------

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def enc(value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    result = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(result, f"mount {source} on {target}")


def _inside(root: pathlib.Path, path: str, hops: int = 40) -> pathlib.Path:
    """``path`` inside ``root`` with the image's symbolic links followed within ``root``
    (``/var/run`` is a link to ``/run`` in Debian), never out of it."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    current = root
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops -= 1
            if hops < 0:
                raise OSError(f"too many symbolic links under {path}")
            link = os.readlink(candidate)
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            current = root if link.startswith("/") else current
            continue
        current = candidate
    return current


def _mountpoint(root: pathlib.Path, path: str, is_file: bool) -> pathlib.Path:
    target = _inside(root, path)
    if is_file:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    else:
        target.mkdir(parents=True, exist_ok=True)
    return target


def _prepare_root(launch: Launch, host_termination_log: str | None) -> pathlib.Path:
    work = pathlib.Path(launch.workdir)
    upper, scratch, root = work / "upper", work / "work", work / "root"
    for folder in (upper, scratch, root):
        folder.mkdir(parents=True, exist_ok=True)
    _check(_libc.unshare(_CLONE_NEWNS), "unshare")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    options = f"lowerdir={launch.rootfs},upperdir={upper},workdir={scratch}"
    _mount("overlay", str(root), "overlay", 0, options)
    _mount(
        "proc", str(_mountpoint(root, "/proc", False)), "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    )
    dev = _mountpoint(root, "/dev", False)
    _mount("tmpfs", str(dev), "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=755,size=65536k")
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            (dev / name).touch()
            _mount(f"/dev/{name}", str(dev / name), None, _MS_BIND)
    (dev / "shm").mkdir()
    _mount("shm", str(dev / "shm"), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=65536k")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        (dev / name).symlink_to(target)
    (dev / "stdout").symlink_to("/proc/self/fd/1")
    (dev / "stderr").symlink_to("/proc/self/fd/2")
    mounts = list(launch.mounts)
    if host_termination_log:
        # As the kubelet does: any container user may write its termination message.
        os.chmod(host_termination_log, 0o666)
        mounts.append(Mount(host_termination_log, launch.termination_path, False, is_file=True))
    for mount in mounts:
        point = _mountpoint(root, mount.target, mount.is_file)
        _mount(mount.source, str(point), None, _MS_BIND | _MS_REC)
        if mount.read_only:
            flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
            _mount(None, str(point), None, flags)
    if launch.read_only_root:
        _mount(None, str(root), None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    return root


def _become(launch: Launch, parent: int) -> None:
    os.setgroups(launch.groups)
    os.setgid(launch.gid)
    os.setuid(launch.uid)
    # Changing the uid clears the death signal; the emulator's containers die with it.
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(137)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    launch = Launch.load(pathlib.Path(args[0]))
    parent = os.getppid()
    # Set by the supervisor: the pod's termination-message file on this side.
    host_log = os.environ.get("BOSUN_TERMINATION_LOG")
    try:
        # A fresh writable layer for every start, as a restarted container gets.
        shutil.rmtree(pathlib.Path(launch.workdir) / "upper", ignore_errors=True)
        root = _prepare_root(launch, host_log)
        os.chroot(root)
        os.chdir("/")
        _become(launch, parent)
        os.chdir(launch.cwd)
    except OSError as err:
        print(f"container: cannot create the container: {err}", file=sys.stderr, flush=True)
        return 128
    try:
        os.execvpe(launch.argv[0], launch.argv, launch.env)
    except OSError as err:
        print(f"exec {launch.argv[0]}: {err.strerror}", file=sys.stderr, flush=True)
        return 127 if isinstance(err, FileNotFoundError) else 126
    return 0  # pragma: no cover - execvpe does not return


if __name__ == "__main__":
    sys.exit(main())
