"""Run ownership through the Run's ``coordination.k8s.io/v1`` Lease.

The operator creates the Lease with an empty holder. A runner takes it only when it is free or
expired (``renewTime + leaseDurationSeconds`` in the past), by an update carrying the Lease's
resourceVersion, incrementing ``leaseTransitions``: that number is this runner's fencing epoch.
A background thread renews it every ``renew_seconds``. Ownership is lost when a renewal finds
another holder or epoch, or when no renewal succeeded within the lease duration (measured on
the monotonic clock, which keeps running while a process is stopped). ``ensure_held`` is what
the loop calls before every tool call and journal write.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from bosun import kube
from bosun.runner import errors, kubeapi

__all__ = [
    "Holder",
    "LeaseKeeper",
    "Now",
    "acquired",
    "format_time",
    "is_free",
    "parse_time",
    "renewed",
]

log = logging.getLogger("bosun.runner.lease")

Now = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """A ``metav1.MicroTime`` string."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_free(lease: dict[str, Any], now: datetime.datetime) -> bool:
    """Whether a runner may take ``lease``: nobody holds it or its holder stopped renewing."""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    renewed_at = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed_at is None or duration is None:
        return True
    return renewed_at + datetime.timedelta(seconds=float(duration)) < now


def acquired(
    lease: dict[str, Any], identity: str, duration: float, now: datetime.datetime
) -> dict[str, Any]:
    """The Lease after ``identity`` takes it (same resourceVersion, one more transition)."""
    spec = dict(lease.get("spec") or {})
    stamp = format_time(now)
    spec.update(
        holderIdentity=identity,
        acquireTime=stamp,
        renewTime=stamp,
        leaseDurationSeconds=max(1, round(duration)),
        leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1,
    )
    return {**lease, "spec": spec}


def renewed(lease: dict[str, Any], now: datetime.datetime) -> dict[str, Any]:
    spec = dict(lease.get("spec") or {})
    spec["renewTime"] = format_time(now)
    return {**lease, "spec": spec}


class Holder(Protocol):
    """What the loop asks of Run ownership: proof before each step that it still holds it."""

    def ensure_held(self) -> None:
        """Return when the Lease is still held; raise ``errors.LeaseLost`` otherwise."""
        ...

    def held(self) -> bool: ...


class LeaseKeeper:
    """Acquires, renews, checks and releases one Run's Lease."""

    def __init__(
        self,
        cluster: Callable[[], kubeapi.ClusterAPI],
        name: str,
        identity: str,
        *,
        duration_seconds: float,
        renew_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        now: Now = _utcnow,
    ) -> None:
        self.cluster_factory = cluster
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self.renew_seconds = renew_seconds
        self.clock = clock
        self.now = now
        self.epoch = 0
        self.last_renewed = float("-inf")
        self.lost_reason: str | None = None
        self.renewals = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def margin(self) -> float:
        """Give up a little before the lease runs out, so the operator never sees an expired
        lease whose runner still acts."""
        return min(2.0, self.duration * 0.1)

    def acquire(self, wait_seconds: float, sleep: Callable[[float], None] = time.sleep) -> int:
        """Take the Lease, waiting up to ``wait_seconds`` for a live holder's lease to expire."""
        cluster = self.cluster_factory()
        deadline = self.clock() + wait_seconds
        while True:
            lease = cluster.get_lease(self.name)
            if is_free(lease, self.now()):
                started = self.clock()
                try:
                    taken = cluster.replace_lease(
                        self.name, acquired(lease, self.identity, self.duration, self.now())
                    )
                except kube.Conflict:
                    continue
                with self._lock:
                    self.epoch = int(taken["spec"]["leaseTransitions"])
                    self.last_renewed = started
                    self.lost_reason = None
                log.info(
                    "Acquired lease",
                    extra={"fields": {"lease": self.name, "epoch": self.epoch}},
                )
                return self.epoch
            if self.clock() >= deadline:
                holder = (lease.get("spec") or {}).get("holderIdentity")
                raise errors.LeaseLost("LeaseHeld", f"lease {self.name} is held by {holder}")
            sleep(min(self.renew_seconds, max(0.05, deadline - self.clock())))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew_forever, name="lease", daemon=True)
        self._thread.start()

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self.lost_reason is None:
                self.lost_reason = reason
        log.warning("Lost lease", extra={"fields": {"lease": self.name, "reason": reason}})

    def _renew_forever(self) -> None:
        cluster = self.cluster_factory()
        try:
            while not self._stop.wait(self.renew_seconds):
                if self.lost_reason is not None:
                    return
                if not self.renew_once(cluster):
                    return
        finally:
            cluster.close()

    def renew_once(self, cluster: kubeapi.ClusterAPI) -> bool:
        """One renewal; False once the lease is lost for good."""
        started = self.clock()
        if started - self.last_renewed >= self.duration - self.margin:
            self._lose("LeaseExpired")
            return False
        try:
            lease = cluster.get_lease(self.name)
            spec = lease.get("spec") or {}
            if (
                spec.get("holderIdentity") != self.identity
                or int(spec.get("leaseTransitions") or 0) != self.epoch
            ):
                self._lose("LeaseTakenOver")
                return False
            cluster.replace_lease(self.name, renewed(lease, self.now()))
        except kube.NotFound:
            self._lose("LeaseDeleted")  # the Run (or the worker's pod) is gone
            return False
        except kube.ApiError as err:
            log.warning(
                "Failed to renew lease",
                extra={"fields": {"lease": self.name, "status": err.status}},
            )
            return True
        except Exception as err:
            log.warning(
                "Failed to renew lease", extra={"fields": {"lease": self.name, "error": repr(err)}}
            )
            return True
        with self._lock:
            if self.lost_reason is None:
                self.last_renewed = started
                self.renewals += 1
        return True

    def held(self) -> bool:
        with self._lock:
            if self.lost_reason is not None:
                return False
            return self.clock() - self.last_renewed < self.duration - self.margin

    def ensure_held(self) -> None:
        """Raise ``errors.LeaseLost`` unless this runner surely still owns the Run."""
        if not self.held():
            reason = self.lost_reason or "LeaseExpired"
            self._lose(reason)
            raise errors.LeaseLost(
                reason, f"lease {self.name} is no longer held (epoch {self.epoch})"
            )

    def stop(self, release: bool) -> None:
        """Stop renewing; with ``release``, hand the Lease back if this runner still holds it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_seconds + 5)
        if not release or not self.held():
            return
        cluster = self.cluster_factory()
        try:
            lease = cluster.get_lease(self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") == self.identity:
                spec["holderIdentity"] = None
                spec["renewTime"] = format_time(self.now())
                cluster.replace_lease(self.name, {**lease, "spec": spec})
                log.info("Released lease", extra={"fields": {"lease": self.name}})
        except Exception as err:
            log.warning(
                "Failed to release lease",
                extra={"fields": {"lease": self.name, "error": repr(err)}},
            )
        finally:
            cluster.close()
