"""Every Prometheus metric Postline exports, named once (SPEC 3.1).

Labels are low-cardinality only: channel, provider, stream, status. Never a
message id or an address.

The API can run as several processes (`postline api --workers N`), and a
scrape reaches only one of them. Two kinds of numbers, served two ways:

- counters and histograms (accepted, request latency) live in each process;
  with `PROMETHEUS_MULTIPROC_DIR` set, prometheus_client keeps them in
  per-process files there, and a scrape sums every process's files
  (`ApiMetrics.collector`), so any process answers with the same totals;
- cluster-wide numbers of stored state (queue depths, messages per status,
  the oldest waiting message, live workers, and the outcome totals per
  channel) are read from Redis and PostgreSQL at scrape time
  (`scrape_gauges`) and never stored in a process, so they are the same
  whichever process answers and never sum across processes. Their HELP says
  "Cluster-wide". The outcome totals are counters (events only accumulate)
  under their own name, `postline_cluster_outcomes_total`, so a query never
  adds them to the workers' per-process `postline_messages_sent_total`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PACING_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

#: prometheus_client reads this when it is imported: set, every metric value
#: of the process lives in a file in that directory (multiprocess mode).
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

ACCEPTED = "postline_messages_accepted"
HTTP_DURATION = "postline_http_request_duration_seconds"
INBOUND = "postline_inbound_messages"
QUEUE_DEPTH = "postline_queue_depth"
QUEUE_PENDING = "postline_queue_pending"
MESSAGES = "postline_messages"
OUTCOMES = "postline_cluster_outcomes"
OLDEST_PENDING = "postline_oldest_pending_age_seconds"
WORKERS_LIVE = "postline_workers_live"
ROUTE_CIRCUIT = "postline_route_circuit"
ROUTE_ERROR_RATIO = "postline_route_error_ratio"
CIRCUIT_STATES = ("closed", "open", "half_open")
PACING_WAITING = "postline_pacing_waiting"
PACING_WAIT = "postline_pacing_longest_wait_seconds"
SUPPRESSIONS = "postline_suppressions"


class PacedSender(Protocol):
    """What the pacing gauges read of one sender (`queue.pacing.Waiting`)."""

    @property
    def sender_class(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def wait_seconds(self) -> float: ...


class ApiMetrics:
    """An API process's counters and histograms (its gauges are read at scrape time)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # The same test prometheus_client made at import to choose where values live.
        self.multiprocess = MULTIPROC_DIR_ENV in os.environ
        self.accepted = Counter(
            ACCEPTED,
            "Messages accepted by the API.",
            ["channel"],
            registry=self.registry,
        )
        # Stored inbound messages (a retried webhook is not counted again).
        self.inbound = Counter(
            INBOUND,
            "Inbound messages stored, by channel and the keyword's action.",
            ["channel", "action"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            HTTP_DURATION,
            "API request latency.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def collector(self) -> Collector:
        """What a scrape serves: this process's numbers, or every API process's summed."""
        if not self.multiprocess:
            return self.registry
        # Only the API's own names: the inline sender of sync mode keeps
        # worker metrics in the same directory, which a single API process
        # does not serve either. (prometheus_client's multiprocess module is untyped.)
        summed = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        return _Only(summed, {ACCEPTED, HTTP_DURATION, INBOUND})

    def process_exited(self) -> None:
        """Multiprocess bookkeeping for a process that stops serving.

        Counters and histograms of exited processes are kept (the totals must
        not drop when a process is replaced); only live-mode gauge files go.
        """
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Only:
    """The metric families of `source` named in `names`."""

    def __init__(self, source: Collector, names: set[str]) -> None:
        self.source = source
        self.names = names

    def collect(self) -> Iterator[Metric]:
        return (m for m in self.source.collect() if m.name in self.names)


class _Families:
    """Metric families computed once, for one exposition."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def scrape_gauges(
    *,
    queues: Mapping[str, Mapping[str, int]] | None,
    statuses: Mapping[str, int] | None,
    totals: Mapping[tuple[str, str], int] | None = None,
    oldest_pending: float | None = None,
    workers: int | None = None,
    routes: Mapping[str, tuple[str, float]] | None = None,
    paced: Iterable[PacedSender] | None = None,
    suppressions: Mapping[tuple[str, str], int] | None = None,
) -> Collector:
    """The cluster-wide families from one reading; None for a reading that did not answer.

    A reading that did not answer leaves its families without samples: a
    stale number would look current, an absent one is what an alert can test.
    """
    depth = GaugeMetricFamily(
        QUEUE_DEPTH,
        "Cluster-wide: entries in each stream (backlog plus in flight); "
        "message_queue:dead holds the dead letters, message_queue:retry the waiting retries.",
        labels=["stream"],
    )
    pending = GaugeMetricFamily(
        QUEUE_PENDING,
        "Cluster-wide: entries read by a worker and not yet acknowledged.",
        labels=["stream"],
    )
    messages = GaugeMetricFamily(
        MESSAGES, "Cluster-wide: stored messages per status.", labels=["status"]
    )
    for stream, numbers in (queues or {}).items():
        depth.add_metric([stream], numbers["depth"])
        pending.add_metric([stream], numbers["pending"])
    for status, count in (statuses or {}).items():
        messages.add_metric([status], count)
    families = [depth, pending, messages, *_cluster(totals, oldest_pending, workers)]
    suppressed = GaugeMetricFamily(
        SUPPRESSIONS,
        "Cluster-wide: recipients suppressed now, per channel and reason.",
        labels=["channel", "reason"],
    )
    for (channel, reason), count in sorted((suppressions or {}).items()):
        suppressed.add_metric([channel, reason], count)
    families.append(suppressed)
    return _Families([*families, *_routes(routes), *_pacing(paced)])


def _routes(routes: Mapping[str, tuple[str, float]] | None) -> Iterator[Metric]:
    """Each route's circuit (one sample per state, 1 for the current one) and error ratio."""
    circuit = GaugeMetricFamily(
        ROUTE_CIRCUIT,
        "Cluster-wide: each route's circuit; 1 for its state (closed, open, half_open).",
        labels=["route", "state"],
    )
    ratio = GaugeMetricFamily(
        ROUTE_ERROR_RATIO,
        "Cluster-wide: each route's share of failed attempts over its window.",
        labels=["route"],
    )
    for route, (state, error_ratio) in sorted((routes or {}).items()):
        for candidate in CIRCUIT_STATES:
            circuit.add_metric([route, candidate], float(candidate == state))
        ratio.add_metric([route], error_ratio)
    yield circuit
    yield ratio


def _pacing(paced: Iterable[PacedSender] | None) -> Iterator[Metric]:
    """Per sender class, never per sender: a number is no label (STYLE 11)."""
    waiting = GaugeMetricFamily(
        PACING_WAITING,
        "Cluster-wide: messages waiting in the delay set for their sender's or "
        "account's pace, per sender class.",
        labels=["sender_class"],
    )
    wait = GaugeMetricFamily(
        PACING_WAIT,
        "Cluster-wide: per sender class, the longest wait until a waiting message's slot.",
        labels=["sender_class"],
    )
    if paced is not None:
        classes: dict[str, list[float]] = {}
        for row in paced:
            numbers = classes.setdefault(row.sender_class, [0, 0.0])
            numbers[0] += row.waiting
            numbers[1] = max(numbers[1], row.wait_seconds)
        for kind, (count, longest) in sorted(classes.items()):
            waiting.add_metric([kind], count)
            wait.add_metric([kind], longest)
    yield waiting
    yield wait


def _cluster(
    totals: Mapping[tuple[str, str], int] | None, oldest: float | None, workers: int | None
) -> Iterator[Metric]:
    outcomes = CounterMetricFamily(
        OUTCOMES,
        "Cluster-wide, from PostgreSQL (not per process): outcomes per channel since the "
        "start, of every worker and sync send: sent, failed, retried (an attempt to be "
        "retried), delivered, undelivered (receipts).",
        labels=["channel", "outcome"],
    )
    for (channel, outcome), count in sorted((totals or {}).items()):
        outcomes.add_metric([channel, outcome], count)
    yield outcomes
    age = GaugeMetricFamily(
        OLDEST_PENDING,
        "Cluster-wide: how long the longest-waiting sendable message (pending, or a retry "
        "past its due time) has waited; 0 when none waits.",
    )
    if oldest is not None:
        age.add_metric([], oldest)
    yield age
    live = GaugeMetricFamily(WORKERS_LIVE, "Cluster-wide: workers with a live heartbeat.")
    if workers is not None:
        live.add_metric([], workers)
    yield live


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """One registry for one scrape, over `collectors` (built per request, never shared)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


class WorkerMetrics:
    """A worker process's metrics, served on its own --metrics-port."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sent = Counter(
            "postline_messages_sent",
            "Messages a provider accepted, in this worker process.",
            ["channel", "provider"],
            registry=self.registry,
        )
        self.failed = Counter(
            "postline_messages_failed",
            "Messages that ended failed, in this worker process.",
            ["channel"],
            registry=self.registry,
        )
        self.retried = Counter(
            "postline_messages_retried",
            "Attempts that will be retried, in this worker process.",
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
        self.route_attempts = Counter(
            "postline_route_attempts",
            "Provider attempts per route and what they said of its health "
            "(ok, failed: 5xx/timeout/network, throttled: 429), in this worker process.",
            ["route", "health"],
            registry=self.registry,
        )
        self.paced = Histogram(
            "postline_pacing_wait_seconds",
            "Waits pacing gave messages (sender or account had no slot free), "
            "in this worker process.",
            ["sender_class"],
            buckets=PACING_BUCKETS,
            registry=self.registry,
        )
        self.throttled = Counter(
            "postline_pacing_throttled",
            'Provider answers saying "too fast" (429, 20429) that held the account, '
            "in this worker process.",
            ["provider"],
            registry=self.registry,
        )
        self.purged = Counter(
            "postline_purged",
            "Rows housekeeping deleted, by kind (messages, inbound_messages, suppressions, "
            "idempotency_keys), in this worker process.",
            ["kind"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            "postline_worker_inflight",
            "Sends in flight in this worker.",
            registry=self.registry,
        )
