"""The latest monitoring results as Prometheus gauges.

:class:`MonitoringCollector` is a ``prometheus_client`` collector over the metadata
store. A collection reads, in three queries, the latest window of every model and
comparison (``against``), that window's figures and the number of firing alerts, and
yields them as gauges named ``driftloop_monitoring_*`` (the list is in
docs/monitoring.md). The server adds it to ``/metrics`` once, beside its per-worker
metrics: the figures come from the shared store, not from a worker.

The gauges are kept for ``cache_s`` seconds, so a scrape every second does not query
the database every second. A database that cannot be read leaves the gauges out of
the collection (logged once until it answers again): the rest of ``/metrics`` stays up.

Outside the server, register it on any registry::

    registry = CollectorRegistry()
    registry.register(MonitoringCollector(project.store))
    print(generate_latest(registry).decode())
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import get_args

import sqlalchemy as sa
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from driftloop.core.metadata import MetadataStore
from driftloop.errors import DriftloopError
from driftloop.monitoring import tables
from driftloop.monitoring.definitions import Severity
from driftloop.monitoring.series import MetricValue, WindowMetrics, latest_windows, metrics_of

__all__ = ["PREFIX", "MonitoringCollector"]

_log = logging.getLogger(__name__)

PREFIX = "driftloop_monitoring_"

_WINDOW = ("model", "against")
_VERSION = (*_WINDOW, "version")
# name (after PREFIX): help, labels
_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "window_end_timestamp_seconds": (
        "End of the latest analysed window, in seconds since the epoch.",
        _WINDOW,
    ),
    "window_rows": ("Predictions in the latest window (shadow excluded).", _WINDOW),
    "drift_share": ("Share of the input columns that drifted in the latest window.", _WINDOW),
    "drift_detected": (
        "1 when the column drifted in the latest window, else 0.",
        (*_WINDOW, "column"),
    ),
    "drift_value": (
        "The column's drift statistic in the latest window.",
        (*_WINDOW, "column", "statistic"),
    ),
    "quality": (
        "A data-quality share of the latest window (check: null_rate, out_of_range, "
        'unseen, type_errors, missing_rate; column "" for the overall missing rate).',
        (*_WINDOW, "column", "check"),
    ),
    "performance": (
        'A performance metric on the latest window\'s labelled predictions (slice "" for '
        "all of them).",
        (*_WINDOW, "metric", "version", "slice"),
    ),
    "labelled": ("Predictions of the latest window with a label.", _WINDOW),
    "awaiting": ("Predictions of the latest window still awaiting their label.", _WINDOW),
    "requests": ("Requests in the latest window, per version.", _VERSION),
    "latency_ms": (
        "Request latency quantile in the latest window, in milliseconds, per version.",
        (*_VERSION, "quantile"),
    ),
    "error_rate": ("Share of a version's predictions that failed in the latest window.", _VERSION),
    "alerts_firing": ("Alerts firing now, by model and severity.", ("model", "severity")),
}
_QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
_SEVERITIES: tuple[str, ...] = get_args(Severity)

Sample = tuple[str, tuple[str, ...], float]


def _figure(window: tuple[str, str], m: MetricValue) -> tuple[str, tuple[str, ...]] | None:
    """The gauge and labels of one stored figure (None: not exported)."""
    version = "" if m.version is None else str(m.version)
    group, _, name = m.metric.partition(".")
    match group, name:
        case "drift", "share":
            return "drift_share", window
        case "drift", "detected":
            return "drift_detected", (*window, m.column)
        case "drift", "value":
            statistic = (m.details or {}).get("statistic")
            return "drift_value", (*window, m.column, str(statistic or ""))
        case "quality", _:
            return "quality", (*window, m.column, name)
        case "performance", "labelled" | "awaiting":
            return name, window
        case "performance", _:
            return "performance", (*window, name, version, m.column)
        case "latency", _ if name in _QUANTILES:
            return "latency_ms", (*window, version, _QUANTILES[name])
        case "requests" | "error_rate", "":
            return group, (*window, version)
    return None


def _window_samples(window: WindowMetrics) -> Iterator[Sample]:
    w = window.window
    labels = (w.model, w.against)
    yield "window_end_timestamp_seconds", labels, w.end.timestamp()
    yield "window_rows", labels, float(w.rows)
    for m in window.metrics:
        gauge = _figure(labels, m)
        if gauge is not None and m.value is not None and not math.isnan(m.value):
            yield gauge[0], gauge[1], m.value


def _families(samples: Sequence[Sample]) -> list[Metric]:
    families: dict[str, GaugeMetricFamily] = {}
    for name, labels, value in samples:
        family = families.get(name)
        if family is None:
            documentation, label_names = _GAUGES[name]
            family = families[name] = GaugeMetricFamily(
                PREFIX + name, documentation, labels=label_names
            )
        family.add_metric(labels, value)
    return [families[name] for name in _GAUGES if name in families]


class MonitoringCollector:
    """Gauges of the latest window of each model and comparison, and of firing alerts,
    read from ``store`` at most every ``cache_s`` seconds (see the module docstring).

    Register it on a ``prometheus_client.CollectorRegistry``; ``describe()`` names the
    gauges without reading the store."""

    def __init__(self, store: MetadataStore, *, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._expires = -math.inf
        self._error: str | None = None

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily(PREFIX + name, documentation, labels=labels)
            for name, (documentation, labels) in _GAUGES.items()
        ]

    def collect(self) -> list[Metric]:
        with self._lock:
            now = time.monotonic()
            if now >= self._expires:
                self._families = self._read()
                self._expires = now + self.cache_s
            return list(self._families)

    def _read(self) -> list[Metric]:
        try:
            samples = self._samples()
        except (sa.exc.SQLAlchemyError, DriftloopError) as exc:
            if self._error is None:
                _log.warning("monitoring gauges left out: cannot read the metadata store: %s", exc)
            self._error = str(exc)
            return []
        if self._error is not None:
            _log.info("monitoring gauges back: the metadata store answers again")
            self._error = None
        return _families(samples)

    def _samples(self) -> list[Sample]:
        samples: list[Sample] = []
        windows = metrics_of(self.store, latest_windows(self.store))
        for window in windows:
            samples.extend(_window_samples(window))
        a = tables.alerts
        with self.store.connect() as conn:
            firing = conn.execute(
                sa.select(a.c.model, a.c.severity, sa.func.count())
                .where(a.c.status == "firing")
                .group_by(a.c.model, a.c.severity)
            ).all()
        counts = {(r.model, r.severity): float(r[2]) for r in firing}
        models = sorted({w.window.model for w in windows} | {model for model, _ in counts})
        for model in models:
            for severity in _SEVERITIES:
                count = counts.pop((model, severity), 0.0)
                samples.append(("alerts_firing", (model, severity), count))
        # a severity no longer declared (an older row) is still counted
        samples.extend(("alerts_firing", key, count) for key, count in sorted(counts.items()))
        return samples
