"""data: sources, contract versions, dataset versions, quarantine, ingest log

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftloop.core.metadata import JSON, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("contract_version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "contract_versions",
        sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("source", "hash"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("contract_version", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("schema", JSON, nullable=False),
        sa.Column("event_min", UTCDateTime, nullable=True),
        sa.Column("event_max", UTCDateTime, nullable=True),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("validation", JSON, nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_dataset_versions_source_created_at", "dataset_versions", ["source", "created_at"]
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("input_uri", sa.Text, nullable=False),
        sa.Column("input_format", sa.String(20), nullable=False),
        sa.Column("contract_version", sa.Integer, nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.String(64), nullable=True),
    )
    op.create_index("ix_quarantine_source_status", "quarantine", ["source", "status"])
    op.create_table(
        "ingest_log",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("input_uri", sa.Text, nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("dataset_version", sa.String(64), nullable=True),
        sa.Column("quarantine_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_ingest_log_source_at", "ingest_log", ["source", "at"])


def downgrade() -> None:
    for name in ("ingest_log", "quarantine", "dataset_versions", "contract_versions", "sources"):
        op.drop_table(name)
