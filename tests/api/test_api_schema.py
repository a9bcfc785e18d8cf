"""Unit tests of the schema post-processing and of the generated CRDs (no cluster)."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
import pytest
import yaml

from bosun import constants
from bosun.api import common, crdgen, run, schema

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


class _Inner(pydantic.BaseModel):
    """Inner type doc."""

    model_config = pydantic.ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra=common.validations(common.cel("self.x > 0", "x must be positive")),
    )

    x: int = 3
    """X doc."""


class _Outer(pydantic.BaseModel):
    """Outer doc."""

    model_config = pydantic.ConfigDict(use_attribute_docstrings=True)

    required_inner: _Inner
    """Required field doc."""
    optional_inner: _Inner | None = None
    """Optional field
    doc."""
    free: dict[str, Any] = {}
    """Anything."""
    labels: dict[str, str] | None = None
    """String map."""
    ratio: float = pydantic.Field(default=1.0, gt=0, lt=10)
    """Ratio."""
    only: Literal["one"] = "one"
    """Single value."""
    name: str
    """Required name."""


@pytest.fixture(scope="module")
def outer() -> dict[str, Any]:
    return schema.structural(_Outer)


def test_refs_are_inlined_with_the_field_description_first(outer: dict[str, Any]) -> None:
    node = outer["properties"]["required_inner"]
    assert "$ref" not in node
    assert node["type"] == "object"
    assert node["description"] == "Required field doc.\n\nInner type doc."
    assert node["properties"]["x"] == {"type": "integer", "default": 3, "description": "X doc."}
    assert node["x-kubernetes-validations"] == [
        {"rule": "self.x > 0", "message": "x must be positive"}
    ]


def test_optional_becomes_nullable_and_keeps_the_type(outer: dict[str, Any]) -> None:
    node = outer["properties"]["optional_inner"]
    assert "anyOf" not in node
    assert node["nullable"] is True
    assert node["type"] == "object"
    assert "default" not in node  # a null default says nothing
    assert node["description"] == "Optional field doc.\n\nInner type doc."
    labels = outer["properties"]["labels"]
    assert labels == {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "nullable": True,
        "description": "String map.",
    }


def test_titles_are_dropped_everywhere(outer: dict[str, Any]) -> None:
    assert all("title" not in node for node in _nodes(outer))


def test_free_form_object_keeps_unknown_fields(outer: dict[str, Any]) -> None:
    free = outer["properties"]["free"]
    assert free["type"] == "object"
    assert free["x-kubernetes-preserve-unknown-fields"] is True
    assert "additionalProperties" not in free


def test_exclusive_bounds_become_openapi_v3_booleans(outer: dict[str, Any]) -> None:
    ratio = outer["properties"]["ratio"]
    assert (ratio["minimum"], ratio["exclusiveMinimum"]) == (0, True)
    assert (ratio["maximum"], ratio["exclusiveMaximum"]) == (10, True)


def test_const_becomes_a_one_value_enum(outer: dict[str, Any]) -> None:
    assert outer["properties"]["only"]["enum"] == ["one"]
    assert "const" not in outer["properties"]["only"]


def test_required_fields_carry_no_default(outer: dict[str, Any]) -> None:
    assert set(outer["required"]) == {"required_inner", "name"}
    assert schema.violations(outer) == []


def test_additional_properties_false_is_dropped() -> None:
    class Closed(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        a: int

    raw = Closed.model_json_schema()
    assert raw["additionalProperties"] is False
    assert "additionalProperties" not in schema.structural(Closed)


def test_int_or_string_keeps_its_any_of() -> None:
    node = schema.clean({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]})
    assert node == {"anyOf": [{"type": "integer"}, {"type": "string"}], "nullable": True}
    assert schema.violations(node) == [
        "<root>: no type",
        "<root>: anyOf outside the int-or-string form",
    ]
    quantity = schema.clean(
        {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    )
    assert schema.violations(quantity) == []


def test_unsupported_keywords_fail_loudly() -> None:
    with pytest.raises(schema.SchemaError, match="patternProperties"):
        schema.clean({"type": "object", "patternProperties": {"^x": {"type": "string"}}})


def test_recursive_and_dangling_refs_fail_loudly() -> None:
    with pytest.raises(schema.SchemaError, match="recursive"):
        schema.inline({"$ref": "#/$defs/A"}, {"A": {"properties": {"a": {"$ref": "#/$defs/A"}}}})
    with pytest.raises(schema.SchemaError, match="unresolvable"):
        schema.inline({"$ref": "#/$defs/B"}, {})


def test_reflow_joins_lines_and_keeps_paragraphs() -> None:
    assert schema.reflow("  One\n  two.\n\n  Three\n") == "One two.\n\nThree"


def test_violations_catch_what_the_api_server_refuses() -> None:
    bad = {
        "type": "object",
        "required": ["a", "gone"],
        "properties": {
            "a": {"type": "string", "default": "x"},
            "b": {"description": "untyped"},
            "c": {"type": "object", "additionalProperties": False},
            "d": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
            },
        },
    }
    assert schema.violations(bad) == [
        "<root>.a: required and defaulted",
        "<root>: required gone is not a property",
        ".b: no type",
        ".c: additionalProperties is False",
        ".d: list-map key k is not required",
    ]


# The generated CRDs.

CRD_DOCS = {info.kind: crdgen.crd(info) for info in crdgen.KINDS}


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[dict[str, Any]]:
    yield node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property below ``node`` with its path, arrays walked through."""
    if isinstance(node.get("items"), dict):
        node = node["items"]
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")


