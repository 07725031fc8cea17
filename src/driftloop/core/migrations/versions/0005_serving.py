"""serving: deployments and their history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column(
            "model", sa.String(200), sa.ForeignKey("registered_models.name"), primary_key=True
        ),
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
        *(
            sa.ForeignKeyConstraint(
                ["model", role],
                ["model_versions.model", "model_versions.version"],
                name=f"fk_deployments_{role}_model_versions",
            )
            for role in ("canary", "shadow", "staged")
        ),
    )
    op.create_table(
        "deployment_history",
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


def downgrade() -> None:
    op.drop_table("deployment_history")
    op.drop_table("deployments")
