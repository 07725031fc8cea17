"""Progressive rollouts as durable state machines in the metadata store.

A rollout moves a challenger version of a model from nothing to champion, judged on
live traffic at every step::

    r = start_rollout(store, "fraud", 4, RolloutPolicy(shadow="30m"), who="ci")
    advance(store, r.id, log)        # call it often: at least once per interval
    ...                              # shadow -> 10 % -> 50 % -> 100 % -> promoted
    rollback(store, "fraud", who="oncall", reason="conversion dropped")   # instant

**States.** ``shadow`` (the challenger scores a copy of every request), ``canary`` (it
answers ``weight`` percent of the routing keys at the current step), ``paused`` (it
keeps the traffic it had; nothing is measured until :func:`resume_rollout`), then one
of ``promoted``, ``rolled_back`` and ``aborted``. The rollout row holds the *desired*
deployment; :func:`advance` first makes the deployment match it
(:mod:`driftloop.serving.deployments`, compare-and-set on its revision, recorded as
``rollout:<id>``), then measures what is due, then acts.

**Measurements.** Every ``interval`` after the step began, each metric of the policy
is measured over the window since the previous measurement
(:mod:`driftloop.rollout.analysis`; a window is taken ``delay`` after it ended, and
cut at the end of the step so that a step ends on a measurement). A call that comes
late measures every window it missed, in order. All metrics measured at once share a
measurement number; the measurements and the decision they lead to are written in one
transaction that compare-and-sets the rollout's revision, *before* the deployment is
changed — so a measurement is recorded once, whatever crashes, and every action can
be traced to the measurements that caused it.

**Decisions**, after each measurement, per metric over the whole rollout:

- more failed measurements than the metric's ``failure_limit`` -> **rolled back**: the
  challenger's canary (weight 0) or shadow is removed (:func:`deployments.abort`),
  the champion is still the previous one, the ``challenger`` alias is removed if it
  pointed at the version (the alias history keeps the reason), and the rollout keeps
  the evidence (:func:`~driftloop.rollout.records.rejected_versions`). With the
  default limit 0 this happens at the first failed measurement: within one interval
  of the failure, when :func:`advance` is called at least once per interval;
- else more inconclusive ones than its ``inconclusive_limit`` -> **paused**, with the
  reason; :func:`resume_rollout` restarts the current step with new counts (as Argo
  starts a new AnalysisRun), :func:`abort_rollout` or :func:`rollback` end it;
- else, when the step's duration has passed (and for the shadow phase, at least
  ``shadow_requests`` shadowed requests), the next step starts at the time of that
  call; after the last step the challenger is **promoted** (:func:`deployments.promote`
  moves the ``champion`` alias in the same transaction that clears the canary).

**Rollback window.** For ``rollback_window`` after promotion the previous champion is
*staged* (:func:`deployments.stage`): every server keeps it loaded and warm, so
:func:`rollback` — a blue-green :func:`deployments.switch` back — is instant. (Without
it servers keep a retired version loaded for ``RETIRED_KEEP_S``, 5 minutes.) When the
window closes, :func:`advance` un-stages it and the rollout is *settled*.

**Safety.** Each step is idempotent: :func:`advance` called twice, concurrently, or
again after a crash at any point, gives the same state, with no measurement recorded
twice and no second promotion. A change of the deployment made by someone else while a
rollout runs (a manual abort, another canary, the champion moved) pauses it, naming
the change; a manual promotion of the challenger ends it as promoted.

**Differences from Argo Rollouts' AnalysisTemplate.**

- The rules are Argo's: a measurement is failed when its failure condition holds
  (even if the success condition also holds), successful when only the success
  condition holds, inconclusive when both conditions are given and neither holds;
  with only a success condition missing it is a failure, with only a failure condition
  missing it is a success. The metric fails when ``failed > failureLimit`` and is
  inconclusive when ``inconclusive > inconclusiveLimit``, counting every measurement of
  the run (not consecutive ones); a failure rolls back, an inconclusive run pauses.
- There is one background analysis per rollout, spanning shadow and canary steps;
  measurements run for the steps' durations: there is no ``count``, no
  ``initialDelay`` (``delay`` only waits for records to land), no ``dryRun``.
- A metric declared without conditions takes its kind's defaults (Argo: always
  successful). Conditions are ``"<op> number"`` or ``"<op> champion * f + c"``, the
  champion's figure in the same window, instead of an expression over a query result.
- Too little data is *inconclusive* (fewer than ``min_rows`` rows, ``min_labelled``
  labels, no champion traffic to compare with); Argo has no such notion and counts a
  query error against ``consecutiveErrorLimit``. Here a failure to read the log is
  raised by :func:`advance` and nothing is recorded: the next call retries (there is no
  ``Error`` status and no ``consecutiveErrorLimit``).
- Limits may be given once for the policy and overridden per metric (Argo: per metric).
- Durations (steps, pause) count from when the change was applied by a call of
  :func:`advance`, so a late controller lengthens a step rather than skipping it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, StateError
from driftloop.registry import models as registry
from driftloop.registry.tables import model_aliases
from driftloop.rollout import records
from driftloop.rollout.analysis import Analysed, Measurement, RolloutLog, Subject, measure
from driftloop.rollout.policy import RolloutPolicy
from driftloop.rollout.records import (
    Rollout,
    RolloutDetail,
    active_rollout,
    get_rollout,
    list_rollouts,
    pending_rollouts,
    rejected_versions,
)
from driftloop.rollout.sync import RUNNING, Event, close_window, load, promotion, sync, transition
from driftloop.rollout.tables import ACTIVE_STATES, rollouts
from driftloop.serving import deployments as deploy
from driftloop.serving.deployments import CHAMPION, Deployment
from driftloop.serving.tables import deployments as deployments_table

__all__ = [
    "RollbackResult",
    "Rollout",
    "RolloutDetail",
    "RolloutStatus",
    "abort_rollout",
    "active_rollout",
    "advance",
    "advance_rollouts",
    "get_rollout",
    "list_rollouts",
    "pending_rollouts",
    "rejected_versions",
    "resume_rollout",
    "rollback",
    "start_rollout",
]

MAX_WINDOWS = 10_000
"""At most this many windows are measured by one call of :func:`advance`."""


@dataclass(frozen=True)
class RolloutStatus:
    """What one call of :func:`advance` did, and where the rollout stands."""

    rollout: Rollout
    measurements: list[Measurement] = field(default_factory=list)
    """The measurements recorded by this call."""
    actions: list[str] = field(default_factory=list)
    """What this call did, in words."""
    next_at: datetime | None = None
    """When :func:`advance` has something to do next (None: nothing until a resume)."""

    @property
    def done(self) -> bool:
        """Finished and settled: :func:`advance` has nothing left to do."""
        return not self.rollout.active and self.rollout.settled

    def to_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout.to_dict(),
            "measurements": [m.to_dict() for m in self.measurements],
            "actions": list(self.actions),
            "next_at": None if self.next_at is None else self.next_at.isoformat(),
            "done": self.done,
        }


@dataclass(frozen=True)
class RollbackResult:
    """What :func:`rollback` did."""

    model: str
    from_version: int | None
    """The champion before."""
    to_version: int | None
    """The champion after."""
    moved: bool
    preloaded: bool
    """The version returned to was staged (kept loaded): no server had to load it."""
    aborted: int | None
    """The active rollout that was rolled back, if there was one."""
    rolled_back: list[int]
    """Every rollout marked rolled back (the active one, or the promotion undone)."""
    deployment: Deployment

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "moved": self.moved,
            "preloaded": self.preloaded,
            "aborted": self.aborted,
            "rolled_back": list(self.rolled_back),
            "deployment": self.deployment.to_dict(),
        }


# --- small helpers ----------------------------------------------------------------------


def _at(now: datetime | None) -> datetime:
    return clock.now() if now is None else clock.ensure_utc(now, what="now")


def _check_id(rollout_id: Any) -> int:
    if isinstance(rollout_id, bool) or not isinstance(rollout_id, int) or rollout_id < 1:
        raise InputError(f"rollout id {rollout_id!r} must be a number (1, 2, ...)", field="id")
    return rollout_id


# --- starting ---------------------------------------------------------------------------


def start_rollout(
    store: MetadataStore,
    model: str,
    version: int,
    policy: RolloutPolicy | None = None,
    *,
    who: str,
    reason: str = "",
    run_id: str | None = None,
    now: datetime | None = None,
) -> Rollout:
    """Start rolling ``version`` of ``model`` out by ``policy`` (default:
    :class:`RolloutPolicy()`), against the current champion, and apply its first phase
    (shadow, or the first canary step) to the deployment.

    Idempotent: with the ``run_id`` of a rollout already started (by a pipeline run
    that crashed and resumed) or while the same version is being rolled out, that
    rollout is returned. A model has one active rollout at a time (StateError names
    it); the model needs a champion other than ``version``. The rollback window of an
    earlier promotion closes.
    """
    policy = RolloutPolicy() if policy is None else policy
    if not isinstance(policy, RolloutPolicy):
        raise InputError(f"policy must be a RolloutPolicy, not {type(policy).__name__}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"version {version!r} must be a version number", field="version")
    at = _at(now)
    for earlier in pending_rollouts(store):
        if earlier.model == model and earlier.state == "promoted":
            close_window(store, earlier, deploy.get_deployment(store, model), at, [], early=True)
    with store.transaction() as conn:
        registry.require_model(conn, model, lock=True)
        found = _existing(conn, model, version, run_id)
        if found is None:
            rollout_id = _insert(
                conn,
                model=model,
                version=version,
                policy=policy,
                at=at,
                who=who,
                reason=reason,
                run_id=run_id,
            )
    if found is not None:
        return sync(store, found, at, []) if found.active else found
    r = load(store, rollout_id)
    return sync(store, r, at, [])


def _existing(conn: sa.Connection, model: str, version: int, run_id: str | None) -> Rollout | None:
    if run_id is not None:
        row = conn.execute(
            sa.select(rollouts)
            .where(rollouts.c.model == model, rollouts.c.run_id == run_id)
            .order_by(rollouts.c.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            found = records.from_row(row)
            if found.version != version:
                raise StateError(
                    f"pipeline run {run_id} already rolled out version {found.version} of "
                    f"model {model!r} (rollout {found.id}), not version {version}",
                    model=model,
                    rollout=found.id,
                )
            return found
    row = conn.execute(
        sa.select(rollouts).where(rollouts.c.model == model, rollouts.c.state.in_(ACTIVE_STATES))
    ).first()
    if row is None:
        return None
    active = records.from_row(row)
    if active.version == version and run_id in (None, active.run_id):
        return active
    raise StateError(
        f"model {model!r} has an active rollout ({active.id}, version {active.version}, "
        f"{active.state}); let it finish, abort it or roll it back first",
        model=model,
        rollout=active.id,
    )


def _insert(
    conn: sa.Connection,
    *,
    model: str,
    version: int,
    policy: RolloutPolicy,
    at: datetime,
    who: str,
    reason: str,
    run_id: str | None,
) -> int:
    deploy.require_version(conn, model, version)
    champion = conn.execute(
        sa.select(model_aliases.c.version).where(
            model_aliases.c.model == model, model_aliases.c.alias == CHAMPION
        )
    ).scalar_one_or_none()
    if champion is None:
        raise StateError(
            f"model {model!r} has no champion for version {version} to be compared with; "
            f"set one first (driftloop models alias {model} champion REF)",
            model=model,
        )
    if champion == version:
        raise StateError(
            f"version {version} of model {model!r} is the champion already", model=model
        )
    revision = conn.execute(
        sa.select(deployments_table.c.revision).where(deployments_table.c.model == model)
    ).scalar_one_or_none()
    phase = "shadow" if policy.has_shadow else "canary"
    rollout_id: int = conn.execute(
        rollouts.insert()
        .values(
            model=model,
            version=version,
            previous=champion,
            policy=policy.to_dict(),
            state=phase,
            phase=phase,
            step=None if phase == "shadow" else 0,
            step_started_at=at,
            measured_until=at,
            shadow_requests=0,
            measurements=0,
            counts=records.zero_counts(policy),
            failures=0,
            inconclusives=0,
            revision=0,
            deployment_revision=revision or 0,
            run_id=run_id,
            created_at=at,
            created_by=who,
            start_reason=reason,
            updated_at=at,
            reason="",
        )
        .returning(rollouts.c.id)
    ).scalar_one()
    steps = ", ".join(f"{s.weight:g}%" for s in policy.canary_steps)
    shadow = "shadow, then " if phase == "shadow" else ""
    records.add_event(
        conn,
        rollout_id,
        at,
        "started",
        f"version {version} against champion v{champion}: {shadow}canary {steps}"
        + (f" ({reason})" if reason else ""),
        who=who,
        detail={"policy": policy.to_dict(), "run_id": run_id},
    )
    return rollout_id


# --- advancing --------------------------------------------------------------------------


def _next_end(r: Rollout) -> datetime:
    """The end of the next window to measure: an interval on, cut at the step's end."""
    start = r.measured_until
    end = start + r.policy.interval_length
    phase_end = r.phase_end
    if phase_end is not None and start < phase_end:
        end = min(end, phase_end)
    return end


