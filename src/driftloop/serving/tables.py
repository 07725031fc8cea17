"""Tables owned by the serving package (created by migration 0005)."""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["deployment_history", "deployments"]

# The current deployment state per model, beyond its champion (which is the registry's
# `champion` alias, never copied here); changed only by serving.deployments. A model
# without a row has revision 0 and serves its champion alone.
deployments = sa.Table(
    "deployments",
    METADATA,
    sa.Column("model", sa.String(200), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("canary", sa.Integer, nullable=True),
    sa.Column("canary_weight", sa.Float, nullable=False),
    sa.Column("shadow", sa.Integer, nullable=True),
    sa.Column("split", JSON, nullable=True),
    sa.Column("split_weights", JSON, nullable=True),
    sa.Column("staged", sa.Integer, nullable=True),
    sa.Column("routing_key", sa.String(200), nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.ForeignKeyConstraint(
        ["model", "canary"],
        ["model_versions.model", "model_versions.version"],
        name="fk_deployments_canary_model_versions",
    ),
    sa.ForeignKeyConstraint(
        ["model", "shadow"],
        ["model_versions.model", "model_versions.version"],
        name="fk_deployments_shadow_model_versions",
    ),
    sa.ForeignKeyConstraint(
        ["model", "staged"],
        ["model_versions.model", "model_versions.version"],
        name="fk_deployments_staged_model_versions",
    ),
)

# Append-only: one row per change, in the changer's transaction, with the full state
# after it (champion included, as it was then).
deployment_history = sa.Table(
    "deployment_history",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), sa.ForeignKey("registered_models.name"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("state", JSON, nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.UniqueConstraint("model", "revision", name="uq_deployment_history_model_revision"),
)
