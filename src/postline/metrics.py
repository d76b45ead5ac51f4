"""Every Prometheus metric Postline exports, named once (SPEC 3.1).

Labels are low-cardinality only: channel, provider, stream, status. Never a
message id or an address.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API process's metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.accepted = Counter(
            "postline_messages_accepted",
            "Messages accepted by the API.",
            ["channel"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "postline_http_request_duration_seconds",
            "API request latency.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "postline_queue_depth",
            "Entries in each stream (backlog plus in flight).",
            ["stream"],
            registry=self.registry,
        )
        self.queue_pending = Gauge(
            "postline_queue_pending",
            "Entries read by a worker and not yet acknowledged.",
            ["stream"],
            registry=self.registry,
        )
        self.messages = Gauge(
            "postline_messages",
            "Stored messages per status.",
            ["status"],
            registry=self.registry,
        )


class WorkerMetrics:
    """A worker process's metrics, served on its own --metrics-port."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sent = Counter(
            "postline_messages_sent",
            "Messages a provider accepted.",
            ["channel", "provider"],
            registry=self.registry,
        )
        self.failed = Counter(
            "postline_messages_failed",
            "Messages that ended failed.",
            ["channel"],
            registry=self.registry,
        )
        self.retried = Counter(
            "postline_messages_retried",
            "Attempts that will be retried.",
            ["channel"],
            registry=self.registry,
        )
        self.provider_duration = Histogram(
            "postline_provider_request_duration_seconds",
            "Provider request latency.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "postline_worker_inflight",
            "Sends in flight in this worker.",
            registry=self.registry,
        )