def _next_at(r: Rollout) -> datetime | None:
    if r.state in RUNNING:
        return _next_end(r) + r.policy.delay_length
    if r.state == "promoted" and not r.settled:
        return r.rollback_until
    return None


def _analyse(
    store: MetadataStore, r: Rollout, log: RolloutLog, end: datetime, at: datetime
) -> Analysed:
    outputs: dict[int, Mapping[str, Any] | None] = {}
    if any(m.kind == "metric_delta" for m in r.policy.analysis):
        for version in (r.version, r.previous):
            if version is not None:
                found = registry.get_version(store, r.model, version)
                outputs[version] = found.signature.get("output")
    subject = Subject(
        model=r.model,
        version=r.version,
        champion=r.previous if r.previous is not None else 0,
        role="shadow" if r.phase == "shadow" else "canary",
        outputs=outputs,
    )
    return measure(
        r.policy.analysis,
        log,
        subject,
        start=r.measured_until,
        end=end,
        since=r.created_at,
        now=at,
        phase=r.phase,
        step=r.step,
        champion_values=records.champion_values(store, r.id),
    )


def _tally(r: Rollout, found: list[Measurement]) -> dict[str, dict[str, int]]:
    counts = records.zero_counts(r.policy)
    for name, known in r.counts.items():
        counts.setdefault(name, {}).update(known)
    for m in found:
        counts[m.metric][m.status] = counts[m.metric].get(m.status, 0) + 1
    return counts


