"""``--metrics-listen``: a plain HTTP listener of its own that answers ``GET /metrics`` only."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from podcap.api.edge import host_allowed
from podcap.api.metrics.access import MetricsAccess, check_access, split_listen
from podcap.api.metrics.registry import CONTENT_TYPE, Metrics
from podcap.errors import InvalidArgument

log = logging.getLogger("podcap.metrics")

def serve_separately(metrics: Metrics, listen: str, token: str | None,
                     allowed_hosts: Sequence[str]) -> Callable[[], None]:
    """A plain HTTP listener that answers ``GET /metrics`` and nothing else, in its own
    threads. Without a token it must be on loopback, and the Host header must name this
    machine (a DNS name rebound to 127.0.0.1 reaches nothing); with a token the token is the
    check, so Prometheus may scrape a pod IP. Returns what stops it."""
    check_access(token, listen)
    host, port = split_listen(listen)
    access = MetricsAccess(token)
    hosts = [*allowed_hosts, host]

    class Handler(BaseHTTPRequestHandler):
        server_version = "podcap"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"only /metrics here\n")
            elif token is not None and not access.token_matches(
                    self.headers.get("Authorization")):
                self._answer(401, b"metrics token required: Authorization: Bearer <token>\n",
                             [("WWW-Authenticate", 'Bearer realm="podcap metrics"')])
            elif token is None and not host_allowed(self.headers.get("Host", ""), hosts):
                self._answer(400, b"Host header names no allowed host of this server\n")
            else:
                self._answer(200, metrics.exposition(), content_type=CONTENT_TYPE)

        def _answer(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = (),
                    content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - its signature
            log.debug("metrics listener: " + format, *args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = _family(host)

    try:
        httpd = Server((host, port), Handler)
    except OSError as exc:
        raise InvalidArgument(f"--metrics-listen {listen}: cannot listen ({exc.strerror})") \
            from exc
    threading.Thread(target=httpd.serve_forever, name="podcap-metrics", daemon=True).start()
    log.info("metrics on http://%s/metrics (%s)", listen,
             "bearer token" if token else "loopback, no token")

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()

    return stop


def _family(host: str) -> Any:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET
