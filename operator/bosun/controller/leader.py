"""Leader election with a coordination.k8s.io Lease: only one operator replica reconciles.

The standby replicas wait until the leader's Lease expires (or is released on a clean
shutdown) and then take it with an optimistic-concurrency update. A leader that cannot renew
within the Lease's duration stops the process rather than risk two active leaders.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

from bosun import constants, kube
from bosun.controller import conditions

__all__ = ["LEASE_NAME", "LeaderElector", "identity"]

log = logging.getLogger("bosun.operator")

LEASE_NAME = "bosun-operator-leader"


def identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def _micro(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        rest: kube.Rest,
        namespace: str,
        duration_seconds: int,
        on_lost: Callable[[], None],
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.duration = duration_seconds
        self.identity = identity()
        self.on_lost = on_lost
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _path(self) -> str:
        return kube.object_path("coordination.k8s.io/v1", "leases", self.namespace, LEASE_NAME)

    def _try(self) -> bool:
        now = conditions.now()
        lease = self.rest.get("coordination.k8s.io/v1", "leases", self.namespace, LEASE_NAME)
        if lease is None:
            created = self.rest.create(
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": LEASE_NAME,
                        "namespace": self.namespace,
                        "labels": {constants.LABEL_MANAGED_BY: "bosun-operator"},
                    },
                    "spec": {
                        "holderIdentity": self.identity,
                        "leaseDurationSeconds": self.duration,
                        "acquireTime": _micro(now),
                        "renewTime": _micro(now),
                        "leaseTransitions": 0,
                    },
                }
            )
            return created is not None
        spec: dict[str, Any] = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity")
        renewed = conditions.parse(spec.get("renewTime"))
        expired = (
            renewed is None
            or renewed + datetime.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 15))
            < now
        )
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = _micro(now)
        spec.update(
            {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "renewTime": _micro(now),
            }
        )
        try:
            self.rest.request("PUT", self._path(), lease)
        except kube.Conflict:
            return False
        return True

    def acquire(self) -> None:
        """Block until this process leads."""
        log.info(
            "Waiting for leadership lease=%s/%s identity=%s",
            self.namespace,
            LEASE_NAME,
            self.identity,
        )
        while not self.stopping.is_set():
            try:
                if self._try():
                    log.info("Acquired leadership identity=%s", self.identity)
                    break
            except kube.ApiError as err:
                log.warning("Leader election failed error=%s", err)
            self.stopping.wait(max(1.0, self.duration / 5))
        self._thread = threading.Thread(target=self._renew, name="leader-renew", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        last_ok = conditions.now()
        while not self.stopping.wait(max(1.0, self.duration / 3)):
            try:
                if self._try():
                    last_ok = conditions.now()
                    continue
                log.error("Lost leadership to another operator")
            except Exception as err:
                log.warning("Could not renew leadership error=%s", err)
                if (conditions.now() - last_ok).total_seconds() < self.duration * 0.8:
                    continue
            self.on_lost()
            return

    def release(self) -> None:
        """Give leadership up at once on a clean shutdown, so a standby needn't wait."""
        self.stopping.set()
        try:
            lease = self.rest.get("coordination.k8s.io/v1", "leases", self.namespace, LEASE_NAME)
            if lease and lease.get("spec", {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                self.rest.request("PUT", self._path(), lease)
                log.info("Released leadership identity=%s", self.identity)
        except kube.ApiError as err:
            log.warning("Could not release leadership error=%s", err)
