"""features: entities, feature view versions, training sets, materialization watermarks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "feature_views",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "feature_view_heads",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "training_sets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("schema", JSON, nullable=False),
        sa.Column("entity_rows_sha256", sa.String(64), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("views", JSON, nullable=False),
        sa.Column("dataset_versions", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "materializations",
        sa.Column("view", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("watermark", UTCDateTime, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "materializations",
        "training_sets",
        "feature_view_heads",
        "feature_views",
        "entities",
    ):
        op.drop_table(name)
