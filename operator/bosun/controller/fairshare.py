"""The order in which queued Runs get the operator-wide slots: admin-owned tiers, then fair.

A Run's tier is the value of its priority class (``Settings.priority_classes``, defined by
the platform team; a namespace may use only the classes listed for it). Higher tiers go first.
Within a tier, slots are shared across namespaces by weighted fair share: the next slot goes to
the namespace with the fewest active Runs for its weight (``Settings.fair_share_weights``,
default 1), counting the Runs this pass has already ordered, so a tenant who queues a thousand
Runs gets its share and no more while another namespace's Run waits. Within a namespace, Runs
go by the tenant's own ``priority`` number, then age. Pure: the admission loop walks the list.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Mapping

__all__ = ["Candidate", "PriorityClass", "order", "tier_of"]


@dataclasses.dataclass(frozen=True)
class PriorityClass:
    """An admin-defined class of Run priority."""

    value: int
    namespaces: frozenset[str] = frozenset()
    """Namespaces whose Runs may name it; empty means every namespace."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One queued Run as admission sees it."""

    namespace: str
    name: str
    tier: int
    priority: int = 0
    created: str = ""

    @property
    def within(self) -> tuple[int, str, str]:
        """Its place among its namespace's Runs of the same tier."""
        return (-self.priority, self.created, self.name)


def tier_of(
    namespace: str,
    class_name: str | None,
    classes: Mapping[str, PriorityClass],
    default: str | None,
) -> tuple[int, str | None]:
    """The tier of a Run naming ``class_name`` (or the default class), and why it may not
    start when the class does not exist or its namespace may not use it."""
    name = class_name or default
    if not name:
        return 0, None
    found = classes.get(name)
    if found is None:
        known = ", ".join(sorted(classes)) or "none are defined"
        return 0, f"priority class {name} does not exist (known: {known})"
    if found.namespaces and namespace not in found.namespaces:
        return 0, f"namespace {namespace} may not use priority class {name}"
    return found.value, None


def order(
    candidates: Iterable[Candidate],
    active: Mapping[str, int],
    weights: Mapping[str, float],
) -> list[Candidate]:
    """Every candidate, in the order slots should go to them."""
    tiers: dict[int, dict[str, list[Candidate]]] = {}
    for candidate in candidates:
        tiers.setdefault(candidate.tier, {}).setdefault(candidate.namespace, []).append(candidate)
    taken = dict(active)
    result: list[Candidate] = []
    for tier in sorted(tiers, reverse=True):
        queues = {ns: sorted(runs, key=lambda c: c.within) for ns, runs in tiers[tier].items()}
        heap = [(_share(ns, taken, weights), q[0].created, ns) for ns, q in queues.items()]
        heapq.heapify(heap)
        while heap:
            _, _, ns = heapq.heappop(heap)
            queue = queues[ns]
            result.append(queue.pop(0))
            taken[ns] = taken.get(ns, 0) + 1
            if queue:
                heapq.heappush(heap, (_share(ns, taken, weights), queue[0].created, ns))
    return result


def _share(namespace: str, taken: Mapping[str, int], weights: Mapping[str, float]) -> float:
    weight = weights.get(namespace, 1.0)
    return taken.get(namespace, 0) / weight if weight > 0 else float("inf")
