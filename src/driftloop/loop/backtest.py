"""Backtests: which retraining policy is worth its cost on this data?

:func:`run_backtest` replays a model's history from ``start`` to ``end`` once per
retraining policy, each in its own scratch copy of the project
(:mod:`driftloop.loop.replay`): the same triggers, controller, gates and progressive
rollout as ``driftloop run``, in simulated time, in this process. Each starts from the
same first champion, trained on what was known at ``start``; each day's data is
ingested after the day, labels become known when they would have, and every request of
the model's label source is scored by the serving engine as it would have been served.

The result, per policy: the model's metric over the predictions it served, per period
(a calendar month by default) and overall, and the cost — pipeline runs, training
seconds, promotions, rejections, rollbacks. The comparison answers "retrain on a
schedule, on drift, on decay, or never?" with evidence instead of a guess.

Policies are :class:`~driftloop.loop.triggers.RetrainPolicy` objects, or the name of a
preset (:data:`PRESETS`): ``never``, ``daily``, ``weekly``, ``monthly``, ``drift``,
``decay``, ``hybrid``, or ``declared`` (the model's own policy from the definitions
module). A preset takes the model's declared rollout policy, if any.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core.clock import SimulatedClock, ensure_utc, use_clock
from driftloop.errors import InputError
from driftloop.loop import runs
from driftloop.loop.replay import (
    DayReport,
    EngineScorer,
    HistoryFeed,
    Replay,
    model_requests,
)
from driftloop.loop.triggers import (
    AllOf,
    AnyOf,
    Decay,
    Drift,
    Quality,
    RetrainPolicy,
    Schedule,
)

if TYPE_CHECKING:
    from driftloop.project import Project

__all__ = [
    "PRESETS",
    "Backtest",
    "Period",
    "PolicyResult",
    "resolve_policies",
    "run_backtest",
    "scratch_project",
]

_TS = pa.timestamp("us", tz="UTC")
_SERVED = ("champion", "canary")
_DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def _presets(model: str) -> dict[str, RetrainPolicy | None]:
    monthly = Schedule("0 0 1 * *")
    drift = Drift(share=0.5, windows=2)
    decay = Decay(drop=0.02, windows=2)
    return {
        "never": None,
        "daily": RetrainPolicy(model, when=Schedule("0 0 * * *"), cooldown="1h"),
        "weekly": RetrainPolicy(model, when=Schedule("0 0 * * 1"), cooldown="1h"),
        "monthly": RetrainPolicy(model, when=monthly, cooldown="1h"),
        "drift": RetrainPolicy(model, when=drift, cooldown="7d"),
        "decay": RetrainPolicy(model, when=decay, cooldown="7d"),
        "hybrid": RetrainPolicy(model, when=AnyOf(monthly, drift, decay), cooldown="7d"),
    }


PRESETS = (*tuple(_presets("model")), "declared")
"""The policy names :func:`resolve_policies` knows."""


def resolve_policies(
    project: Project, model: str, names: Iterable[str | RetrainPolicy | None]
) -> dict[str, RetrainPolicy | None]:
    """Policies by name: presets (with the model's declared rollout), ``declared``, or
    policies given as objects (named by their triggers)."""
    declared = project.definitions.policies.get(model)
    rollout = declared.rollout if declared is not None else None
    presets = _presets(model)
    out: dict[str, RetrainPolicy | None] = {}
    for item in names:
        if isinstance(item, RetrainPolicy) or item is None:
            name = "never" if item is None else describe(item)
            out[name] = item
            continue
        if item == "declared":
            if declared is None:
                raise InputError(
                    f"model {model!r} declares no RetrainPolicy in the definitions module; "
                    f"choose a preset: {', '.join(p for p in PRESETS if p != 'declared')}",
                    field="policy",
                )
            out[item] = declared
            continue
        if item not in presets:
            raise InputError(
                f"unknown policy {item!r}; the presets are {', '.join(PRESETS)}", field="policy"
            )
        preset = presets[item]
        out[item] = (
            dataclasses.replace(preset, rollout=rollout)
            if preset is not None and rollout is not None
            else preset
        )
    if not out:
        raise InputError("give at least one policy to compare", field="policy")
    return out


def describe(policy: RetrainPolicy | None) -> str:
    """A short text for a policy: its triggers."""
    if policy is None:
        return "never retrain"
    text = _describe_trigger(policy.when)
    return f"{text} with a rollout" if policy.rollout is not None else text


def _describe_trigger(trigger: Any) -> str:
    if isinstance(trigger, AnyOf | AllOf):
        joiner = " or " if isinstance(trigger, AnyOf) else " and "
        return "(" + joiner.join(_describe_trigger(t) for t in trigger.triggers) + ")"
    fields = {
        k: v
        for k, v in trigger.to_dict().items()
        if v is not None and v != "" and k not in ("trigger", "timezone")
    }
    inner = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{trigger.kind}({inner})"


def _uses_monitoring(trigger: Any) -> bool:
    if isinstance(trigger, AnyOf | AllOf):
        return any(_uses_monitoring(t) for t in trigger.triggers)
    return isinstance(trigger, Drift | Quality | Decay)


@dataclass(frozen=True)
class Period:
    """The metric over one period's served and labelled predictions."""

    start: datetime
    labelled: int
    value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "labelled": self.labelled, "value": self.value}


