"""What a retraining trigger reads, and what it answers: :class:`TriggerContext` (the
metadata store as of a time: model versions, training runs, dataset versions,
monitoring windows) and :class:`Check` (fired or not, with the figures it looked at).
The triggers themselves are in :mod:`driftloop.loop.conditions`; the policy that
combines them, in :mod:`driftloop.loop.triggers`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.config import parse_duration
from driftloop.core.metadata import MetadataStore
from driftloop.errors import DefinitionError, NotFoundError
from driftloop.features.registry import list_views, parse_refs
from driftloop.loop.firings import (
    FIRED,
)
from driftloop.loop.tables import trigger_firings
from driftloop.monitoring.tables import monitoring_metrics, monitoring_windows
from driftloop.registry import models as registry
from driftloop.training import runs
from driftloop.training.spec import ModelSpec
from driftloop.training.tables import training_runs

__all__ = ["Check", "Trigger", "TriggerContext"]

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
