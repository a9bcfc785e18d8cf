"""Fair share of the operator-wide slots and admin-owned priority tiers (pure)."""

from __future__ import annotations

import pytest

from bosun.controller import fairshare, settings

C = fairshare.Candidate


def _flood(ns: str, n: int, tier: int = 0, start: int = 0) -> list[fairshare.Candidate]:
    return [
        C(ns, f"{ns}-{i}", tier, created=f"2026-01-01T00:{start + i:02d}:00Z") for i in range(n)
    ]


def _names(ordered: list[fairshare.Candidate]) -> list[str]:
    return [c.name for c in ordered]


def test_a_flooding_namespace_gets_its_share_and_no_more() -> None:
    # team-a queued 5 Runs first; team-b's one Run, queued last, gets the second slot.
    ordered = fairshare.order([*_flood("a", 5), *_flood("b", 1, start=30)], {}, {})
    assert _names(ordered)[:3] == ["a-0", "b-0", "a-1"]
    assert sorted(_names(ordered)) == sorted(_names([*_flood("a", 5), *_flood("b", 1)]))


def test_runs_already_active_count_against_their_namespace() -> None:
    ordered = fairshare.order([*_flood("a", 3), *_flood("b", 3, start=30)], {"a": 2}, {})
    assert _names(ordered)[:4] == ["b-0", "b-1", "a-0", "b-2"]


def test_weights_give_a_namespace_a_bigger_share() -> None:
    ordered = fairshare.order([*_flood("a", 6), *_flood("b", 6, start=30)], {}, {"b": 2.0})
    assert [c.namespace for c in ordered[:6]] == ["a", "b", "b", "a", "b", "b"]


def test_a_higher_tier_goes_first_and_the_tenant_number_orders_only_its_own_runs() -> None:
    low = [C("a", "a-low", 0, priority=1000, created="2026-01-01T00:00:00Z")]
    high = [C("b", "b-high", 100, created="2026-01-01T00:05:00Z")]
    mine = [
        C("c", "c-old", 0, priority=0, created="2026-01-01T00:01:00Z"),
        C("c", "c-urgent", 0, priority=5, created="2026-01-01T00:02:00Z"),
    ]
    ordered = fairshare.order([*low, *high, *mine], {}, {})
    assert _names(ordered)[0] == "b-high"
    # A priority of 1000 in namespace a does not put a ahead of c twice in a row.
    assert _names(ordered)[1:] in (["a-low", "c-urgent", "c-old"], ["c-urgent", "a-low", "c-old"])
    assert _names(ordered).index("c-urgent") < _names(ordered).index("c-old")


def test_priority_classes_are_admin_owned() -> None:
    classes = {
        "critical": fairshare.PriorityClass(1000, frozenset({"prod"})),
        "batch": fairshare.PriorityClass(-10),
    }
    assert fairshare.tier_of("prod", "critical", classes, None) == (1000, None)
    assert fairshare.tier_of("dev", "batch", classes, None) == (-10, None)
    assert fairshare.tier_of("dev", None, classes, "batch") == (-10, None)
    assert fairshare.tier_of("dev", None, classes, None) == (0, None)
    tier, why = fairshare.tier_of("dev", "critical", classes, None)
    assert (tier, why) == (0, "namespace dev may not use priority class critical")
    tier, why = fairshare.tier_of("dev", "gold", classes, None)
    assert why is not None and "gold does not exist (known: batch, critical)" in why


def test_the_settings_read_classes_and_weights_and_refuse_bad_ones() -> None:
    env = {
        "BOSUN_PRIORITY_CLASSES": '{"critical": {"value": 1000, "namespaces": ["prod"]},'
        ' "batch": {"value": -5}}',
        "BOSUN_FAIR_SHARE_WEIGHTS": '{"prod": 3, "dev": 0.5}',
        "BOSUN_DEFAULT_PRIORITY_CLASS": "batch",
        "BOSUN_MAX_CONCURRENT_RUNS_PER_NAMESPACE": "4",
    }
    got = settings.Settings.from_env(env)
    assert got.classes == {
        "batch": fairshare.PriorityClass(-5),
        "critical": fairshare.PriorityClass(1000, frozenset({"prod"})),
    }
    assert got.weights == {"dev": 0.5, "prod": 3.0}
    assert (got.default_priority_class, got.max_concurrent_runs_per_namespace) == ("batch", 4)
    for name, raw in (
        ("BOSUN_FAIR_SHARE_WEIGHTS", '{"prod": 0}'),
        ("BOSUN_FAIR_SHARE_WEIGHTS", '{"prod": true}'),
        ("BOSUN_PRIORITY_CLASSES", '{"x": {"value": "high"}}'),
        ("BOSUN_PRIORITY_CLASSES", '{"x": {"value": 1, "namespaces": "prod"}}'),
    ):
        with pytest.raises(ValueError, match=name):
            settings.Settings.from_env({name: raw})
