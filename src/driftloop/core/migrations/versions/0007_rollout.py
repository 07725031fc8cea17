"""rollout: progressive rollouts, their analysis measurements and their events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("state IN ('shadow', 'canary', 'paused')")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), sa.ForeignKey("registered_models.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous", sa.Integer, nullable=True),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("step_started_at", UTCDateTime, nullable=False),
        sa.Column("measured_until", UTCDateTime, nullable=False),
        sa.Column("shadow_requests", sa.Integer, nullable=False),
        sa.Column("measurements", sa.Integer, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("inconclusives", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("deployment_revision", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("start_reason", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("rollback_until", UTCDateTime, nullable=True),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["model", "version"],
            ["model_versions.model", "model_versions.version"],
            name="fk_rollouts_version_model_versions",
        ),
    )
    op.create_index("ix_rollouts_model_state", "rollouts", ["model", "state"])
    op.create_index("ix_rollouts_run_id", "rollouts", ["run_id"])
    op.create_index(
        "uq_rollouts_active_model",
        "rollouts",
        ["model"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "rollout_measurements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "rollout_id",
            sa.Integer,
            sa.ForeignKey("rollouts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("window_end", UTCDateTime, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("champion_value", sa.Float, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.UniqueConstraint(
            "rollout_id", "seq", "metric", name="uq_rollout_measurements_seq_metric"
        ),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "rollout_id",
            sa.Integer,
            sa.ForeignKey("rollouts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
    )
    op.create_index("ix_rollout_events_rollout_id", "rollout_events", ["rollout_id"])


def downgrade() -> None:
    op.drop_table("rollout_events")
    op.drop_table("rollout_measurements")
    op.drop_index("uq_rollouts_active_model", table_name="rollouts")
    op.drop_table("rollouts")
