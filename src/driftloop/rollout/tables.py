"""Tables owned by the rollout package (created by migration 0007).

- ``rollouts``: one durable state machine per progressive rollout of a model version
  (shadow -> canary steps -> promoted / rolled back / aborted, or paused), with its
  policy, where it stands, the per-metric counts of its measurements and why it ended.
  ``revision`` is bumped by every change: writers compare-and-set on it. At most one
  rollout per model is active (shadow, canary or paused): a partial unique index says so.
- ``rollout_measurements``: every measurement, recorded before the rollout acts on it;
  ``(rollout_id, seq, metric)`` is unique, so a measurement is never recorded twice.
- ``rollout_events``: the rollout's timeline (started, stepped, paused, promoted...).
"""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["ACTIVE_STATES", "rollout_events", "rollout_measurements", "rollouts"]

ACTIVE_STATES = ("shadow", "canary", "paused")
_ACTIVE = sa.text("state IN ('shadow', 'canary', 'paused')")

rollouts = sa.Table(
    "rollouts",
    METADATA,
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
    sa.Index("ix_rollouts_model_state", "model", "state"),
    sa.Index("ix_rollouts_run_id", "run_id"),
    sa.Index(
        "uq_rollouts_active_model",
        "model",
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    ),
)

rollout_measurements = sa.Table(
    "rollout_measurements",
    METADATA,
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
    sa.UniqueConstraint("rollout_id", "seq", "metric", name="uq_rollout_measurements_seq_metric"),
)

rollout_events = sa.Table(
    "rollout_events",
    METADATA,
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
    sa.Index("ix_rollout_events_rollout_id", "rollout_id"),
)
