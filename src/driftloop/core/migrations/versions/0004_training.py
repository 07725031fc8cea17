"""training: training runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("spec_version", sa.String(64), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trainer", sa.String(400), nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("training_set_id", sa.String(64), nullable=True),
        sa.Column("views", JSON, nullable=False),
        sa.Column("dataset_versions", JSON, nullable=False),
        sa.Column("split", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("code_version", JSON, nullable=False),
        sa.Column("library_versions", JSON, nullable=False),
        sa.Column("fit_seconds", sa.Float, nullable=True),
        sa.Column("total_seconds", sa.Float, nullable=True),
        sa.Column("peak_memory_mb", sa.Float, nullable=True),
        sa.Column("artifact_digest", sa.String(64), nullable=True),
        sa.Column("flavor", sa.String(50), nullable=True),
        sa.Column("signature", JSON, nullable=False),
        sa.Column("evaluation", JSON, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_training_runs_model_started", "training_runs", ["model", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_training_runs_model_started", table_name="training_runs")
    op.drop_table("training_runs")