@dataclass
class PolicyResult:
    """One policy's outcome: the metric over time and the cost."""

    name: str
    description: str
    periods: list[Period] = field(default_factory=list)
    overall: float | None = None
    labelled: int = 0
    predictions: int = 0
    runs: int = 0
    promoted: int = 0
    rejected: int = 0
    rolled_back: int = 0
    other: int = 0
    """Runs failed, stopped, paused or still going at the end."""
    training_seconds: float = 0.0
    seconds: float = 0.0
    """Wall time of this policy's replay."""
    folder: str = ""
    """The scratch project, to inspect with ``driftloop -p FOLDER runs list`` etc."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["periods"] = [p.to_dict() for p in self.periods]
        return out


@dataclass
class Backtest:
    """Every policy's result over the same history."""

    model: str
    metric: str
    greater_is_better: bool
    start: datetime
    end: datetime
    results: list[PolicyResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "results": [r.to_dict() for r in self.results],
        }

    def best(self) -> PolicyResult | None:
        """The policy with the best overall metric."""
        scored = [r for r in self.results if r.overall is not None]
        if not scored:
            return None
        sign = 1.0 if self.greater_is_better else -1.0
        return max(scored, key=lambda r: sign * (r.overall or 0.0))


# -- scratch projects ---------------------------------------------------------------------

_NOT_COPIED = shutil.ignore_patterns(
    ".driftloop", ".git", "__pycache__", "*.parquet", "*.csv", "*.jsonl", "*.ndjson", "build"
)


def scratch_project(project: Project, folder: Path) -> Project:
    """A copy of ``project``'s definitions and contracts in ``folder`` with the embedded
    default settings (SQLite, local files), applied, and no data."""
    from driftloop.cli.init import config_yaml
    from driftloop.project import Project

    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(project.root, folder, ignore=_NOT_COPIED)
    (folder / "driftloop.yaml").write_text(config_yaml(folder.name))
    scratch = Project(folder)
    scratch.apply()
    return scratch


def _first_champion(
    project: Project, model: str, feed: HistoryFeed, start: datetime, folder: Path
) -> Path:
    """The base every policy starts from: the history before ``start`` ingested at
    ``start`` and the first champion trained on it."""
    base = scratch_project(project, folder)
    with use_clock(SimulatedClock(start)):
        for source, table in feed.between(datetime(1, 1, 1, tzinfo=start.tzinfo), start).items():
            base.ingest(source, table)
        base.train(model, promote=True)
    base.close()
    return folder


# -- the metric over served predictions ---------------------------------------------------


