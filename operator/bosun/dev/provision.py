"""Locate or build the binaries of the local control plane.

The local control plane needs ``etcd``, ``kube-apiserver``, ``kube-controller-manager`` and
``kubectl`` (the chart work adds ``helm`` and ``kubeconform``). They are looked up in
``KUBEBUILDER_ASSETS`` when it is set (the envtest convention), else in a per-user cache
(``~/.cache/bosun/control-plane/<version>/bin``). Missing binaries are built there from Go
modules with the machine's Go toolchain: Kubernetes through a throwaway wrapper module that
requires ``k8s.io/kubernetes`` and pins each staging module to its published release, etcd
through a second wrapper, helm and kubeconform with ``go install``. Builds are cached, so only
the first run on a machine pays for them.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

__all__ = [
    "ALL_BINARIES",
    "CORE_BINARIES",
    "ETCD_VERSION",
    "HELM_VERSION",
    "KUBECONFORM_VERSION",
    "KUBERNETES_VERSION",
    "STAGING_MODULES",
    "TOOL_BINARIES",
    "Binaries",
    "Log",
    "ProvisionError",
    "binaries",
    "cache_root",
    "default_bin_dir",
    "ensure",
    "find_binary",
    "kubernetes_wrapper_gomod",
    "missing",
]

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"
HELM_VERSION = "v3.19.5"
KUBECONFORM_VERSION = "v0.7.0"

# The staging modules of k8s.io/kubernetes 1.34; each is replaced by its published release.
STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
)

CORE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
TOOL_BINARIES = ("helm", "kubeconform")
ALL_BINARIES = CORE_BINARIES + TOOL_BINARIES

Log = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A binary could not be located or built."""


def _stderr_log(message: str) -> None:
    print(f"[bosun provision] {message}", file=sys.stderr, flush=True)


def cache_root() -> pathlib.Path:
    """The per-user cache folder for control-plane builds."""
    override = os.environ.get("BOSUN_CACHE_DIR")
    if override:
        return pathlib.Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "bosun"


