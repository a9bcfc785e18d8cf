"""The gateway's pure parts: signature and token checks, the token bucket, the delivery's Run."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bosun import constants, contract
from bosun.gateway import auth, lookup

KEY = b"k3y"
BODY = b'{"action":"opened"}'
HMAC = {"hmac": {"secretRef": {"name": "s", "key": "k"}}}
STAMPED = {
    "hmac": {
        "secretRef": {"name": "s", "key": "k"},
        "signatureHeader": "X-Hub-Signature-256",
        "timestampHeader": "X-Timestamp",
        "toleranceSeconds": 60,
    }
}


def _delivery(headers: dict[str, str], body: bytes = BODY, delivery: str = "d-1") -> auth.Delivery:
    return auth.Delivery(headers, body, delivery)


def test_the_signature_is_githubs_sha256_of_the_raw_body() -> None:
    expected = "sha256=" + hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    assert auth.sign(KEY, BODY) == expected
    auth.check(HMAC, KEY, _delivery({"x-bosun-signature-256": expected}), now=0)
    # The id is not signed in this scheme: any id passes, so the body names the Run.
    auth.check(HMAC, KEY, _delivery({"x-bosun-signature-256": expected}, delivery="d-2"), 0)
    assert auth.identity(HMAC, "d-1", BODY) == auth.identity(HMAC, "d-2", BODY)
    assert auth.identity(HMAC, "d-1", BODY) == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert auth.identity(HMAC, "d-1", BODY) != auth.identity(HMAC, "d-1", BODY + b" ")


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({}, BODY, "missing X-Bosun-Signature-256"),
        ({"x-bosun-signature-256": "sha256=00"}, BODY, "does not match"),
        ({"x-bosun-signature-256": auth.sign(b"other", BODY)}, BODY, "does not match"),
        ({"x-bosun-signature-256": auth.sign(KEY, BODY)}, BODY + b" ", "does not match"),
        ({"x-bosun-signature-256": auth.sign(KEY, BODY).upper()}, BODY, "does not match"),
    ],
)
def test_a_wrong_or_missing_signature_is_refused(
    headers: dict[str, str], body: bytes, why: str
) -> None:
    with pytest.raises(auth.Unauthenticated, match=why):
        auth.check(HMAC, KEY, _delivery(headers, body), now=0)


def test_a_timestamp_is_signed_with_the_id_and_must_be_recent() -> None:
    now = 1_700_000_000.0
    stamp = str(int(now) - 30)
    signature = auth.sign(KEY, BODY, stamp, "d-1")
    expected = hmac.new(KEY, f"{stamp}.d-1.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature == "sha256=" + expected
    good = {"x-hub-signature-256": signature, "x-timestamp": stamp}
    auth.check(STAMPED, KEY, _delivery(good), now)
    assert auth.identity(STAMPED, "d-1", BODY) == "d-1"  # the id is signed: it names the Run
    with pytest.raises(auth.Unauthenticated, match="does not match"):  # under another id
        auth.check(STAMPED, KEY, _delivery(good, delivery="d-2"), now)
    with pytest.raises(auth.Unauthenticated, match="over the tolerance of 60s"):
        auth.check(STAMPED, KEY, _delivery(good), now + 120)
    with pytest.raises(auth.Unauthenticated, match="over the tolerance"):  # from the future
        auth.check(STAMPED, KEY, _delivery(good), now - 120)
    moved = {**good, "x-timestamp": str(int(now))}  # a fresh time on an old signature
    with pytest.raises(auth.Unauthenticated, match="does not match"):
        auth.check(STAMPED, KEY, _delivery(moved), now)
    with pytest.raises(auth.Unauthenticated, match="missing X-Timestamp"):
        auth.check(STAMPED, KEY, _delivery({"x-hub-signature-256": signature}), now)
    for bad in ("yesterday", "1" * 400, "-5", "\u0661\u0662"):
        with pytest.raises(auth.Unauthenticated, match="not Unix seconds"):
            auth.check(STAMPED, KEY, _delivery({**good, "x-timestamp": bad}), now)


def test_bearer_tokens() -> None:
    bearer = {"bearer": {"secretRef": {"name": "s", "key": "k"}}}
    auth.check(bearer, b"tok", _delivery({"authorization": "Bearer tok"}), 0)
    assert auth.identity(bearer, "d-1", BODY) == "d-1"
    for given in ("", "Bearer", "Basic tok", "Bearer other", "Bearer tok2", "Bearer \xa0"):
        with pytest.raises(auth.Unauthenticated):
            auth.check(bearer, b"tok", _delivery({"authorization": given}), 0)
    with pytest.raises(auth.Unauthenticated, match="no auth method"):
        auth.check({}, b"tok", _delivery({"authorization": "Bearer tok"}), 0)


def test_the_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = [0.0]
    buckets = lookup.Buckets(clock=lambda: clock[0])
    hook = ("ns", "h")
    assert [buckets.take(hook, 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take(hook, 2.0, 3) == pytest.approx(0.5)
    assert buckets.take(("ns", "other"), 2.0, 3) == 0.0  # each Webhook its own bucket
    clock[0] = 0.5
    assert buckets.take(hook, 2.0, 3) == 0.0
    assert buckets.take(hook, 2.0, 3) > 0
    clock[0] = 100.0  # a quiet spell refills to the burst, no more
    assert [buckets.take(hook, 2.0, 3) for _ in range(4)][-1] > 0


def test_a_deliverys_run_is_named_and_keyed_by_its_id() -> None:
    hook = {
        "metadata": {"name": "issues", "namespace": "team", "uid": "u-1"},
        "spec": {
            "runTemplate": {
                "metadata": {"labels": {"a": "b", constants.LABEL_WEBHOOK: "forged"}},
                "spec": {"agentRef": {"name": "triage"}, "input": "ignored"},
            }
        },
    }
    run = contract.webhook_run(hook, "d-1", "Triage #1")
    assert run["metadata"]["name"] == contract.webhook_run_name("issues", "d-1")
    assert run["metadata"]["name"] != contract.webhook_run_name("issues", "d-2")
    assert len(contract.webhook_run_name("x" * 46, "d" * 180)) == 63
    assert run["metadata"]["labels"] == {"a": "b", constants.LABEL_WEBHOOK: "issues"}
    assert run["metadata"]["annotations"] == {
        contract.ANNOTATION_DELIVERY: "d-1",
        contract.ANNOTATION_DELIVERY_IDENTITY: "d-1",
    }
    assert run["spec"] == {
        "agentRef": {"name": "triage"},
        "input": "Triage #1",
        "idempotencyKey": "webhook/issues/d-1",
    }
    assert run["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    by_body = contract.webhook_run(hook, "d-2", "Triage #1", identity="sha256:ab")
    assert by_body["metadata"]["name"] == contract.webhook_run_name("issues", "sha256:ab")
    assert by_body["spec"]["idempotencyKey"] == "webhook/issues/d-2"
