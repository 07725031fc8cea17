"""Rollouts as stored: the :class:`Rollout` row, its measurements and events, and reads.

Writers live in :mod:`driftloop.rollout.engine`; every write of a rollout row is a
compare-and-set on its ``revision`` (:func:`update`), so two controllers advancing the
same rollout never both act on one state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError
from driftloop.registry import models as registry
from driftloop.rollout.analysis import Measurement
from driftloop.rollout.policy import RolloutPolicy, Step
from driftloop.rollout.tables import ACTIVE_STATES, rollout_events, rollout_measurements, rollouts
from driftloop.serving.deployments import DeploymentChange, deployment_history

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "Rollout",
    "RolloutDetail",
    "RolloutEvent",
    "active_rollout",
    "get_rollout",
    "list_rollouts",
    "pending_rollouts",
    "rejected_versions",
]

FINISHED_STATES = ("promoted", "rolled_back", "aborted")
STATUSES = ("successful", "failed", "inconclusive")


@dataclass(frozen=True)
class Rollout:
    """One progressive rollout of ``version`` of ``model``, as read.

    ``state`` is ``shadow``, ``canary`` or ``paused`` while active, then ``promoted``,
    ``rolled_back`` or ``aborted``; ``phase`` and ``step`` tell where it is (or was when
    it paused or ended). ``counts`` holds, per metric, how many of its measurements were
    successful, failed and inconclusive. A finished rollout is ``settled`` once what its
    end implies was done on the deployment (the canary cleared, the promotion made, the
    rollback window closed).
    """

    id: int
    model: str
    version: int
    previous: int | None
    """The champion when the rollout started (what a rollback returns to)."""
    policy: RolloutPolicy
    state: str
    phase: str
    step: int | None
    step_started_at: datetime
    measured_until: datetime
    shadow_requests: int
    measurements: int
    counts: dict[str, dict[str, int]]
    failures: int
    inconclusives: int
    revision: int
    deployment_revision: int
    run_id: str | None
    created_at: datetime
    created_by: str
    start_reason: str
    updated_at: datetime
    finished_at: datetime | None
    reason: str
    """Why it was promoted, rolled back, aborted or paused ("" while running)."""
    evidence: dict[str, Any] | None
    rollback_until: datetime | None
    """After promotion: until when the previous champion stays loaded (staged)."""
    settled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def settled(self) -> bool:
        return self.settled_at is not None

    @property
    def actor(self) -> str:
        """Who the rollout's own changes are recorded as (deployment and alias history)."""
        return f"rollout:{self.id}"

    @property
    def current_step(self) -> Step | None:
        steps = self.policy.canary_steps
        if self.phase != "canary" or self.step is None or not 0 <= self.step < len(steps):
            return None
        return steps[self.step]

    @property
    def weight(self) -> float:
        """The canary weight the rollout is at (0 in the shadow phase)."""
        step = self.current_step
        return 0.0 if step is None else float(step.weight)

    @property
    def phase_end(self) -> datetime | None:
        """When the current step's (or the shadow phase's) duration is over."""
        if self.phase == "shadow":
            length = self.policy.shadow_length
            return None if length is None else self.step_started_at + length
        step = self.current_step
        return None if step is None else self.step_started_at + step.length

    def where(self) -> str:
        """``shadow`` or ``step 2/4 (50%)``."""
        if self.phase == "shadow":
            return "shadow"
        step = self.current_step
        if step is None:
            return self.phase
        return f"step {(self.step or 0) + 1}/{len(self.policy.canary_steps)} ({step.weight:g}%)"

    def to_dict(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return None if at is None else at.isoformat()

        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "previous": self.previous,
            "state": self.state,
            "phase": self.phase,
            "step": self.step,
            "weight": self.weight,
            "where": self.where(),
            "step_started_at": iso(self.step_started_at),
            "measured_until": iso(self.measured_until),
            "shadow_requests": self.shadow_requests,
            "measurements": self.measurements,
            "counts": self.counts,
            "failures": self.failures,
            "inconclusives": self.inconclusives,
            "revision": self.revision,
            "deployment_revision": self.deployment_revision,
            "run_id": self.run_id,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "start_reason": self.start_reason,
            "updated_at": iso(self.updated_at),
            "finished_at": iso(self.finished_at),
            "reason": self.reason,
            "evidence": self.evidence,
            "rollback_until": iso(self.rollback_until),
            "settled_at": iso(self.settled_at),
            "policy": self.policy.to_dict(),
        }


