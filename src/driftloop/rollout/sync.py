"""Making the deployment what a rollout's state wants, and the compare-and-set writes
of a rollout row (see :mod:`driftloop.rollout.engine` for the state machine).

:func:`sync` is called by every step of the engine: for a running rollout it applies
the current phase to the deployment (the shadow, or the canary at the step's weight),
pausing the rollout when someone else changed the deployment meanwhile; for a promoted
one it makes the promotion and keeps the previous champion staged for the rollback
window, then unstages it; for a rolled back or aborted one it takes the challenger off
the traffic. Each of these is idempotent, so it can run again after a crash at any point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.registry import models as registry
from driftloop.rollout import records
from driftloop.rollout.records import Rollout
from driftloop.serving import deployments as deploy
from driftloop.serving.deployments import Deployment

__all__ = [
    "ATTEMPTS",
    "CHALLENGER",
    "RUNNING",
    "Event",
    "Plan",
    "close_window",
    "commit",
    "load",
    "pause",
    "promotion",
    "settle",
    "sync",
    "transition",
]

ATTEMPTS = 5
"""Compare-and-set attempts before giving up on a rollout that keeps changing."""
CHALLENGER = "challenger"
RUNNING = ("shadow", "canary")


def load(store: MetadataStore, rollout_id: int) -> Rollout:
    with store.connect() as conn:
        return records.read(conn, rollout_id)


Event = tuple[str, str, dict[str, Any]]
"""(kind, message, detail) of a timeline entry."""


def commit(
    store: MetadataStore,
    r: Rollout,
    at: datetime,
    values: Mapping[str, Any],
    events: list[Event],
    *,
    who: str | None = None,
) -> Rollout | None:
    """Write ``values`` and ``events`` if ``r`` is still current; the new rollout, or
    None when another writer changed it first (nothing written)."""
    with store.transaction() as conn:
        if not records.update(conn, r, at, **values):
            return None
        for kind, message, detail in events:
            records.add_event(conn, r.id, at, kind, message, who=who or r.actor, detail=detail)
        return records.read(conn, r.id)


Plan = Callable[[Rollout], tuple[dict[str, Any], list[Event]] | None]


def transition(
    store: MetadataStore, rollout_id: int, at: datetime, plan: Plan, *, who: str | None = None
) -> Rollout:
    """Apply ``plan`` (the values and events for the rollout as read, or None for
    nothing) by compare-and-set, reading again when another writer came first."""
    for _ in range(ATTEMPTS):
        r = load(store, rollout_id)
        planned = plan(r)
        if planned is None:
            return r
        done = commit(store, r, at, planned[0], planned[1], who=who)
        if done is not None:
            return done
    raise StateError(
        f"rollout {rollout_id} kept changing under this change; try again", rollout=rollout_id
    )


def settle(store: MetadataStore, r: Rollout, at: datetime, message: str) -> Rollout:
    def plan(current: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
        if current.settled or current.active:
            return None
        return {"settled_at": at}, [("settled", message, {})]

    return transition(store, r.id, at, plan)


def pause(store: MetadataStore, r: Rollout, at: datetime, reason: str, kind: str) -> Rollout:
    def plan(current: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
        if current.state not in RUNNING:
            return None
        return {"state": "paused", "reason": reason}, [(kind, f"paused: {reason}", {})]

    return transition(store, r.id, at, plan)


def promotion(r: Rollout, at: datetime, reason: str) -> tuple[dict[str, Any], list[Event]]:
    window = r.policy.rollback_length
    until = at + window if window and r.previous is not None else None
    values = {
        "state": "promoted",
        "finished_at": at,
        "reason": reason,
        "rollback_until": until,
    }
    kept = f"; v{r.previous} stays loaded until {until.isoformat()}" if until else ""
    return values, [("promoted", f"promoted: {reason}{kept}", {})]


# --- making the deployment match the rollout --------------------------------------------


def sync(store: MetadataStore, r: Rollout, at: datetime, actions: list[str]) -> Rollout:
    """Make the deployment what the rollout's state wants (see the module docstring)."""
    if r.state == "paused" or r.settled:
        return r
    d = deploy.get_deployment(store, r.model)
    if r.state in RUNNING:
        return _sync_running(store, r, d, at, actions)
    if r.state == "promoted":
        return _sync_promoted(store, r, d, at, actions)
    return _sync_ended(store, r, d, at, actions)


def _changed_by(d: Deployment) -> str:
    return f"deployment revision {d.revision} by {d.updated_by or 'nobody'}"


