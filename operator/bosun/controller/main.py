"""``bosun operator``: wire settings, client, leader election, the controller and kopf together."""

from __future__ import annotations

import logging
import os
import sys
import threading

import kopf

from bosun import kube
from bosun.controller import controller as controller_mod
from bosun.controller import handlers, health, leader, metrics
from bosun.controller import settings as settings_mod

__all__ = ["run"]

log = logging.getLogger("bosun.operator")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)


def run(kubeconfig: str | None = None, verbose: bool = False) -> int:
    _configure_logging(verbose)
    settings = settings_mod.Settings.from_env()
    rest = kube.connect(kubeconfig)
    controller = controller_mod.Controller(rest, settings)
    metrics.serve(settings.metrics_port)
    leading = threading.Event()

    def ready() -> bool:
        # A standby is ready (it serves probes and waits); a leader once it has listed the world.
        return controller.alive() and (not leading.is_set() or controller.synced.is_set())

    health.serve(settings.health_port, alive=controller.alive, ready=ready)
    elector: leader.LeaderElector | None = None
    if settings.leader_election:

        def _lost() -> None:
            log.error("Stopped: leadership lost; exiting so a standby takes over")
            os._exit(1)

        elector = leader.LeaderElector(
            rest, settings.leader_namespace, settings.leader_lease_seconds, _lost
        )
        elector.acquire()
    leading.set()
    metrics.LEADER.set(1)
    log.info(
        "Started operator namespaces=%s max_concurrent_runs=%d workers=%d",
        ",".join(settings.namespaces) or "*",
        settings.max_concurrent_runs,
        settings.workers,
    )
    controller.prime()
    controller.start()
    try:
        kopf.run(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            memo=handlers.memo_for(controller),
        )
    finally:
        controller.stop()
        if elector is not None:
            elector.release()
    return 0
