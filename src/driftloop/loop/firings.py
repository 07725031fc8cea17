"""Trigger firings: what each evaluation of a retraining policy decided, recorded.

A :class:`Firing` is ``fired``, ``suppressed`` (its ``reason`` says why: a run in
progress, the cooldown, the daily budget) or ``quiet``, with its evidence.
:func:`record` writes fired and suppressed firings to ``trigger_firings`` (quiet ones
are not kept); :func:`attach_run` names the pipeline run a fired one started;
:func:`list_firings` and :func:`get_firing` read them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.loop.tables import trigger_firings

__all__ = [
    "FIRED",
    "QUIET",
    "SUPPRESSED",
    "Firing",
    "Outcome",
    "attach_run",
    "get_firing",
    "list_firings",
    "record",
]

Outcome = Literal["fired", "suppressed", "quiet"]
FIRED: Outcome = "fired"
SUPPRESSED: Outcome = "suppressed"
QUIET: Outcome = "quiet"


@dataclass(frozen=True)
class Firing:
    """One evaluation of a model's policy: ``fired``, ``suppressed`` (``reason`` says
    why) or ``quiet``, with the evidence: ``when`` (each trigger's verdict and figures),
    ``history`` (the runs as the controller saw them), ``policy`` and, when suppressed,
    ``suppressed_by``."""

    model: str
    at: datetime
    outcome: Outcome
    reason: str
    evidence: dict[str, Any]
    id: int | None = None
    run_id: str | None = None

    @property
    def fired(self) -> bool:
        return self.outcome == FIRED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "reason": self.reason,
            "evidence": self.evidence,
            "run_id": self.run_id,
        }


def _firing(row: Any) -> Firing:
    return Firing(
        model=row.model,
        at=row.at,
        outcome=row.outcome,
        reason=row.reason,
        evidence=dict(row.evidence),
        id=row.id,
        run_id=row.run_id,
    )


def record(store: MetadataStore, firing: Firing) -> int:
    """Write a fired or suppressed firing to ``trigger_firings`` and return its id.

    A quiet evaluation is not recorded (:class:`StateError`). A suppression repeated
    with the same reason as the model's latest row (the same cooldown, budget or run in
    progress, polled again) is not written twice: that row's id is returned.
    """
    if firing.outcome not in (FIRED, SUPPRESSED):
        raise StateError(
            f"only fired and suppressed firings are recorded, not {firing.outcome!r} ones",
            model=firing.model,
        )
    t = trigger_firings
    with store.transaction() as conn:
        if firing.outcome == SUPPRESSED:
            last = conn.execute(
                sa.select(t.c.id, t.c.outcome, t.c.reason)
                .where(t.c.model == firing.model)
                .order_by(t.c.at.desc(), t.c.id.desc())
                .limit(1)
            ).first()
            if last is not None and last.outcome == SUPPRESSED and last.reason == firing.reason:
                return int(last.id)
        new_id: int = conn.execute(
            sa.insert(t)
            .values(
                model=firing.model,
                at=firing.at,
                outcome=firing.outcome,
                reason=firing.reason,
                evidence=firing.evidence,
                run_id=firing.run_id,
            )
            .returning(t.c.id)
        ).scalar_one()
    return new_id


def attach_run(store: MetadataStore, firing_id: int, run_id: str) -> None:
    """Name the pipeline run a fired firing started (once; the same run again is a no-op)."""
    t = trigger_firings
    with store.transaction() as conn:
        row = conn.execute(sa.select(t.c.outcome, t.c.run_id).where(t.c.id == firing_id)).first()
        if row is None:
            raise NotFoundError("trigger firing", str(firing_id))
        if row.outcome != FIRED:
            raise StateError(
                f"trigger firing {firing_id} was {row.outcome}; only a fired one starts a run",
                firing=firing_id,
            )
        if row.run_id == run_id:
            return
        if row.run_id is not None:
            raise StateError(
                f"trigger firing {firing_id} already started run {row.run_id}",
                firing=firing_id,
                run=row.run_id,
            )
        conn.execute(sa.update(t).where(t.c.id == firing_id).values(run_id=run_id))


def get_firing(store: MetadataStore, firing_id: int) -> Firing:
    with store.connect() as conn:
        row = conn.execute(
            sa.select(trigger_firings).where(trigger_firings.c.id == firing_id)
        ).first()
    if row is None:
        raise NotFoundError("trigger firing", str(firing_id))
    return _firing(row)


def list_firings(
    store: MetadataStore,
    model: str | None = None,
    *,
    limit: int | None = 100,
    outcome: Outcome | None = None,
) -> list[Firing]:
    """Recorded firings (of ``model``; with ``outcome``), newest first."""
    t = trigger_firings
    query = sa.select(t).order_by(t.c.at.desc(), t.c.id.desc())
    if model is not None:
        query = query.where(t.c.model == model)
    if outcome is not None:
        query = query.where(t.c.outcome == outcome)
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        return [_firing(r) for r in conn.execute(query).all()]
