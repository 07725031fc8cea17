"""Monitoring results as time series in the metadata store.

Each analysed window of a model's prediction log is one :class:`Window` row; its figures
are :class:`MetricValue` rows in long format — a metric name, the column it is about
(``""`` for the whole window), the model version it is about (``None`` for all) and a
value, with JSON details (the statistic's p-value and threshold, the most changed bins,
the labelled rows behind a performance figure...). Any figure read over consecutive
windows is a time series: :func:`series`.

Metric names (see docs/monitoring.md for the full list):

==========================  =============  ===================================================
metric                      column         value
==========================  =============  ===================================================
``rows``                    ``""``         predictions in the window (shadow excluded)
``drift.value``             a column       the drift statistic's value
``drift.detected``          a column       1 when the column drifted, else 0
``drift.share``             ``""``         share of the feature columns that drifted
``quality.null_rate``       a column       share of nulls (details: the reference's share)
``quality.out_of_range``    a column       share of values outside the reference's range
``quality.unseen``          a column       share of categories the reference never had
``quality.type_errors``     a column       values not readable as the reference's type
``quality.missing_rate``    a feature/""   share of inputs that fell back to their default
``performance.<metric>``    ""/slice       the metric on labelled rows (details: ``labelled``)
``performance.labelled``    ``""``         predictions with a label
``performance.awaiting``    ``""``         predictions still awaiting their label
``latency.p50|p95|p99``     ``""``         request latency in ms, per version
``requests``                ``""``         requests, per version
``error_rate``              ``""``         share of predictions that failed, per version
==========================  =============  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.monitoring.tables import monitoring_metrics, monitoring_windows

__all__ = [
    "MetricValue",
    "Window",
    "WindowMetrics",
    "get_window",
    "last_end",
    "latest_windows",
    "list_windows",
    "metrics_of",
    "record_window",
    "replace_metrics",
    "series",
]


@dataclass(frozen=True)
class MetricValue:
    """One figure of one window."""

    metric: str
    value: float | None
    column: str = ""
    version: int | None = None
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "column": self.column,
            "version": self.version,
            "value": self.value,
            "details": self.details,
        }


@dataclass(frozen=True)
class Window:
    """An analysed window ``[start, end)`` of a model's prediction log."""

    id: int
    model: str
    against: str
    """``"reference"`` (the model version's training data) or ``"previous"`` (the window
    before)."""
    start: datetime
    end: datetime
    rows: int
    version: int | None
    """The version that served most of the window (its reference was used)."""
    reference: dict[str, Any]
    computed_at: datetime
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "against": self.against,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "version": self.version,
            "reference": self.reference,
            "computed_at": self.computed_at.isoformat(),
            "report": self.report,
        }


@dataclass(frozen=True)
class WindowMetrics:
    """A window and its figures."""

    window: Window
    metrics: list[MetricValue] = field(default_factory=list)

    def get(self, metric: str, column: str = "", version: int | None = None) -> MetricValue | None:
        for m in self.metrics:
            if m.metric == metric and m.column == column and m.version == version:
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**self.window.to_dict(), "metrics": [m.to_dict() for m in self.metrics]}


def _window(row: Any) -> Window:
    return Window(
        id=row.id,
        model=row.model,
        against=row.against,
        start=row.start,
        end=row.end,
        rows=row.rows,
        version=row.version,
        reference=row.reference,
        computed_at=row.computed_at,
        report=row.report,
    )


def _metric_rows(window_id: int, model: str, values: Iterable[MetricValue]) -> list[dict[str, Any]]:
    return [
        {
            "window_id": window_id,
            "model": model,
            "metric": v.metric,
            "column": v.column,
            "version": v.version,
            "value": v.value,
            "details": v.details,
        }
        for v in values
    ]


def record_window(
    store: MetadataStore,
    *,
    model: str,
    against: str,
    start: datetime,
    end: datetime,
    rows: int,
    version: int | None,
    reference: dict[str, Any],
    metrics: Sequence[MetricValue],
    report: str | None = None,
) -> Window:
    """Store a window and its figures in one transaction; a window analysed again (same
    model, comparison and bounds) keeps its id and replaces the earlier figures."""
    t = monitoring_windows
    with store.transaction() as conn:
        old = conn.execute(
            sa.select(t.c.id).where(
                t.c.model == model, t.c.against == against, t.c.start == start, t.c.end == end
            )
        ).scalar_one_or_none()
        values = {
            "rows": rows,
            "version": version,
            "reference": reference,
            "computed_at": clock.now(),
            "report": report,
        }
        if old is not None:  # analysed again: same id (alerts refer to it), new figures
            window_id = old
            conn.execute(sa.delete(monitoring_metrics).where(monitoring_metrics.c.window_id == old))
            conn.execute(sa.update(t).where(t.c.id == old).values(**values))
        else:
            window_id = conn.execute(
                sa.insert(t)
                .values(model=model, against=against, start=start, end=end, **values)
                .returning(t.c.id)
            ).scalar_one()
        if metrics:
            conn.execute(sa.insert(monitoring_metrics), _metric_rows(window_id, model, metrics))
        row = conn.execute(sa.select(t).where(t.c.id == window_id)).one()
    return _window(row)


