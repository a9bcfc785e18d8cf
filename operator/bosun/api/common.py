"""Building blocks shared by every Bosun Kind: the model base, metadata, conditions and refs.

Everything here is pydantic and pure: the base model configuration (camelCase aliases, field
docstrings as schema descriptions), object metadata, the `metav1.Condition` shape, object and
Secret references, retry settings with their built-in defaults, label selectors, Kubernetes
schema markers (free-form objects, quantities, CEL rules) and the per-Kind facts the CRD
generator needs (names, short names, printer columns).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import pydantic
from pydantic import alias_generators

from bosun import constants, retry

__all__ = [
    "AGE_COLUMN",
    "CONDITION_REASON_PATTERN",
    "CONDITION_TYPE_PATTERN",
    "DNS_LABEL_MAX",
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_MAX",
    "DNS_SUBDOMAIN_PATTERN",
    "LIST_SET",
    "QUANTITY_PATTERN",
    "READY_COLUMN",
    "SCHEMA_DESCRIPTIONS",
    "SECRET_KEY_PATTERN",
    "Attempts",
    "BackoffSeconds",
    "Condition",
    "DNSLabel",
    "DNSSubdomain",
    "FreeForm",
    "KindInfo",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LocalObjectReference",
    "Model",
    "Multiplier",
    "ObjectMeta",
    "PrinterColumn",
    "Quantity",
    "Resource",
    "RetrySpec",
    "SecretKeySelector",
    "Status",
    "ToolRetrySpec",
    "ValidationReason",
    "cel",
    "immutable_fields",
    "list_map",
    "require_unique",
    "validations",
]

# A DNS-1123 label: what Kubernetes accepts for most object names that end up in other names.
SCHEMA_DESCRIPTIONS = os.environ.get(constants.ENV_SCHEMA_DESCRIPTIONS, "1") != "0"
"""Whether the models carry their field docstrings as descriptions (the CRDs need them)."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MAX = 63
# A DNS-1123 subdomain: what Kubernetes accepts for the name of most objects.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
# The keys of a Secret's data.
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# A resource quantity such as `500m`, `1Gi` or `2`.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# metav1.Condition's rules for `type` and `reason`.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

DNSLabel = Annotated[
    str, pydantic.Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)
]
DNSSubdomain = Annotated[
    str,
    pydantic.Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN),
]

FreeForm = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A JSON object of any shape; the API server keeps it as written."""

Quantity = Annotated[
    int | Annotated[str, pydantic.Field(pattern=QUANTITY_PATTERN)],
    pydantic.WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: a number or a string such as `250m` or `1Gi`."""

ValidationReason = Literal[
    "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"
]


def cel(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: ValidationReason | None = None,
) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry: a CEL rule the API server enforces."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, Any]) -> dict[str, Any]:
    """`json_schema_extra` for a model or field that carries CEL rules."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """`json_schema_extra` for a list merged by key (server-side apply, strategic merge)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}
"""`json_schema_extra` for a list of unique scalars."""


def immutable_fields(
    *mutable: str, rules: Sequence[dict[str, Any]] = ()
) -> Callable[[dict[str, Any], type[Any]], None]:
    """`json_schema_extra` adding `rules` and one transition rule per field but `mutable`.

    Each generated rule names its field in `fieldPath` and message, so `kubectl apply`
    says which field may not change. Optional fields must also not appear or disappear.
    """

    def add(schema: dict[str, Any], cls: type[Any]) -> None:
        entries = schema.setdefault("x-kubernetes-validations", [])
        entries.extend(rules)
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if key in mutable:
                continue
            if info.is_required() or (info.default_factory is None and info.default is not None):
                # Required, or defaulted by the API server: present in old and new object.
                rule = f"self.{key} == oldSelf.{key}"
            else:
                rule = (
                    f"has(self.{key}) == has(oldSelf.{key})"
                    f" && (!has(self.{key}) || self.{key} == oldSelf.{key})"
                )
            entries.append(cel(rule, f"{key} is immutable", field_path=f".{key}"))

    return add


def require_unique(names: Sequence[str], what: str) -> None:
    """Raise ValueError when `names` repeats one: the models' twin of a list-map or set."""
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must not repeat a name")


class Model(pydantic.BaseModel):
    """Base of every Bosun model: camelCase on the wire, docstrings as descriptions.

    Unknown fields are ignored, as Kubernetes clients do, so an older operator can read an
    object written against a newer schema.
    """

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        use_attribute_docstrings=SCHEMA_DESCRIPTIONS,
        extra="ignore",
    )