def default_bin_dir() -> pathlib.Path:
    return cache_root() / "control-plane" / KUBERNETES_VERSION / "bin"


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Paths of the located control-plane binaries."""

    etcd: pathlib.Path
    kube_apiserver: pathlib.Path
    kube_controller_manager: pathlib.Path
    kubectl: pathlib.Path
    helm: pathlib.Path | None = None
    kubeconform: pathlib.Path | None = None


def _search_dirs() -> list[pathlib.Path]:
    dirs = []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        dirs.append(pathlib.Path(assets))
    dirs.append(default_bin_dir())
    return dirs


def find_binary(name: str) -> pathlib.Path | None:
    """Return the first executable named ``name`` in the search folders, or None."""
    for folder in _search_dirs():
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing(names: Sequence[str]) -> list[str]:
    return [name for name in names if find_binary(name) is None]


def _run(cmd: Sequence[str], cwd: pathlib.Path, env: dict[str, str], log: Log) -> None:
    log(f"Running {' '.join(cmd)} (in {cwd})")
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-40:]
        if line.startswith("go: downloading") or line.startswith("go: added"):
            continue
        log(f"  {line.rstrip()}")
    rc = proc.wait()
    if rc != 0:
        raise ProvisionError(
            f"command failed with exit code {rc}: {' '.join(cmd)}\n" + "\n".join(tail)
        )
    log(f"Finished in {time.monotonic() - started:.0f}s: {' '.join(cmd[:3])}")


def _go_env(work: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CGO_ENABLED": "0",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-mod=mod -buildvcs=false",
            "GOWORK": "off",
        }
    )
    return env


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ProvisionError("the Go toolchain ('go') is not on PATH; install Go to build binaries")
    return go


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    build_date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitCommit=bosun-module-build",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={build_date}",
        ]
    return "-s -w " + " ".join(flags)


def kubernetes_wrapper_gomod(version: str) -> str:
    """The go.mod of the throwaway module that builds Kubernetes commands."""
    staging = "v0." + version.lstrip("v").split(".", 1)[1]
    lines = [
        "module bosun.dev/build/kubernetes",
        "",
        "go 1.24.0",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
    ]
    lines += [f"replace k8s.io/{name} => k8s.io/{name} {staging}" for name in STAGING_MODULES]
    return "\n".join(lines) + "\n"


def _build_kubernetes(out: pathlib.Path, names: Sequence[str], log: Log) -> None:
    work = cache_root() / "build" / f"kubernetes-{KUBERNETES_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    gomod = work / "go.mod"
    if not gomod.exists() or "k8s.io/kubernetes" not in gomod.read_text():
        gomod.write_text(kubernetes_wrapper_gomod(KUBERNETES_VERSION))
    env = _go_env(work)
    pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in names]
    _run([_go(), "get", *[f"{pkg}@{KUBERNETES_VERSION}" for pkg in pkgs]], work, env, log)
    for name, pkg in zip(names, pkgs, strict=True):
        _go_build(
            pkg, out / name, _version_ldflags(KUBERNETES_VERSION), work=work, env=env, log=log
        )


def _build_etcd(out: pathlib.Path, log: Log) -> None:
    work = cache_root() / "build" / f"etcd-{ETCD_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    gomod = work / "go.mod"
    if not gomod.exists():
        gomod.write_text("module bosun.dev/build/etcd\n\ngo 1.24.0\n")
    env = _go_env(work)
    _run([_go(), "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, env, log)
    _go_build("go.etcd.io/etcd/server/v3", out / "etcd", "-s -w", work=work, env=env, log=log)


def _go_build(
    pkg: str,
    binary: pathlib.Path,
    ldflags: str,
    *,
    work: pathlib.Path,
    env: dict[str, str],
    log: Log,
) -> None:
    """Build ``pkg`` into ``binary`` as upstream does: static, trimmed, two jobs at a time."""
    _run(
        [_go(), "build", "-p=2", "-trimpath", "-ldflags", ldflags, "-o", str(binary), pkg],
        work,
        env,
        log,
    )


def _go_install(out: pathlib.Path, name: str, target: str, log: Log) -> None:
    env = _go_env(out)
    env["GOBIN"] = str(out)
    env["GOFLAGS"] = "-buildvcs=false"
    _run([_go(), "install", "-trimpath", "-ldflags", "-s -w", target], out, env, log)
    if not (out / name).exists():
        raise ProvisionError(f"go install {target} produced no {name}")


def ensure(
    names: Sequence[str] = CORE_BINARIES, log: Log = _stderr_log, build: bool = True
) -> dict[str, pathlib.Path]:
    """Locate the named binaries, building the missing ones into the cache."""
    absent = missing(names)
    if absent and not build:
        raise ProvisionError(
            f"missing binaries {', '.join(absent)}: "
            "set KUBEBUILDER_ASSETS or run 'bosun dev provision'"
        )
    if absent:
        out = default_bin_dir()
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log(f"Building {', '.join(absent)} into {out}; the first build takes several minutes")
        kube = [n for n in absent if n in ("kube-apiserver", "kube-controller-manager", "kubectl")]
        if kube:
            _build_kubernetes(out, kube, log)
        if "etcd" in absent:
            _build_etcd(out, log)
        if "helm" in absent:
            _go_install(out, "helm", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}", log)
        if "kubeconform" in absent:
            _go_install(
                out,
                "kubeconform",
                f"github.com/yannh/kubeconform/cmd/kubeconform@{KUBECONFORM_VERSION}",
                log,
            )
        log(f"Built {', '.join(absent)} in {time.monotonic() - started:.0f}s")
    found = {}
    for name in names:
        path = find_binary(name)
        if path is None:
            raise ProvisionError(f"{name} is still missing after the build")
        found[name] = path
    return found


def binaries(build: bool = True, log: Log = _stderr_log) -> Binaries:
    paths = ensure(CORE_BINARIES, log=log, build=build)
    return Binaries(
        etcd=paths["etcd"],
        kube_apiserver=paths["kube-apiserver"],
        kube_controller_manager=paths["kube-controller-manager"],
        kubectl=paths["kubectl"],
        helm=find_binary("helm"),
        kubeconform=find_binary("kubeconform"),
    )


if __name__ == "__main__":
    ensure(sys.argv[1:] or ALL_BINARIES)