@dataclass(frozen=True)
class RolloutEvent:
    """One entry of a rollout's timeline."""

    id: int
    rollout_id: int
    at: datetime
    kind: str
    """``started``, ``step``, ``paused``, ``resumed``, ``promoted``, ``rolled_back``,
    ``aborted``, ``settled``, ``interference``..."""
    message: str
    who: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "message": self.message,
            "who": self.who,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RolloutDetail:
    """A rollout with its measurements (oldest first), its events and the deployment
    changes it made (from the deployment history)."""

    rollout: Rollout
    measurements: list[Measurement]
    events: list[RolloutEvent]
    deployments: list[DeploymentChange]

    def timeline(self) -> list[dict[str, Any]]:
        """The events and the rollout's deployment changes, in time order."""
        entries: list[dict[str, Any]] = [
            {"at": e.at, "kind": e.kind, "message": e.message, "who": e.who} for e in self.events
        ]
        for change in self.deployments:
            state = change.state
            shown = {
                "canary": f"canary v{state.canary} at {state.canary_weight:g}%",
                "shadow": "shadow " + ("cleared" if state.shadow is None else f"v{state.shadow}"),
                "promote": f"champion v{state.champion}",
                "stage": f"v{state.staged} staged (kept loaded)",
                "switch": f"champion v{state.champion}",
                "abort": "canary, shadow and staged version cleared",
            }.get(change.action, change.action)
            entries.append(
                {
                    "at": change.at,
                    "kind": "deployment",
                    "message": f"deployment revision {change.revision}: {shown}",
                    "who": change.who,
                }
            )
        # at one instant a decision comes before the deployment change it causes, and
        # settling after it
        rank = {"deployment": 1, "settled": 2}
        entries.sort(key=lambda e: (e["at"], rank.get(e["kind"], 0)))
        return entries

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.rollout.to_dict(),
            "measurement_list": [m.to_dict() for m in self.measurements],
            "events": [e.to_dict() for e in self.events],
            "timeline": [{**e, "at": e["at"].isoformat()} for e in self.timeline()],
        }


# --- rows -----------------------------------------------------------------------------


def from_row(row: Any) -> Rollout:
    return Rollout(
        id=row.id,
        model=row.model,
        version=row.version,
        previous=row.previous,
        policy=RolloutPolicy.from_dict(row.policy),
        state=row.state,
        phase=row.phase,
        step=row.step,
        step_started_at=row.step_started_at,
        measured_until=row.measured_until,
        shadow_requests=row.shadow_requests,
        measurements=row.measurements,
        counts={k: dict(v) for k, v in (row.counts or {}).items()},
        failures=row.failures,
        inconclusives=row.inconclusives,
        revision=row.revision,
        deployment_revision=row.deployment_revision,
        run_id=row.run_id,
        created_at=row.created_at,
        created_by=row.created_by,
        start_reason=row.start_reason,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        reason=row.reason,
        evidence=None if row.evidence is None else dict(row.evidence),
        rollback_until=row.rollback_until,
        settled_at=row.settled_at,
    )


def _measurement(row: Any) -> Measurement:
    return Measurement(
        metric=row.metric,
        phase=row.phase,
        value=row.value,
        champion_value=row.champion_value,
        status=row.status,
        reason=row.reason,
        window=(row.window_start, row.window_end),
        rows=row.rows,
        details=dict(row.details or {}),
        step=row.step,
        seq=row.seq,
        at=row.at,
    )


def read(conn: Connection, rollout_id: int) -> Rollout:
    row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
    if row is None:
        recent = conn.execute(
            sa.select(rollouts.c.id).order_by(rollouts.c.id.desc()).limit(10)
        ).scalars()
        raise NotFoundError("rollout", str(rollout_id), known=[str(i) for i in recent])
    return from_row(row)


def update(conn: Connection, current: Rollout, at: datetime, **values: Any) -> bool:
    """Write ``values`` if the rollout is still at ``current.revision``; False if another
    writer changed it first (then nothing is written)."""
    done = conn.execute(
        rollouts.update()
        .where(rollouts.c.id == current.id, rollouts.c.revision == current.revision)
        .values(revision=current.revision + 1, updated_at=at, **values)
    ).rowcount
    return bool(done == 1)


