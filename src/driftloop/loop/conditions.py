"""The retraining triggers: :class:`Schedule`, :class:`NewData`, :class:`Drift`,
:class:`Quality`, :class:`Decay`, :class:`Age`, and their combinations :class:`AnyOf`
and :class:`AllOf` (see :mod:`driftloop.loop.triggers` for the policy that uses them).

Each is a small callable in the shape of the monitoring checks: its parameters in the
constructor, validated there (a :class:`~driftloop.errors.DefinitionError` names the
trigger and the field), its work in ``__call__(ctx) -> Check`` over a
:class:`~driftloop.loop.context.TriggerContext`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from driftloop.core.config import parse_duration
from driftloop.data.contract import format_duration
from driftloop.data.datasets import list_versions
from driftloop.errors import DefinitionError
from driftloop.evaluation.metrics import METRICS
from driftloop.loop.context import (
    Check,
    Trigger,
    TriggerContext,
    _column,
    _count,
    _duration,
    _iso,
    _number,
    _over_windows,
    _show_age,
)

__all__ = ["Age", "AllOf", "AnyOf", "Decay", "Drift", "NewData", "Quality", "Schedule"]

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
