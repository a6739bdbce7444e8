"""The Prometheus metrics of one process: counters and histograms it counts itself (requests, EMR calls,
webhook attempts) and gauges read from the database at each scrape (jobs, tasks, connections,
endpoints), so every process reports the same, right, figures however many there are.

Labels are bounded sets (route templates, kinds, states, outcomes); never an id or patient data.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import stats

log = logging.getLogger("emrtasks.metrics")

# EMR calls and webhook attempts are slower than our own answers: buckets up to the timeouts.
_REMOTE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per process (nothing at import time), and what the layers below report into it."""

    def __init__(self, engine: AsyncEngine, *, disable_after_seconds: float) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU, memory, open files of this process
        self._requests = Counter(
            "emrtasks_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._request_seconds = Histogram(
            "emrtasks_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by method and route template.",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._emr_calls = Counter(
            "emrtasks_emr_calls",
            "Calls of an adapter's EMR operations, by EMR, operation and outcome.",
            ["emr", "operation", "outcome"],
            registry=self.registry,
        )
        self._emr_seconds = Histogram(
            "emrtasks_emr_call_duration_seconds",
            "Duration of EMR operations (all their HTTP requests), by EMR and operation.",
            ["emr", "operation"],
            buckets=_REMOTE_BUCKETS,
            registry=self.registry,
        )
        self._attempts = Counter(
            "emrtasks_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered (2xx), failed (another answer), error.",
            ["outcome"],
            registry=self.registry,
        )
        self._attempt_seconds = Histogram(
            "emrtasks_webhook_attempt_duration_seconds",
            "Duration of webhook delivery attempts, by outcome.",
            ["outcome"],
            buckets=_REMOTE_BUCKETS,
            registry=self.registry,
        )
        Gauge(
            "emrtasks_webhook_endpoint_disable_after_seconds",
            "EMRTASKS_WEBHOOK_DISABLE_AFTER_SECONDS: an endpoint failing this long is disabled.",
            registry=self.registry,
        ).set(disable_after_seconds)
        self._database = DatabaseCollector()
        self.registry.register(self._database)
        self._engine = engine
        self._routes: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._routes.get(key)
        if children is None:  # labels() takes a lock and checks names: once per key, not per request
            children = (
                self._requests.labels(method, route, str(status)),
                self._request_seconds.labels(method, route),
            )
            self._routes[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def emr_call(self, emr: str, operation: str, outcome: str, seconds: float) -> None:
        self._emr_calls.labels(emr, operation, outcome).inc()
        self._emr_seconds.labels(emr, operation).observe(seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self._attempts.labels(outcome).inc()
        self._attempt_seconds.labels(outcome).observe(seconds)

    async def exposition(self) -> bytes:
        """The text format, the database's figures read now (a failed read is reported, not raised)."""
        try:
            self._database.snapshot = await stats.read(self._engine, datetime.now(UTC))
            self._database.up = True
        except Exception:
            log.exception("reading the database for metrics failed")
            self._database.up = False
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Gauges from the last database read (taken just before each scrape is rendered)."""

    def __init__(self) -> None:
        self.snapshot = stats.Snapshot()
        self.up = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("emrtasks_database_up", "1 if the scrape's database read succeeded.")
        up.add_metric([], 1.0 if self.up else 0.0)
        yield up
        if not self.up:
            return
        yield from _database_families(self.snapshot)


def _database_families(snapshot: stats.Snapshot) -> Iterator[GaugeMetricFamily]:
    jobs = GaugeMetricFamily(
        "emrtasks_jobs", "Jobs in the database, by kind and state.", labels=["kind", "state"]
    )
    for (kind, state), count in sorted(snapshot.jobs.items()):
        jobs.add_metric([kind, state], count)
    yield jobs
    oldest = GaugeMetricFamily(
        "emrtasks_jobs_oldest_due_age_seconds",
        "How long the oldest queued job that is due has waited past its run time, by kind (0: none).",
        labels=["kind"],
    )
    for kind in sorted({kind for kind, _state in snapshot.jobs} | set(snapshot.oldest_due_seconds)):
        oldest.add_metric([kind], snapshot.oldest_due_seconds.get(kind, 0.0))
    yield oldest
    tasks = GaugeMetricFamily("emrtasks_tasks", "Tasks in the database, by status.", labels=["status"])
    for status, count in sorted(snapshot.tasks.items()):
        tasks.add_metric([status], count)
    yield tasks
    connections = GaugeMetricFamily(
        "emrtasks_connections",
        "EMR connections in use (neither disabled nor deleted), by EMR and status.",
        labels=["emr", "status"],
    )
    for (emr, status), count in sorted(snapshot.connections.items()):
        connections.add_metric([emr, status], count)
    yield connections
    endpoints = GaugeMetricFamily(
        "emrtasks_webhook_endpoints", "Webhook endpoints, by status.", labels=["status"]
    )
    for status, count in sorted(snapshot.endpoints.items()):
        endpoints.add_metric([status], count)
    yield endpoints
    failing = GaugeMetricFamily(
        "emrtasks_webhook_endpoint_failing_seconds_max",
        "How long the active endpoint failing longest has failed every attempt (0: none is failing).",
    )
    failing.add_metric([], snapshot.failing_endpoint_seconds)
    yield failing