def _sync_running(
    store: MetadataStore, r: Rollout, d: Deployment, at: datetime, actions: list[str]
) -> Rollout:
    if d.champion == r.version:
        reason = f"promoted outside the rollout ({_changed_by(d)})"

        def promoted(current: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
            if current.state not in RUNNING:
                return None
            return promotion(current, at, reason)

        actions.append(reason)
        r = transition(store, r.id, at, promoted)
        return sync(store, r, at, actions)
    if d.champion != r.previous:
        reason = (
            f"the champion moved from v{r.previous} to "
            f"{'nothing' if d.champion is None else f'v{d.champion}'} outside the rollout "
            f"({_changed_by(d)}); resume to compare with the new champion, or abort"
        )
        actions.append(f"paused: {reason}")
        return pause(store, r, at, reason, "interference")
    shadow = r.phase == "shadow"
    if (shadow and d.shadow == r.version) or (
        not shadow
        and d.canary == r.version
        and d.canary_weight == r.weight
        and d.shadow != r.version
    ):
        if d.revision == r.deployment_revision:
            return r
        return commit(store, r, at, {"deployment_revision": d.revision}, []) or load(store, r.id)
    if d.revision != r.deployment_revision and d.updated_by != r.actor:
        reason = (
            f"the deployment was changed outside the rollout ({_changed_by(d)}); resume to "
            f"apply {r.where()} again, or abort"
        )
        actions.append(f"paused: {reason}")
        return pause(store, r, at, reason, "interference")
    try:
        if shadow:
            d = deploy.set_shadow(
                store,
                r.model,
                r.version,
                who=r.actor,
                reason=f"rollout {r.id}: shadow phase",
                expected_revision=d.revision,
            )
            actions.append(f"shadow v{r.version} (deployment revision {d.revision})")
        else:
            if d.shadow == r.version:
                d = deploy.set_shadow(
                    store,
                    r.model,
                    None,
                    who=r.actor,
                    reason=f"rollout {r.id}: shadow phase over",
                    expected_revision=d.revision,
                )
            d = deploy.set_canary(
                store,
                r.model,
                r.version,
                r.weight,
                who=r.actor,
                reason=f"rollout {r.id}: {r.where()}",
                expected_revision=d.revision,
            )
            actions.append(
                f"canary v{r.version} at {r.weight:g}% (deployment revision {d.revision})"
            )
    except StateError as exc:
        reason = f"the deployment could not be changed: {exc.message}"
        actions.append(f"paused: {reason}")
        return pause(store, r, at, reason, "interference")
    return commit(store, r, at, {"deployment_revision": d.revision}, []) or load(store, r.id)


def _sync_promoted(
    store: MetadataStore, r: Rollout, d: Deployment, at: datetime, actions: list[str]
) -> Rollout:
    if d.champion != r.version:
        if d.canary != r.version:
            reason = (
                f"the promotion could not be made: the canary was removed outside the "
                f"rollout ({_changed_by(d)})"
            )

            def aborted(current: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
                if current.state != "promoted" or current.settled:
                    return None
                values = {"state": "aborted", "reason": reason, "settled_at": at}
                return values, [("aborted", f"aborted: {reason}", {})]

            actions.append(f"aborted: {reason}")
            return transition(store, r.id, at, aborted)
        try:
            d = deploy.promote(
                store,
                r.model,
                who=r.actor,
                reason=f"rollout {r.id}: {r.reason}",
                expected_revision=d.revision,
            )
        except StateError:
            return r  # changed meanwhile: the next call looks again
        actions.append(f"promoted: v{r.version} is champion (deployment revision {d.revision})")
    if records.window_left(r, at) is not None and r.previous is not None:
        if d.staged is None and d.champion != r.previous:
            try:
                d = deploy.stage(
                    store,
                    r.model,
                    r.previous,
                    who=r.actor,
                    reason=f"rollout {r.id}: rollback window, v{r.previous} stays loaded until "
                    f"{r.rollback_until.isoformat() if r.rollback_until else '-'}",
                    expected_revision=d.revision,
                )
                actions.append(f"v{r.previous} staged: kept loaded for a rollback")
            except StateError:
                pass  # changed meanwhile: the next call looks again
        return r
    return close_window(store, r, d, at, actions, early=False)


def close_window(
    store: MetadataStore,
    r: Rollout,
    d: Deployment,
    at: datetime,
    actions: list[str],
    *,
    early: bool,
) -> Rollout:
    """Un-stage the previous champion kept for the rollback window, and settle."""
    if (
        r.previous is not None
        and d.champion == r.version
        and d.staged == r.previous
        and d.canary is None
        and d.shadow is None
        and d.split is None
    ):
        try:
            deploy.abort(
                store,
                r.model,
                who=r.actor,
                reason=f"rollout {r.id}: rollback window closed, v{r.previous} unstaged",
                expected_revision=d.revision,
            )
        except StateError:
            return r  # changed meanwhile: the next call looks again
    message = (
        "rollback window closed early: another rollout of the model started"
        if early
        else "rollback window closed"
    )
    actions.append(message)
    return settle(store, r, at, message)


def _sync_ended(
    store: MetadataStore, r: Rollout, d: Deployment, at: datetime, actions: list[str]
) -> Rollout:
    """Take the challenger off the traffic; a rejected one loses its challenger alias."""
    for _ in range(ATTEMPTS):
        try:
            if d.canary == r.version:
                d = deploy.abort(
                    store,
                    r.model,
                    who=r.actor,
                    reason=f"rollout {r.id} {r.state}: {r.reason}",
                    expected_revision=d.revision,
                )
                actions.append(f"canary v{r.version} removed (deployment revision {d.revision})")
            elif d.shadow == r.version:
                d = deploy.set_shadow(
                    store,
                    r.model,
                    None,
                    who=r.actor,
                    reason=f"rollout {r.id} {r.state}: {r.reason}",
                    expected_revision=d.revision,
                )
                actions.append(f"shadow v{r.version} removed (deployment revision {d.revision})")
            break
        except StateError:  # someone changed the deployment meanwhile: read it again
            d = deploy.get_deployment(store, r.model)
    if r.state == "rolled_back":
        try:
            if registry.aliases(store, r.model).get(CHALLENGER) == r.version:
                registry.delete_alias(
                    store,
                    r.model,
                    CHALLENGER,
                    expected=r.version,
                    who=r.actor,
                    reason=f"rejected in rollout {r.id}: {r.reason}",
                )
                actions.append(f"alias challenger removed from v{r.version}")
        except (StateError, NotFoundError):
            pass  # moved or removed meanwhile: not ours to change any more
    return settle(store, r, at, f"v{r.version} no longer receives traffic")
