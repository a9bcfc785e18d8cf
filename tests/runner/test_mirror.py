"""A pool worker's mirrors on the real API server: they follow every change while in sync, and
reads go to the API server while they are not (before the first listing, after the watch ended,
and when the listing is refused)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bosun import constants, contract
from bosun import kube as k8s
from bosun.dev import testing
from bosun.runner import kubeapi, mirror

from . import harness

pytestmark = pytest.mark.cluster

RULE = {"name": "charge", "tools": ["charge"], "action": "Allow"}


def _mirrors(rest: k8s.Rest, namespace: str) -> mirror.Mirrors:
    runs = mirror.Mirror(rest, constants.API_VERSION, "runs", namespace)
    return mirror.Mirrors(rest, namespace, runs)


@pytest.fixture
def stopped() -> Iterator[threading.Event]:
    done = threading.Event()
    try:
        yield done
    finally:
        done.set()


def _names(items: list[k8s.Obj]) -> set[str]:
    return {item["metadata"]["name"] for item in items}


def test_a_mirror_follows_every_change_and_reads_go_to_the_api_server_when_out_of_sync(
    kube: harness.Harness, stopped: threading.Event
) -> None:
    kube.policy("first", [RULE])
    mirrors = _mirrors(kube.rest, kube.namespace)
    cached = mirror.Cached(kubeapi.Cluster(kube.namespace, kube.rest), mirrors)
    policies = mirrors.policies
    # Not listed yet: the API server answers.
    assert policies.items() is None
    assert _names(cached.list_policies()) == {"first"}

    thread = threading.Thread(target=policies.run_forever, args=(stopped,), daemon=True)
    thread.start()
    testing.until(policies.synced, what="the Policies' mirror to list")
    kube.policy("second", [RULE])
    testing.until(
        lambda: _names(policies.items() or []) == {"first", "second"},
        what="the mirror to see the second Policy",
    )
    # In sync: the reads are the mirror's own copies, not a request.
    held = {item["metadata"]["name"]: item for item in policies.items() or []}
    served = {item["metadata"]["name"]: item for item in cached.list_policies()}
    assert all(served[name] is held[name] for name in held)

    deny = {**RULE, "action": "Deny"}
    kube.rest.merge_patch(
        constants.API_VERSION, "policies", kube.namespace, "second", {"spec": {"rules": [deny]}}
    )
    testing.until(
        lambda: (policies.get("second") or {}).get("spec", {}).get("rules") == [deny],
        what="the mirror to see the changed rule",
    )
    kube.delete("Policy", "second")
    testing.until(
        lambda: _names(policies.items() or []) == {"first"},
        what="the mirror to drop the deleted Policy",
    )

    # Stopped: the watch ends at its next event, and the mirror answers nothing after.
    stopped.set()
    kube.policy("third", [RULE])
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert not policies.synced() and policies.items() is None
    assert _names(cached.list_policies()) == {"first", "third"}


def test_an_object_the_mirror_does_not_hold_is_read_from_the_api_server(
    kube: harness.Harness, stopped: threading.Event
) -> None:
    mirrors = _mirrors(kube.rest, kube.namespace)
    cached = mirror.Cached(kubeapi.Cluster(kube.namespace, kube.rest), mirrors)
    tools = mirrors.tools
    threading.Thread(target=tools.run_forever, args=(stopped,), daemon=True).start()
    testing.until(tools.synced, what="the Tools' mirror to list")
    with pytest.raises(k8s.NotFound):
        cached.get_tool("missing")  # the API server's NotFound, not the mirror's guess


def test_a_listing_the_api_server_refuses_leaves_the_mirror_out_of_sync(
    kube: harness.Harness,
) -> None:
    # A ServiceAccount bound to nothing: every read is refused.
    account = contract.runner_account_name("nobody")
    kube.core.create_namespaced_service_account(kube.namespace, {"metadata": {"name": account}})
    with k8s.connect(kube.kubeconfig("nobody")) as rest:
        mirrors = _mirrors(rest, kube.namespace)
        cached = mirror.Cached(kubeapi.Cluster(kube.namespace, rest), mirrors)
        with pytest.raises(k8s.Forbidden):
            mirrors.policies.run_once(threading.Event())
        assert not mirrors.policies.synced()
        with pytest.raises(k8s.Forbidden):
            cached.list_policies()  # the refusal reaches the loop, which ends the attempt