def add_event(
    conn: Connection,
    rollout_id: int,
    at: datetime,
    kind: str,
    message: str,
    *,
    who: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(
        rollout_events.insert().values(
            rollout_id=rollout_id,
            at=at,
            kind=kind,
            message=message,
            who=who,
            detail=dict(detail or {}),
        )
    )


def add_measurements(
    conn: Connection, rollout_id: int, seq: int, at: datetime, found: Sequence[Measurement]
) -> None:
    for m in found:
        conn.execute(
            rollout_measurements.insert().values(
                rollout_id=rollout_id,
                seq=seq,
                metric=m.metric,
                phase=m.phase,
                step=m.step,
                window_start=m.window[0],
                window_end=m.window[1],
                value=m.value,
                champion_value=m.champion_value,
                status=m.status,
                reason=m.reason,
                rows=m.rows,
                details=m.details,
                at=at,
            )
        )


def champion_values(store: MetadataStore, rollout_id: int) -> dict[str, float]:
    """The champion's figure per metric in the latest judged (not inconclusive)
    measurement of the rollout that had one."""
    m = rollout_measurements
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(m.c.metric, m.c.champion_value)
            .where(
                m.c.rollout_id == rollout_id,
                m.c.champion_value.is_not(None),
                m.c.status != "inconclusive",
            )
            .order_by(m.c.seq.desc())
        ).all()
    found: dict[str, float] = {}
    for metric, value in rows:
        found.setdefault(metric, float(value))
    return found


def zero_counts(policy: RolloutPolicy) -> dict[str, dict[str, int]]:
    return {m.name: dict.fromkeys(STATUSES, 0) for m in policy.analysis}


# --- reads ----------------------------------------------------------------------------


def get_rollout(store: MetadataStore, rollout_id: int) -> RolloutDetail:
    """Rollout ``rollout_id`` with its measurements, events and deployment changes."""
    with store.connect() as conn:
        found = read(conn, rollout_id)
        measured = conn.execute(
            sa.select(rollout_measurements)
            .where(rollout_measurements.c.rollout_id == rollout_id)
            .order_by(rollout_measurements.c.seq, rollout_measurements.c.id)
        ).all()
        events = conn.execute(
            sa.select(rollout_events)
            .where(rollout_events.c.rollout_id == rollout_id)
            .order_by(rollout_events.c.id)
        ).all()
    changes = [c for c in deployment_history(store, found.model) if c.who == found.actor]
    return RolloutDetail(
        found,
        [_measurement(r) for r in measured],
        [
            RolloutEvent(e.id, e.rollout_id, e.at, e.kind, e.message, e.who, dict(e.detail or {}))
            for e in events
        ],
        changes,
    )


def list_rollouts(
    store: MetadataStore,
    model: str | None = None,
    *,
    state: str | None = None,
    limit: int | None = None,
) -> list[Rollout]:
    """Rollouts, newest first (of one model, in one state, at most ``limit``)."""
    if state is not None and state not in (*ACTIVE_STATES, *FINISHED_STATES):
        raise InputError(
            f"state {state!r} is not one of {', '.join((*ACTIVE_STATES, *FINISHED_STATES))}",
            field="state",
        )
    query = sa.select(rollouts).order_by(rollouts.c.id.desc())
    with store.connect() as conn:
        if model is not None:
            registry.require_model(conn, model)
            query = query.where(rollouts.c.model == model)
        if state is not None:
            query = query.where(rollouts.c.state == state)
        if limit is not None:
            query = query.limit(limit)
        return [from_row(r) for r in conn.execute(query)]


def active_rollout(store: MetadataStore, model: str) -> Rollout | None:
    """The model's active rollout (shadow, canary or paused), if any."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(rollouts).where(
                rollouts.c.model == model, rollouts.c.state.in_(ACTIVE_STATES)
            )
        ).first()
    return None if row is None else from_row(row)


def pending_rollouts(store: MetadataStore) -> list[Rollout]:
    """Every rollout a controller still has to advance: active, or finished but not
    settled (a promotion's rollback window still open, or its end not yet applied)."""
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(rollouts)
            .where(
                sa.or_(
                    rollouts.c.state.in_(ACTIVE_STATES),
                    rollouts.c.settled_at.is_(None),
                )
            )
            .order_by(rollouts.c.id)
        ).all()
    return [from_row(r) for r in rows]


def rejected_versions(store: MetadataStore, model: str) -> dict[int, Rollout]:
    """The versions of ``model`` rolled back by a rollout, each with the (latest) rollout
    that rejected it: its ``reason`` and ``evidence`` say why."""
    found: dict[int, Rollout] = {}
    for r in reversed(list_rollouts(store, model, state="rolled_back")):
        found[r.version] = r
    return found


def window_left(r: Rollout, now: datetime) -> timedelta | None:
    """How long the rollback window of a promoted rollout is still open (None: closed)."""
    if r.rollback_until is None or now >= r.rollback_until:
        return None
    return r.rollback_until - now
