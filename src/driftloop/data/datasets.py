"""Dataset versions: ingest through a contract, list, read as of a time, diff.

An accepted batch becomes an immutable dataset version: Parquet in the artifact
store, identified by the sha256 of that Parquet file, with its schema, row
count, event-time range, validation report, profile and provenance in the
metadata store. The same content ingested again yields the same version and is
stored once. A rejected batch goes to quarantine (see ``quarantine.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.config import IngestConfig
from driftloop.core.hashing import new_id
from driftloop.core.metadata import MetadataStore
from driftloop.data.contract import Contract
from driftloop.data.profile import (
    DatasetProfile,
    diff_profiles,
    merge_profiles,
    profile_table,
    redact_values,
)
from driftloop.data.readers import RawBatch
from driftloop.data.tables import dataset_versions, ingest_log
from driftloop.data.validation import ValidationReport, validate
from driftloop.errors import NotFoundError, StateError

__all__ = [
    "DatasetVersion",
    "IngestOutcome",
    "accept_batch",
    "diff_versions",
    "get_version",
    "list_versions",
    "log_ingest",
    "read_source",
    "source_profile",
    "write_parquet",
]

_log = logging.getLogger("driftloop.data")

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 256 * 1024,
    "write_statistics": True,
}


@dataclass(frozen=True)
class DatasetVersion:
    """One accepted batch of a source (immutable)."""

    source: str
    id: str
    contract_version: int
    rows: int
    bytes: int
    schema: list[dict[str, Any]]
    event_min: datetime | None
    event_max: datetime | None
    created_at: datetime
    provenance: dict[str, Any]
    validation: ValidationReport | None = None
    profile: DatasetProfile | None = field(default=None, repr=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_dict(self, *, with_profile: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "id": self.id,
            "contract_version": self.contract_version,
            "rows": self.rows,
            "bytes": self.bytes,
            "schema": self.schema,
            "event_min": self.event_min.isoformat() if self.event_min else None,
            "event_max": self.event_max.isoformat() if self.event_max else None,
            "created_at": self.created_at.isoformat(),
            "provenance": self.provenance,
        }
        if self.validation is not None:
            out["validation"] = self.validation.to_dict()
        if with_profile and self.profile is not None:
            out["profile"] = self.profile.to_dict()
        return out


@dataclass(frozen=True)
class IngestOutcome:
    """What one ingest call did: ``accepted`` a new version or found a ``duplicate``."""

    version: DatasetVersion
    outcome: str

    @property
    def duplicate(self) -> bool:
        return self.outcome == "duplicate"


def write_parquet(table: pa.Table) -> memoryview:
    """Serialise ``table`` as Parquet with fixed settings, so equal tables give equal bytes.

    Returns a view of the Arrow buffer (no copy into a Python ``bytes``).
    """
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_PARQUET_OPTIONS)
    return memoryview(sink.getvalue())


def _schema_of(table: pa.Table) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema]


def _from_row(row: Any, *, with_details: bool) -> DatasetVersion:
    validation = profile = None
    if with_details:
        validation = ValidationReport.from_dict(row.validation)
        profile = DatasetProfile.from_dict(row.profile)
    return DatasetVersion(
        source=row.source,
        id=row.id,
        contract_version=row.contract_version,
        rows=row.rows,
        bytes=row.bytes,
        schema=list(row.schema),
        event_min=row.event_min,
        event_max=row.event_max,
        created_at=row.created_at,
        provenance=dict(row.provenance),
        validation=validation,
        profile=profile,
    )


_SUMMARY_COLUMNS = [c for c in dataset_versions.c if c.name not in ("profile", "validation")]


def log_ingest(
    conn: sa.Connection,
    *,
    source: str,
    batch: RawBatch,
    who: str,
    outcome: str,
    dataset_version: str | None = None,
    quarantine_id: str | None = None,
) -> None:
    conn.execute(
        ingest_log.insert().values(
            id=new_id("ingest"),
            source=source,
            at=clock.now(),
            who=who,
            input_uri=batch.uri,
            input_sha256=batch.sha256,
            outcome=outcome,
            dataset_version=dataset_version,
            quarantine_id=quarantine_id,
        )
    )


def _duplicate(
    conn: sa.Connection, *, source: str, digest: str, batch: RawBatch, who: str
) -> IngestOutcome | None:
    """The existing version with this content, logged as a duplicate ingest; else None."""
    existing = conn.execute(
        sa.select(*_SUMMARY_COLUMNS).where(
            dataset_versions.c.source == source, dataset_versions.c.id == digest
        )
    ).first()
    if existing is None:
        return None
    log_ingest(
        conn, source=source, batch=batch, who=who, outcome="duplicate", dataset_version=digest
    )
    return IngestOutcome(_from_row(existing, with_details=False), "duplicate")


def accept_batch(
    store: MetadataStore,
    artifacts: ArtifactStore,
    *,
    source: str,
    contract: Contract,
    contract_version: int,
    table: pa.Table,
    report: ValidationReport,
    batch: RawBatch,
    provenance: dict[str, Any],
    who: str,
) -> IngestOutcome:
    """Store a validated, conformed ``table`` as a dataset version (idempotent by content)."""
    data = write_parquet(table)
    digest = artifacts.put_bytes(data)
    size = len(data)
    del data  # the blob is stored; free its buffer before profiling
    with store.transaction() as conn:
        duplicate = _duplicate(conn, source=source, digest=digest, batch=batch, who=who)
        if duplicate is not None:
            return duplicate
    kinds = {c.name: c.profile_kind for c in contract.columns}
    profile = redact_values(
        profile_table(table, kinds), [c.name for c in contract.columns if c.pii]
    )
    ts = table.column(contract.event_time)
    bounds = pc.min_max(ts)
    event_min, event_max = bounds["min"].as_py(), bounds["max"].as_py()
    now = clock.now()
    values = {
        "source": source,
        "id": digest,
        "contract_version": contract_version,
        "rows": table.num_rows,
        "bytes": size,
        "schema": _schema_of(table),
        "event_min": event_min,
        "event_max": event_max,
        "profile": profile.to_dict(),
        "validation": report.to_dict(),
        "provenance": provenance,
        "created_at": now,
    }
    try:
        with store.transaction() as conn:
            # another writer may have stored the same content while we profiled
            duplicate = _duplicate(conn, source=source, digest=digest, batch=batch, who=who)
            if duplicate is not None:
                return duplicate
            conn.execute(dataset_versions.insert().values(**values))
            log_ingest(
                conn,
                source=source,
                batch=batch,
                who=who,
                outcome="accepted",
                dataset_version=digest,
            )
    except sa.exc.IntegrityError:
        # a concurrent writer inserted it between our check and our insert (PostgreSQL)
        with store.transaction() as conn:
            duplicate = _duplicate(conn, source=source, digest=digest, batch=batch, who=who)
        if duplicate is None:
            raise
        return duplicate
    version = DatasetVersion(
        source=source,
        id=digest,
        contract_version=contract_version,
        rows=table.num_rows,
        bytes=size,
        schema=values["schema"],
        event_min=event_min,
        event_max=event_max,
        created_at=now,
        provenance=provenance,
        validation=report,
        profile=profile,
    )
    return IngestOutcome(version, "accepted")


def validate_batch(
    batch: RawBatch, contract: Contract, config: IngestConfig
) -> tuple[ValidationReport, pa.Table | None]:
    """Validate a read batch with the project's ingest settings and the driftloop clock."""
    return validate(
        batch.table,
        contract,
        now=clock.now(),
        future_tolerance=config.future_tolerance,
        sample=config.sample_failures,
    )