def _next_month(t: datetime, day: int) -> datetime:
    year, month = t.year + t.month // 12, t.month % 12 + 1
    last = (datetime(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return t.replace(year=year, month=month, day=min(day, last))


def period_starts(start: datetime, end: datetime, period: str) -> list[datetime]:
    """The starts of the periods from ``start`` to ``end``: every 7 days (``week``) or
    the same day and time of each month (``month``)."""
    if period not in ("month", "week"):
        raise InputError(f"period must be 'month' or 'week', not {period!r}", field="period")
    out = []
    t = start
    while t < end:
        out.append(t)
        t = t + timedelta(days=7) if period == "week" else _next_month(t, start.day)
    return out


def served_metric(
    project: Project,
    model: str,
    metric: str,
    start: datetime,
    end: datetime,
    *,
    period: str = "month",
) -> tuple[list[Period], float | None, int, int]:
    """The ``metric`` of the predictions ``model`` served (champion and canary, not
    shadow) in ``[start, end)`` against the labels known by now, per period and overall;
    also how many were labelled and served."""
    from driftloop.evaluation.metrics import compute_metrics
    from driftloop.project import _ProjectLog

    log = _ProjectLog(project)
    table = log.predictions(model, start, end)
    if table.num_rows == 0:
        return [], None, 0, 0
    table = table.filter(pc.is_in(table.column("role"), pa.array(_SERVED)))
    served = table.num_rows
    later = end + timedelta(days=3650)
    joined = log.join_labels(model, table, start, later)
    joined = joined.filter(
        pc.and_(pc.is_valid(joined.column("label")), pc.is_valid(joined.column("prediction")))
    )
    task = project.model_spec(model).task
    at = pc.cast(joined.column("at"), _TS).cast(pa.int64()).to_numpy(zero_copy_only=False)
    y = joined.column("label").to_numpy(zero_copy_only=False)
    p = joined.column("prediction").to_numpy(zero_copy_only=False)

    def value(mask: np.ndarray[Any, Any]) -> float | None:
        if not mask.any():
            return None
        try:
            return compute_metrics(task, y[mask], p[mask], metrics=[metric])[metric]
        except InputError:  # e.g. one class only in a period: no AUC
            return None

    starts = period_starts(start, end, period)
    edges = [int(s.timestamp() * 1e6) for s in [*starts, end]]
    periods = []
    for i, s in enumerate(starts):
        mask = (at >= edges[i]) & (at < edges[i + 1])
        periods.append(Period(s, int(mask.sum()), value(mask)))
    overall = value(np.ones(len(at), dtype=bool))
    return periods, overall, len(at), served


# -- the backtest -------------------------------------------------------------------------


def _costs(project: Project, model: str, result: PolicyResult) -> None:
    done = runs.list_runs(project.store, model, limit=None)
    result.runs = len(done)
    for run in done:
        result.training_seconds += run.training_seconds
        if run.state == runs.PROMOTED:
            result.promoted += 1
        elif run.state == runs.REJECTED:
            result.rejected += 1
        elif run.state == runs.ROLLED_BACK:
            result.rolled_back += 1
        else:
            result.other += 1


def run_backtest(
    project: Project,
    model: str,
    start: datetime,
    end: datetime,
    policies: Iterable[str | RetrainPolicy | None] = ("never", "monthly", "drift", "hybrid"),
    *,
    workdir: str | Path | None = None,
    metric: str | None = None,
    period: str = "month",
    on_day: Callable[[str, DayReport], None] | None = None,
) -> Backtest:
    """Replay ``model`` from ``start`` to ``end`` once per policy (see the module doc).

    ``workdir`` (default ``.driftloop/backtests/<model>`` in the project) holds one
    scratch project per policy, kept for inspection. ``on_day(policy, report)`` is told
    as each simulated day ends."""
    start, end = ensure_utc(start, what="start"), ensure_utc(end, what="end")
    if end <= start:
        raise InputError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    period_starts(start, end, period)  # a bad period: before hours of replay
    spec = project.model_spec(model)
    chosen = resolve_policies(project, model, policies)
    metric = metric or _spec_metric(spec)
    from driftloop.evaluation.metrics import METRICS

    greater = METRICS.get(metric).greater_is_better if metric in METRICS else True
    root = Path(workdir) if workdir is not None else project.root / ".driftloop" / "backtests"
    root = root / model
    root.mkdir(parents=True, exist_ok=True)
    feed = HistoryFeed(project)
    requests, keys, _ = model_requests(project, model, start, end)
    if requests.num_rows == 0:
        raise InputError(
            f"model {model!r} has no rows in its label source {spec.label.source!r} between "
            f"{start.isoformat()} and {end.isoformat()}: nothing to replay"
        )
    base = _first_champion(project, model, feed, start, root / "_start")
    results = []
    for name, policy in chosen.items():
        result = PolicyResult(name, describe(policy))
        folder = root / _folder_name(name)
        began = time.perf_counter()
        replica = _copy(base, folder)
        clock = SimulatedClock(start)
        scorer = EngineScorer(replica)
        try:
            with use_clock(clock):
                replay = Replay(
                    replica,
                    model,
                    clock=clock,
                    feed=feed,
                    requests=requests,
                    keys=keys,
                    scorer=scorer,
                    controller=(
                        replica.controller(executor="inline", policies={model: policy})
                        if policy
                        else None
                    ),
                    monitor=policy is not None and _uses_monitoring(policy.when),
                )
                replay.run(start, end, on_day=_told(on_day, name))
        finally:
            scorer.close()
        result.periods, result.overall, result.labelled, result.predictions = served_metric(
            replica, model, metric, start, end, period=period
        )
        _costs(replica, model, result)
        result.seconds = time.perf_counter() - began
        result.folder = str(folder)
        replica.close()
        results.append(result)
    return Backtest(model, metric, greater, start, end, results)


def _told(
    on_day: Callable[[str, DayReport], None] | None, name: str
) -> Callable[[DayReport], None] | None:
    if on_day is None:
        return None
    return lambda day: on_day(name, day)


def _spec_metric(spec: Any) -> str:
    for gate in spec.gates:
        name = getattr(gate, "metric", None)
        if isinstance(name, str):
            return name
    return _DEFAULT_METRIC.get(spec.task, "roc_auc")


def _folder_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


def _copy(base: Path, folder: Path) -> Project:
    from driftloop.project import Project

    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base, folder)
    return Project(folder)


def policy_names(values: Sequence[str]) -> list[str]:
    """``--policy`` values, each possibly a comma-separated list."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]