def _version(kind: str) -> dict[str, Any]:
    versions: list[dict[str, Any]] = CRD_DOCS[kind]["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _root(kind: str) -> dict[str, Any]:
    root: dict[str, Any] = _version(kind)["schema"]["openAPIV3Schema"]
    return root


KINDS = sorted(CRD_DOCS)
# Admin-owned classes are cluster-scoped and stay out of the `bosun` category.
CLUSTER_KINDS = ("RunnerClass", "ClusterPolicy")
NAMESPACED_KINDS = [kind for kind in KINDS if kind not in CLUSTER_KINDS]


def test_every_kind_is_generated() -> None:
    assert set(KINDS) == set(constants.KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_crd_is_structural(kind: str) -> None:
    root = _root(kind)
    assert schema.violations(root) == []
    text = yaml.safe_dump(CRD_DOCS[kind])
    for forbidden in ("$ref", "$defs", "title:", "additionalProperties: false", "const:"):
        assert forbidden not in text


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_is_described(kind: str) -> None:
    root = _root(kind)
    assert root["description"]
    undescribed = [
        path
        for part in ("spec", "status")
        for path, node in [
            (part, root["properties"][part]),
            *_fields(root["properties"][part], part),
        ]
        if not node.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("kind", KINDS)
def test_spec_strings_and_lists_are_bounded_for_cel_cost(kind: str) -> None:
    unbounded = [
        path
        for path, node in _fields(_root(kind)["properties"]["spec"], "spec")
        if (node.get("type") == "string" and "maxLength" not in node and "enum" not in node)
        or (node.get("type") == "array" and "maxItems" not in node)
    ]
    assert unbounded == []


@pytest.mark.parametrize("kind", NAMESPACED_KINDS)
def test_names_status_subresource_and_category(kind: str) -> None:
    crd = CRD_DOCS[kind]
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.bosun.dev"
    assert spec["group"] == constants.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    # The journal's chunks are records, not what people write: not in `kubectl get bosun`.
    expected = [] if kind == "RunJournal" else [constants.CATEGORY]
    assert spec["names"].get("categories", []) == expected
    assert spec["names"]["shortNames"]
    version = _version(kind)
    assert (version["name"], version["served"], version["storage"]) == (
        constants.VERSION,
        True,
        True,
    )
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS)
def test_status_has_observed_generation_and_metav1_conditions(kind: str) -> None:
    status = _root(kind)["properties"]["status"]
    assert status["properties"]["observedGeneration"]["type"] == "integer"
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert item["properties"]["reason"]["maxLength"] == 1024
    assert item["properties"]["message"]["maxLength"] == 32768
    assert item["properties"]["observedGeneration"]["minimum"] == 0


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("Agent", ["Provider", "Model", "Ready", "Mode", "Workers", "Runs/h", "Tokens/h", "Age"]),
        ("Tool", ["Transport", "URL", "Ready", "Age"]),
        ("Policy", ["Rules", "Ready", "Age"]),
        ("Run", ["Agent", "Phase", "Attempt", "Tokens", "Age"]),
        ("Approval", ["Run", "Decision", "By", "Age"]),
    ],
)
def test_printer_columns(kind: str, columns: list[str]) -> None:
    printed = _version(kind)["additionalPrinterColumns"]
    assert [column["name"] for column in printed] == columns
    root = _root(kind)
    for column in printed:
        # Every column points at a field the schema has (the wildcard stands for http and mcp).
        path = re.sub(r"\[[^\]]*\]", "", column["jsonPath"]).lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = root
        for name in path:
            if node.get("type") == "array":
                node = node["items"]
            node = node["properties"]["http" if name == "*" else name]
        assert node["type"] == column["type"], column


