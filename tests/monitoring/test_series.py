"""Windows and their figures as time series in the metadata store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from driftloop.core.metadata import MetadataStore
from driftloop.monitoring.series import (
    MetricValue,
    Window,
    last_end,
    latest_windows,
    list_windows,
    metrics_of,
    record_window,
    replace_metrics,
    series,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    """A metadata store on SQLite, then on PostgreSQL."""
    store = MetadataStore.open(metadata_url)
    yield store
    store.close()


def record(
    store: MetadataStore, model: str, against: str, start: int, end: int, *, rows: int = 10
) -> Window:
    return record_window(
        store,
        model=model,
        against=against,
        start=T0 + start * HOUR,
        end=T0 + end * HOUR,
        rows=rows,
        version=1,
        reference={"version": 1},
        metrics=[MetricValue("rows", float(rows))],
    )


def test_latest_windows_gives_the_latest_window_of_each_model_and_comparison(
    store: MetadataStore,
) -> None:
    """The window with the latest end, then the latest start (a sliding window that
    ends with a shorter one), per model and comparison, ordered by both; a window
    analysed again replaces its earlier result."""
    record(store, "fraud", "reference", 0, 24)
    latest_ref = record(store, "fraud", "reference", 24, 48)
    record(store, "fraud", "reference", 20, 44)
    record(store, "fraud", "previous", 0, 48)
    latest_prev = record(store, "fraud", "previous", 24, 48)
    record(store, "churn", "reference", 0, 24)
    latest_churn = record(store, "churn", "reference", 0, 24, rows=20)  # analysed again
    found = latest_windows(store)
    assert found == [latest_churn, latest_prev, latest_ref]
    assert found[0].rows == 20
    assert found[2].end.tzinfo is not None  # read back as UTC, as list_windows does


def test_latest_windows_of_an_empty_store_is_empty(store: MetadataStore) -> None:
    assert latest_windows(store) == []


def test_a_window_analysed_again_keeps_its_id_and_replaces_its_figures(
    store: MetadataStore,
) -> None:
    first = record(store, "fraud", "reference", 0, 1, rows=10)
    again = record(store, "fraud", "reference", 0, 1, rows=12)
    assert again.id == first.id
    (only,) = list_windows(store, "fraud")
    assert only.rows == 12
    (found,) = metrics_of(store, [only])
    assert [m.value for m in found.metrics] == [12.0]


def test_a_figure_over_the_windows_is_a_time_series_oldest_first(store: MetadataStore) -> None:
    for hour in range(5):
        record(store, "fraud", "reference", hour, hour + 1, rows=hour)
    record(store, "fraud", "previous", 0, 1, rows=99)
    points = series(store, "fraud", "rows", against="reference")
    assert [m.value for _, m in points] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [m.value for _, m in series(store, "fraud", "rows", limit=2)] == [3.0, 4.0]
    assert last_end(store, "fraud", "reference") == T0 + 5 * HOUR
    assert last_end(store, "churn", "reference") is None


def test_replacing_a_prefix_keeps_the_other_figures(store: MetadataStore) -> None:
    window = record(store, "fraud", "reference", 0, 1)
    replace_metrics(
        store,
        window.id,
        "performance.",
        [MetricValue("performance.roc_auc", 0.8, version=1, details={"labelled": 40})],
    )
    replace_metrics(
        store,
        window.id,
        "performance.",
        [MetricValue("performance.roc_auc", 0.7, version=1, details={"labelled": 90})],
    )
    (found,) = metrics_of(store, [window])
    assert found.get("rows").value == 10.0
    auc = found.get("performance.roc_auc", version=1)
    assert (auc.value, auc.details) == (0.7, {"labelled": 90})
