"""Training runs: the record of how each model artifact came to be.

A run is written when it starts (status ``running``) and completed once, when it
ends: ``succeeded`` with its metrics, artifact and versions, or ``failed`` with the
error. Nothing about a finished run changes afterwards, except that the model
version it was registered as is filled in once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.hashing import new_id
from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.training.tables import training_runs

__all__ = [
    "TrainingRun",
    "fail_run",
    "finish_run",
    "get_run",
    "list_runs",
    "set_run_version",
    "start_run",
]

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True)
class TrainingRun:
    """One training run as recorded (see the table in :mod:`driftloop.training.tables`)."""

    id: str
    model: str
    spec_version: str
    spec: dict[str, Any]
    status: str
    trainer: str
    task: str
    params: dict[str, Any]
    seed: int
    training_set_id: str | None
    views: list[dict[str, str]]
    dataset_versions: dict[str, list[str]]
    split: dict[str, Any]
    metrics: dict[str, Any]
    code_version: dict[str, Any]
    library_versions: dict[str, str]
    fit_seconds: float | None
    total_seconds: float | None
    peak_memory_mb: float | None
    artifact_digest: str | None
    flavor: str | None
    signature: dict[str, Any]
    evaluation: dict[str, Any]
    model_version: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["started_at"] = self.started_at.isoformat()
        body["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return body


def _from_row(row: Any) -> TrainingRun:
    return TrainingRun(**{f.name: getattr(row, f.name) for f in fields(TrainingRun)})


def start_run(
    store: MetadataStore,
    *,
    model: str,
    spec: Mapping[str, Any],
    spec_version: str,
    code_version: Mapping[str, Any],
    who: str,
) -> str:
    """Record a run that starts now and return its id."""
    run_id = new_id("run")
    with store.transaction() as conn:
        conn.execute(
            training_runs.insert().values(
                id=run_id,
                model=model,
                spec_version=spec_version,
                spec=dict(spec),
                status=RUNNING,
                trainer=str(spec.get("trainer", "")),
                task=str(spec.get("task", "")),
                params=dict(spec.get("params", {})),
                seed=int(spec.get("seed", 0)),
                training_set_id=None,
                views=[],
                dataset_versions={},
                split={},
                metrics={},
                code_version=dict(code_version),
                library_versions={},
                signature={},
                evaluation={},
                started_at=clock.now(),
                created_by=who,
            )
        )
    return run_id


def _complete(store: MetadataStore, run_id: str, values: dict[str, Any]) -> TrainingRun:
    with store.transaction() as conn:
        done = conn.execute(
            training_runs.update()
            .where(training_runs.c.id == run_id, training_runs.c.status == RUNNING)
            .values(finished_at=clock.now(), **values)
        ).rowcount
        row = conn.execute(sa.select(training_runs).where(training_runs.c.id == run_id)).first()
    if row is None:
        raise NotFoundError("training run", run_id)
    if done != 1:
        raise StateError(f"training run {run_id} has already ended ({row.status})", run=run_id)
    return _from_row(row)


def finish_run(
    store: MetadataStore,
    run_id: str,
    *,
    training_set_id: str | None,
    views: list[dict[str, str]],
    dataset_versions: Mapping[str, list[str]],
    split: Mapping[str, Any],
    metrics: Mapping[str, Any],
    library_versions: Mapping[str, str],
    fit_seconds: float,
    total_seconds: float,
    peak_memory_mb: float,
    artifact_digest: str,
    flavor: str,
    signature: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> TrainingRun:
    """Mark the run succeeded with everything it produced."""
    return _complete(
        store,
        run_id,
        {
            "status": SUCCEEDED,
            "training_set_id": training_set_id,
            "views": views,
            "dataset_versions": dict(dataset_versions),
            "split": dict(split),
            "metrics": dict(metrics),
            "library_versions": dict(library_versions),
            "fit_seconds": fit_seconds,
            "total_seconds": total_seconds,
            "peak_memory_mb": peak_memory_mb,
            "artifact_digest": artifact_digest,
            "flavor": flavor,
            "signature": dict(signature),
            "evaluation": dict(evaluation),
        },
    )


def fail_run(store: MetadataStore, run_id: str, error: str, *, total_seconds: float) -> TrainingRun:
    """Mark the run failed with the error that ended it."""
    return _complete(
        store, run_id, {"status": FAILED, "error": error, "total_seconds": total_seconds}
    )


def set_run_version(store: MetadataStore, run_id: str, version: int) -> None:
    """Record the model version a succeeded run was registered as (once)."""
    with store.transaction() as conn:
        conn.execute(
            training_runs.update()
            .where(training_runs.c.id == run_id, training_runs.c.model_version.is_(None))
            .values(model_version=version)
        )


def get_run(store: MetadataStore, run_id: str) -> TrainingRun:
    """A run by id, or by a unique prefix of it."""
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(training_runs)
            .where(training_runs.c.id.startswith(run_id, autoescape=True))
            .limit(2)
        ).all()
    if len(rows) != 1 or not run_id:
        raise NotFoundError("training run", run_id)
    return _from_row(rows[0])


def list_runs(
    store: MetadataStore, model: str | None = None, *, limit: int = 100
) -> list[TrainingRun]:
    """The most recent runs (of ``model``), newest first."""
    query = sa.select(training_runs).order_by(training_runs.c.started_at.desc()).limit(limit)
    if model is not None:
        query = query.where(training_runs.c.model == model)
    with store.connect() as conn:
        return [_from_row(r) for r in conn.execute(query).all()]
