"""Tables owned by the monitoring package (created by migration 0006).

- ``monitoring_windows``: one row per analysed window of a model's prediction log.
- ``monitoring_metrics``: the figures of each window, long format (one row per metric,
  column and version), so every figure is a time series over the windows.
- ``alerts``: one row per alert (a rule firing for a model and column), open while the
  condition persists, resolved when it clears.
- ``alert_events``: what happened to each alert (fired, updated, resolved, delivered,
  delivery failed), append-only.
"""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["alert_events", "alerts", "monitoring_metrics", "monitoring_windows"]

monitoring_windows = sa.Table(
    "monitoring_windows",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("against", sa.String(20), nullable=False),
    sa.Column("start", UTCDateTime, nullable=False),
    sa.Column("end", UTCDateTime, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("reference", JSON, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("report", sa.Text, nullable=True),
    sa.UniqueConstraint("model", "against", "start", "end"),
    sa.Index("ix_monitoring_windows_model_end", "model", "end"),
)

monitoring_metrics = sa.Table(
    "monitoring_metrics",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "window_id",
        sa.Integer,
        sa.ForeignKey("monitoring_windows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(100), nullable=False),
    sa.Column("column", sa.String(300), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("details", JSON, nullable=True),
    sa.Index("ix_monitoring_metrics_window_id", "window_id"),
    sa.Index("ix_monitoring_metrics_model_metric", "model", "metric", "column"),
)

alerts = sa.Table(
    "alerts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("column", sa.String(300), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("first_window", sa.Integer, nullable=False),
    sa.Column("last_window", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("evidence", JSON, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_alerts_model_status", "model", "status"),
)

alert_events = sa.Table(
    "alert_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("channel", sa.String(30), nullable=True),
    sa.Column("detail", JSON, nullable=True),
    sa.Index("ix_alert_events_alert_id", "alert_id"),
)
