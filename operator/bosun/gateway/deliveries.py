"""One delivery, from its request to its answer: the checks in order, then the Run.

``Receiver.receive`` answers every request with an ``Answer`` (status, JSON body, headers)
and the outcome it counts. The order is the cheapest refusal first, and nothing is created
unless every check passed: 404 unknown hook, 405 not POST, 411/413 no or too large a body,
401 unauthenticated, 503 suspended or key unreadable, 429 over the rate limit, 415 not JSON,
400 no delivery id, 204 filtered out, 422 ``filter`` or ``input`` failing on this body, then
the Run's create: 202 for a new Run, 200 for the Run an earlier delivery with the same id made,
503 when the API server cannot be reached or refuses to store it. A 202 is sent only after the
API server answered the create, so a delivery answered 202 is never lost.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from bosun import cel, constants, contract, kube
from bosun.gateway import auth, lookup, tallies

__all__ = [
    "DELIVERY_ID_MAX",
    "HIDDEN_HEADERS",
    "RETRY_AFTER_UNAVAILABLE",
    "Answer",
    "Obj",
    "Receiver",
]

log = logging.getLogger("bosun.gateway")

Obj = dict[str, Any]

DELIVERY_ID_MAX = 180
"""The longest delivery id: it must fit the Run's idempotencyKey with the Webhook's name."""
HIDDEN_HEADERS = ("authorization", "cookie", "token", "secret", "password", "api-key", "apikey")
"""Headers whose lower-case name contains one of these are kept from ``filter`` and
``input``: a credential (``Authorization``, ``Cookie``, ``X-Forwarded-Access-Token``, ...)
must never reach a Run's input."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOOK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
RETRY_AFTER_UNAVAILABLE = 5
_JSON_TYPES = ("application/json",)


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: Obj | None
    outcome: str
    """``bosun_webhook_requests_total``'s label: accepted, duplicate, filtered, or why not."""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hook: tuple[str, str] | None = None
    """The Webhook the answer counts for (none for an unknown one)."""
    run: str | None = None


def _hidden(header: str) -> bool:
    return any(part in header for part in HIDDEN_HEADERS)


def _unavailable(
    message: str,
    hook: tuple[str, str] | None,
    *,
    outcome: str = "unavailable",
    seconds: int = RETRY_AFTER_UNAVAILABLE,
) -> Answer:
    """A 503: nothing was created, and the sender should try again in ``seconds``."""
    return _error(503, outcome, message, hook, **{"Retry-After": str(seconds)})


def _error(
    status: int, outcome: str, message: str, hook: tuple[str, str] | None, **headers: str
) -> Answer:
    return Answer(status, {"error": message}, outcome, headers, hook)


