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
chroots, drops to the user with no_new_privs and only the capabilities the pod keeps of a runtime's
defaults, and execs the command as PID 1 of a PID namespace of its own (so it sees no other
pod's processes). The network namespace is the node's, as with ``hostNetwork``: the API server
and test servers are on this machine's loopback.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import pathlib
import select
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_TERMINATION_PATH",
    "ConfigError",
    "Launch",
    "Mount",
    "argv_for",
    "is_token_volume",
    "main",
    "plan",
]

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
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4

# <linux/capability.h>
CAPABILITIES = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "DAC_READ_SEARCH": 2,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}
# A container runtime's default set less NET_RAW, SYS_CHROOT and MKNOD: this launcher chroots (a
# runtime pivots the root), so a root process that may chroot or make device nodes could leave
# its root. A pod may drop from these and add back only these.
DEFAULT_CAPABILITIES = frozenset(CAPABILITIES) - {
    "DAC_READ_SEARCH",
    "NET_RAW",
    "SYS_CHROOT",
    "MKNOD",
}


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
    capabilities: list[int] = dataclasses.field(default_factory=list)

    def dump(self, path: pathlib.Path) -> None:
        """Write it for root alone: the environment holds the pod's Secret values."""
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(dataclasses.asdict(self)))

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
    """``uid[:gid]`` of an image's USER: root when it is empty, None for what is a name."""
    if not user:
        return 0, None
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else None
    gid = int(group) if group.isdigit() else None
    return uid, gid


def _passwd_gid(rootfs: pathlib.Path, uid: int) -> int | None:
    """The primary group of ``uid`` in the image's /etc/passwd, as a runtime looks it up."""
    try:
        lines = (rootfs / "etc" / "passwd").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 3 and fields[2] == str(uid) and fields[3].isdigit():
            return int(fields[3])
    return None


def _user(
    pod_sc: Mapping[str, Any],
    sc: Mapping[str, Any],
    image_user: str,
    where: str,
    rootfs: pathlib.Path,
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
    if gid is None:
        gid = _passwd_gid(rootfs, int(uid))
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or ()]
    if pod_sc.get("fsGroup") is not None:
        groups.insert(0, int(pod_sc["fsGroup"]))
    return int(uid), int(gid if gid is not None else 0), groups


def _capabilities(sc: Mapping[str, Any], where: str) -> list[int]:
    """The bounding set: the defaults, less ``drop``, plus ``add`` (only from the defaults)."""
    asked = sc.get("capabilities") or {}

    def names(key: str) -> set[str]:
        return {str(n).upper().removeprefix("CAP_") for n in asked.get(key) or ()}

    drop, add = names("drop"), names("add")
    keep = set() if "ALL" in drop else set(DEFAULT_CAPABILITIES) - drop
    beyond = sorted(add - DEFAULT_CAPABILITIES)
    if beyond:
        raise ConfigError(f"capabilities {beyond} cannot be added here ({where})")
    return sorted(CAPABILITIES[name] for name in keep | add)


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
    uid, gid, groups = _user(pod_sc, sc, image.user, where, pathlib.Path(image.rootfs))
    argv = argv_for(image.entrypoint, image.cmd, spec.get("command"), spec.get("args"))
    if not argv:
        raise ConfigError(f"no command specified ({where})")
    full_env = {**_image_env(image.env), **env}
    full_env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    full_env.setdefault("HOME", "/")
    mounts: list[Mount] = []
    by_name = {v["name"]: v for v in pod["spec"].get("volumes") or ()}
    for vm in spec.get("volumeMounts") or ():
        unsupported = sorted({"subPath", "subPathExpr", "mountPropagation"} & set(vm))
        if unsupported:
            raise ConfigError(f"volumeMount {vm['name']!r}: {unsupported} not supported here")
        volume = by_name.get(vm["name"])
        if volume is None:
            raise ConfigError(f"volumeMount {vm['name']!r} names no volume of the pod ({where})")
        read_only = bool(vm.get("readOnly"))
        if "emptyDir" in volume:
            source = volumes[vm["name"]]
        elif is_token_volume(volume) and token_dir is not None:
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
        # Outer mounts first, as a runtime sorts them.
        mounts=sorted(mounts, key=lambda m: m.target.rstrip("/").count("/")),
        termination_path=spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH,
        capabilities=_capabilities(sc, where),
    )


