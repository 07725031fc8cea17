"""Tables owned by the registry package (created by migration 0003)."""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["alias_history", "model_aliases", "model_versions", "registered_models"]

registered_models = sa.Table(
    "registered_models",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    METADATA,
    sa.Column("model", sa.String(200), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("artifact_digest", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(50), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("metrics", JSON, nullable=False),
    sa.Column("signature", JSON, nullable=False),
    sa.Column("tags", JSON, nullable=False),
    sa.Column("lineage", JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

# The current pointer per (model, alias); changed only by registry.models.set_alias.
model_aliases = sa.Table(
    "model_aliases",
    METADATA,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.ForeignKeyConstraint(
        ["model", "version"], ["model_versions.model", "model_versions.version"]
    ),
)

# Append-only: one row per set, move or delete of an alias, in the mover's transaction.
alias_history = sa.Table(
    "alias_history",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), sa.ForeignKey("registered_models.name"), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_alias_history_model_alias_at", "model", "alias", "at"),
)
