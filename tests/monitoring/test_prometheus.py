"""`MonitoringCollector`: the figures of each model's latest window and its firing
alerts as Prometheus gauges, read from the metadata store, cached, and never an error."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from driftloop.monitoring.prometheus import PREFIX, MonitoringCollector

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # the conftest's first prediction day
MODEL = "fraud"
Monitored = Any  # the conftest's project with a registered version and its log writer


def registry_of(collector: MonitoringCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(PREFIX + name, {"model": MODEL, **labels})


def monitoring_lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if PREFIX in line]


@pytest.fixture
def analysed(monitored: Monitored) -> Monitored:
    """Two quiet days, then two days of shifted amounts, a fifth of them null, and an
    unseen channel: the last window drifts, and alerts fire (drift two days in a row,
    missing inputs)."""
    monitored.serve(T0, 48, 50, seed=1, label=True)
    monitored.serve(
        T0 + timedelta(days=2), 48, 50, seed=2, shift=1.0, nulls=0.2, new_channel=0.1, label=True
    )
    monitored.project.monitor(MODEL, now=T0 + timedelta(days=4, hours=2))
    return monitored


def test_the_gauges_are_the_stored_figures_of_the_latest_window(analysed: Monitored) -> None:
    """Window bounds and rows, drift share, a drifted column's statistic, quality,
    performance, labels, latency and error rate equal the latest window's stored
    figures, not an earlier window's."""
    project = analysed.project
    first, *_, latest = project.monitoring_windows(MODEL, against="reference")
    assert first.get("drift.share").value == 0.0  # the latest window is not the first
    registry = registry_of(MonitoringCollector(project.store))
    ref = {"against": "reference"}
    assert gauge(registry, "window_end_timestamp_seconds", **ref) == latest.window.end.timestamp()
    assert gauge(registry, "window_rows", **ref) == latest.window.rows == 1200
    assert gauge(registry, "drift_share", **ref) == latest.get("drift.share").value == 1.0
    amount = latest.get("drift.value", "feature.amount")
    statistic = amount.details["statistic"]
    assert gauge(registry, "drift_detected", **ref, column="feature.amount") == 1.0
    assert (
        gauge(registry, "drift_value", **ref, column="feature.amount", statistic=statistic)
        == amount.value
    )
    unseen = latest.get("quality.unseen", "feature.channel").value
    assert unseen > 0
    assert gauge(registry, "quality", **ref, column="feature.channel", check="unseen") == unseen
    missing = latest.get("quality.missing_rate").value
    assert gauge(registry, "quality", **ref, column="", check="missing_rate") == missing
    version = str(analysed.version)
    auc = latest.get("performance.roc_auc", version=analysed.version).value
    assert gauge(registry, "performance", **ref, metric="roc_auc", version=version, slice="") == auc
    assert gauge(registry, "labelled", **ref) == latest.get("performance.labelled").value
    assert gauge(registry, "awaiting", **ref) == latest.get("performance.awaiting").value
    p95 = latest.get("latency.p95", version=analysed.version).value
    assert gauge(registry, "latency_ms", **ref, version=version, quantile="0.95") == p95
    error_rate = latest.get("error_rate", version=analysed.version).value
    assert gauge(registry, "error_rate", **ref, version=version) == error_rate == 0.0
    # one series per label set: the earlier windows are not exported
    lines = [line for line in monitoring_lines(registry) if not line.startswith("#")]
    assert len(lines) == len({line.rsplit(" ", 1)[0] for line in lines})


def test_firing_alerts_are_counted_by_severity(analysed: Monitored) -> None:
    """alerts_firing counts the open alerts of each severity, 0 for a severity with
    none."""
    firing = analysed.project.alerts(MODEL, status="firing")
    assert firing
    registry = registry_of(MonitoringCollector(analysed.project.store))
    for severity in ("info", "warning", "critical"):
        count = sum(a.severity == severity for a in firing)
        assert gauge(registry, "alerts_firing", severity=severity) == count


def test_each_comparison_has_its_own_latest_window(analysed: Monitored) -> None:
    """Windows compared with the previous window are exported under against="previous",
    next to those compared with the reference."""
    project = analysed.project
    project.monitor(MODEL, against="previous", now=T0 + timedelta(days=4, hours=2))
    registry = registry_of(MonitoringCollector(project.store))
    for against in ("reference", "previous"):
        (latest,) = project.monitoring_windows(MODEL, against=against, limit=1)
        assert latest.window.against == against
        end = gauge(registry, "window_end_timestamp_seconds", against=against)
        assert end == latest.window.end.timestamp()
        share = gauge(registry, "drift_share", against=against)
        assert share == latest.get("drift.share").value


def test_a_store_without_windows_gives_no_monitoring_samples(monitored: Monitored) -> None:
    registry = registry_of(MonitoringCollector(monitored.project.store))
    assert monitoring_lines(registry) == []


def test_gauges_are_reused_for_cache_s_seconds(analysed: Monitored) -> None:
    """Within cache_s a collection reuses the gauges read before; a collector without a
    cache sees the windows analysed since."""
    project = analysed.project
    cached = registry_of(MonitoringCollector(project.store, cache_s=3600))
    before = gauge(cached, "window_end_timestamp_seconds", against="reference")
    analysed.serve(T0 + timedelta(days=4), 24, 50, seed=3)
    project.monitor(MODEL, now=T0 + timedelta(days=5, hours=2))
    (latest,) = project.monitoring_windows(MODEL, against="reference", limit=1)
    assert latest.window.end.timestamp() != before
    assert gauge(cached, "window_end_timestamp_seconds", against="reference") == before
    uncached = registry_of(MonitoringCollector(project.store, cache_s=0))
    assert (
        gauge(uncached, "window_end_timestamp_seconds", against="reference")
        == latest.window.end.timestamp()
    )


def test_an_unreadable_store_gives_no_gauges_and_no_error_until_it_answers_again(
    analysed: Monitored, caplog: pytest.LogCaptureFixture
) -> None:
    """A database error is logged once and leaves the monitoring gauges out; when the
    store answers again, they are back."""
    store = analysed.project.store
    collector = MonitoringCollector(store, cache_s=0)
    registry = registry_of(collector)
    with store.transaction() as conn:
        conn.execute(sa.text("ALTER TABLE monitoring_windows RENAME TO monitoring_hidden"))
    with caplog.at_level(logging.WARNING, logger="driftloop.monitoring.prometheus"):
        assert monitoring_lines(registry) == []
        assert collector.collect() == []
    warnings = [r for r in caplog.records if r.name == "driftloop.monitoring.prometheus"]
    assert len(warnings) == 1
    assert "cannot read the metadata store" in warnings[0].getMessage()
    with store.transaction() as conn:
        conn.execute(sa.text("ALTER TABLE monitoring_hidden RENAME TO monitoring_windows"))
    assert gauge(registry, "drift_share", against="reference") == 1.0


def test_a_store_that_cannot_be_opened_gives_no_gauges(tmp_path: Any) -> None:
    """A database that is not there (a broken URL, a closed volume) yields nothing."""
    from driftloop.core.metadata import MetadataStore

    store = MetadataStore(sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"))
    try:
        assert MonitoringCollector(store).collect() == []
    finally:
        store.close()