def _decide(
    r: Rollout, found: Analysed, end: datetime, at: datetime
) -> tuple[dict[str, Any], list[Event], bool]:
    """The rollout's new values after one measurement, the events, and whether the
    deployment must change."""
    counts = _tally(r, found.measurements)
    seq = r.measurements + 1
    shadowed = r.shadow_requests + (found.requests if r.phase == "shadow" else 0)
    values: dict[str, Any] = {
        "measured_until": end,
        "measurements": seq,
        "counts": counts,
        "failures": sum(c.get("failed", 0) for c in counts.values()),
        "inconclusives": sum(c.get("inconclusive", 0) for c in counts.values()),
        "shadow_requests": shadowed,
    }
    policy = r.policy
    evidence = {
        "seq": seq,
        "window": [r.measured_until.isoformat(), end.isoformat()],
        "counts": counts,
        "measurements": [m.to_dict() for m in found.measurements],
    }
    for metric in policy.analysis:
        failed, limit = counts[metric.name]["failed"], policy.failure_limit_of(metric)
        if failed > limit:
            last = next(
                (m for m in found.measurements if m.metric == metric.name and m.status == "failed"),
                None,
            )
            reason = (
                f"{metric.name} failed {failed} measurement(s), more than its failure limit "
                f"{limit}" + (f": {last.reason}" if last is not None else "")
            )
            values.update(
                state="rolled_back",
                finished_at=at,
                reason=reason,
                evidence={**evidence, "metric": metric.name, "limit": limit},
            )
            return values, [("rolled_back", f"rolled back: {reason}", evidence)], True
    for metric in policy.analysis:
        unsure = counts[metric.name]["inconclusive"]
        limit = policy.inconclusive_limit_of(metric)
        if unsure > limit:
            last = next(
                (
                    m
                    for m in found.measurements
                    if m.metric == metric.name and m.status == "inconclusive"
                ),
                None,
            )
            reason = (
                f"{metric.name} was inconclusive {unsure} times, more than its inconclusive "
                f"limit {limit}"
                + (f" (last: {last.reason})" if last is not None else "")
                + "; resume to go on, or abort or roll back"
            )
            values.update(
                state="paused",
                reason=reason,
                evidence={**evidence, "metric": metric.name, "limit": limit},
            )
            return values, [("paused", f"paused: {reason}", evidence)], False
    phase_end = r.phase_end
    timed = phase_end is None or end >= phase_end
    enough = r.phase != "shadow" or shadowed >= (policy.shadow_requests or 0)
    if not (timed and enough):
        return values, [], False
    steps = policy.canary_steps
    if r.phase == "shadow":
        values.update(state="canary", phase="canary", step=0, step_started_at=at)
        message = (
            f"shadow phase passed ({shadowed} requests shadowed): canary step 1/{len(steps)} "
            f"at {steps[0].weight:g}%"
        )
        return values, [("step", message, {"step": 0, "weight": steps[0].weight})], True
    step = (r.step or 0) + 1
    if step < len(steps):
        values.update(step=step, step_started_at=at)
        message = (
            f"step {step}/{len(steps)} passed: canary step {step + 1} at {steps[step].weight:g}%"
        )
        return values, [("step", message, {"step": step, "weight": steps[step].weight})], True
    total = {s: sum(c.get(s, 0) for c in counts.values()) for s in records.STATUSES}
    reason = (
        f"all {len(steps)} canary steps passed: {seq} measurements, {total['successful']} "
        f"successful, {total['inconclusive']} inconclusive, {total['failed']} failed"
    )
    more, events = promotion(r, at, reason)
    values.update(more)
    return values, events, True


