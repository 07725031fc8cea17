"""Retraining triggers: when the evidence says a model should be trained again.

A :class:`RetrainPolicy` lives in the project's definitions module next to the model's
spec and says when to retrain it, and what limits the cost::

    RetrainPolicy(
        "fraud",
        when=AnyOf(
            Schedule("0 3 * * 1"),          # every Monday at 03:00 UTC
            NewData(rows=50_000),           # 50,000 rows ingested since the last training
            Drift(share=0.3, windows=2),    # 30% of the features drifted, two windows running
            Decay("roc_auc", drop=0.05),    # 0.05 below the champion's offline roc_auc
            Age("30d"),                     # the champion was trained 30 days ago
        ),
        cooldown="6h",                      # no new run within 6 h of the last one's start
        max_runs_per_day=4,                 # at most 4 runs started in any 24 h
        max_training_time="1h",             # the controller stops a run after that
    )

The controller calls :func:`evaluate` with what it knows of its runs
(:class:`RunHistory`): each trigger reads the metadata store *as of* ``now`` (nothing
after it, so a backtest in simulated time sees what the loop would have seen) and
returns a :class:`Check` — fired or not, with the figures it looked at. The outcome is
a :class:`Firing`: ``quiet`` (nothing fired), ``fired``, or ``suppressed`` (something
fired, but a run is in progress, the cooldown has not passed, or the day's budget is
spent — the reason says which). :func:`record` keeps fired and suppressed firings in
``trigger_firings``; :func:`attach_run` names the pipeline run a firing started.

A trigger is a small callable in the shape of the monitoring checks: its parameters in
the constructor, validated there (a :class:`~driftloop.errors.DefinitionError` names
the trigger and the field), its work in ``__call__(ctx) -> Check``. Any object with
``__call__`` and ``to_dict`` is a :class:`Trigger`::

    >>> Drift(share=0.3).to_dict()
    {'trigger': 'drift', 'share': 0.3, 'column': None, 'statistic_above': None, 'windows': 1}
    >>> Drift(share=1.5)
    Traceback (most recent call last):
    ...
    driftloop.errors.DefinitionError: drift trigger: share must be in (0, 1], got 1.5
    >>> RetrainPolicy("fraud", when=Age("30d"), cooldown="soon")
    Traceback (most recent call last):
    ...
    driftloop.errors.DefinitionError: retrain policy of 'fraud': cooldown 'soon' is not a \
duration (e.g. '6h', '30d'): expected a duration like '15m' or '7d', got 'soon'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from driftloop.core import clock
from driftloop.core.config import parse_duration
from driftloop.core.metadata import MetadataStore
from driftloop.data.contract import format_duration
from driftloop.errors import DefinitionError
from driftloop.loop.conditions import (
    Age,
    AllOf,
    AnyOf,
    Decay,
    Drift,
    NewData,
    Quality,
    Schedule,
)
from driftloop.loop.context import (
    _NAME,
    Check,
    Trigger,
    TriggerContext,
    _count,
    _duration,
    _iso,
)
from driftloop.loop.firings import (
    FIRED,
    QUIET,
    SUPPRESSED,
    Firing,
    attach_run,
    get_firing,
    list_firings,
    record,
)
from driftloop.rollout.policy import RolloutPolicy
from driftloop.training.spec import ModelSpec

__all__ = [
    "Age",
    "AllOf",
    "AnyOf",
    "Check",
    "Decay",
    "Drift",
    "Firing",
    "NewData",
    "Quality",
    "RetrainPolicy",
    "RunHistory",
    "Schedule",
    "Trigger",
    "TriggerContext",
    "attach_run",
    "evaluate",
    "get_firing",
    "list_firings",
    "record",
]


# --- the policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainPolicy:
    """When to retrain ``model`` (its name or its :class:`ModelSpec`), and the limits:
    no run starts within ``cooldown`` of the last run's start, nor when
    ``max_runs_per_day`` runs started in the last 24 hours; the controller stops a run
    that trains longer than ``max_training_time``. A version that passes its gates is
    rolled out by ``rollout`` (a :class:`~driftloop.rollout.policy.RolloutPolicy`:
    shadow, canary steps judged on live traffic) or, when None, made champion at once."""

    model: str | ModelSpec
    when: Trigger
    cooldown: str | timedelta = "6h"
    max_runs_per_day: int | None = None
    max_training_time: str | timedelta | None = None
    rollout: RolloutPolicy | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise DefinitionError(
                f"retrain policy: model must be a model's name or ModelSpec, got {self.model!r}"
            )
        where = f"retrain policy of {name!r}"
        if isinstance(self.when, type) or not isinstance(self.when, Trigger):
            raise DefinitionError(
                f"{where}: when must be a trigger (e.g. Drift(share=0.3)) or AnyOf/AllOf of "
                f"triggers, got {self.when!r}"
            )
        _duration(self.cooldown, where, "cooldown", zero=True)
        if self.max_runs_per_day is not None:
            _count(self.max_runs_per_day, where, "max_runs_per_day")
        if self.max_training_time is not None:
            _duration(self.max_training_time, where, "max_training_time")
        if self.rollout is not None and not isinstance(self.rollout, RolloutPolicy):
            raise DefinitionError(
                f"{where}: rollout must be a RolloutPolicy or None, got {self.rollout!r}"
            )

    @property
    def name(self) -> str:
        """The model's name (a definitions module holds one policy per model)."""
        return self.model.name if isinstance(self.model, ModelSpec) else self.model

    @property
    def spec(self) -> ModelSpec | None:
        return self.model if isinstance(self.model, ModelSpec) else None

    @property
    def cooldown_length(self) -> timedelta:
        return parse_duration(self.cooldown)

    @property
    def max_training_seconds(self) -> float | None:
        """``max_training_time`` in seconds (None: no limit), for the controller."""
        if self.max_training_time is None:
            return None
        return parse_duration(self.max_training_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "when": self.when.to_dict(),
            "cooldown": format_duration(self.cooldown_length) if self.cooldown_length else "0s",
            "max_runs_per_day": self.max_runs_per_day,
            "max_training_time": None
            if self.max_training_time is None
            else format_duration(parse_duration(self.max_training_time)),
            "rollout": None if self.rollout is None else self.rollout.to_dict(),
        }


