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


def test_the_signature_is_githubs_sha256_of_the_raw_body() -> None:
    expected = "sha256=" + hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    assert auth.sign(KEY, BODY) == expected
    auth.check(HMAC, KEY, {"x-bosun-signature-256": expected}, BODY, now=0)


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
        auth.check(HMAC, KEY, headers, body, now=0)


def test_a_timestamp_is_signed_and_must_be_recent() -> None:
    now = 1_700_000_000.0
    stamp = str(int(now) - 30)
    good = {"x-hub-signature-256": auth.sign(KEY, BODY, stamp), "x-timestamp": stamp}
    auth.check(STAMPED, KEY, good, BODY, now)
    with pytest.raises(auth.Unauthenticated, match="over the tolerance of 60s"):
        auth.check(STAMPED, KEY, good, BODY, now + 120)
    with pytest.raises(auth.Unauthenticated, match="over the tolerance"):  # from the future
        auth.check(STAMPED, KEY, good, BODY, now - 120)
    moved = {**good, "x-timestamp": str(int(now))}  # a fresh time on an old signature
    with pytest.raises(auth.Unauthenticated, match="does not match"):
        auth.check(STAMPED, KEY, moved, BODY, now)
    with pytest.raises(auth.Unauthenticated, match="missing X-Timestamp"):
        auth.check(STAMPED, KEY, {"x-hub-signature-256": good["x-hub-signature-256"]}, BODY, now)
    with pytest.raises(auth.Unauthenticated, match="not Unix seconds"):
        auth.check(STAMPED, KEY, {**good, "x-timestamp": "yesterday"}, BODY, now)


def test_bearer_tokens() -> None:
    bearer = {"bearer": {"secretRef": {"name": "s", "key": "k"}}}
    auth.check(bearer, b"tok\n", {"authorization": "Bearer tok"}, BODY, 0)
    for given in ("", "Bearer", "Basic tok", "Bearer other"):
        with pytest.raises(auth.Unauthenticated):
            auth.check(bearer, b"tok", {"authorization": given}, BODY, 0)
    with pytest.raises(auth.Unauthenticated, match="no auth method"):
        auth.check({}, b"tok", {"authorization": "Bearer tok"}, BODY, 0)


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
    assert len(contract.webhook_run_name("x" * 52, "d" * 180)) <= 63
    assert run["metadata"]["labels"] == {"a": "b", constants.LABEL_WEBHOOK: "issues"}
    assert run["spec"] == {
        "agentRef": {"name": "triage"},
        "input": "Triage #1",
        "idempotencyKey": "webhook/issues/d-1",
    }
    assert run["metadata"]["ownerReferences"][0]["uid"] == "u-1"