def test_run_spec_is_immutable_except_suspend_and_cancel() -> None:
    spec = _root("Run")["properties"]["spec"]
    rules = spec["x-kubernetes-validations"]
    guarded = {rule["fieldPath"].lstrip(".") for rule in rules if "oldSelf" in rule["rule"]}
    # Everything but suspend; cancel has a rule of its own that makes it one-way.
    assert guarded == set(spec["properties"]) - {"suspend"}
    mutable = {"suspend", "cancel"}
    for rule in rules:
        if rule["fieldPath"].lstrip(".") not in mutable:
            assert rule["message"].endswith("is immutable")
    assert set(run.RunSpec.model_fields) - {"suspend", "cancel"} == {
        "agent_ref",
        "input",
        "idempotency_key",
        "priority",
        "priority_class_name",
        "deadline_seconds",
        "retry",
        "ttl_seconds_after_finished",
    }


def test_approval_spec_is_immutable() -> None:
    spec = _root("Approval")["properties"]["spec"]
    guarded = {r["fieldPath"].lstrip(".") for r in spec["x-kubernetes-validations"]}
    assert guarded == set(spec["properties"])


def test_tool_needs_exactly_one_transport() -> None:
    rules = _root("Tool")["properties"]["spec"]["x-kubernetes-validations"]
    assert {"rule": "has(self.http) != has(self.mcp)"}.items() <= rules[0].items()


def test_defaults_sit_only_on_optional_fields_and_some_exist() -> None:
    defaults = {
        path
        for kind in KINDS
        for path, node in _fields(_root(kind)["properties"]["spec"], kind)
        if "default" in node
    }
    assert {"Run.priority", "Run.suspend", "Tool.http.method", "Tool.idempotent"} <= {
        path.replace(".spec", "") for path in defaults
    }
    for kind in KINDS:
        assert schema.violations(_root(kind)) == []


def test_committed_crds_match_the_models() -> None:
    """Fails when crds/ drifts: run `python -m bosun.api.crdgen --write crds/`."""
    assert crdgen.drift(CRDS) == []
    rendered = crdgen.render_all()
    assert sorted(path.name for path in CRDS.glob("*.yaml")) == sorted(rendered)


def test_stream_holds_every_crd() -> None:
    documents = [doc for doc in yaml.safe_load_all(crdgen.render_stream()) if doc]
    assert [doc["spec"]["names"]["kind"] for doc in documents] == [
        info.kind for info in crdgen.KINDS
    ]
    assert documents == [yaml.safe_load(text) for text in crdgen.render_all().values()]


def test_generator_cli_writes_and_checks(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--check", str(tmp_path)]) == 1
    assert crdgen.main(["--write", str(tmp_path)]) == 0
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    target = tmp_path / "bosun.dev_runs.yaml"
    target.write_text(target.read_text() + "# edited\n")
    (tmp_path / "stray.yaml").write_text("{}\n")
    assert crdgen.main(["--check", str(tmp_path)]) == 1
    assert crdgen.drift(tmp_path) == ["bosun.dev_runs.yaml", "stray.yaml"]
    capsys.readouterr()
    assert crdgen.main([]) == 0
    assert capsys.readouterr().out == crdgen.render_stream()


@pytest.mark.parametrize("kind", CLUSTER_KINDS)
def test_cluster_kinds_are_cluster_scoped_with_status_and_no_category(kind: str) -> None:
    spec = CRD_DOCS[kind]["spec"]
    assert spec["scope"] == "Cluster"
    assert "categories" not in spec["names"]
    assert spec["names"]["shortNames"]
    assert _version(kind)["subresources"] == {"status": {}}
