"""Prometheus metrics: HTTP requests by module and route, module health computed at scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.kernel.manager import ModuleLifecycle

if TYPE_CHECKING:
    from app.events.backbone import EventBackbone
    from app.kernel.manager import ModuleManager

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LABELS = ("module", "route", "method", "status")
REQUESTS = "credit_http_requests"  # a counter: credit_http_requests_total
LATENCY = "credit_http_request_duration_seconds"
HEALTH_VALUE = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}
# A module is past `pending` by the time anyone scrapes.
MODULE_STATUSES = tuple(status.value for status in ModuleLifecycle if status is not ModuleLifecycle.PENDING)


def multiprocess_dir() -> str | None:
    """The directory gunicorn workers share metric files through, when serving with several."""
    return os.environ.get(MULTIPROC_ENV) or None


def _use_multiprocess_values() -> None:
    """Make metrics created from now on write to PROMETHEUS_MULTIPROC_DIR files.

    prometheus_client chooses its value class once, when first imported, from that variable; the
    gunicorn master imports it (through the app package) before `serve` sets the variable, and the
    workers inherit that choice. Redo it the way prometheus_client itself does.
    """
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue()


class Metrics:
    """Request counters and latencies of one app, rendered together with its modules' health."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        # A private registry per app: tests build many apps in one process, and the global one
        # would refuse the second app's metrics as duplicates. With a multiprocess dir the values
        # go to files there, whatever registry holds the metric objects.
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir:
            _use_multiprocess_values()
        self.registry = CollectorRegistry()
        # credit_http_requests_total is not a Counter of its own: each request is one
        # observation here, and the count is read off it when scraped (RequestCounts).
        self.latency = Histogram(LATENCY, "Time to produce the response.", LABELS, registry=self.registry)
        self._series: dict[tuple, Histogram] = {}  # labelled children, looked up once per label set
        self.deliveries = Counter(
            "credit_event_deliveries",
            "Event deliveries attempted, by module and outcome (done, failed, dead).",
            ("module", "outcome"),
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "credit_event_handler_duration_seconds",
            "Time a module's handle_event took, per event.",
            ("module",),
            registry=self.registry,
        )
        self._collectors: list[Collector] = []

    def observe(self, module: str, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and its duration."""
        labels = (module, route, method, status)
        series = self._series.get(labels)
        if series is None:  # bounded: routes x methods x statuses, as the label values are
            series = self._series[labels] = self.latency.labels(module, route, method, str(status))
        series.observe(seconds)

    def delivery_outcome(self, module: str, outcome: str, count: int = 1) -> None:
        self.deliveries.labels(module, str(outcome)).inc(count)

    def handler_duration(self, module: str, seconds: float) -> None:
        self.handler_seconds.labels(module).observe(seconds)

    def add_collector(self, collector: Collector) -> None:
        """A collector computed at scrape time, shown beside the request metrics."""
        self._collectors.append(collector)

    def exposition(self, manager: ModuleManager) -> bytes:
        """The text exposition: every worker's request metrics, and this app's module health."""
        registry = CollectorRegistry()
        workers: Collector = (
            MultiProcessCollector(None, path=self.multiprocess_dir) if self.multiprocess_dir else self.registry
        )
        registry.register(RequestCounts(workers))
        registry.register(ModuleHealthCollector(manager))
        for collector in self._collectors:
            registry.register(collector)
        return generate_latest(registry)


class RequestCounts(Collector):
    """The request metrics, and credit_http_requests_total read off the latency histogram's
    `_count` of each series: one write a request where a Counter beside it was a second
    (in multiprocess mode a locked write to the worker's file, ~1 us), always the same number."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            yield family
            if family.name == LATENCY:
                requests = CounterMetricFamily(REQUESTS, "HTTP requests handled.", labels=LABELS)
                for sample in family.samples:
                    if sample.name == f"{LATENCY}_count":
                        requests.add_metric([sample.labels[label] for label in LABELS], sample.value)
                yield requests


class ModuleHealthCollector(Collector):
    """Module health and status, computed when scraped by the worker that answers the scrape.

    Not gauges written to the multiprocess files: every worker runs the same modules against the
    same backends, so one worker's fresh view is the service's; summing workers would multiply
    it, and "livemax" would report whichever worker last wrote, possibly long ago.
    """

    def __init__(self, manager: ModuleManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        health = GaugeMetricFamily("credit_module_health", "1 healthy, 0.5 degraded, 0 unhealthy.", labels=["module"])
        status = GaugeMetricFamily(
            "credit_module_status", "1 for the module's lifecycle status.", labels=["module", "status"]
        )
        for name, state in self.manager.states.items():
            for candidate in MODULE_STATUSES:
                status.add_metric([name, candidate], 1.0 if state.status == candidate else 0.0)
            if state.status != ModuleLifecycle.DISABLED:
                report = self.manager.get_module_health(name)
                health.add_metric([name], HEALTH_VALUE.get(report["status"], 0.0))
        yield health
        yield status


class EventsCollector(Collector):
    """The backbone's state, read from the database when scraped (the same from any process):
    relay lag, and each subscribing module's backlog, oldest owed event and dead deliveries."""

    def __init__(self, backbone: EventBackbone) -> None:
        self.backbone = backbone

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("credit_event_relay_lag_seconds", "Age of the oldest event not yet relayed.")
        backlog = GaugeMetricFamily("credit_event_backlog", "Deliveries owed (pending or failed).", labels=["module"])
        oldest = GaugeMetricFamily(
            "credit_event_oldest_pending_seconds", "Age of the oldest owed event.", labels=["module"]
        )
        dead = GaugeMetricFamily("credit_event_dead", "Deliveries out of attempts.", labels=["module"])
        try:
            lag.add_metric([], self.backbone.relay_lag_seconds())
            for name in self.backbone.catalog.subscribers():
                health = self.backbone.health(name)
                backlog.add_metric([name], health["backlog"])
                oldest.add_metric([name], health["oldest_pending_seconds"])
                dead.add_metric([name], health["dead"])
        except Exception:  # the database is down: /metrics still answers, /health says why
            return
        yield from (lag, backlog, oldest, dead)
