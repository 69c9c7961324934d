"""Prometheus metrics: what an operator graphs and alerts on (docs/OPERATIONS.md).

Two kinds of series:

- **Request metrics** (``podcap_http_*``) are counted as requests pass (``RequestMetrics``, an
  ASGI wrapper), labelled by route *template* (``/api/captures/{cid}``), never the raw path, so
  ids typed by clients cannot grow the label set.
- **State metrics** (captures, their counters, disk, kernel buffers, agents) are read from the
  ``CaptureService`` at scrape time (``StateCollector``). Nothing is cached between scrapes, so
  a deleted capture's series are gone from the next scrape: there are no stale series to
  forget.

Who may read them is decided by ``MetricsAccess`` (a bearer token, an admin session, or a
separate listener; see ``serve_separately``).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podcap import __version__, limits
from podcap.api.edge import host_allowed
from podcap.controller.auth import Principal
from podcap.controller.service import CaptureService
from podcap.errors import InvalidArgument, PodcapError
from podcap.model import Status
from podcap.tls import is_loopback

log = logging.getLogger("podcap.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The collector reads every capture, as an admin would; it never acts.
SCRAPER = Principal(username="podcap-metrics", role="admin")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"  # refused at the edge, or no such route

# `_created` series double every counter for no use of ours (and are off in OpenMetrics'
# successors); this is process-wide, and podcap has no other prometheus_client user.
disable_created_metrics()


class Metrics:
    """One registry per application, so two servers in one process (tests) never share one."""

    def __init__(self, service: CaptureService) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        labels = ("method", "route", "status")
        self.requests = Counter("podcap_http_requests", "API requests answered, by route "
                                "template and status.", labels, registry=self.registry)
        self.latency = Histogram("podcap_http_request_duration_seconds",
                                 "Time from request to the answer's headers, by route template "
                                 "and status (a download's transfer time is not in it).",
                                 labels, buckets=limits.METRICS_LATENCY_BUCKETS_S,
                                 registry=self.registry)
        self.registry.register(StateCollector(service))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# ---- requests ------------------------------------------------------------------------------


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/captures/{cid}``); the UI's static
    files count as one, and a request no route took as ``(unmatched)``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    if isinstance(path, str):
        return path or "/"
    if scope.get("endpoint") is not None:  # a Mount (the UI's files): FastAPI sets no route
        return f"{scope.get('root_path', '')}/{{path}}"
    return UNMATCHED


class RequestMetrics:
    """Pure ASGI, outermost: sees every answer, the edge's refusals included, and never buffers
    one. The router sets ``scope["route"]`` on the scope it was handed, which is this one."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status, took = 500, None

        async def timed(message: Message) -> None:
            nonlocal status, took
            if message["type"] == "http.response.start":
                status, took = message["status"], time.perf_counter() - began
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            self.metrics.observe(scope.get("method", ""), route_template(scope), status,
                                 took if took is not None else time.perf_counter() - began)


# ---- state at scrape time ------------------------------------------------------------------


