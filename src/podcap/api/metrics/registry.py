"""One metrics registry per application: the request series and the state collector."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from podcap import limits
from podcap.api.metrics.state import StateCollector
from podcap.controller.service import CaptureService

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

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

    def add(self, collector: object) -> None:
        """Another scrape-time collector (the recorders', wired in server.py)."""
        self.registry.register(collector)  # type: ignore[arg-type]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

