"""Run the node emulator: ``python -m bosun.dev.emulator --kubeconfig … --dir … --ca …``.

Registers the Node, starts the pod watch on a thread of its own and runs the emulator's loop
until SIGTERM or SIGINT, then kills every pod process it started. ``dev/cluster.py`` starts it
this way as the control plane's ``node-emulator`` component.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import signal
import sys
import threading
from urllib import parse

from bosun import constants
from bosun.dev import imagestore, kubeclient
from bosun.dev.emulator import clock, kubelet, node, reporter

__all__ = ["main"]

log = logging.getLogger("bosun.emulator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bosun.dev.emulator")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dir", type=pathlib.Path, required=True)
    parser.add_argument("--ca", type=pathlib.Path, required=True)
    parser.add_argument("--node-name", default=constants.EMULATOR_NODE_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    args.dir.mkdir(parents=True, exist_ok=True)
    args.dir.chmod(0o700)
    api = kubeclient.api_client(args.kubeconfig)
    host = parse.urlparse(api.configuration.host)
    time = clock.SystemClock()
    the_node = node.Node(api, args.node_name, time)
    watch = node.PodWatch(api)
    emulator = kubelet.Emulator(
        the_node,
        reporter.Reporter(api),
        watch,
        folder=args.dir,
        ca_file=args.ca,
        api_address=(host.hostname or "127.0.0.1", str(host.port or 443)),
        time=time,
        image_store=imagestore.Store.default(),
    )

    def _on_signal(signum: int, _frame: object) -> None:
        watch.stopping.set()
        watch.wake.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    the_node.register()
    watcher = threading.Thread(target=watch.run_forever, name="pod-watch", daemon=True)
    watcher.start()
    try:
        emulator.run_forever()
    finally:
        emulator.shutdown()
        log.info("Stopped node emulator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
