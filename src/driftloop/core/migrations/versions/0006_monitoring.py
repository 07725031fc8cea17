"""monitoring: windows, their metrics, alerts and alert events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_windows",
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
    )
    op.create_index("ix_monitoring_windows_model_end", "monitoring_windows", ["model", "end"])
    op.create_table(
        "monitoring_metrics",
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
    )
    op.create_index("ix_monitoring_metrics_window_id", "monitoring_metrics", ["window_id"])
    op.create_index(
        "ix_monitoring_metrics_model_metric", "monitoring_metrics", ["model", "metric", "column"]
    )
    op.create_table(
        "alerts",
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
    )
    op.create_index("ix_alerts_model_status", "alerts", ["model", "status"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("channel", sa.String(30), nullable=True),
        sa.Column("detail", JSON, nullable=True),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alerts")
    op.drop_table("monitoring_metrics")
    op.drop_table("monitoring_windows")
