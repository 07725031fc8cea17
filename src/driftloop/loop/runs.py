"""Pipeline runs: one durable state machine per retraining, in the metadata store.

A run moves through these states, each change one compare-and-set transaction with an
event on its timeline::

    pending -> training -> rollout -> promoted
                  |           |-----> rolled_back
                  |           `-----> paused   (inconclusive analysis: a person decides)
                  |-> rejected      (the gates failed: the version is kept as evidence)
                  |-> failed        (a step failed more times than allowed)
                  `-> stopped       (over its training-time budget, or stopped by hand)

``outputs`` accumulates what each step produced (the training run, the version, the
verdict, the rollout), so a step that is started again after a crash finds what it had
already done.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError
from driftloop.loop.tables import pipeline_events, pipeline_runs

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "PipelineRun",
    "add_event",
    "create_run",
    "events",
    "get_run",
    "list_runs",
    "transition",
]

PENDING, TRAINING, ROLLOUT, PAUSED = "pending", "training", "rollout", "paused"
PROMOTED, REJECTED, ROLLED_BACK, FAILED, STOPPED = (
    "promoted",
    "rejected",
    "rolled_back",
    "failed",
    "stopped",
)
ACTIVE = (PENDING, TRAINING, ROLLOUT)
"""States the controller advances."""
TERMINAL = (PROMOTED, REJECTED, ROLLED_BACK, FAILED, STOPPED)


@dataclass(frozen=True)
class PipelineRun:
    id: str
    model: str
    state: str
    step: str | None
    attempts: int
    firing_id: int | None
    outputs: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    training_seconds: float

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "state": self.state,
            "step": self.step,
            "attempts": self.attempts,
            "firing_id": self.firing_id,
            "outputs": self.outputs,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "training_seconds": self.training_seconds,
        }


def _run(row: Any) -> PipelineRun:
    return PipelineRun(
        id=row.id,
        model=row.model,
        state=row.state,
        step=row.step,
        attempts=row.attempts,
        firing_id=row.firing_id,
        outputs=dict(row.outputs or {}),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        training_seconds=row.training_seconds,
    )


def _event(conn: sa.Connection, run_id: str, kind: str, step: str | None, detail: Any) -> None:
    conn.execute(
        sa.insert(pipeline_events).values(
            run_id=run_id, at=clock.now(), kind=kind, step=step, detail=detail
        )
    )


def create_run(
    store: MetadataStore,
    model: str,
    *,
    firing_id: int | None = None,
    reason: str = "",
    who: str = "controller",
) -> PipelineRun:
    """A new pending run of ``model`` (started by a trigger firing, or by hand)."""
    now = clock.now()
    run_id = f"pr-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    with store.transaction() as conn:
        conn.execute(
            sa.insert(pipeline_runs).values(
                id=run_id,
                model=model,
                state=PENDING,
                step=None,
                attempts=0,
                firing_id=firing_id,
                outputs={},
                error=None,
                created_at=now,
                updated_at=now,
                finished_at=None,
                training_seconds=0.0,
            )
        )
        _event(conn, run_id, "created", None, {"reason": reason, "who": who, "firing": firing_id})
    return get_run(store, run_id)


def get_run(store: MetadataStore, run_id: str) -> PipelineRun:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(pipeline_runs).where(pipeline_runs.c.id == run_id)
        ).one_or_none()
    if row is None:
        raise NotFoundError("pipeline run", run_id)
    return _run(row)


def list_runs(
    store: MetadataStore,
    model: str | None = None,
    *,
    states: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[PipelineRun]:
    """Runs, newest first."""
    t = pipeline_runs
    query = sa.select(t)
    if model is not None:
        query = query.where(t.c.model == model)
    if states is not None:
        query = query.where(t.c.state.in_(list(states)))
    query = query.order_by(t.c.created_at.desc(), t.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        return [_run(r) for r in conn.execute(query)]


def transition(
    store: MetadataStore,
    run_id: str,
    expected: str,
    state: str,
    *,
    step: str | None = None,
    outputs: Mapping[str, Any] | None = None,
    error: str | None = None,
    attempts: int | None = None,
    training_seconds: float | None = None,
    detail: Any = None,
) -> bool:
    """Move a run from ``expected`` to ``state`` (compare-and-set), merging ``outputs``
    into its outputs and adding an event; False when the run was not in ``expected``
    (another controller, or a step already recorded)."""
    t = pipeline_runs
    now = clock.now()
    with store.transaction() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == run_id)).one_or_none()
        if row is None:
            raise NotFoundError("pipeline run", run_id)
        if row.state != expected:
            return False
        values: dict[str, Any] = {
            "state": state,
            "step": step,
            "updated_at": now,
            "outputs": {**(row.outputs or {}), **(outputs or {})},
        }
        if error is not None:
            values["error"] = error
        if attempts is not None:
            values["attempts"] = attempts
        if training_seconds is not None:
            values["training_seconds"] = training_seconds
        if state in TERMINAL:
            values["finished_at"] = now
        done = conn.execute(
            sa.update(t).where(t.c.id == run_id, t.c.state == expected).values(**values)
        )
        if done.rowcount != 1:
            return False
        kind = state if state != expected else "updated"
        _event(conn, run_id, kind, step, detail)
    return True


def add_event(
    store: MetadataStore, run_id: str, kind: str, step: str | None = None, detail: Any = None
) -> None:
    """One more entry on a run's timeline."""
    with store.transaction() as conn:
        _event(conn, run_id, kind, step, detail)


def events(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """A run's timeline, oldest first."""
    e = pipeline_events
    with store.connect() as conn:
        rows = conn.execute(sa.select(e).where(e.c.run_id == run_id).order_by(e.c.id)).all()
    return [
        {"at": r.at.isoformat(), "kind": r.kind, "step": r.step, "detail": r.detail} for r in rows
    ]
