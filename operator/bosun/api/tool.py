"""The Tool Kind: something an agent can call, over exactly one transport (HTTP or MCP).

A Tool describes itself to the model (`description`, `inputSchema`) and tells the runner
how to reach it. The runner validates every call's arguments against `inputSchema` first.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

import pydantic

from bosun.api import common

__all__ = [
    "HEADER_NAME_PATTERN",
    "KIND",
    "URL_PATTERN",
    "HTTPTransport",
    "Header",
    "Headers",
    "InputSchema",
    "MCPTransport",
    "SecretValueSource",
    "Tool",
    "ToolSpec",
    "ToolStatus",
]

HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
URL_PATTERN = r"^https?://[^\s]+$"

InputSchema = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["object"],
                    "description": "Always object: tool arguments are a JSON object.",
                }
            },
        }
    ),
]
"""A JSON Schema for tool arguments; the API server checks only that its type is object."""


class SecretValueSource(common.Model):
    """The kubelet reads the Secret into the runner's environment; the runner never reads
    Secrets through the API."""

    secret_key_ref: common.SecretKeySelector
    """Secret key holding the value, such as `Bearer <token>`; injected into the runner."""


class Header(common.Model):
    """One HTTP header sent with every call: a literal value or one read from a Secret."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.value) != has(self.valueFrom)",
                "each header needs exactly one of value or valueFrom",
            )
        )
    )

    name: str = pydantic.Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)
    """Header name, such as `Authorization`."""
    value: str | None = pydantic.Field(default=None, max_length=4096)
    """Literal header value; use valueFrom for credentials."""
    value_from: SecretValueSource | None = None
    """Read the header value from a Secret."""

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("each header needs exactly one of value or valueFrom")
        return self


def _unique_header_names(headers: list[Header]) -> list[Header]:
    common.require_unique([h.name for h in headers], "headers")
    return headers


Headers = Annotated[list[Header], pydantic.AfterValidator(_unique_header_names)]


class HTTPTransport(common.Model):
    """Call the tool as an HTTP endpoint.

    GET and DELETE send the arguments as query parameters, the other methods as a JSON body.
    The response body is the tool result. An idempotent Tool also gets an `Idempotency-Key`
    header, the same for every retry of one call.
    """

    url: str = pydantic.Field(max_length=2048, pattern=URL_PATTERN)
    """Endpoint URL (http or https)."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method."""
    headers: Headers = pydantic.Field(
        default_factory=list, max_length=32, json_schema_extra=common.list_map("name")
    )
    """Headers sent with every call, such as credentials from a Secret."""
    timeout_seconds: int = pydantic.Field(default=30, ge=1, le=3600)
    """Timeout of one call, in seconds."""


class MCPTransport(common.Model):
    """Call one tool of a Model Context Protocol server over streamable HTTP."""

    url: str = pydantic.Field(max_length=2048, pattern=URL_PATTERN)
    """URL of the MCP server's streamable-HTTP endpoint."""
    tool_name: str = pydantic.Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    """Name of the tool on the MCP server."""
    headers: Headers = pydantic.Field(
        default_factory=list, max_length=32, json_schema_extra=common.list_map("name")
    )
    """Headers sent with every request, such as credentials from a Secret."""
    timeout_seconds: int = pydantic.Field(default=30, ge=1, le=3600)
    """Timeout of one call, in seconds."""


class ToolSpec(common.Model):
    """Exactly one transport, http or mcp, must be set."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.http) != has(self.mcp)",
                "exactly one transport must be set: spec.http or spec.mcp",
            )
        )
    )

    description: str = pydantic.Field(min_length=1, max_length=4096)
    """What the tool does and when to use it; the model reads this to decide."""
    input_schema: InputSchema | None = None
    """JSON Schema of the arguments, an object schema (`type: object`). The model is given
    it, and the runner rejects a call whose arguments do not validate. Unset: any object."""
    http: HTTPTransport | None = None
    """Reach the tool over HTTP. Exactly one of http and mcp is set."""
    mcp: MCPTransport | None = None
    """Reach the tool on an MCP server. Exactly one of http and mcp is set."""
    idempotent: bool = False
    """True when repeating a call is harmless (or the endpoint honours Idempotency-Key). A call
    whose outcome is unknown after a crash is then re-sent; otherwise the Run stops for a human
    decision rather than risk a duplicate side effect."""
    retry: common.ToolRetrySpec | None = None
    """Retry of failed calls (timeouts, 429 and 5xx responses) within one attempt."""

    @pydantic.field_validator("input_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None and schema.get("type", "object") != "object":
            raise ValueError("inputSchema.type must be object")
        return schema

    @pydantic.model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.http is None) == (self.mcp is None):
            raise ValueError("exactly one transport must be set: spec.http or spec.mcp")
        return self


class ToolStatus(common.Status):
    """The observed state of a Tool."""

    transport: Literal["http", "mcp"] | None = None
    """The transport in use, for `kubectl get`."""


class Tool(common.Resource):
    """A tool an agent can call: its description, argument schema and transport.

    The name is what the model sees, so it is a DNS label (at most 63 characters, no dots).
    """

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                f"self.metadata.name.matches('{common.DNS_LABEL_PATTERN}')"
                f" && size(self.metadata.name) <= {common.DNS_LABEL_MAX}",
                "metadata.name of a Tool must be a DNS label (at most 63 characters: a-z, 0-9 "
                "and '-'), because models accept only such tool names",
            )
        )
    )

    kind: Literal["Tool"] = "Tool"
    """Kind of the object: Tool."""
    spec: ToolSpec
    """The tool's description, argument schema and transport."""
    status: ToolStatus = pydantic.Field(default_factory=ToolStatus)
    """What the operator observed: readiness and the transport."""

    @pydantic.model_validator(mode="after")
    def _name_is_label(self) -> Self:
        name = self.metadata.name
        if name is not None and (
            len(name) > common.DNS_LABEL_MAX or not re.match(common.DNS_LABEL_PATTERN, name)
        ):
            raise ValueError("metadata.name of a Tool must be a DNS label")
        return self


KIND = common.KindInfo(
    model=Tool,
    plural="tools",
    short_names=("tl",),
    columns=(
        common.PrinterColumn("Transport", ".status.transport", description="http or mcp"),
        common.PrinterColumn("URL", ".spec.*.url", description="Endpoint URL", priority=1),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
)