class StateCollector:
    """Captures, their counters, disk and kernel-buffer use, agents: read from the service at
    each scrape. A scrape lists every agent's captures (the same fan-out as ``GET
    /api/captures``, bounded by its deadline); an agent that does not answer contributes its
    last known state and is counted in ``podcap_scrape_unreachable_agents``."""

    def __init__(self, service: CaptureService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        yield _gauge("podcap_build_info", "podcap's version (value 1).", ["version"],
                     [([__version__], 1)])
        yield CounterMetricFamily("podcap_tcpdump_start_failures",
                                  "Capture starts that failed because tcpdump (or nsenter) "
                                  "did not start listening.", value=svc.start_failures)
        suppressed = CounterMetricFamily(
            "podcap_audit_suppressed", "Audit rows left out by the audit's rate limits, by "
            "event: failed logins (per source address and in all) and refusals (per user).",
            labels=["event"])
        for event, count in sorted(svc.audit.suppressed.items()):
            suppressed.add_metric([event], count)
        yield suppressed
        yield from _rejects(svc)
        agents = svc.agent_infos()
        yield _gauge("podcap_agents", "Agents known to the controller, by state.", ["state"],
                     [(["connected"], sum(a.connected for a in agents)),
                      (["disconnected"], sum(not a.connected for a in agents))])
        yield _gauge("podcap_agent_connected", "1 while the agent is connected.",
                     ["agent_id", "node"], [([a.id, a.node], int(a.connected)) for a in agents])
        try:
            listing = svc.captures(SCRAPER)
        except PodcapError as exc:  # e.g. the database is away: the rest still answers
            log.warning("metrics: cannot list captures: %s", exc.message)
            return
        yield _gauge("podcap_scrape_unreachable_agents", "Agents that did not answer this "
                     "scrape's capture listing (their captures: last known state).", [],
                     [([], len(listing.unreachable))])
        captures = [owned.capture for owned in listing.items]
        by_status = {str(s): 0 for s in Status}
        for c in captures:
            by_status[str(c.status)] = by_status.get(str(c.status), 0) + 1
        yield _gauge("podcap_captures", "Captures kept, by status.", ["status"],
                     [([s], n) for s, n in sorted(by_status.items())])
        yield from _per_capture(captures)
        yield from self._per_node(captures, agents)

    def _per_node(self, captures: Sequence[Any], agents: Sequence[Any]) -> Iterator[Metric]:
        nodes = {a.id: a.node for a in agents}
        reserved: dict[str, int] = defaultdict(int)
        stored: dict[str, int] = defaultdict(int)
        buffers: dict[str, int] = defaultdict(int)
        for aid in nodes:
            reserved[aid] = stored[aid] = buffers[aid] = 0
        for c in captures:
            running = c.status is Status.RUNNING
            nodes.setdefault(c.agent_id, c.workload.node)
            reserved[c.agent_id] += c.spec.max_bytes if running else c.stats.bytes
            stored[c.agent_id] += c.stats.bytes
            buffers[c.agent_id] += c.spec.buffer_kib * 1024 if running else 0
        labels = ["agent_id", "node"]
        yield _gauge("podcap_disk_reserved_bytes", "Disk the node's budget counts as taken: a "
                     "running capture's whole ring, a stopped one's files.", labels,
                     [([a, nodes[a]], v) for a, v in sorted(reserved.items())])
        yield _gauge("podcap_disk_stored_bytes", "Bytes of capture files on the node's disk.",
                     labels, [([a, nodes[a]], v) for a, v in sorted(stored.items())])
        infos = [t.info() for _, t in sorted(self.service.agents.transports().items())]
        budgets = [([i.id, i.node], i.disk_budget) for i in infos if i.disk_budget]
        yield _gauge("podcap_disk_budget_bytes", "The node's disk budget for captures "
                     "(the agent's --disk-budget, as it said when it connected).", labels,
                     budgets)
        yield _gauge("podcap_kernel_buffer_bytes", "Kernel capture buffers (tcpdump -B) the "
                     "node's running captures pin.", labels,
                     [([a, nodes[a]], v) for a, v in sorted(buffers.items())])
        yield _gauge("podcap_kernel_buffer_limit_bytes", "Kernel buffer quota of each node "
                     "(quota_node_buffer_bytes; 0: no limit).", [],
                     [([], self.service.quotas.node_buffer_bytes)])


def _per_capture(captures: Sequence[Any]) -> Iterator[Metric]:
    labels = ["capture_id", "workload", "node"]
    rows = [([c.id, c.workload.name, c.workload.node], c) for c in captures]
    for name, what, read in (
            ("podcap_capture_packets_captured", "Packets tcpdump wrote (its 'captured').",
             lambda c: c.stats.captured),
            ("podcap_capture_packets_received", "Packets the filter matched (tcpdump's "
             "'received by filter').", lambda c: c.stats.received),
            ("podcap_capture_packets_dropped", "Packets the kernel dropped (tcpdump's "
             "'dropped by kernel').", lambda c: c.stats.dropped)):
        family = CounterMetricFamily(name, what + " Series live as long as the capture.",
                                     labels=labels)
        for values, c in rows:
            family.add_metric(values, read(c))
        yield family
    yield _gauge("podcap_capture_file_bytes", "Bytes of the capture's files on disk (a ring "
                 "overwrites, so this can fall).", labels,
                 [(v, c.stats.bytes) for v, c in rows])
    yield _gauge("podcap_capture_running", "1 while the capture runs, 0 once it ended.", labels,
                 [(v, int(c.status is Status.RUNNING)) for v, c in rows])
    yield _gauge("podcap_capture_start_time_seconds", "When the capture started (Unix time).",
                 labels, [(v, c.start_time) for v, c in rows])


def _rejects(svc: CaptureService) -> Iterator[Metric]:
    """What agents and joining peers sent that was refused (transport/rejects.py)."""
    dropped, hit, streams, joins = svc.agents.rejects.snapshot()
    for name, what, labels, rows in (
            ("podcap_agent_messages_dropped", "Messages (or list entries) of an agent that "
             "were dropped: invalid, about a capture placed on another node, or a workload id "
             "another node reported first.", ["agent_id", "node", "why"], dropped),
            ("podcap_agent_limits_hit", "Times an agent reported more workloads or captures "
             "than limits.AGENT_WORKLOADS_MAX / AGENT_CAPTURES_MAX (the answer was refused).",
             ["agent_id", "node", "what"], hit),
            ("podcap_agent_streams_refused", "Agent streams refused or cancelled: over the "
             "per-agent cap (sessions, uploads) or silent past limits.STREAM_FIRST_MESSAGE_S.",
             ["agent_id", "why"], streams),
            ("podcap_joins_refused", "Joins refused on the join port, by reason "
             "(rate_limited, or the error's kind).", ["why"],
             {(k,): v for k, v in joins.items()})):
        family = CounterMetricFamily(name, what, labels=labels)
        for key, value in sorted(rows.items()):  # type: ignore[attr-defined]
            family.add_metric(list(key), value)
        yield family


def _gauge(name: str, what: str, labels: list[str],
           rows: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, what, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


# ---- who may read them ---------------------------------------------------------------------


class MetricsAccess:
    """``/metrics`` on the API listener: the metrics token (``Authorization: Bearer``) or an
    admin's session token. Captures' ids and workload names of every namespace are in it, so
    a reader or a namespaced operator may not read it."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None

    def token_matches(self, authorization: str | None) -> bool:
        if self.token is None or not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self.token.encode())


def check_access(token: str | None, listen: str | None) -> None:
    """Refuse, before anything starts, a guessable token and an open listener without one."""
    if token is not None and len(token) < limits.METRICS_TOKEN_MIN_CHARS:
        raise InvalidArgument(f"--metrics-token must be at least {limits.METRICS_TOKEN_MIN_CHARS}"
                              " characters (it is a password for Prometheus); e.g. "
                              "`openssl rand -hex 24`")
    if listen is not None:
        host, _ = _split(listen)
        if token is None and not is_loopback(host):
            raise InvalidArgument(f"--metrics-listen {listen} is not a loopback address: set "
                                  "--metrics-token too, or listen on 127.0.0.1")


def serve_separately(metrics: Metrics, listen: str, token: str | None,
                     allowed_hosts: Sequence[str]) -> Callable[[], None]:
    """A plain HTTP listener that answers ``GET /metrics`` and nothing else, in its own
    threads. Without a token it must be on loopback, and the Host header must name this
    machine (a DNS name rebound to 127.0.0.1 reaches nothing); with a token the token is the
    check, so Prometheus may scrape a pod IP. Returns what stops it."""
    check_access(token, listen)
    host, port = _split(listen)
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


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"--metrics-listen must be HOST:PORT, e.g. 127.0.0.1:9464, got "
                              f"{listen[:80]!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _family(host: str) -> Any:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET
