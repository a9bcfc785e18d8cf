"""Per-Webhook delivery counts: kept in memory, added to the Webhook's status every few seconds.

Several replicas add to the same counts, so each flush reads the Webhook and writes the sums
with its ``resourceVersion`` as a precondition (a conflict reads again); what a flush could not
write is kept for the next one. The counts are a view for people (``kubectl get webhooks``);
``bosun_webhook_requests_total`` is the exact figure per replica. A replica killed between two
flushes loses the counts of at most ``FLUSH_SECONDS``, never a delivery.
"""

from __future__ import annotations

import collections
import datetime
import logging
import threading
from typing import Any

from bosun import constants, kube

__all__ = ["FIELD", "FLUSH_SECONDS", "Tallies"]

log = logging.getLogger("bosun.gateway")

FLUSH_SECONDS = 5.0
FIELD = {
    "accepted": "accepted",
    "duplicate": "duplicates",
    "filtered": "filtered",
    "unavailable": "failed",
}
"""The status count each outcome adds to; every other outcome (a refusal) adds to rejected."""
_CONFLICT_TRIES = 5


class Tallies:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], collections.Counter[str]] = {}
        self._last: dict[tuple[str, str], tuple[datetime.datetime, str | None]] = {}

    def count(self, hook: tuple[str, str], outcome: str, run: str | None) -> None:
        field = FIELD.get(outcome, "rejected")
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            self._counts.setdefault(hook, collections.Counter())[field] += 1
            previous = self._last.get(hook)
            self._last[hook] = (now, run or (previous[1] if previous else None))

    def flush(self, rest: kube.Rest) -> None:
        """Add what was counted since the last flush to each Webhook's status."""
        with self._lock:
            taken, self._counts = self._counts, {}
            last, self._last = self._last, {}
        for hook, counts in taken.items():
            try:
                self._add(rest, hook, counts, last.get(hook))
            except kube.NotFound:
                continue  # the Webhook is gone, and its counts with it
            except kube.ApiError as err:
                log.warning("Cannot add delivery counts to Webhook %s/%s: %s", *hook, err)
                with self._lock:  # keep them for the next flush
                    self._counts.setdefault(hook, collections.Counter()).update(counts)
                    if hook in last and hook not in self._last:
                        self._last[hook] = last[hook]

    @staticmethod
    def _add(
        rest: kube.Rest,
        hook: tuple[str, str],
        counts: collections.Counter[str],
        last: tuple[datetime.datetime, str | None] | None,
    ) -> None:
        for tries in range(1, _CONFLICT_TRIES + 1):
            current = rest.get(constants.API_VERSION, "webhooks", hook[0], hook[1])
            if current is None:
                raise kube.NotFound(404, "NotFound", f"webhook {hook[0]}/{hook[1]}")
            status: dict[str, Any] = current.get("status") or {}
            patch: dict[str, Any] = {
                field: int(status.get(field) or 0) + added for field, added in counts.items()
            }
            if last is not None:
                patch["lastDeliveryTime"] = last[0].strftime("%Y-%m-%dT%H:%M:%SZ")
                if last[1]:
                    patch["lastRun"] = last[1]
            body = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": patch,
            }
            try:
                rest.merge_patch(
                    constants.API_VERSION,
                    "webhooks",
                    hook[0],
                    hook[1],
                    body,
                    subresource="status",
                )
                return
            except kube.Conflict:
                if tries == _CONFLICT_TRIES:
                    raise