def list_versions(
    store: MetadataStore, source: str | None = None, *, as_of: datetime | None = None
) -> list[DatasetVersion]:
    """Dataset versions, oldest first; ``as_of`` keeps those known at that time."""
    query = sa.select(*_SUMMARY_COLUMNS).order_by(
        dataset_versions.c.created_at, dataset_versions.c.id
    )
    if source is not None:
        query = query.where(dataset_versions.c.source == source)
    if as_of is not None:
        query = query.where(dataset_versions.c.created_at <= clock.ensure_utc(as_of))
    with store.connect() as conn:
        return [_from_row(r, with_details=False) for r in conn.execute(query)]


def get_version(store: MetadataStore, ref: str, *, source: str | None = None) -> DatasetVersion:
    """A version by its id or an unambiguous prefix of at least 6 characters."""
    ref = ref.strip().lower()
    if len(ref) < 6:
        raise NotFoundError("dataset version", ref)
    query = sa.select(dataset_versions).where(dataset_versions.c.id.startswith(ref))
    if source is not None:
        query = query.where(dataset_versions.c.source == source)
    with store.connect() as conn:
        rows = conn.execute(query.limit(3)).all()
    if not rows:
        raise NotFoundError("dataset version", ref)
    if len(rows) > 1:
        matches = ", ".join(f"{r.source}:{r.id[:16]}" for r in rows)
        raise StateError(
            f"dataset version {ref!r} is ambiguous ({matches}); give more of the id or the source",
            ref=ref,
        )
    return _from_row(rows[0], with_details=True)


