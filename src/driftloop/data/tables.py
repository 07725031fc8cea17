"""Tables owned by the data package (created by migration 0001)."""

from __future__ import annotations

import sqlalchemy as sa

from driftloop.core.metadata import JSON, METADATA, UTCDateTime

__all__ = ["contract_versions", "dataset_versions", "ingest_log", "quarantine", "sources"]

sources = sa.Table(
    "sources",
    METADATA,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("contract_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

contract_versions = sa.Table(
    "contract_versions",
    METADATA,
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("body", JSON, nullable=False),
    sa.Column("changes", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("source", "hash"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    METADATA,
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
    sa.Index("ix_dataset_versions_source_created_at", "source", "created_at"),
)

quarantine = sa.Table(
    "quarantine",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # held | released | dropped
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
    sa.Index("ix_quarantine_source_status", "source", "status"),
)

ingest_log = sa.Table(
    "ingest_log",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("input_uri", sa.Text, nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),  # accepted | duplicate | rejected
    sa.Column("dataset_version", sa.String(64), nullable=True),
    sa.Column("quarantine_id", sa.String(64), nullable=True),
    sa.Index("ix_ingest_log_source_at", "source", "at"),
)