class ObjectMeta(Model):
    """Standard object metadata; fields not named here are kept as they are."""

    model_config = pydantic.ConfigDict(extra="allow")

    name: str | None = None
    """Name of the object, unique within its namespace."""
    generate_name: str | None = None
    """Prefix from which the API server generates a unique name when `name` is empty."""
    namespace: str | None = None
    """Namespace of the object."""
    uid: str | None = None
    """Unique identifier assigned by the API server."""
    resource_version: str | None = None
    """Opaque version of the object, for optimistic concurrency."""
    generation: int | None = None
    """Sequence number of the desired state (`spec`), set by the API server."""
    labels: dict[str, str] | None = None
    """Labels of the object."""
    annotations: dict[str, str] | None = None
    """Annotations of the object."""
    finalizers: list[str] | None = None
    """Finalizers that must be removed before the object is deleted."""


class Condition(Model):
    """One aspect of an object's observed state, in the standard `metav1.Condition` shape."""

    type: str = pydantic.Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Type of the condition in CamelCase, such as `Ready` or `Succeeded`."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds: `True`, `False` or `Unknown`."""
    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The `metadata.generation` the condition was set for."""
    last_transition_time: datetime.datetime
    """When `status` last changed."""
    reason: str = pydantic.Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    """Machine-readable CamelCase reason for the last transition."""
    message: str = pydantic.Field(max_length=32768)
    """Human-readable details of the last transition; may be empty."""


class Status(Model):
    """What every Bosun object reports: conditions and the generation they describe."""

    observed_generation: int | None = pydantic.Field(default=None, ge=0)
    """The `metadata.generation` the controller last acted on."""
    conditions: list[Condition] = pydantic.Field(
        default_factory=list, json_schema_extra=list_map("type")
    )
    """Current state of the object, one entry per condition type (such as `Ready`)."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of the given type, if it is set."""
        return next((c for c in self.conditions if c.type == type_), None)


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: DNSSubdomain
    """Name of the referenced object."""


class SecretKeySelector(Model):
    """One key of a Secret in the same namespace."""

    name: DNSSubdomain
    """Name of the Secret."""
    key: str = pydantic.Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)
    """Key within the Secret's data."""


class LabelSelectorRequirement(Model):
    """One set-based requirement on a label."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist",
                field_path=".values",
            )
        )
    )

    key: str = pydantic.Field(min_length=1, max_length=317)
    """Label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value relates to `values`."""
    values: list[Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(
        default_factory=list, max_length=64
    )
    """Label values: non-empty for `In` and `NotIn`, empty for `Exists` and
    `DoesNotExist`."""

    @pydantic.model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist"
            )
        return self


class LabelSelector(Model):
    """Selects objects by their labels; an empty selector selects every object."""

    match_labels: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(
        default_factory=dict, max_length=64
    )
    """Labels an object must carry, each with exactly this value."""
    match_expressions: list[LabelSelectorRequirement] = pydantic.Field(
        default_factory=list, max_length=32
    )
    """Set-based requirements an object's labels must all meet."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected."""
        for key, wanted in self.match_labels.items():
            if labels.get(key) != wanted:
                return False
        for requirement in self.match_expressions:
            present = requirement.key in labels
            value = labels.get(requirement.key)
            if requirement.operator == "In" and value not in requirement.values:
                return False
            if requirement.operator == "NotIn" and present and value in requirement.values:
                return False
            if requirement.operator == "Exists" and not present:
                return False
            if requirement.operator == "DoesNotExist" and present:
                return False
        return True


def _retry_description(defaults: retry.Policy, tries: str, field: str) -> str:
    """The description of one retry field, naming the default the code really uses."""
    texts = {
        "maxAttempts": f"{tries.capitalize()} in total, the first included (1 to 100)."
        f" Built-in default: {defaults.max_attempts}.",
        "initialBackoffSeconds": f"Upper bound of the wait before the second of the {tries},"
        f" in seconds. Built-in default: {defaults.initial_backoff_seconds:g}.",
        "backoffMultiplier": "Factor by which the backoff bound grows with each failure"
        f" (1 to 10). Built-in default: {defaults.backoff_multiplier:g}.",
        "maxBackoffSeconds": "Cap on the backoff bound, in seconds; at least"
        f" initialBackoffSeconds. Built-in default: {defaults.max_backoff_seconds:g}.",
    }
    return texts[field]