def is_token_volume(volume: Mapping[str, Any]) -> bool:
    """A projected volume with a service-account token in it."""
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
    """In the container's (new) mount and PID namespaces: its root with everything mounted."""
    work = pathlib.Path(launch.workdir)
    upper, scratch, root = work / "upper", work / "work", work / "root"
    for folder in (upper, scratch, root):
        folder.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={launch.rootfs},upperdir={upper},workdir={scratch}"
    _mount("overlay", str(root), "overlay", 0, options)
    safe = _MS_NOSUID | _MS_NODEV
    _mount("proc", str(_mountpoint(root, "/proc", False)), "proc", safe | _MS_NOEXEC)
    dev = _mountpoint(root, "/dev", False)
    _mount("tmpfs", str(dev), "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=755,size=65536k")
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            (dev / name).touch()
            _mount(f"/dev/{name}", str(dev / name), None, _MS_BIND)
    (dev / "shm").mkdir()
    _mount("shm", str(dev / "shm"), "tmpfs", safe | _MS_NOEXEC, "mode=1777,size=65536k")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        (dev / name).symlink_to(target)
    (dev / "stdout").symlink_to("/proc/self/fd/1")
    (dev / "stderr").symlink_to("/proc/self/fd/2")
    # Nothing more may appear in /dev (the device nodes above are mounts of their own).
    _mount(None, str(dev), None, _MS_REMOUNT | _MS_NOSUID | _MS_NOEXEC | _MS_NODEV)
    mounts = list(launch.mounts)
    if host_termination_log:
        # As the kubelet does: any container user may write its termination message.
        os.chmod(host_termination_log, 0o666)
        mounts.append(Mount(host_termination_log, launch.termination_path, False, is_file=True))
    for mount in mounts:
        point = _mountpoint(root, mount.target, mount.is_file)
        _mount(mount.source, str(point), None, _MS_BIND | _MS_REC)
        flags = _MS_BIND | _MS_REMOUNT | safe | (_MS_RDONLY if mount.read_only else 0)
        _mount(None, str(point), None, flags)
    _mountpoint(root, launch.cwd, False)
    if launch.read_only_root:
        _mount(None, str(root), None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    return root


def _drop_capabilities(keep: Sequence[int]) -> None:
    """Leave only ``keep`` in the bounding set (and no ambient ones): a root container gets
    just those at exec, a non-root one none."""
    last = int(pathlib.Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if cap not in keep:
            _check(_libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"prctl(CAPBSET_DROP, {cap})")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _become(launch: Launch, launcher_gone: int) -> None:
    _drop_capabilities(launch.capabilities)
    os.setgroups(launch.groups)
    os.setgid(launch.gid)
    os.setuid(launch.uid)
    # Changing the uid clears the death signal; the container dies with its launcher. If the
    # launcher is already gone, its end of the pipe reads as closed.
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if select.select([launcher_gone], [], [], 0)[0]:
        os._exit(137)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _container(launch: Launch, host_log: str | None, launcher_gone: int) -> int:
    """PID 1 of the container: build its root, become its user, exec its command."""
    try:
        _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        root = _prepare_root(launch, host_log)
        os.chroot(root)
        os.chdir("/")
        _become(launch, launcher_gone)
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


def main(argv: list[str] | None = None) -> int:
    """Start the container as PID 1 of a new PID namespace and end as it ends.

    The launcher stays its parent (outside the namespace) in the same process group, so the
    supervisor's signals to the group reach both; the launcher ignores the ones that end a
    process and, when the container ends, ends the same way (its exit code, or its signal)."""
    args = sys.argv[1:] if argv is None else argv
    launch = Launch.load(pathlib.Path(args[0]))
    # Set by the supervisor: the pod's termination-message file on this side.
    host_log = os.environ.get("BOSUN_TERMINATION_LOG")
    # A fresh writable layer for every start, as a restarted container gets.
    shutil.rmtree(pathlib.Path(launch.workdir) / "upper", ignore_errors=True)
    try:
        _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWPID), "unshare")
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    except OSError as err:
        print(f"container: cannot create the container: {err}", file=sys.stderr, flush=True)
        return 128
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    launcher_gone, alive = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(alive)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os._exit(_container(launch, host_log, launcher_gone))
    os.close(launcher_gone)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        ended = os.WTERMSIG(status)
        signal.signal(ended, signal.SIG_DFL)
        os.kill(os.getpid(), ended)
        return 128 + ended
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