def advance(
    store: MetadataStore, rollout_id: int, log: RolloutLog, *, now: datetime | None = None
) -> RolloutStatus:
    """Bring rollout ``rollout_id`` up to ``now`` (default: the clock's time).

    The deployment is made to match the rollout's state; every window due is measured
    and recorded with the decision it leads to (roll back, pause, next step, promote);
    a finished rollout's end is applied to the deployment and, after a promotion, its
    rollback window is kept and then closed. Safe to call at any time, repeatedly,
    concurrently, and after a crash at any point (see the module docstring).
    """
    at = _at(now)
    actions: list[str] = []
    taken: list[Measurement] = []
    r = sync(store, load(store, _check_id(rollout_id)), at, actions)
    for _ in range(MAX_WINDOWS):
        if r.state not in RUNNING:
            break
        end = _next_end(r)
        if end + r.policy.delay_length > at:
            break
        found = _analyse(store, r, log, end, at)
        values, events, act = _decide(r, found, end, at)
        seq = r.measurements + 1
        with store.transaction() as conn:
            written = records.update(conn, r, at, **values)
            if written:
                records.add_measurements(conn, r.id, seq, at, found.measurements)
                for kind, message, detail in events:
                    records.add_event(conn, r.id, at, kind, message, who=r.actor, detail=detail)
        r = load(store, r.id)
        if written:
            taken += [replace(m, seq=seq, at=at) for m in found.measurements]
            actions += [message for _, message, _ in events]
        if act or not written:
            r = sync(store, r, at, actions)
    return RolloutStatus(r, taken, actions, _next_at(r))