_RUN_TRIES = "attempts"
_TOOL_TRIES = "sends of the call"
Attempts = Annotated[int, pydantic.Field(ge=1, le=100)]
BackoffSeconds = Annotated[int, pydantic.Field(ge=0, le=86400)]
Multiplier = Annotated[float, pydantic.Field(ge=1, le=10)]


class RetrySpec(Model):
    """Exponential backoff with full jitter.

    The wait after the n-th failed attempt is random between 0 and
    min(maxBackoffSeconds, initialBackoffSeconds * backoffMultiplier^(n-1)). Unset fields fall
    back (a Run's to its Agent's) and finally to the built-in defaults; the cap never falls
    below the initial backoff, even when the two come from different layers. Only retryable
    failures are retried; when a Run's attempts are used up it is dead-lettered.
    """

    model_config = pydantic.ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.initialBackoffSeconds) || !has(self.maxBackoffSeconds)"
                " || self.maxBackoffSeconds >= self.initialBackoffSeconds",
                "maxBackoffSeconds must be at least initialBackoffSeconds",
                field_path=".maxBackoffSeconds",
            )
        )
    )

    max_attempts: Attempts | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.RUN_DEFAULTS, _RUN_TRIES, "maxAttempts"),
    )
    initial_backoff_seconds: BackoffSeconds | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.RUN_DEFAULTS, _RUN_TRIES, "initialBackoffSeconds"),
    )
    backoff_multiplier: Multiplier | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.RUN_DEFAULTS, _RUN_TRIES, "backoffMultiplier"),
    )
    max_backoff_seconds: BackoffSeconds | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.RUN_DEFAULTS, _RUN_TRIES, "maxBackoffSeconds"),
    )

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> Self:
        if (
            self.initial_backoff_seconds is not None
            and self.max_backoff_seconds is not None
            and self.max_backoff_seconds < self.initial_backoff_seconds
        ):
            raise ValueError("maxBackoffSeconds must be at least initialBackoffSeconds")
        return self

    def layers(self) -> dict[str, Any]:
        """The fields this object sets, by their API names (a layer for ``retry.layered``)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class ToolRetrySpec(RetrySpec):
    """Exponential backoff with full jitter for the sends of one tool call within an attempt.

    Only failures that are safe to resend are retried: timeouts, 408/425/429 and 5xx answers,
    and connections that failed before the request left (a Tool that is not idempotent is
    never resent once the request may have reached it). Unset fields fall back to the built-in
    defaults.
    """

    max_attempts: Attempts | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.TOOL_CALL_DEFAULTS, _TOOL_TRIES, "maxAttempts"),
    )
    initial_backoff_seconds: BackoffSeconds | None = pydantic.Field(
        default=None,
        description=_retry_description(
            retry.TOOL_CALL_DEFAULTS, _TOOL_TRIES, "initialBackoffSeconds"
        ),
    )
    backoff_multiplier: Multiplier | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.TOOL_CALL_DEFAULTS, _TOOL_TRIES, "backoffMultiplier"),
    )
    max_backoff_seconds: BackoffSeconds | None = pydantic.Field(
        default=None,
        description=_retry_description(retry.TOOL_CALL_DEFAULTS, _TOOL_TRIES, "maxBackoffSeconds"),
    )


class Resource(Model):
    """Base of the top-level Kinds: apiVersion, kind and metadata."""

    api_version: Literal["bosun.dev/v1alpha1"] = "bosun.dev/v1alpha1"
    """Versioned schema of this representation of an object."""
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)
    """Standard object metadata."""

    @pydantic.model_validator(mode="after")
    def _always_typed(self) -> Self:
        # apiVersion and kind belong in every manifest this model writes, even when the
        # object was built in Python without naming them.
        self.model_fields_set.update({"api_version", "kind"})
        return self

    @classmethod
    def from_dict(cls, manifest: dict[str, Any]) -> Self:
        """Parse a manifest as read from YAML or returned by the API server."""
        return cls.model_validate(manifest)

    def to_dict(self) -> dict[str, Any]:
        """The manifest: JSON-compatible, camelCase, only the fields that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0
    """0 shows the column always, 1 only with `-o wide`."""


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Whether it is usable"
)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclasses.dataclass(frozen=True)
class KindInfo:
    """What the CRD generator needs to know about a Kind beyond its model."""

    model: type[Resource]
    plural: str
    short_names: Sequence[str]
    columns: Sequence[PrinterColumn]
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"  # Cluster: not in the category
    selectable_fields: Sequence[str] = ()  # `selectableFields`: pool workers select by Agent

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def singular(self) -> str:
        return self.kind.lower()
