"""Ingest and release: a batch in, a dataset version or a quarantine entry out.

These functions are what ``Project.ingest`` and ``Project.release`` (and so the CLI)
call. They take the source's current contract already resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop._version import __version__
from driftloop.core import clock
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.config import IngestConfig
from driftloop.core.hashing import sha256_bytes
from driftloop.core.metadata import MetadataStore
from driftloop.core.provenance import git_info
from driftloop.data import quarantine as quarantine_mod
from driftloop.data.contract import Contract
from driftloop.data.datasets import IngestOutcome, accept_batch, validate_batch
from driftloop.data.quarantine import QuarantineEntry
from driftloop.data.readers import RawBatch, UnreadableInput, read_batch, read_bytes
from driftloop.errors import BatchRejected, StateError

__all__ = ["IngestContext", "SourceContract", "ingest", "release"]


@dataclass(frozen=True)
class SourceContract:
    """A source's name with its current contract and that contract's version number."""

    name: str
    contract: Contract
    version: int


@dataclass(frozen=True)
class IngestContext:
    """Where to write, with which settings, on whose behalf."""

    store: MetadataStore
    artifacts: ArtifactStore
    config: IngestConfig
    who: str
    project_root: Path | None = None


def _provenance(
    ctx: IngestContext,
    target: SourceContract,
    *,
    uri: str,
    data: bytes,
    fmt: str,
    parents: Sequence[str],
) -> dict[str, Any]:
    git = git_info(ctx.project_root) if ctx.project_root is not None else None
    return {
        "input_uri": uri,
        "input_sha256": sha256_bytes(data),
        "input_format": fmt,
        "input_bytes": len(data),
        "ingested_at": clock.now().isoformat(),
        "ingested_by": ctx.who,
        "driftloop_version": __version__,
        "project_git_sha": git.sha if git else None,
        "project_git_dirty": git.dirty if git else None,
        "parents": list(parents),
        "contract": {"version": target.version, "hash": target.contract.hash},
    }


def _hold_unreadable(
    ctx: IngestContext, target: SourceContract, error: UnreadableInput, parents: Sequence[str]
) -> BatchRejected:
    uri = error.path or ""
    provenance = _provenance(
        ctx, target, uri=uri, data=error.data, fmt=error.format, parents=parents
    )
    entry = quarantine_mod.hold(
        ctx.store,
        ctx.artifacts,
        source=target.name,
        data=error.data,
        input_uri=uri,
        input_format=error.format,
        input_sha256=provenance["input_sha256"],
        contract_version=target.version,
        report=quarantine_mod.read_report(error),
        provenance=provenance,
        who=ctx.who,
    )
    return BatchRejected(target.name, entry.id, entry.failures)


def _accept_or_hold(
    ctx: IngestContext,
    target: SourceContract,
    batch: RawBatch,
    provenance: dict[str, Any],
    entry: QuarantineEntry | None = None,
) -> IngestOutcome:
    report, table = validate_batch(batch, target.contract, ctx.config)
    if table is None:
        body = quarantine_mod.validation_report(report, target.contract)
        if entry is None:
            entry = quarantine_mod.hold(
                ctx.store,
                ctx.artifacts,
                source=target.name,
                data=batch.data,
                input_uri=batch.uri,
                input_format=batch.format,
                input_sha256=batch.sha256,
                contract_version=target.version,
                report=body,
                provenance=provenance,
                who=ctx.who,
            )
        else:
            entry = quarantine_mod.update_report(ctx.store, entry.id, body, target.version)
        raise BatchRejected(target.name, entry.id, entry.failures)
    return accept_batch(
        ctx.store,
        ctx.artifacts,
        source=target.name,
        contract=target.contract,
        contract_version=target.version,
        table=table,
        report=report,
        batch=batch,
        provenance=provenance,
        who=ctx.who,
    )


def _column_types(contract: Contract) -> dict[str, Any]:
    return {c.name: c.arrow_type for c in contract.columns}


def ingest(
    ctx: IngestContext,
    target: SourceContract,
    data: Any,
    *,
    format: str | None = None,
    parents: Sequence[str] = (),
) -> IngestOutcome:
    """Read, validate and store one batch; a failing batch is held and BatchRejected raised."""
    try:
        batch = read_batch(data, format=format, column_types=_column_types(target.contract))
    except UnreadableInput as exc:
        raise _hold_unreadable(ctx, target, exc, parents) from None
    provenance = _provenance(
        ctx, target, uri=batch.uri, data=batch.data, fmt=batch.format, parents=parents
    )
    return _accept_or_hold(ctx, target, batch, provenance)


def release(ctx: IngestContext, target: SourceContract, entry_id: str) -> IngestOutcome:
    """Re-validate a held entry against ``target``'s contract and accept it if it passes."""
    entry = quarantine_mod.get_entry(ctx.store, entry_id)
    if entry.status != "held":
        raise StateError(
            f"quarantine entry {entry.id} is {entry.status}, not held",
            id=entry.id,
            status=entry.status,
        )
    data = ctx.artifacts.get_bytes(entry.blob)
    fmt = "arrow" if entry.input_format in ("table", "dataframe") else entry.input_format
    try:
        batch = read_bytes(
            data, format=fmt, uri=entry.input_uri, column_types=_column_types(target.contract)
        )
    except UnreadableInput as exc:
        quarantine_mod.update_report(
            ctx.store, entry.id, quarantine_mod.read_report(exc), target.version
        )
        raise BatchRejected(target.name, entry.id, [exc.message]) from None
    provenance = {
        **entry.provenance,
        "released_from": entry.id,
        "released_at": clock.now().isoformat(),
        "released_by": ctx.who,
        "contract": {"version": target.version, "hash": target.contract.hash},
    }
    outcome = _accept_or_hold(ctx, target, batch, provenance, entry=entry)
    quarantine_mod.mark_released(
        ctx.store, entry.id, dataset_version=outcome.version.id, who=ctx.who
    )
    return outcome