class Receiver:
    """Turns requests into Runs; safe to share between the server's threads."""

    def __init__(
        self,
        rest: kube.Rest,
        namespaces: tuple[str, ...] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rest = rest
        self.namespaces = frozenset(namespaces)
        self.lookup = lookup.Lookup(rest)
        self.buckets = lookup.Buckets()
        self.tallies = tallies.Tallies()
        self.clock = clock
        self._cel = cel.Evaluator()

    def warm(self) -> None:
        """Load CEL before the first delivery, so that one does not wait for the grammar."""
        self._cel.program("true")

    def receive(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        read: Callable[[int], bytes],
    ) -> Answer:
        """Answer one request; ``headers`` have lower-case names, ``read(n)`` reads the body."""
        answer = self._receive(method, path, headers, read)
        if answer.hook is not None:
            self.tallies.count(answer.hook, answer.outcome, answer.run)
        return answer

    def _receive(
        self, method: str, path: str, headers: Mapping[str, str], read: Callable[[int], bytes]
    ) -> Answer:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "hooks" or not all(parts[1:]):
            return _error(404, "not_found", "no such hook: POST /hooks/<namespace>/<name>", None)
        namespace, name = parts[1], parts[2]
        unknown = _error(404, "not_found", f"no hook {namespace}/{name}", None)
        if not (_DNS_LABEL.match(namespace) and _HOOK_NAME.match(name)):
            return unknown  # not a name an object can have: the API server is not asked
        if self.namespaces and namespace not in self.namespaces:
            return unknown
        try:
            hook = self.lookup.webhook(namespace, name)
        except kube.ApiError as err:
            log.warning("Cannot read Webhook %s/%s: %s", namespace, name, err)
            return _unavailable("the API server cannot be reached; retry later", None)
        if hook is None:
            return unknown
        where = (namespace, name)
        if method != "POST":
            return _error(405, "method_not_allowed", "deliveries are POSTed", where, Allow="POST")
        return self._deliver(hook, where, headers, read)

    def _deliver(
        self,
        hook: Obj,
        where: tuple[str, str],
        headers: Mapping[str, str],
        read: Callable[[int], bytes],
    ) -> Answer:
        spec: Obj = hook.get("spec") or {}
        limit = int(spec.get("maxBodyBytes") or 1_048_576)
        length = headers.get("content-length", "").strip()
        if not (length.isascii() and length.isdigit()):
            return _error(411, "bad_request", "a Content-Length is required", where)
        if int(length) > limit:
            return _error(413, "too_large", f"the body is over {limit} bytes", where)
        body = read(int(length))
        id_header = str(spec.get("deliveryIdHeader") or "X-Bosun-Delivery")
        delivery = headers.get(id_header.lower(), "").strip()
        refused = self._authenticate(hook, where, headers, body, delivery)
        if refused is not None:
            return refused
        rate = spec.get("rateLimit")
        if rate:
            wait = self.buckets.take(where, float(rate["requestsPerSecond"]), int(rate["burst"]))
            if wait > 0:
                seconds = str(max(1, int(wait + 0.999)))
                return _error(
                    429,
                    "rate_limited",
                    "over this Webhook's rate limit",
                    where,
                    **{"Retry-After": seconds},
                )
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in _JSON_TYPES and not media.endswith("+json"):
            return _error(415, "unsupported_media", "the body must be application/json", where)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as err:
            return _error(415, "unsupported_media", f"the body is not JSON: {err}", where)
        if not delivery or len(delivery) > DELIVERY_ID_MAX or not delivery.isprintable():
            return _error(
                400,
                "bad_request",
                f"the {id_header} header must name the delivery (1 to {DELIVERY_ID_MAX}"
                " printable characters)",
                where,
            )
        identity = auth.identity(spec.get("auth") or {}, delivery, body)
        return self._start(hook, where, (delivery, identity), parsed, headers)

    def _authenticate(
        self,
        hook: Obj,
        where: tuple[str, str],
        headers: Mapping[str, str],
        body: bytes,
        delivery: str,
    ) -> Answer | None:
        spec: Obj = hook.get("spec") or {}
        method: Obj = spec.get("auth") or {}
        ref = (method.get("hmac") or method.get("bearer") or {}).get("secretRef") or {}
        try:
            key = self.lookup.key(where[0], str(ref.get("name")), str(ref.get("key")))
        except lookup.KeyUnreadable as err:
            log.warning("Webhook %s/%s cannot authenticate deliveries: %s", *where, err)
            return _unavailable("this hook's key cannot be read (see the gateway's log)", where)
        except kube.ApiError as err:
            log.warning("Cannot read the key of Webhook %s/%s: %s", *where, err)
            return _unavailable("the API server cannot be reached; retry later", where)
        try:
            auth.check(method, key, auth.Delivery(headers, body, delivery), self.clock())
        except auth.Unauthenticated as err:
            return _error(401, "unauthorized", str(err), where)
        if spec.get("suspend"):
            return _unavailable("this hook is suspended", where, outcome="suspended")
        return None

    def _start(
        self,
        hook: Obj,
        where: tuple[str, str],
        delivery: tuple[str, str],
        parsed: Any,
        headers: Mapping[str, str],
    ) -> Answer:
        spec: Obj = hook.get("spec") or {}
        shown = {k: v for k, v in headers.items() if not _hidden(k)}
        try:
            values = cel.activation({"body": parsed, "headers": shown})
        except cel.CELError as err:
            return _error(422, "invalid_input", f"the body cannot be given to CEL: {err}", where)
        expression = spec.get("filter")
        if expression:
            try:
                wanted = self._cel.evaluate(expression, values)
            except cel.CELError as err:
                return _error(422, "invalid_input", f"filter {err}", where)
            if not wanted:
                return Answer(204, None, "filtered", hook=where)
        try:
            text = self._cel.text(str(spec.get("input") or ""), values)
        except cel.CELError as err:
            return _error(422, "invalid_input", f"input {err}", where)
        if not text:
            return _error(422, "invalid_input", "input yielded an empty string", where)
        return self._create(hook, where, delivery, text)

    def _create(
        self, hook: Obj, where: tuple[str, str], delivery: tuple[str, str], text: str
    ) -> Answer:
        run = contract.webhook_run(hook, delivery[0], text, identity=delivery[1])
        name = run["metadata"]["name"]
        path = kube.collection_path(constants.API_VERSION, "runs", where[0])
        try:
            self.rest.request("POST", path, run)
        except kube.AlreadyExists:
            return self._existing(where, delivery, name)
        except kube.Invalid as err:
            return _error(422, "invalid_input", f"the Run is not valid: {err.message}", where)
        except kube.ApiError as err:
            log.warning("Cannot create Run %s/%s: %s", where[0], name, err)
            return _unavailable("the Run could not be stored; retry later", where)
        log.info("Delivery accepted webhook=%s/%s run=%s", *where, name)
        body = {"namespace": where[0], "run": name, "created": True}
        return Answer(202, body, "accepted", hook=where, run=name)

    def _existing(self, where: tuple[str, str], delivery: tuple[str, str], name: str) -> Answer:
        """The answer to a delivery whose Run's name is taken: the Run an earlier delivery
        of the same identity made (200), or a clash with a Run something else made (409)."""
        try:
            found = self.rest.get(constants.API_VERSION, "runs", where[0], name)
        except kube.ApiError as err:
            log.warning("Cannot read Run %s/%s: %s", where[0], name, err)
            return _unavailable("the API server cannot be reached; retry later", where)
        if found is None:  # deleted since the create was refused: the sender should try again
            return _unavailable(f"Run {name} was just deleted; retry", where, seconds=1)
        meta = found.get("metadata") or {}
        ours = (meta.get("labels") or {}).get(constants.LABEL_WEBHOOK) == where[1] and (
            meta.get("annotations") or {}
        ).get(contract.ANNOTATION_DELIVERY_IDENTITY) == delivery[1]
        if not ours:  # a Run something else made under this name: never a false 200
            return _error(409, "conflict", f"Run {name} exists and is not this delivery's", where)
        body = {"namespace": where[0], "run": name, "created": False}
        return Answer(200, body, "duplicate", hook=where, run=name)
