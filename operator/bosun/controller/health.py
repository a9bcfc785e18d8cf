"""The operator's /healthz (liveness) and /readyz (readiness) HTTP endpoint.

Served from process start: a standby replica waiting for leadership is alive and ready (which
replica leads is the ``bosun_leader`` metric); a leader is ready once it has listed the world.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable

__all__ = ["serve"]


def serve(port: int, alive: Callable[[], bool], ready: Callable[[], bool]) -> None:
    """Serve the probes on ``port`` in a background thread (0 disables them)."""
    if not port:
        return

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks = {"/healthz": alive, "/livez": alive, "/readyz": ready}
            check = checks.get(self.path.split("?", 1)[0])
            if check is None:
                self.send_error(404)
                return
            ok = check()
            body = b"ok\n" if ok else b"not ready\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
