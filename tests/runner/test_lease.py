"""Lease rules: who may take it, epochs, renewal, loss on takeover or silence."""

from __future__ import annotations

import datetime

import pytest

from bosun import kube
from bosun.runner import errors, lease

from . import fakes

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def _lease(holder: str | None, renewed_seconds_ago: float, duration: int = 15) -> dict[str, object]:
    renew = NOW - datetime.timedelta(seconds=renewed_seconds_ago)
    return {
        "spec": {
            "holderIdentity": holder,
            "renewTime": lease.format_time(renew),
            "leaseDurationSeconds": duration,
            "leaseTransitions": 4,
        }
    }


def test_only_a_free_or_expired_lease_may_be_taken() -> None:
    assert lease.is_free({"spec": {}}, NOW)
    assert lease.is_free(_lease(None, 0), NOW)
    assert not lease.is_free(_lease("other", 14), NOW)
    assert lease.is_free(_lease("other", 16), NOW)
    assert lease.is_free({"spec": {"holderIdentity": "x"}}, NOW)


def test_taking_a_lease_increments_the_fencing_epoch() -> None:
    taken = lease.acquired(_lease(None, 100), "me", 3.4, NOW)
    spec = taken["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"], spec["leaseDurationSeconds"]) == (
        "me",
        5,
        3,
    )
    assert lease.parse_time(spec["renewTime"]) == NOW


def _keeper(
    cluster: fakes.FakeCluster, clock: fakes.Clock, identity: str = "me"
) -> lease.LeaseKeeper:
    return lease.LeaseKeeper(
        lambda: cluster,
        "l",
        identity,
        duration_seconds=10,
        renew_seconds=3,
        clock=clock,
        now=lambda: NOW + datetime.timedelta(seconds=clock.now - 1000.0),
    )


def test_acquire_renew_and_lose_on_takeover() -> None:
    cluster, clock = fakes.FakeCluster(), fakes.Clock()
    cluster.create_lease("l", 10)
    keeper = _keeper(cluster, clock)
    assert keeper.acquire(5, sleep=clock.sleep) == 1
    keeper.ensure_held()
    clock.sleep(3)
    assert keeper.renew_once(cluster)
    assert keeper.renewals == 1
    # Another runner takes over (as after this one stalled).
    body = cluster.get_lease("l")
    body["spec"].update(holderIdentity="other", leaseTransitions=2)
    cluster.replace_lease("l", body)
    clock.sleep(3)
    assert not keeper.renew_once(cluster)
    with pytest.raises(errors.LeaseLost) as caught:
        keeper.ensure_held()
    assert caught.value.reason == "LeaseTakenOver"


def test_ownership_ends_when_no_renewal_succeeded_within_the_duration() -> None:
    cluster, clock = fakes.FakeCluster(), fakes.Clock()
    cluster.create_lease("l", 10)
    keeper = _keeper(cluster, clock)
    keeper.acquire(5, sleep=clock.sleep)
    cluster.fail_next_replace = kube.ApiError(503, "ServiceUnavailable", "unavailable")
    clock.sleep(3)
    assert keeper.renew_once(cluster)  # failed, will retry
    assert keeper.held()
    clock.sleep(6)  # 9 s since the last renewal: within the safety margin of a 10 s lease
    assert not keeper.held()
    with pytest.raises(errors.LeaseLost):
        keeper.ensure_held()


def test_a_live_holder_is_waited_for_then_refused() -> None:
    cluster, clock = fakes.FakeCluster(), fakes.Clock()
    cluster.create_lease("l", 10)
    _keeper(cluster, clock, "first").acquire(1, sleep=clock.sleep)
    second = _keeper(cluster, clock, "second")
    with pytest.raises(errors.LeaseLost) as caught:
        second.acquire(5, sleep=clock.sleep)
    assert caught.value.reason == "LeaseHeld"
    # Once the first holder's lease runs out, the second takes it with a new epoch.
    clock.sleep(20)
    assert second.acquire(5, sleep=clock.sleep) == 2


def test_release_hands_the_lease_back_only_while_held() -> None:
    cluster, clock = fakes.FakeCluster(), fakes.Clock()
    cluster.create_lease("l", 10)
    keeper = _keeper(cluster, clock)
    keeper.acquire(1, sleep=clock.sleep)
    keeper.stop(release=True)
    assert cluster.get_lease("l")["spec"]["holderIdentity"] is None
    assert cluster.get_lease("l")["spec"]["leaseTransitions"] == 1
