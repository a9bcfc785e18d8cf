"""The Webhook Kind: signed HTTP deliveries that start a Run, exactly once per delivery.

`bosun gateway` receives `POST /hooks/<namespace>/<name>`, checks the signature (HMAC-SHA256)
or the bearer token against a key of a Secret, evaluates `filter` and `input` (CEL over the
JSON `body` and the `headers`) and creates the Run, named after the Webhook and what the sender
vouched for (`<webhook>-<hash>`: the delivery id, or the body when only the body is signed), so
a redelivery, however often and on whichever replica, answers with the Run the first one made.
The operator compiles both expressions and reports a Webhook whose CEL does not compile as not
Ready.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from bosun.api import common, schedule

__all__ = [
    "HEADER_PATTERN",
    "KIND",
    "NAME_MAX",
    "BearerAuth",
    "HmacAuth",
    "RateLimit",
    "Webhook",
    "WebhookAuth",
    "WebhookRunTemplate",
    "WebhookSpec",
    "WebhookStatus",
]

NAME_MAX = 46
"""The longest Webhook name: its Runs are `<webhook>-<16 characters>`, within 63."""

HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header name (RFC 9110 token)."""

_CEL_MAX = 4096


class HmacAuth(common.Model):
    """The sender signs each delivery with a shared key: `sha256=<hex>` of HMAC-SHA256."""

    secret_ref: common.SecretKeySelector
    """The key of a Secret holding the shared signing key, at least 16 bytes (a trailing
    newline is dropped). The gateway must be allowed to read it (the chart's
    `gateway.secretNames`, or a Role the namespace grants it)."""
    signature_header: str = pydantic.Field(
        default="X-Bosun-Signature-256", max_length=128, pattern=HEADER_PATTERN
    )
    """Header carrying `sha256=<hex>`: GitHub sends `X-Hub-Signature-256`."""
    timestamp_header: str | None = pydantic.Field(
        default=None, max_length=128, pattern=HEADER_PATTERN
    )
    """Header carrying the delivery's Unix time in seconds. When set, the signature covers
    `<timestamp>.<delivery id>.<raw body>`, a delivery older or newer than `toleranceSeconds`
    is refused, and the delivery id names the Run. Unset: the signature covers the raw body
    alone (GitHub's scheme); the id and the headers are then unsigned, so the body names the
    Run (a captured body re-sent under another id answers with the Run it made, and two
    deliveries with identical bodies are one)."""
    tolerance_seconds: int = pydantic.Field(default=300, ge=1, le=86_400)
    """How far a delivery's timestamp may be from the gateway's clock."""


class BearerAuth(common.Model):
    """The sender presents a token: `Authorization: Bearer <token>`."""

    secret_ref: common.SecretKeySelector
    """The key of a Secret holding the token."""


class WebhookAuth(common.Model):
    """How a delivery proves it comes from the sender: exactly one of hmac or bearer."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                "has(self.hmac) != has(self.bearer)",
                "auth must set exactly one of hmac or bearer",
            )
        )
    )

    hmac: HmacAuth | None = None
    """HMAC-SHA256 of the raw body (GitHub's scheme), or of the timestamp, id and body."""
    bearer: BearerAuth | None = None
    """A bearer token."""


class RateLimit(common.Model):
    """A token bucket per Webhook, in each gateway replica: deliveries over it get 429."""

    requests_per_second: float = pydantic.Field(gt=0, le=10_000)
    """Deliveries per second accepted on average."""
    burst: int = pydantic.Field(default=10, ge=1, le=100_000)
    """Deliveries accepted at once after a quiet spell."""


class WebhookRunTemplate(common.Model):
    """The Run each delivery creates; its input is the Webhook's `input` expression."""

    metadata: schedule.RunTemplateMeta | None = None
    """Labels and annotations of each Run."""
    spec: schedule.RunTemplateFields
    """Each Run's spec, but for its input."""


class WebhookSpec(common.Model):
    """Who may deliver, which deliveries start a Run, and what the Run is."""

    auth: WebhookAuth
    """How a delivery proves its sender."""
    delivery_id_header: str = pydantic.Field(
        default="X-Bosun-Delivery", max_length=128, pattern=HEADER_PATTERN
    )
    """Header naming the delivery, unique per event and the same on a redelivery (GitHub:
    `X-GitHub-Delivery`). It is the Run's idempotency key, and names the Run when the sender
    vouches for it (bearer, or a timestamped signature); a delivery without it is refused
    (400)."""
    filter: str | None = pydantic.Field(default=None, min_length=1, max_length=_CEL_MAX)
    """CEL over `body` (the parsed JSON) and `headers` (lower-case names to values): false
    answers 204 and creates nothing. Unset: every delivery starts a Run."""
    input: str = pydantic.Field(min_length=1, max_length=_CEL_MAX)
    """CEL over `body` and `headers` giving the Run's input (a string), such as
    `'Triage issue #' + string(body.issue.number) + ': ' + body.issue.title`."""
    run_template: WebhookRunTemplate
    """The Run each delivery creates."""
    rate_limit: RateLimit | None = None
    """Deliveries per second this Webhook accepts, in each gateway replica. Unset: no limit
    but the gateway's own."""
    max_body_bytes: int = pydantic.Field(default=1_048_576, ge=1, le=10_485_760)
    """The largest body accepted (413 beyond it)."""
    suspend: bool = False
    """Refuse deliveries (503, nothing created) while true."""


class WebhookStatus(common.Status):
    """Readiness (the operator: both expressions compile) and what the gateway received."""

    accepted: int = pydantic.Field(default=0, ge=0)
    """Deliveries that created a Run."""
    duplicates: int = pydantic.Field(default=0, ge=0)
    """Redeliveries answered with the Run already made."""
    filtered: int = pydantic.Field(default=0, ge=0)
    """Deliveries the filter dropped."""
    rejected: int = pydantic.Field(default=0, ge=0)
    """Deliveries refused: unauthenticated, too large, not JSON, no delivery id, a failing
    input, or over the rate limit."""
    failed: int = pydantic.Field(default=0, ge=0)
    """Deliveries the gateway could not store (the API server unreachable or refusing)."""
    last_delivery_time: datetime.datetime | None = None
    """When the last counted delivery arrived."""
    last_run: str | None = None
    """Name of the last Run a delivery created."""


class Webhook(common.Resource):
    """Signed HTTP deliveries to `bosun gateway` that start a Run, once per delivery."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.validations(
            common.cel(
                f"size(self.metadata.name) <= {NAME_MAX}",
                f"metadata.name of a Webhook must be at most {NAME_MAX} characters (its Runs"
                " are named <webhook>-<16 characters>)",
            )
        )
    )

    kind: Literal["Webhook"] = "Webhook"
    """Kind of the object: Webhook."""
    spec: WebhookSpec
    """Who may deliver and what each delivery creates."""
    status: WebhookStatus = pydantic.Field(default_factory=WebhookStatus)
    """Readiness and delivery counts."""


KIND = common.KindInfo(
    model=Webhook,
    plural="webhooks",
    short_names=("bhook",),
    columns=(
        common.PrinterColumn("Agent", ".spec.runTemplate.spec.agentRef.name", description=""),
        common.PrinterColumn("Accepted", ".status.accepted", "integer", "Runs created"),
        common.PrinterColumn("Rejected", ".status.rejected", "integer", "Deliveries refused"),
        common.PrinterColumn("Last", ".status.lastDeliveryTime", "date", "The last delivery"),
        common.READY_COLUMN,
        common.AGE_COLUMN,
    ),
)
