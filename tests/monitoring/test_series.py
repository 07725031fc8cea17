"""Windows and their figures as time series in the metadata store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftloop.core.metadata import MetadataStore
from driftloop.monitoring.series import MetricValue, Window, latest_windows, record_window

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore.open(f"sqlite:///{tmp_path / 'metadata.db'}")
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