def advance_rollouts(
    store: MetadataStore, log: RolloutLog, *, now: datetime | None = None
) -> list[RolloutStatus]:
    """:func:`advance` every rollout not yet done (active, or finished but not settled)."""
    at = _at(now)
    return [advance(store, r.id, log, now=at) for r in pending_rollouts(store)]


# --- people's actions ----------------------------------------------------------------


def resume_rollout(
    store: MetadataStore,
    rollout_id: int,
    *,
    who: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """Resume a paused rollout: its current step starts again with new measurement
    counts, compared with the champion serving now; the deployment as it is becomes
    the rollout's own (StateError unless paused)."""
    at = _at(now)
    rollout_id = _check_id(rollout_id)

    def plan(r: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
        if r.state != "paused":
            raise StateError(
                f"rollout {r.id} is {r.state}, not paused; only a paused rollout resumes",
                rollout=r.id,
            )
        d = deploy.get_deployment(store, r.model)
        previous = r.previous
        if d.champion is not None and d.champion != r.version:
            previous = d.champion
        values = {
            "state": r.phase,
            "reason": "",
            "evidence": None,
            "previous": previous,
            "counts": records.zero_counts(r.policy),
            "failures": 0,
            "inconclusives": 0,
            "step_started_at": at,
            "measured_until": at,
            "deployment_revision": d.revision,
        }
        message = f"resumed at {r.where()} by {who}" + (f": {reason}" if reason else "")
        if previous != r.previous:
            message += f"; compared with the champion v{previous} from now on"
        return values, [("resumed", message, {"was": r.reason})]

    r = transition(store, rollout_id, at, plan, who=who)
    return sync(store, r, at, [])


def abort_rollout(
    store: MetadataStore,
    rollout_id: int,
    *,
    who: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """Stop an active rollout: the challenger stops receiving traffic, the champion
    stays (StateError when it is already finished). The version is not marked rejected
    (:func:`rollback` does that)."""
    at = _at(now)
    rollout_id = _check_id(rollout_id)
    text = f"aborted by {who}" + (f": {reason}" if reason else "")

    def plan(r: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
        if not r.active:
            raise StateError(f"rollout {r.id} is {r.state} already", rollout=r.id)
        return {"state": "aborted", "finished_at": at, "reason": text}, [("aborted", text, {})]

    r = transition(store, rollout_id, at, plan, who=who)
    return sync(store, r, at, [])


def _reject(store: MetadataStore, r: Rollout, at: datetime, text: str, who: str) -> Rollout:
    def plan(current: Rollout) -> tuple[dict[str, Any], list[Event]] | None:
        if current.state in ("rolled_back", "aborted"):
            return None
        values: dict[str, Any] = {
            "state": "rolled_back",
            "reason": text,
            "evidence": {"by": who, "manual": True, "was": current.state},
        }
        if current.finished_at is None:
            values["finished_at"] = at
        if current.state == "promoted":
            values["settled_at"] = None
        return values, [("rolled_back", f"rolled back: {text}", {})]

    return transition(store, r.id, at, plan, who=who)


def _target(
    store: MetadataStore, model: str, d: Deployment, to_version: int | None, aborted: bool
) -> int | None:
    """The version :func:`rollback` returns to (None: the champion stays)."""
    if to_version is not None:
        return registry.get_version(store, model, to_version).version
    if aborted:
        return None  # the active rollout never became champion: the champion is the way back
    promoted = [r for r in list_rollouts(store, model, state="promoted") if r.version == d.champion]
    if promoted and promoted[0].previous is not None:
        return promoted[0].previous
    moves = registry.alias_history(store, model, CHAMPION)
    if moves and moves[-1].to_version == d.champion and moves[-1].from_version is not None:
        return moves[-1].from_version
    raise StateError(
        f"model {model!r} has no earlier champion to roll back to (the champion "
        f"{'is unset' if d.champion is None else f'v{d.champion} was never moved'}); give "
        "the version to return to",
        model=model,
    )


def rollback(
    store: MetadataStore,
    model: str,
    *,
    to_version: int | None = None,
    who: str,
    reason: str = "",
    now: datetime | None = None,
) -> RollbackResult:
    """The way back, at once.

    An active rollout of ``model`` is rolled back (its challenger off the traffic,
    marked rejected). Then the champion returns to ``to_version``, or — without one and
    with no active rollout — to the champion before the current one (the previous
    champion of the rollout that promoted it, else the alias history's). Within a
    rollback window that version is staged, loaded by every server, and the switch
    needs no load (``preloaded``); otherwise it is staged and switched at once.
    A promotion undone marks its rollout rolled back.
    """
    at = _at(now)
    registry.get_model(store, model)
    text = f"rolled back by {who}" + (f": {reason}" if reason else "")
    marked: list[int] = []
    active = active_rollout(store, model)
    if active is not None:
        active = _reject(store, active, at, text, who)
        active = sync(store, active, at, [])
        marked.append(active.id)
    d = deploy.get_deployment(store, model)
    before = d.champion
    target = _target(store, model, d, to_version, active is not None)
    if target is None or target == d.champion:
        if active is None:
            raise StateError(
                f"version {target} of model {model!r} is the champion already; nothing to "
                "roll back",
                model=model,
            )
        return RollbackResult(model, before, d.champion, False, False, active.id, marked, d)
    preloaded = d.staged == target
    why = f"rollback to v{target}" + (f": {reason}" if reason else "")
    if not preloaded:
        d = deploy.stage(store, model, target, who=who, reason=why, expected_revision=d.revision)
    d = deploy.switch(store, model, who=who, reason=why, expected_revision=d.revision)
    for promoted in list_rollouts(store, model, state="promoted"):
        if promoted.version == before:
            undone = _reject(store, promoted, at, text, who)
            sync(store, undone, at, [])
            marked.append(undone.id)
    return RollbackResult(
        model,
        before,
        d.champion,
        True,
        preloaded,
        None if active is None else active.id,
        marked,
        d,
    )
