"""Tables owned by the loop package (created by migration 0008).

- ``trigger_firings``: every evaluation of a model's retraining triggers that fired or
  was suppressed, with the evidence that caused it and why it was suppressed (cooldown,
  budget, a run in progress); a fired one names the pipeline run it started.
- ``pipeline_runs``: one durable state machine per pipeline run (build training set ->
  train -> evaluate -> gate -> register -> rollout -> promoted / rejected / rolled back),
  advanced step by step by the controller; each step's outputs are recorded, so a
  controller killed at any point resumes where it stopped.
- ``pipeline_events``: the timeline of each run (a step started, finished, failed...).
- ``leases``: who may act (one controller at a time), until when.
"""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["leases", "pipeline_events", "pipeline_runs", "trigger_firings"]

trigger_firings = sa.Table(
    "trigger_firings",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", JSON, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Index("ix_trigger_firings_model_at", "model", "at"),
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("step", sa.String(30), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("firing_id", sa.Integer, nullable=True),
    sa.Column("outputs", JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("training_seconds", sa.Float, nullable=False),
    sa.Index("ix_pipeline_runs_model_state", "model", "state"),
)

pipeline_events = sa.Table(
    "pipeline_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("step", sa.String(30), nullable=True),
    sa.Column("detail", JSON, nullable=True),
    sa.Index("ix_pipeline_events_run_id", "run_id"),
)

leases = sa.Table(
    "leases",
    METADATA,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
)
