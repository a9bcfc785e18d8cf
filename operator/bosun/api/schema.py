"""Turn pydantic's JSON Schema into a structural OpenAPI v3 schema the API server accepts.

Pydantic writes JSON Schema 2020-12; a CRD needs a structural schema: every node typed, no
`$ref`, `nullable` instead of `anyOf [X, null]`, boolean `exclusiveMinimum`, no
`title`, no `const`, no `additionalProperties: false`. `structural` converts and
`violations` checks the result, so an unsupported construct fails generation loudly.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic

__all__ = [
    "ALLOWED_KEYS",
    "Schema",
    "SchemaError",
    "clean",
    "inline",
    "reflow",
    "structural",
    "violations",
]

Schema = dict[str, Any]

# The keywords of apiextensions.k8s.io/v1 JSONSchemaProps that the generator may emit.
ALLOWED_KEYS = frozenset(
    {
        "description",
        "type",
        "format",
        "default",
        "nullable",
        "enum",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "multipleOf",
        "maxProperties",
        "minProperties",
        "required",
        "items",
        "properties",
        "additionalProperties",
        "anyOf",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
_DROPPED = ("title", "examples")


class SchemaError(ValueError):
    """Pydantic produced something that has no structural equivalent."""


def structural(model: type[pydantic.BaseModel]) -> Schema:
    """The structural schema of `model`, as used in a CRD's `openAPIV3Schema`."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return clean(inline(raw, definitions))


def inline(node: Any, definitions: dict[str, Schema], seen: tuple[str, ...] = ()) -> Any:
    """Replace every `$ref` by a copy of its definition; sibling keys of the `$ref` win.

    Validation rules on both sides are kept, the referenced type's first, and a field's
    description is followed by its type's.
    """
    if isinstance(node, list):
        return [inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: inline(value, definitions, seen) for key, value in node.items()}
    ref = result.pop("$ref", None)
    if ref is None:
        return result
    name = ref.removeprefix("#/$defs/")
    if name in seen:
        raise SchemaError(f"recursive model {name} cannot be a structural schema")
    if name not in definitions:
        raise SchemaError(f"unresolvable reference {ref}")
    target = inline(copy.deepcopy(definitions[name]), definitions, (*seen, name))
    return _merge(target, result)


def _merge(base: Schema, overlay: Schema) -> Schema:
    """A type's schema (`base`) under a field's keywords (`overlay`)."""
    merged = {**base, **overlay}
    if "description" in base and "description" in overlay:
        # The field says what it is for, the type how it works: `kubectl explain` shows both.
        merged["description"] = overlay["description"] + "\n\n" + base["description"]
    rules = base.get("x-kubernetes-validations", []) + overlay.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def clean(node: Schema) -> Schema:
    """Rewrite one (inlined) schema node and its children into structural form."""
    node = dict(node)
    if "anyOf" in node and any(_is_null(branch) for branch in node["anyOf"]):
        branches = [branch for branch in node.pop("anyOf") if not _is_null(branch)]
        if len(branches) == 1:
            node = _merge(branches[0], node)
        else:
            node["anyOf"] = branches
        node["nullable"] = True
    for key in _DROPPED:
        node.pop(key, None)
    if "description" in node:
        node["description"] = reflow(node["description"])
    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound in ("Minimum", "Maximum"):
        value = node.get(f"exclusive{bound}")
        if value is not None and not isinstance(value, bool):
            node[bound.lower()] = value
            node[f"exclusive{bound}"] = True
    extra = node.get("additionalProperties")
    if extra is False:
        del node["additionalProperties"]
    elif extra is True or (extra == {} and "properties" not in node):
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "properties" in node:
        node["properties"] = {name: clean(child) for name, child in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = clean(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = clean(node["additionalProperties"])
    if "anyOf" in node:
        node["anyOf"] = [clean(branch) for branch in node["anyOf"]]
    unknown = set(node) - ALLOWED_KEYS
    if unknown:
        raise SchemaError(f"keywords without a structural equivalent: {sorted(unknown)}")
    return node


def reflow(text: str) -> str:
    """Join the lines of each paragraph of a docstring, so clients wrap it as they like."""
    paragraphs = (" ".join(p.split()) for p in text.strip().split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def violations(node: Schema, path: str = "") -> list[str]:
    """Where `node` breaks the structural-schema rules this project relies on (empty: none).

    Every node has a type unless it is int-or-string or keeps unknown fields; `anyOf` only
    in the int-or-string form; no `additionalProperties: false` or beside `properties`;
    no defaults on required properties; every list-map key is a required property.
    """
    found: list[str] = []
    where = path or "<root>"
    if "type" not in node and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        found.append(f"{where}: no type")
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        found.append(f"{where}: anyOf outside the int-or-string form")
    for key in ("$ref", "$defs", "title", "const", "allOf", "oneOf", "not"):
        if key in node:
            found.append(f"{where}: has {key}")
    extra = node.get("additionalProperties")
    if extra is False or extra is True:
        found.append(f"{where}: additionalProperties is {extra}")
    if extra is not None and "properties" in node:
        found.append(f"{where}: additionalProperties beside properties")
    properties: dict[str, Schema] = node.get("properties", {})
    for name in node.get("required", []):
        if name not in properties:
            found.append(f"{where}: required {name} is not a property")
        elif "default" in properties[name]:
            found.append(f"{where}.{name}: required and defaulted")
    for name, child in properties.items():
        found += violations(child, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict):
        found += violations(items, f"{path}[]")
        for key in node.get("x-kubernetes-list-map-keys", []):
            if key not in items.get("required", []):
                found.append(f"{where}: list-map key {key} is not required")
    if isinstance(extra, dict):
        found += violations(extra, f"{path}{{}}")
    return found
