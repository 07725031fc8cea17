"""Tables owned by the features package (created by migration 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = [
    "entities",
    "feature_view_heads",
    "feature_views",
    "materializations",
    "training_sets",
]

entities = sa.Table(
    "entities",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("body", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

feature_views = sa.Table(
    "feature_views",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("body", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

feature_view_heads = sa.Table(
    "feature_view_heads",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

training_sets = sa.Table(
    "training_sets",
    METADATA,
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

materializations = sa.Table(
    "materializations",
    METADATA,
    sa.Column("view", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("watermark", UTCDateTime, nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