@dataclass(frozen=True)
class RunHistory:
    """What the controller knows of the model's pipeline runs at the evaluation."""

    last_start: datetime | None = None
    """When the latest run started (None: never)."""
    started_last_24h: int = 0
    """How many runs started in the 24 hours before now."""
    running: str | None = None
    """The id of a run in progress, if any."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_start": _iso(self.last_start),
            "started_last_24h": self.started_last_24h,
            "running": self.running,
        }


def _suppressions(
    policy: RetrainPolicy, history: RunHistory, now: datetime
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if history.running is not None:
        found.append(
            {
                "by": "running",
                "run": history.running,
                "reason": f"a run is already in progress ({history.running})",
            }
        )
    if history.last_start is not None:
        until = clock.ensure_utc(history.last_start, what="last_start") + policy.cooldown_length
        if now < until:
            found.append(
                {
                    "by": "cooldown",
                    "until": until.isoformat(),
                    "reason": f"cooldown until {until.isoformat()} (the last run started at "
                    f"{history.last_start.isoformat()})",
                }
            )
    limit = policy.max_runs_per_day
    if limit is not None and history.started_last_24h >= limit:
        found.append(
            {
                "by": "budget",
                "limit": limit,
                "started": history.started_last_24h,
                "reason": f"budget of {limit} runs per day reached "
                f"({history.started_last_24h} started in the last 24 h)",
            }
        )
    return found


def evaluate(
    store: MetadataStore,
    policy: RetrainPolicy,
    *,
    now: datetime,
    history: RunHistory,
    spec: ModelSpec | None = None,
) -> Firing:
    """Evaluate ``policy`` as of ``now``: every trigger, then what suppresses a firing (a
    run in progress, the cooldown, the daily budget). Nothing is written; ``spec`` (or
    the policy's own) tells :class:`NewData` the model's sources."""
    now = clock.ensure_utc(now, what="now")
    ctx = TriggerContext(store, policy.name, now, spec=spec or policy.spec)
    check = policy.when(ctx)
    evidence: dict[str, Any] = {
        "when": check.to_dict(),
        "history": history.to_dict(),
        "policy": {k: v for k, v in policy.to_dict().items() if k != "when"},
    }
    if not check.fired:
        return Firing(policy.name, now, QUIET, "no trigger fired", evidence)
    suppressed = _suppressions(policy, history, now)
    if suppressed:
        evidence["suppressed_by"] = suppressed
        return Firing(policy.name, now, SUPPRESSED, suppressed[0]["reason"], evidence)
    reason = "; ".join(f"{c.trigger}: {c.summary}" for c in check.fired_leaves())
    return Firing(policy.name, now, FIRED, reason, evidence)


# --- the record -----------------------------------------------------------------------