def replace_metrics(
    store: MetadataStore, window_id: int, prefix: str, values: Sequence[MetricValue]
) -> None:
    """Replace a window's figures whose metric starts with ``prefix`` (e.g. performance
    figures recomputed as labels arrive)."""
    m = monitoring_metrics
    with store.transaction() as conn:
        model = conn.execute(
            sa.select(monitoring_windows.c.model).where(monitoring_windows.c.id == window_id)
        ).scalar_one()
        conn.execute(sa.delete(m).where(m.c.window_id == window_id, m.c.metric.startswith(prefix)))
        if values:
            conn.execute(sa.insert(m), _metric_rows(window_id, model, values))


def set_report(store: MetadataStore, window_id: int, report: str) -> None:
    """Record where a window's HTML report was written."""
    t = monitoring_windows
    with store.transaction() as conn:
        conn.execute(sa.update(t).where(t.c.id == window_id).values(report=report))


def list_windows(
    store: MetadataStore,
    model: str,
    *,
    against: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Window]:
    """A model's windows, oldest first; ``limit`` keeps the latest ones."""
    t = monitoring_windows
    query = sa.select(t).where(t.c.model == model)
    if against is not None:
        query = query.where(t.c.against == against)
    if since is not None:
        query = query.where(t.c.end > since)
    if until is not None:
        query = query.where(t.c.start < until)
    query = query.order_by(t.c.end.desc(), t.c.start.desc(), t.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return [_window(r) for r in reversed(rows)]


def latest_windows(store: MetadataStore) -> list[Window]:
    """The latest window of each model and comparison (``against``), in one query,
    ordered by model and comparison; "latest" as in :func:`list_windows` (the latest end,
    then the latest start)."""
    t = monitoring_windows
    recency = (
        sa.func.row_number()
        .over(
            partition_by=(t.c.model, t.c.against),
            order_by=(t.c.end.desc(), t.c.start.desc(), t.c.id.desc()),
        )
        .label("recency")
    )
    ranked = sa.select(t, recency).subquery()
    query = (
        sa.select(*(ranked.c[c.name] for c in t.columns))
        .where(ranked.c.recency == 1)
        .order_by(ranked.c.model, ranked.c.against)
    )
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return [_window(r) for r in rows]


def get_window(store: MetadataStore, window_id: int) -> Window | None:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(monitoring_windows).where(monitoring_windows.c.id == window_id)
        ).one_or_none()
    return None if row is None else _window(row)


def last_end(store: MetadataStore, model: str, against: str | None) -> datetime | None:
    """The end of the latest window analysed for ``model`` with this comparison (any
    comparison: ``None``)."""
    t = monitoring_windows
    query = sa.select(sa.func.max(t.c.end)).where(t.c.model == model)
    if against is not None:
        query = query.where(t.c.against == against)
    with store.connect() as conn:
        value: datetime | None = conn.execute(query).scalar_one_or_none()
    return value


def metrics_of(store: MetadataStore, windows: Sequence[Window]) -> list[WindowMetrics]:
    """The figures of each window, in the windows' order."""
    if not windows:
        return []
    m = monitoring_metrics
    ids = [w.id for w in windows]
    by_window: dict[int, list[MetricValue]] = {i: [] for i in ids}
    with store.connect() as conn:
        rows = conn.execute(sa.select(m).where(m.c.window_id.in_(ids)).order_by(m.c.id)).all()
    for r in rows:
        by_window[r.window_id].append(
            MetricValue(r.metric, r.value, r.column, r.version, r.details)
        )
    return [WindowMetrics(w, by_window[w.id]) for w in windows]


def series(
    store: MetadataStore,
    model: str,
    metric: str,
    *,
    column: str = "",
    version: int | None = None,
    against: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[tuple[Window, MetricValue]]:
    """One figure over a model's windows, oldest first (windows without it are skipped)."""
    t, m = monitoring_windows, monitoring_metrics
    query = (
        sa.select(t, m.c.value, m.c.details, m.c.version.label("metric_version"))
        .join(m, m.c.window_id == t.c.id)
        .where(t.c.model == model, m.c.metric == metric, m.c.column == column)
    )
    query = query.where(m.c.version.is_(None) if version is None else m.c.version == version)
    if against is not None:
        query = query.where(t.c.against == against)
    if since is not None:
        query = query.where(t.c.end > since)
    query = query.order_by(t.c.end.desc(), t.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).all()
    return [
        (_window(r), MetricValue(metric, r.value, column, r.metric_version, r.details))
        for r in reversed(rows)
    ]
