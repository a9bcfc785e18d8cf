"""A pool worker's book of offers: what counts as an offer, who tries first, what is dropped."""

from __future__ import annotations

from typing import Any

from bosun.runner import claims, offers

POOL = "bosun-pool-a"


def _run(name: str, *attempts: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"u-{name}"}, "status": {"attempts": list(attempts)}}


def test_only_an_unended_attempt_of_this_pool_is_an_offer() -> None:
    assert claims.offered_attempt(_run("r", {"number": 1, "pool": POOL}), POOL) == 1
    assert claims.offered_attempt(_run("r", {"number": 1, "job": "r-a1"}), POOL) is None
    ended = {"number": 1, "pool": POOL, "endTime": "2030-01-01T00:00:00Z"}
    assert claims.offered_attempt(_run("r", ended), POOL) is None
    assert claims.offered_attempt(_run("r", {"number": 2, "pool": "bosun-pool-b"}), POOL) is None
    assert claims.offered_attempt(_run("r"), POOL) is None


def test_one_worker_of_a_pool_is_preferred_for_each_run_and_the_others_wait() -> None:
    a, b = offers.Offers(POOL, "worker-a"), offers.Offers(POOL, "worker-b")
    names = [f"run-{i}" for i in range(200)]
    for book, peer in ((a, "worker-b"), (b, "worker-a")):
        # Each learns its peer from a Run the peer ran.
        done = {"number": 1, "pool": POOL, "pod": peer, "endTime": "2030-01-01T00:00:00Z"}
        book.seen(_run("held", done))
        for name in names:
            book.seen(_run(name, {"number": 1, "pool": POOL}))
    first_a = {n for n in names if a.preferred(n)}
    first_b = {n for n in names if b.preferred(n)}
    assert first_a.isdisjoint(first_b) and first_a | first_b == set(names)
    assert 60 < len(first_a) < 140  # spread over both
    due_a, wait = a.due(busy=set())
    assert {n for n, _, _ in due_a} == first_a  # the others wait for the stagger
    assert 0 < wait <= offers.STAGGER_SECONDS


def test_an_offer_taken_is_not_tried_again_until_its_next_attempt() -> None:
    book = offers.Offers(POOL, "worker-a")
    book.seen(_run("r", {"number": 1, "pool": POOL}))
    assert [n for n, _, _ in book.due(busy=set())[0]] == ["r"]
    book.taken("r", 1)
    book.seen(_run("r", {"number": 1, "pool": POOL}))
    assert book.due(busy=set())[0] == []
    failed = {"number": 1, "pool": POOL, "endTime": "2030-01-01T00:00:00Z"}
    book.seen(_run("r", failed, {"number": 2, "pool": POOL}))
    assert [(n, k) for n, k, _ in book.due(busy=set())[0]] == [("r", 2)]
    assert book.due(busy={"r"})[0] == []
    book.retry_later("r")
    assert book.due(busy=set())[0] == []
    book.forget("r")
    assert book.due(busy=set())[0] == []
