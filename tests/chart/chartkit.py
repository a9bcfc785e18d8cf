"""Helpers of the chart tests: run the real helm, parse what it renders, evaluate RBAC rules.

helm and kubeconform come from the project's own provisioning (built once and cached), the same
binaries the developer commands use. Rendering passes ``--kube-version`` explicitly, so the
result does not depend on the version a particular helm build assumes by default.
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from bosun.dev import provision

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "bosun"
VALUES = pathlib.Path(__file__).resolve().parent / "values"
KUBE_VERSION = provision.KUBERNETES_VERSION.removeprefix("v")
RELEASE = "bosun"
NAMESPACE = "bosun-system"

Obj = dict[str, Any]


def server_version(git_version: str) -> str:
    """A server's version as helm and kubeconform take it: v1.34.4+abc -> 1.34.4."""
    return git_version.removeprefix("v").split("-", 1)[0].split("+", 1)[0]


def tool(name: str) -> pathlib.Path:
    """The path of ``helm`` or ``kubeconform`` (built and cached by the project)."""
    return provision.ensure([name])[name]


def helm(
    *args: str, check: bool = True, kubeconfig: pathlib.Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real helm; with ``check``, fail with its output when it fails."""
    argv = [str(tool("helm")), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def values_args(values: Sequence[pathlib.Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args = []
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def template_text(
    values: Sequence[pathlib.Path] = (),
    sets: Sequence[str] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> str:
    """``helm template`` output as text."""
    proc = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *values_args(values, sets),
    )
    return proc.stdout


def parse(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: Sequence[pathlib.Path] = (),
    sets: Sequence[str] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> list[Obj]:
    """``helm template`` output as objects."""
    return parse(template_text(values, sets, namespace, release))


def of_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objs if obj.get("kind") == kind]


def one(objs: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``); fails when there is not exactly one."""
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objs: Iterable[Obj]) -> Obj:
    deployment = one(objs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Obj = containers[0]
    return result


def env_of(container_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (or the valueFrom mapping)."""
    return {
        item["name"]: item["value"] if "value" in item else item["valueFrom"]
        for item in container_spec.get("env") or ()
    }


# --- RBAC -----------------------------------------------------------------------------------


def _matches(values: Sequence[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def allows(
    rules: Iterable[Mapping[str, Any]],
    group: str,
    resource: str,
    verb: str,
    name: str | None = None,
) -> bool:
    """Whether one of ``rules`` grants ``verb`` on ``group``/``resource`` (object ``name``)."""
    for rule in rules:
        if not _matches(rule.get("apiGroups") or [], group):
            continue
        if not _matches(rule.get("resources") or [], resource):
            continue
        if not _matches(rule.get("verbs") or [], verb):
            continue
        names = rule.get("resourceNames") or []
        if names and (name is None or name not in names):
            continue
        return True
    return False


def expand(rules: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    """Every (group, resource, verb, name) a list of rules names explicitly."""
    out = []
    for rule in rules:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    for name in rule.get("resourceNames") or [None]:
                        out.append((group, resource, verb, name))
    return out
