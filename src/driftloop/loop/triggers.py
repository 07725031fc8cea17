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

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from cronsim import CronSim, CronSimError

from driftloop.core import clock
from driftloop.core.config import parse_duration
from driftloop.core.metadata import MetadataStore
from driftloop.data.contract import format_duration
from driftloop.data.datasets import list_versions
from driftloop.errors import DefinitionError, NotFoundError
from driftloop.evaluation.metrics import METRICS
from driftloop.features.registry import list_views, parse_refs
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
from driftloop.loop.tables import trigger_firings
from driftloop.monitoring.tables import monitoring_metrics, monitoring_windows
from driftloop.registry import models as registry
from driftloop.rollout.policy import RolloutPolicy
from driftloop.training import runs
from driftloop.training.spec import ModelSpec
from driftloop.training.tables import training_runs

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

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_FEATURE = "feature."
_NOT_FEATURES = ("prediction", "label")


# --- validation helpers ---------------------------------------------------------------


def _duration(value: Any, where: str, name: str, *, zero: bool = False) -> timedelta:
    try:
        out = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise DefinitionError(
            f"{where}: {name} {value!r} is not a duration (e.g. '6h', '30d'): {exc}"
        ) from None
    if out < timedelta(0) or (out == timedelta(0) and not zero):
        least = "must not be negative" if zero else "must be positive"
        raise DefinitionError(f"{where}: {name} {least}, got {value!r}")
    return out


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DefinitionError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _count(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DefinitionError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def _column(name: str) -> str:
    """A column as monitoring names it: ``amount`` is the input ``feature.amount``."""
    if not name or "." in name or name in _NOT_FEATURES:
        return name
    return f"{_FEATURE}{name}"


def _show_age(age: timedelta) -> str:
    """``"10d 1h"``: the two largest whole units of a duration."""
    seconds = int(age.total_seconds())
    units = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m")]
    first = next((i for i, (n, _) in enumerate(units) if n), None)
    if first is None:
        return f"{seconds}s"
    shown = [units[first], *[u for u in units[first + 1 : first + 2] if u[0]]]
    return " ".join(f"{n}{u}" for n, u in shown)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- what a trigger says ----------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One trigger's verdict: fired or not, a one-line summary and the figures it read."""

    trigger: str
    fired: bool
    summary: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    """The verdicts of a combinator's triggers."""

    def fired_leaves(self) -> list[Check]:
        """The triggers that made this one fire (itself, for a trigger that is no combinator)."""
        if not self.checks:
            return [self] if self.fired else []
        return [leaf for c in self.checks if c.fired for leaf in c.fired_leaves()]

    def to_dict(self) -> dict[str, Any]:
        body = {"trigger": self.trigger, "fired": self.fired, "summary": self.summary}
        body.update(self.figures)
        if self.checks:
            body["checks"] = [c.to_dict() for c in self.checks]
        return body


class TriggerContext:
    """What triggers read: one model's state in the metadata store as of ``now``.

    Each read is made once per evaluation, when a trigger first asks for it.
    """

    def __init__(
        self,
        store: MetadataStore,
        model: str,
        now: datetime,
        *,
        spec: ModelSpec | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.now = clock.ensure_utc(now, what="now")
        self.spec = spec

    @cached_property
    def champion(self) -> registry.ModelVersion | None:
        """The version the ``champion`` alias pointed at at ``now``."""
        try:
            number = registry.version_at(self.store, self.model, "champion", self.now)
        except NotFoundError:  # the model is not registered yet
            return None
        return None if number is None else registry.get_version(self.store, self.model, number)

    @cached_property
    def last_training(self) -> runs.TrainingRun | None:
        """The model's latest succeeded training run started at or before ``now``."""
        t = training_runs
        with self.store.connect() as conn:
            run_id = conn.execute(
                sa.select(t.c.id)
                .where(
                    t.c.model == self.model, t.c.status == "succeeded", t.c.started_at <= self.now
                )
                .order_by(t.c.started_at.desc(), t.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        return None if run_id is None else runs.get_run(self.store, run_id)

    @cached_property
    def last_fired(self) -> datetime | None:
        """When the model's latest ``fired`` firing was recorded (at or before ``now``)."""
        t = trigger_firings
        with self.store.connect() as conn:
            at: datetime | None = conn.execute(
                sa.select(sa.func.max(t.c.at)).where(
                    t.c.model == self.model, t.c.outcome == FIRED, t.c.at <= self.now
                )
            ).scalar_one_or_none()
        return at

    @cached_property
    def baseline(self) -> dict[str, Any] | None:
        """What the model was last trained on: the latest succeeded training run, or the
        champion's lineage when it is newer (a version registered by hand); None when
        the model was never trained."""
        run, champion = self.last_training, self.champion
        by_hand = champion is not None and (
            run is None or (champion.created_at > run.started_at and champion.run_id != run.id)
        )
        if champion is not None and by_hand:
            return {
                "at": champion.created_at,
                "what": f"champion {champion.ref}",
                "versions": dict(champion.lineage.get("dataset_versions") or {}),
            }
        if run is None:
            return None
        return {
            "at": run.started_at,
            "what": f"training run {run.id}",
            "versions": run.dataset_versions,
        }

    @cached_property
    def sources(self) -> list[str]:
        """The model's sources: its label source and its feature views' sources, from the
        declared spec or the latest run's, and those its last training read."""
        body = self.spec.to_dict() if self.spec is not None else None
        if body is None and self.last_training is not None:
            body = self.last_training.spec
        found: set[str] = set()
        if body:
            label = body.get("label") or {}
            if label.get("source"):
                found.add(str(label["source"]))
            features = list(body.get("features") or [])
            for ref in parse_refs(features) if features else []:
                for view in list_views(self.store, ref.view):
                    if view.version.startswith(ref.version) if ref.version else view.current:
                        found.add(str(view.body["source"]))
        if self.baseline is not None:
            found.update(self.baseline["versions"])
        return sorted(found)

    def latest(
        self,
        metric: str,
        *,
        column: str = "",
        version: int | None = None,
        windows: int = 1,
        min_labelled: int | None = None,
        served: bool = True,
    ) -> list[dict[str, Any]]:
        """The figure ``metric`` of the latest ``windows`` monitoring windows that ended by
        ``now`` and have it, newest first; with a champion and ``served``, only windows it
        served. ``min_labelled`` skips windows with fewer labelled rows behind the figure."""
        w, m = monitoring_windows, monitoring_metrics
        query = (
            sa.select(w, m.c.value, m.c.details)
            .join(m, m.c.window_id == w.c.id)
            .where(
                w.c.model == self.model,
                w.c.end <= self.now,
                m.c.metric == metric,
                m.c.column == column,
                m.c.version.is_(None) if version is None else m.c.version == version,
            )
            .order_by(w.c.end.desc(), w.c.id.desc())
        )
        if served and self.champion is not None:
            query = query.where(w.c.version == self.champion.version)
        if min_labelled is None:
            query = query.limit(windows)
        out: list[dict[str, Any]] = []
        with self.store.connect() as conn:
            result = conn.execution_options(yield_per=64).execute(query)
            for row in result:
                labelled = (row.details or {}).get("labelled")
                if min_labelled is not None and (labelled is None or labelled < min_labelled):
                    continue
                out.append(
                    {
                        "window": {
                            "id": row.id,
                            "start": row.start.isoformat(),
                            "end": row.end.isoformat(),
                            "against": row.against,
                            "version": row.version,
                            "rows": row.rows,
                        },
                        "value": row.value,
                        "details": row.details or {},
                    }
                )
                if len(out) == windows:
                    break
            result.close()
        return out


@runtime_checkable
class Trigger(Protocol):
    """A retraining condition: parameters in the constructor, the check in ``__call__``."""

    def __call__(self, ctx: TriggerContext) -> Check: ...

    def to_dict(self) -> dict[str, Any]: ...


def _over_windows(
    kind: str,
    found: list[dict[str, Any]],
    windows: int,
    holds: Callable[[float], bool],
    *,
    condition: str,
    figures: dict[str, Any],
) -> Check:
    """A check that fires when ``holds`` in each of the latest ``windows`` windows."""
    values = [f["value"] for f in found]
    fired = len(found) == windows and all(v is not None and holds(v) for v in values)
    body = dict(figures)
    body.update(
        value=values[0] if values else None,
        window=found[0]["window"] if found else None,
        windows=windows,
    )
    if windows > 1:
        body["series"] = [{"window": f["window"], "value": f["value"]} for f in reversed(found)]
    if not found:
        summary = f"no monitoring window with {figures['metric']} yet"
    elif len(found) < windows:
        summary = f"{len(found)} of the {windows} windows needed for {condition}"
    else:
        shown = ", ".join("none" if v is None else f"{v:.4g}" for v in reversed(values))
        span = "the latest window" if windows == 1 else f"each of the latest {windows} windows"
        summary = f"{condition} {'in' if fired else 'not in'} {span} ({shown})"
    return Check(kind, fired, summary, body)


# --- triggers -------------------------------------------------------------------------


class _Declared:
    """``to_dict`` of a trigger: its kind and its declared fields."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        fields = {
            k: format_duration(v) if isinstance(v, timedelta) else v for k, v in vars(self).items()
        }
        return {"trigger": self.kind, **fields}


@dataclass(frozen=True)
class Schedule(_Declared):
    """Fire once per tick of a cron expression (minute hour day month weekday, in
    ``timezone``): the latest tick at or before now fires unless a fired firing or a
    training run of the model started at or after it. A tick missed while the controller
    was down fires once; several missed ticks fire once together."""

    cron: str = "0 3 * * *"
    timezone: str = "UTC"
    kind: ClassVar[str] = "schedule"

    def __post_init__(self) -> None:
        where = "schedule trigger"
        if not isinstance(self.timezone, str):
            raise DefinitionError(f"{where}: timezone must be a name, got {self.timezone!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DefinitionError(
                f"{where}: timezone {self.timezone!r} is unknown ({exc})"
            ) from None
        if not isinstance(self.cron, str) or not self.cron.strip():
            raise DefinitionError(f"{where}: cron must be an expression like '0 3 * * *'")
        try:
            next(CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC)))
        except (CronSimError, ValueError) as exc:
            raise DefinitionError(
                f"{where}: cron {self.cron!r} is not a cron expression: {exc}"
            ) from None

    def _zone(self) -> Any:
        return UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)

    def tick(self, now: datetime) -> datetime:
        """The latest tick at or before ``now``, in UTC."""
        after = (now.replace(microsecond=0) + timedelta(seconds=1)).astimezone(self._zone())
        return next(CronSim(self.cron, after, reverse=True)).astimezone(UTC)

    def next_tick(self, now: datetime) -> datetime:
        """The first tick after ``now``, in UTC."""
        return next(CronSim(self.cron, now.astimezone(self._zone()))).astimezone(UTC)

    def __call__(self, ctx: TriggerContext) -> Check:
        tick = self.tick(ctx.now)
        run = ctx.last_training
        times = [t for t in (ctx.last_fired, run.started_at if run else None) if t is not None]
        acted = max(times, default=None)
        fired = acted is None or acted < tick
        figures = {
            "cron": self.cron,
            "timezone": self.timezone,
            "tick": tick.isoformat(),
            "last_fired": _iso(ctx.last_fired),
            "last_training": _iso(run.started_at if run else None),
            "next": self.next_tick(ctx.now).isoformat(),
        }
        summary = (
            f"cron tick {tick.isoformat()} not acted on yet"
            if fired
            else f"cron tick {tick.isoformat()} already acted on at {_iso(acted)}"
        )
        return Check(self.kind, fired, summary, figures)


@dataclass(frozen=True)
class NewData(_Declared):
    """Fire when ``rows`` rows or ``versions`` dataset versions (default: one version)
    were ingested into the model's sources since its last training: its latest training
    run, or its champion when that is newer. The sources are ``source``, or the model's
    label source and its feature views' sources. A model never trained counts all."""

    rows: int | None = None
    versions: int | None = None
    source: str | None = None
    kind: ClassVar[str] = "new_data"

    def __post_init__(self) -> None:
        where = "new data trigger"
        if self.rows is not None and self.versions is not None:
            raise DefinitionError(f"{where}: give rows or versions, not both")
        if self.rows is not None:
            _count(self.rows, where, "rows")
        if self.versions is not None:
            _count(self.versions, where, "versions")
        if self.source is not None and (not isinstance(self.source, str) or not self.source):
            raise DefinitionError(f"{where}: source must be a source's name, got {self.source!r}")

    def __call__(self, ctx: TriggerContext) -> Check:
        base = ctx.baseline
        sources = [self.source] if self.source else ctx.sources
        found: dict[str, dict[str, int]] = {}
        for source in sources:
            seen = None if base is None else base["versions"].get(source)
            new = [
                v
                for v in list_versions(ctx.store, source, as_of=ctx.now)
                if (
                    v.id not in seen
                    if seen is not None
                    else base is None or v.created_at > base["at"]
                )
            ]
            found[source] = {"versions": len(new), "rows": sum(v.rows for v in new)}
        unit = "rows" if self.rows is not None else "versions"
        threshold = self.rows if self.rows is not None else (self.versions or 1)
        count = sum(f[unit] for f in found.values())
        fired = count >= threshold
        since = "ever" if base is None else f"{base['what']} ({base['at'].isoformat()})"
        if not sources:
            summary = f"no source known for model {ctx.model!r}: name one with NewData(source=...)"
        else:
            summary = f"{count} new {unit} since {since}, {'>=' if fired else '<'} {threshold}"
        figures = {
            unit: count,
            "threshold": threshold,
            "unit": unit,
            "since": None if base is None else {"what": base["what"], "at": base["at"].isoformat()},
            "sources": found,
        }
        return Check(self.kind, fired, summary, figures)


@dataclass(frozen=True)
class Drift(_Declared):
    """Fire on drift in the monitoring windows the champion served: the ``share`` of
    drifted features at least this, or ``column`` drifted (its test decided), or its
    drift statistic above ``statistic_above`` — in each of the latest ``windows``
    windows. ``column`` is an input (``"amount"`` or ``"feature.amount"``) or
    ``"prediction"``."""

    share: float | None = None
    column: str | None = None
    statistic_above: float | None = None
    windows: int = 1
    kind: ClassVar[str] = "drift"

    def __post_init__(self) -> None:
        where = "drift trigger"
        if (self.share is None) == (self.column is None):
            raise DefinitionError(f"{where}: give share or column (exactly one)")
        if self.share is not None:
            share = _number(self.share, where, "share")
            if not 0.0 < share <= 1.0:
                raise DefinitionError(f"{where}: share must be in (0, 1], got {self.share!r}")
            if self.statistic_above is not None:
                raise DefinitionError(f"{where}: statistic_above needs a column, not a share")
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise DefinitionError(f"{where}: column must be a column's name, got {self.column!r}")
        if self.statistic_above is not None:
            _number(self.statistic_above, where, "statistic_above")
        _count(self.windows, where, "windows")

    def __call__(self, ctx: TriggerContext) -> Check:
        column = "" if self.column is None else _column(self.column)
        holds: Callable[[float], bool]
        keys: tuple[str, ...]
        if self.share is not None:
            metric, bound, keys = "drift.share", self.share, ("drifted",)
            holds, condition = (lambda v: v >= bound), f"drift.share >= {bound:g}"
        elif self.statistic_above is not None:
            metric, bound, keys = "drift.value", self.statistic_above, ("statistic", "p_value")
            holds, condition = (lambda v: v > bound), f"drift.value[{column}] > {bound:g}"
        else:
            metric, bound, keys = "drift.detected", 0.5, ()
            holds, condition = (lambda v: v >= bound), f"{column} drifted"
        found = ctx.latest(metric, column=column, windows=self.windows)
        figures: dict[str, Any] = {"metric": metric, "column": column or None}
        if metric != "drift.detected":
            figures["threshold"] = bound
        details = found[0]["details"] if found else {}
        figures.update({k: details[k] for k in keys if k in details})
        return _over_windows(
            self.kind, found, self.windows, holds, condition=condition, figures=figures
        )


@dataclass(frozen=True)
class Quality(_Declared):
    """Fire when a data quality figure of the monitoring windows the champion served is
    above ``above`` in each of the latest ``windows`` windows: ``metric`` is a
    ``quality.*`` name of :mod:`driftloop.monitoring.series`, ``column`` ``""`` for the
    whole window or an input (``"amount"`` or ``"feature.amount"``)."""

    metric: str = "quality.missing_rate"
    column: str = ""
    above: float | None = None
    windows: int = 1
    kind: ClassVar[str] = "quality"

    def __post_init__(self) -> None:
        where = "quality trigger"
        if not isinstance(self.metric, str) or not self.metric.startswith("quality."):
            raise DefinitionError(
                f"{where}: metric must be a quality.* figure (e.g. 'quality.missing_rate'), "
                f"got {self.metric!r}"
            )
        if not isinstance(self.column, str):
            raise DefinitionError(f"{where}: column must be a name or '', got {self.column!r}")
        if self.above is None:
            raise DefinitionError(f"{where}: above is required (e.g. above=0.1)")
        _number(self.above, where, "above")
        _count(self.windows, where, "windows")

    def __call__(self, ctx: TriggerContext) -> Check:
        bound = float(self.above or 0.0)
        column = _column(self.column)
        found = ctx.latest(self.metric, column=column, windows=self.windows)
        target = f"[{column}]" if column else ""
        return _over_windows(
            self.kind,
            found,
            self.windows,
            lambda v: v > bound,
            condition=f"{self.metric}{target} > {bound:g}",
            figures={"metric": self.metric, "column": column, "threshold": bound},
        )


@dataclass(frozen=True)
class Decay(_Declared):
    """Fire when the champion's live ``metric`` on labelled traffic is worse than a bound
    in each of the latest ``windows`` windows with at least ``min_labelled`` labelled
    predictions: ``below`` (or ``above`` for a metric where lower is better) an absolute
    value, or a ``drop`` from the champion's offline reference (its version's metrics in
    the registry) — in the metric's units, or a fraction of the reference with
    ``relative=True``. Whether higher is better comes from the metric registry
    (:data:`driftloop.evaluation.metrics.METRICS`) unless ``greater_is_better`` says."""

    metric: str = "roc_auc"
    below: float | None = None
    drop: float | None = None
    relative: bool = False
    min_labelled: int = 100
    above: float | None = None
    windows: int = 1
    greater_is_better: bool | None = None
    kind: ClassVar[str] = "decay"

    def __post_init__(self) -> None:
        where = "decay trigger"
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise DefinitionError(f"{where}: metric must be a metric's name, got {self.metric!r}")
        bounds = [n for n in ("below", "above", "drop") if getattr(self, n) is not None]
        if len(bounds) != 1:
            raise DefinitionError(f"{where}: give one of below, above or drop")
        value = _number(getattr(self, bounds[0]), where, bounds[0])
        if self.drop is not None and value <= 0:
            raise DefinitionError(f"{where}: drop must be positive, got {self.drop!r}")
        if self.relative and self.drop is None:
            raise DefinitionError(f"{where}: relative applies to drop only")
        _count(self.min_labelled, where, "min_labelled")
        _count(self.windows, where, "windows")
        if self.greater_is_better is None and self.name not in METRICS:
            raise DefinitionError(
                f"{where}: metric {self.name!r} is not a known metric; say "
                "greater_is_better=True or False"
            )

    @property
    def name(self) -> str:
        return self.metric.removeprefix("performance.")

    @property
    def higher_is_better(self) -> bool:
        if self.greater_is_better is not None:
            return self.greater_is_better
        return METRICS.get(self.name).greater_is_better

    def __call__(self, ctx: TriggerContext) -> Check:
        metric = f"performance.{self.name}"
        champion = ctx.champion
        figures: dict[str, Any] = {"metric": metric, "min_labelled": self.min_labelled}
        if champion is None:
            return Check(self.kind, False, f"model {ctx.model!r} has no champion", figures)
        figures["champion"] = champion.version
        found = ctx.latest(  # the champion's own figure, also in a window a canary served
            metric,
            version=champion.version,
            windows=self.windows,
            min_labelled=self.min_labelled,
            served=False,
        )
        if found:
            figures["labelled"] = found[0]["details"].get("labelled")
        if self.below is not None or self.above is not None:
            low = self.below is not None
            bound = float(self.below if self.below is not None else (self.above or 0.0))
            figures["threshold"] = bound
            return _over_windows(
                self.kind,
                found,
                self.windows,
                (lambda v: v < bound) if low else (lambda v: v > bound),
                condition=f"{metric} {'<' if low else '>'} {bound:g}",
                figures=figures,
            )
        drop = float(self.drop or 0.0)
        reference = champion.metrics.get(self.name)
        if not isinstance(reference, int | float) or not math.isfinite(reference):
            summary = f"champion {champion.ref} has no offline {self.name} to compare with"
            return Check(self.kind, False, summary, figures)
        up = self.higher_is_better
        scale = abs(reference) if self.relative else 1.0

        def worse(value: float) -> float:
            loss = reference - value if up else value - reference
            return loss / scale if scale else math.inf

        figures.update(reference=reference, drop=drop, relative=self.relative)
        if found and found[0]["value"] is not None:
            figures["worse_by"] = worse(found[0]["value"])
        condition = f"{metric} worse than the reference {reference:.4g} by >= " + (
            f"{drop:.0%}" if self.relative else f"{drop:g}"
        )
        return _over_windows(
            self.kind,
            found,
            self.windows,
            lambda v: worse(v) >= drop,
            condition=condition,
            figures=figures,
        )


@dataclass(frozen=True)
class Age(_Declared):
    """Fire when the champion version was registered (trained) ``max_age`` ago or more."""

    max_age: str | timedelta = "30d"
    kind: ClassVar[str] = "age"

    def __post_init__(self) -> None:
        _duration(self.max_age, "age trigger", "max_age")

    def __call__(self, ctx: TriggerContext) -> Check:
        limit = parse_duration(self.max_age)
        figures: dict[str, Any] = {"max_age": format_duration(limit)}
        champion = ctx.champion
        if champion is None:
            return Check(self.kind, False, f"model {ctx.model!r} has no champion", figures)
        age = ctx.now - champion.created_at
        fired = age >= limit
        figures.update(
            champion=champion.version,
            created_at=champion.created_at.isoformat(),
            age=_show_age(age),
            age_seconds=age.total_seconds(),
        )
        summary = (
            f"champion {champion.ref} is {figures['age']} old, "
            f"{'>=' if fired else '<'} {format_duration(limit)}"
        )
        return Check(self.kind, fired, summary, figures)


def _check_triggers(kind: str, triggers: tuple[Any, ...]) -> None:
    if not triggers:
        raise DefinitionError(f"{kind}: give at least one trigger")
    for t in triggers:
        if isinstance(t, type) or not isinstance(t, Trigger):
            shown = f"the class {t.__name__}" if isinstance(t, type) else repr(t)
            raise DefinitionError(
                f"{kind}: {shown} is not a trigger (e.g. Drift(share=0.3), Age('30d'))"
            )


@dataclass(frozen=True, init=False)
class AnyOf:
    """Fire when at least one of ``triggers`` fires (each is evaluated, for the evidence)."""

    triggers: tuple[Trigger, ...]
    kind: ClassVar[str] = "any_of"

    def __init__(self, *triggers: Trigger) -> None:
        _check_triggers(self.kind, triggers)
        object.__setattr__(self, "triggers", tuple(triggers))

    def __call__(self, ctx: TriggerContext) -> Check:
        checks = tuple(t(ctx) for t in self.triggers)
        fired = [c.trigger for c in checks if c.fired]
        summary = f"fired: {', '.join(fired)}" if fired else "none fired"
        return Check(self.kind, bool(fired), summary, {}, checks)

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.kind, "of": [t.to_dict() for t in self.triggers]}


@dataclass(frozen=True, init=False)
class AllOf:
    """Fire when every one of ``triggers`` fires in the same evaluation."""

    triggers: tuple[Trigger, ...]
    kind: ClassVar[str] = "all_of"

    def __init__(self, *triggers: Trigger) -> None:
        _check_triggers(self.kind, triggers)
        object.__setattr__(self, "triggers", tuple(triggers))

    def __call__(self, ctx: TriggerContext) -> Check:
        checks = tuple(t(ctx) for t in self.triggers)
        quiet = [c.trigger for c in checks if not c.fired]
        summary = f"not fired: {', '.join(quiet)}" if quiet else "all fired"
        return Check(self.kind, not quiet, summary, {}, checks)

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.kind, "of": [t.to_dict() for t in self.triggers]}


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
