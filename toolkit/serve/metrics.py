"""``/metrics`` in Prometheus text format: requests, latencies and errors per agent and endpoint.

With several workers (``regent serve --workers N``) each process writes its samples under
``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker aggregates them all
(prometheus_client's multiprocess mode; ``regent serve`` sets the folder up).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: seconds; fine below 50 ms where CDS Hooks calls should land
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: dashboards need rates, not creation times
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("agent", "endpoint")
        self.requests = Counter(
            "regent_requests",
            "Requests answered, by agent, endpoint and HTTP status.",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "regent_request_duration_seconds",
            "Time from request to response, by agent and endpoint.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "regent_errors",
            "Answers with status >= 400, by agent, endpoint and kind (client, auth, server).",
            (*labels, "kind"),
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "regent_auth_failures",
            "Refused credentials, by reason (no token, expired, replayed jti, ...).",
            ("reason",),
            registry=self.registry,
        )
        self._collectors: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        """Series computed at scrape time (the monitoring gauges), in every worker's answer."""
        self.registry.register(collector)
        self._collectors.append(collector)

    def observe(self, agent: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(agent, endpoint, str(status)).inc()
        self.latency.labels(agent, endpoint).observe(seconds)
        if status >= 400:
            kind = "server" if status >= 500 else "auth" if status in (401, 403) else "client"
            self.errors.labels(agent, endpoint, kind).inc()

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            for c in self._collectors:  # read from files by whichever worker answers
                merged.register(c)
            return generate_latest(merged)
        return generate_latest(self.registry)
