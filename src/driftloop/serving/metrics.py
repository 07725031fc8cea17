"""Prometheus metrics of the prediction server.

With several worker processes, ``driftloop serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh folder before the workers start: each worker then writes its values to
memory-mapped files there and a scrape of ``/metrics`` (answered by any one worker)
sums all of them. In a single process the values live in memory.

Collectors added with :meth:`ServerMetrics.add_collector` read a source the workers
share — the monitoring gauges of :mod:`driftloop.monitoring.prometheus` read the
metadata store — so they are collected once per scrape, by the worker answering it,
and never summed.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServerMetrics:
    """The server's counters, histograms and gauges, with cached label children."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "driftloop_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "driftloop_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "driftloop_predictions",
            "Instances scored, by model, version and role (shadow included).",
            ["model", "version", "role"],
            registry=r,
        )
        self.missing = Counter(
            "driftloop_missing_features",
            "Inputs served from their declared default, by model and input.",
            ["model", "feature"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "driftloop_shadow_dropped",
            "Shadow copies not scored because the shadow queue was full.",
            ["model"],
            registry=r,
        )
        self.shadow_errors = Counter(
            "driftloop_shadow_errors",
            "Shadow copies whose scoring failed.",
            ["model"],
            registry=r,
        )
        gauge_mode: dict[str, Any] = {"multiprocess_mode": "livesum"} if _multiprocess() else {}
        self.log_backlog = Gauge(
            "driftloop_prediction_log_backlog_rows",
            "Prediction and feedback records submitted and not yet written.",
            registry=r,
            **gauge_mode,
        )
        self.log_failed = Gauge(
            "driftloop_prediction_log_failed_rows",
            "Records whose batch could not be written since the workers started.",
            registry=r,
            **gauge_mode,
        )
        self.loaded_versions = Gauge(
            "driftloop_loaded_versions",
            "Model versions loaded, per worker summed.",
            registry=r,
            **gauge_mode,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._shared: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        """Collect ``collector`` once in every scrape (a source shared by the workers,
        not a per-worker value)."""
        self._shared.append(collector)
        if not _multiprocess():
            self.registry.register(collector)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        key = ("r", endpoint, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (
                self.requests.labels(endpoint, str(status)),
                self.latency.labels(endpoint),
            )
        child[0].inc()
        child[1].observe(seconds)

    def predicted(self, model: str, version: int, role: str, count: int) -> None:
        key = ("p", model, version, role)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.predictions.labels(model, str(version), role)
        child.inc(count)

    def missing_features(self, model: str, feature: str, count: int) -> None:
        key = ("m", model, feature)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.missing.labels(model, feature)
        child.inc(count)

    def render(self) -> bytes:
        """The Prometheus text exposition: of every worker when running several."""
        if _multiprocess():
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            for collector in self._shared:
                registry.register(collector)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def worker_exited(pid: int) -> None:
        """Drop a finished worker's live gauges (its counters stay in the sums)."""
        if _multiprocess():
            prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
