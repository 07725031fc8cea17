"""Quarantine: rejected batches, kept byte-identical with their validation report.

An entry is ``held`` until it is ``released`` (re-validated against the source's
current contract and, if it now passes, accepted as a dataset version) or
``dropped`` (kept on record; its bytes are deleted only with ``purge=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.hashing import new_id
from driftloop.core.metadata import MetadataStore
from driftloop.data.contract import Contract
from driftloop.data.datasets import log_ingest
from driftloop.data.readers import RawBatch, UnreadableInput
from driftloop.data.tables import dataset_versions, quarantine
from driftloop.data.validation import ValidationReport
from driftloop.errors import NotFoundError, StateError

__all__ = [
    "QuarantineEntry",
    "drop",
    "get_entry",
    "hold",
    "list_entries",
    "mark_released",
    "update_report",
]


@dataclass(frozen=True)
class QuarantineEntry:
    """One rejected batch and why it was rejected."""

    id: str
    source: str
    status: str
    blob: str
    bytes: int
    input_uri: str
    input_format: str
    contract_version: int
    report: dict[str, Any]
    provenance: dict[str, Any]
    created_at: datetime
    created_by: str
    resolved_at: datetime | None
    resolved_by: str | None
    dataset_version: str | None

    @property
    def validation(self) -> ValidationReport | None:
        """The validation report, or None when the input could not even be read."""
        body = self.report.get("validation")
        return ValidationReport.from_dict(body) if body is not None else None

    @property
    def failures(self) -> list[str]:
        """One line per failed rule (or the read error)."""
        if self.report.get("error"):
            return [str(self.report["error"])]
        validation = self.validation
        return [r.describe() for r in validation.failures] if validation else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "status": self.status,
            "blob": self.blob,
            "bytes": self.bytes,
            "input_uri": self.input_uri,
            "input_format": self.input_format,
            "contract_version": self.contract_version,
            "report": self.report,
            "provenance": self.provenance,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "dataset_version": self.dataset_version,
            "failures": self.failures,
        }


def read_report(error: UnreadableInput) -> dict[str, Any]:
    return {"stage": "read", "error": error.message, "line": error.line, "column": error.column}


def validation_report(report: ValidationReport, contract: Contract) -> dict[str, Any]:
    """The stored report; failing values of PII-tagged columns are redacted."""
    body = report.to_dict()
    pii = {c.name: c.pii for c in contract.columns if c.pii}
    for result in body["results"]:
        tag = pii.get(result["column"])
        if tag and result["values"]:
            result["values"] = [f"<redacted pii:{tag}>"] * len(result["values"])
    return {"stage": "validate", "validation": body}


def hold(
    store: MetadataStore,
    artifacts: ArtifactStore,
    *,
    source: str,
    data: bytes,
    input_uri: str,
    input_format: str,
    input_sha256: str,
    contract_version: int,
    report: dict[str, Any],
    provenance: dict[str, Any],
    who: str,
) -> QuarantineEntry:
    """Keep a rejected input's exact bytes and its report; return the new entry."""
    digest = artifacts.put_bytes(data)
    entry_id = new_id("q")
    now = clock.now()
    values = {
        "id": entry_id,
        "source": source,
        "status": "held",
        "blob": digest,
        "bytes": len(data),
        "input_uri": input_uri,
        "input_format": input_format,
        "contract_version": contract_version,
        "report": report,
        "provenance": provenance,
        "created_at": now,
        "created_by": who,
    }
    batch = RawBatch(data, "table", input_uri, input_sha256, pa.table({}))
    with store.transaction() as conn:
        conn.execute(quarantine.insert().values(**values))
        log_ingest(
            conn, source=source, batch=batch, who=who, outcome="rejected", quarantine_id=entry_id
        )
    return get_entry(store, entry_id)


def _from_row(row: Any) -> QuarantineEntry:
    return QuarantineEntry(
        id=row.id,
        source=row.source,
        status=row.status,
        blob=row.blob,
        bytes=row.bytes,
        input_uri=row.input_uri,
        input_format=row.input_format,
        contract_version=row.contract_version,
        report=dict(row.report),
        provenance=dict(row.provenance),
        created_at=row.created_at,
        created_by=row.created_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        dataset_version=row.dataset_version,
    )


def get_entry(store: MetadataStore, entry_id: str) -> QuarantineEntry:
    with store.connect() as conn:
        row = conn.execute(sa.select(quarantine).where(quarantine.c.id == entry_id)).first()
    if row is None:
        raise NotFoundError("quarantine entry", entry_id)
    return _from_row(row)


def list_entries(
    store: MetadataStore, *, source: str | None = None, status: str | None = "held"
) -> list[QuarantineEntry]:
    """Entries, newest first; ``status=None`` lists every status."""
    query = sa.select(quarantine).order_by(quarantine.c.created_at.desc(), quarantine.c.id)
    if source is not None:
        query = query.where(quarantine.c.source == source)
    if status is not None:
        query = query.where(quarantine.c.status == status)
    with store.connect() as conn:
        return [_from_row(r) for r in conn.execute(query)]


def _require_held(entry: QuarantineEntry) -> None:
    if entry.status != "held":
        raise StateError(
            f"quarantine entry {entry.id} is {entry.status}, not held",
            id=entry.id,
            status=entry.status,
        )


def update_report(
    store: MetadataStore, entry_id: str, report: dict[str, Any], contract_version: int
) -> QuarantineEntry:
    """Replace a held entry's report after a release attempt that failed again."""
    with store.transaction() as conn:
        conn.execute(
            quarantine.update()
            .where(quarantine.c.id == entry_id)
            .values(report=report, contract_version=contract_version)
        )
    return get_entry(store, entry_id)


def mark_released(
    store: MetadataStore, entry_id: str, *, dataset_version: str, who: str
) -> QuarantineEntry:
    """Compare-and-set a held entry to released, pointing at the version it became."""
    with store.transaction() as conn:
        result = conn.execute(
            quarantine.update()
            .where(quarantine.c.id == entry_id, quarantine.c.status == "held")
            .values(
                status="released",
                resolved_at=clock.now(),
                resolved_by=who,
                dataset_version=dataset_version,
            )
        )
        if result.rowcount != 1:
            _require_held(get_entry(store, entry_id))
    return get_entry(store, entry_id)


def drop(
    store: MetadataStore, artifacts: ArtifactStore, entry_id: str, *, who: str, purge: bool = False
) -> QuarantineEntry:
    """Mark a held entry dropped; with ``purge`` also delete its bytes (if nothing else uses
    them)."""
    entry = get_entry(store, entry_id)
    _require_held(entry)
    with store.transaction() as conn:
        result = conn.execute(
            quarantine.update()
            .where(quarantine.c.id == entry_id, quarantine.c.status == "held")
            .values(status="dropped", resolved_at=clock.now(), resolved_by=who)
        )
        if result.rowcount != 1:
            _require_held(get_entry(store, entry_id))
        others = conn.execute(
            sa.select(sa.func.count())
            .select_from(quarantine)
            .where(
                quarantine.c.blob == entry.blob,
                quarantine.c.id != entry_id,
                quarantine.c.status != "dropped",
            )
        ).scalar_one()
        others += conn.execute(
            sa.select(sa.func.count())
            .select_from(dataset_versions)
            .where(dataset_versions.c.id == entry.blob)
        ).scalar_one()
    if purge and not others:
        artifacts.delete(entry.blob)
    return get_entry(store, entry_id)
