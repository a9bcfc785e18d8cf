"""Run Bosun's Argo CD health scripts the way Argo CD does, and render the install snippets.

Argo CD evaluates a health script in gopher-lua (Lua 5.1) with the live object in the global
``obj`` and reads ``status`` and ``message`` from the table it returns. Here lupa's Lua 5.1
does the same, in a sandbox without the libraries Argo CD does not offer (io, os, require,
loading code), so a script that leans on them fails here as it would there.

``python tests/argocd/argocd_lua.py`` rewrites argocd/argocd-cm.yaml and
argocd/argo-cd-values.yaml from the health.lua files; the tests fail when they differ.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import yaml
from lupa import lua51

REPO = pathlib.Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations" / "bosun.dev"
KINDS = ("Agent", "Tool", "Policy", "Run")
CONFIGMAP = ARGOCD / "argocd-cm.yaml"
HELM_VALUES = ARGOCD / "argo-cd-values.yaml"

_UNAVAILABLE = (
    "io",
    "os",
    "debug",
    "package",
    "require",
    "dofile",
    "loadfile",
    "load",
    "loadstring",
)


def script_path(kind: str) -> pathlib.Path:
    return CUSTOMIZATIONS / kind / "health.lua"


def config_key(kind: str) -> str:
    """The argocd-cm key of a Kind's health script."""
    return f"resource.customizations.health.bosun.dev_{kind}"


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[key] = _to_lua(runtime, item)
        return table
    if isinstance(value, list):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = _to_lua(runtime, item)
        return table
    return value


def health(script: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hs`` table a health script returns for ``obj``, as a dict."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    env = runtime.globals()
    for name in _UNAVAILABLE:
        env[name] = None
    env["obj"] = _to_lua(runtime, obj)
    result = runtime.execute(script)
    assert result is not None, "the script returned nothing"
    return {str(key): result[key] for key in result}


def configmap_data() -> dict[str, str]:
    return {config_key(kind): script_path(kind).read_text() for kind in KINDS}


class _Literal(str):
    """A string PyYAML writes as a literal block."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def _dump(header: str, body: dict[str, Any]) -> str:
    return header + yaml.safe_dump(body, sort_keys=False, width=100)


def render_configmap() -> str:
    data = {key: _Literal(value) for key, value in configmap_data().items()}
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {
                "app.kubernetes.io/name": "argocd-cm",
                "app.kubernetes.io/part-of": "argocd",
            },
        },
        "data": data,
    }
    header = (
        "# Bosun's health checks for Argo CD, as keys to merge into the argocd-cm ConfigMap, e.g.\n"
        "#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm.yaml\n"
        "# Generated from resource_customizations/bosun.dev/*/health.lua by\n"
        "# `python tests/argocd/argocd_lua.py`; do not edit by hand.\n"
    )
    return _dump(header, body)


def render_helm_values() -> str:
    data = {key: _Literal(value) for key, value in configmap_data().items()}
    header = (
        "# Bosun's health checks for Argo CD installed with the argo-cd Helm chart: pass this\n"
        "# file with --values (it sets configs.cm, which the chart renders into argocd-cm).\n"
        "# Generated from resource_customizations/bosun.dev/*/health.lua by\n"
        "# `python tests/argocd/argocd_lua.py`; do not edit by hand.\n"
    )
    return _dump(header, {"configs": {"cm": data}})


if __name__ == "__main__":
    CONFIGMAP.write_text(render_configmap())
    HELM_VALUES.write_text(render_helm_values())
    print(f"Wrote {CONFIGMAP.relative_to(REPO)} and {HELM_VALUES.relative_to(REPO)}")
