"""Tables owned by the training package (created by migration 0004)."""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["training_runs"]

# One row per training run, written when it starts and completed when it ends.
training_runs = sa.Table(
    "training_runs",
    METADATA,
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
    sa.Index("ix_training_runs_model_started", "model", "started_at"),
)