def _tables(
    artifacts: ArtifactStore,
    versions: Sequence[DatasetVersion],
    verify: bool,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.Table]:
    for version in versions:
        if verify:  # once per process and blob while the file is unchanged
            artifacts.verify_once(version.id)
        with artifacts.open_input(version.id) as handle:
            parquet = pq.ParquetFile(handle)  # one read of the footer
            present = parquet.schema_arrow.names
            keep = None if columns is None else [c for c in columns if c in present]
            yield parquet.read(columns=keep)


def read_source(
    store: MetadataStore,
    artifacts: ArtifactStore,
    source: str,
    *,
    as_of: datetime | None = None,
    columns: Sequence[str] | None = None,
    verify: bool = True,
    event_since: datetime | None = None,
) -> pa.Table:
    """A source's data as of a time: the union of the batches accepted by then.

    Batches written under older contract versions lack columns added later; those
    come back as nulls. Every blob's hash is verified before it is read.
    ``event_since``: skip the batches whose every event time is before it (the rows
    of the others are all returned).
    """
    from driftloop.data.sources import get_source_state

    state = get_source_state(store, source)
    versions = list_versions(store, source, as_of=as_of)
    if event_since is not None:
        since = clock.ensure_utc(event_since)
        versions = [v for v in versions if v.event_max is None or v.event_max >= since]
    schema = state.contract.arrow_schema
    for name in columns or ():
        if name not in schema.names:
            raise NotFoundError("column", name, known=schema.names)
    if not versions:
        empty = schema.empty_table()
        return empty.select(list(columns)) if columns else empty
    wanted = pa.schema([schema.field(c) for c in columns]) if columns else schema
    local = _read_local(artifacts, versions, wanted, verify)
    if local is not None:
        return local
    parts = []
    for stored in _tables(artifacts, versions, verify, wanted.names):
        table = stored
        for f in wanted:
            if f.name not in table.column_names:
                table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
        parts.append(table.select(wanted.names).cast(wanted))
    return pa.concat_tables(parts)


def _read_local(
    artifacts: ArtifactStore,
    versions: Sequence[DatasetVersion],
    wanted: pa.Schema,
    verify: bool,
) -> pa.Table | None:
    """The batches read as one Arrow dataset, on every core, in their order, when they
    are local files (columns added by later contract versions read as nulls); None on
    another filesystem, or when a stored type does not convert (the per-file path
    casts it)."""
    import pyarrow.dataset as pads

    paths = []
    for version in versions:
        path = (
            artifacts.verified_local_path(version.id)
            if verify
            else artifacts.local_path(version.id)
        )
        if path is None:
            return None
        paths.append(path)
    try:
        found = pads.dataset(paths, schema=wanted, format="parquet")
        return found.to_table(columns=wanted.names)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # the dataset scanner converts fewer types than Table.cast: read file by file
        _log.debug("reading %d batches file by file: %s", len(paths), exc)
        return None


def source_profile(
    store: MetadataStore, source: str, *, as_of: datetime | None = None
) -> DatasetProfile:
    """The profile of a source as of a time, merged from its batches' profiles."""
    query = sa.select(dataset_versions.c.profile).where(dataset_versions.c.source == source)
    if as_of is not None:
        query = query.where(dataset_versions.c.created_at <= clock.ensure_utc(as_of))
    with store.connect() as conn:
        profiles = [DatasetProfile.from_dict(p) for p in conn.execute(query).scalars()]
    if not profiles:
        from driftloop.data.sources import get_source_state

        get_source_state(store, source)  # unknown source -> NotFoundError
        raise StateError(
            f"source {source!r} has no accepted data"
            + (f" as of {as_of.isoformat()}" if as_of else ""),
            source=source,
        )
    return merge_profiles(profiles)


def diff_versions(old: DatasetVersion, new: DatasetVersion) -> dict[str, Any]:
    """Schema and profile changes from ``old`` to ``new``."""
    old_cols = {c["name"]: c for c in old.schema}
    new_cols = {c["name"]: c for c in new.schema}
    schema = {
        "added": [n for n in new_cols if n not in old_cols],
        "removed": [n for n in old_cols if n not in new_cols],
        "type_changed": [
            {"column": n, "from": old_cols[n]["type"], "to": new_cols[n]["type"]}
            for n in old_cols
            if n in new_cols and old_cols[n]["type"] != new_cols[n]["type"]
        ],
    }
    out: dict[str, Any] = {
        "old": old.id,
        "new": new.id,
        "sources": [old.source, new.source],
        "rows": {"old": old.rows, "new": new.rows},
        "schema": schema,
    }
    if old.profile is not None and new.profile is not None:
        out["profile"] = diff_profiles(old.profile, new.profile)
    return out
