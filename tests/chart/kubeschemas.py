"""Turn an API server's ``/openapi/v2`` document into kubeconform's offline schema folder.

kubeconform looks a manifest's schema up as ``{folder}/v{version}-standalone-strict/
{kind}{suffix}.json`` where ``suffix`` is ``-{first segment of the group}-{version}`` (``-v1``
for the core group), the layout of the kubernetes-json-schema project. Here each file is the
Kind's OpenAPI definition with every definition it reaches embedded under ``definitions`` (the
``#/definitions/...`` references of OpenAPI v2 then resolve inside the file), made strict
(``additionalProperties: false`` wherever the schema lists properties and does not preserve
unknown fields) and with Kubernetes' string formats turned into JSON Schema: int-or-string and
quantities accept numbers too. Schemas come from the live API server, so they are exactly the
ones it validates against, custom resources included.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

_NAMED_SCHEMAS = ("properties", "patternProperties", "definitions")
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def kind_suffix(group: str, version: str) -> str:
    """kubeconform's ``KindSuffix``: ``-apps-v1``, ``-rbac-v1``, ``-v1`` for the core group."""
    if not group:
        return f"-{version.lower()}"
    return f"-{group.split('.', maxsplit=1)[0].lower()}-{version.lower()}"


def file_name(kind: str, group: str, version: str) -> str:
    return f"{kind.lower()}{kind_suffix(group, version)}.json"


def _refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in schema position under ``node`` (a property named "$ref" is not one)."""
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            yield value
        elif key in _NAMED_SCHEMAS and isinstance(value, dict):
            for sub in value.values():
                yield from _refs(sub)
        else:
            yield from _refs(value)


def _reachable(name: str, definitions: dict[str, Schema]) -> list[str]:
    seen: list[str] = []
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for ref in _refs(definitions[current]):
            target = ref.removeprefix("#/definitions/")
            if target in definitions and target not in seen:
                todo.append(target)
    return sorted(seen)


def convert(node: Any, strict: bool = True) -> Any:
    """One OpenAPI v2 schema node as JSON Schema, strict when asked."""
    if isinstance(node, list):
        return [convert(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: convert(sub, strict) for name, sub in value.items()}
        else:
            out[key] = convert(value, strict)
    if out.get("format") == "int-or-string" or out.pop("x-kubernetes-int-or-string", False):
        for key in ("type", "format"):
            out.pop(key, None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if strict and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert_all(definitions: dict[str, Schema], strict: bool = True) -> dict[str, Schema]:
    """Every definition converted once (quantities accept numbers, as the API server does)."""
    converted = {name: convert(schema, strict) for name, schema in definitions.items()}
    if _QUANTITY in converted:
        converted[_QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    return converted


def standalone(name: str, converted: dict[str, Schema]) -> Schema:
    """The definition ``name`` with everything it references embedded."""
    root = dict(converted[name])
    root["$schema"] = "http://json-schema.org/draft-07/schema#"
    root["definitions"] = {ref: converted[ref] for ref in _reachable(name, converted)}
    return root


def write(openapi: Schema, folder: pathlib.Path, kube_version: str) -> pathlib.Path:
    """Write one schema file per Kind; return the folder to pass as ``-schema-location``.

    ``kube_version`` is what is given to kubeconform's ``-kubernetes-version`` (``1.34.4``).
    """
    definitions: dict[str, Schema] = openapi["definitions"]
    converted = convert_all(definitions)
    target = folder / f"v{kube_version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name in sorted(definitions):
        for gvk in definitions[name].get("x-kubernetes-group-version-kind") or ():
            kind, group, version = gvk["kind"], gvk.get("group", ""), gvk["version"]
            path = file_name(kind, group, version)
            # Shared helper types (DeleteOptions, WatchEvent) list many GVKs; the Kind's own
            # definition is the one whose name ends with the Kind.
            if path in written and not name.endswith(f".{kind}"):
                continue
            written[path] = name
            schema = standalone(name, converted)
            (target / path).write_text(json.dumps(schema))
    return folder
