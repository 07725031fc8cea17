"""The dashboard's tables, aggregated on the server from the metadata store.

Each function returns a :class:`UiTable`: named columns and rows of plain values, the
same object a page renders and ``/ui/api/<table>.json`` or ``.csv`` exports — so the
page, the export and the API agree by construction. Every table is bounded (the newest
rows first, ``limit``), so a page costs the same with 100 versions or 10,000 windows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from driftloop.data.profile import DatasetProfile
    from driftloop.monitoring.series import WindowMetrics
    from driftloop.project import Project
    from driftloop.serving.deployments import Deployment

__all__ = [
    "Heatmap",
    "UiTable",
    "alerts",
    "alias_history",
    "column_profiles",
    "controller",
    "data_quality",
    "drift_heatmap",
    "firings",
    "model_overview",
    "model_versions",
    "pipeline_runs",
    "quarantine",
    "rollouts",
    "sources",
    "window_series",
]

T = TypeVar("T")

_VERSION_METRICS = ("roc_auc", "pr_auc", "log_loss", "accuracy", "rmse", "mae", "r2")
"""The metrics a versions table shows first (six in all)."""
_LIVE_METRICS = ("roc_auc", "accuracy", "rmse", "mae", "log_loss")
"""Live metrics shown on the overview, the first one a window has."""


@dataclass
class UiTable:
    """A table of the dashboard: its name (the export's file name), columns and rows."""

    name: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    title: str = ""
    offset: int = 0
    """How many newer rows come before this page's first (0: the newest)."""
    more: bool = False
    """Whether older rows follow this page's last."""
    limit: int = 0
    """Rows per page (0: not paged)."""

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready objects (times as ISO 8601 text)."""
        return [{c: _json(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "columns": self.columns,
            "rows": self.records(),
            "offset": self.offset,
            "more": self.more,
        }

    def page(self, items: Sequence[T], offset: int, limit: int) -> Sequence[T]:
        """``items`` (newest first, at least ``offset + limit + 1`` of them when more
        follow) cut to this page: ``limit`` of them from ``offset``; records where the
        page is and whether older rows follow."""
        self.offset, self.limit = offset, limit
        self.more = len(items) > offset + limit
        return items[offset : offset + limit]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else _text(v) for v in row])
        return out.getvalue()


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):  # NaN is not JSON
        return None
    return value


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _latest_figures(project: Project, model: str) -> dict[str, Any]:
    """The figures of the model's latest monitoring window, summed over versions."""
    windows = project.monitoring_windows(model, limit=1)
    if not windows:
        return {}
    found = windows[-1]
    window = found.window
    seconds = max((window.end - window.start).total_seconds(), 1.0)
    requests = sum(m.value or 0.0 for m in found.metrics if m.metric == "requests")
    out: dict[str, Any] = {
        "window_end": window.end,
        "predictions": window.rows,
        "rate_per_min": round(window.rows / seconds * 60.0, 3),
        "requests": int(requests),
    }
    for name in ("latency.p50", "latency.p99", "error_rate"):
        out[name] = _pick(found, name)
    for metric in _LIVE_METRICS:
        live = found.get(f"performance.{metric}")
        if live is not None and live.value is not None:
            out["live_metric"] = f"{metric} {live.value:.4f}"
            break
    return out


def _next_scheduled(project: Project, model: str) -> datetime | None:
    """The next tick of the model's retraining schedule (the earliest of its ``Schedule``
    triggers), if its policy has one."""
    from driftloop.core import clock
    from driftloop.loop.conditions import AllOf, AnyOf, Schedule

    policy = project.definitions.policies.get(model)
    if policy is None:
        return None
    found: list[Schedule] = []
    pending: list[Any] = [policy.when]
    while pending:
        trigger = pending.pop()
        if isinstance(trigger, AnyOf | AllOf):
            pending.extend(trigger.triggers)
        elif isinstance(trigger, Schedule):
            found.append(trigger)
    now = clock.now()
    return min((s.next_tick(now) for s in found), default=None)


def traffic(d: Deployment) -> str | None:
    """Where the answered requests go, in words: the A/B arms, or champion and canary
    with their shares; a shadow gets copies.

    >>> from driftloop.serving.deployments import Deployment
    >>> traffic(Deployment("m", 3, canary=4, canary_weight=10.0, shadow=5))
    'v3 90% · v4 10% (canary) · v5 gets copies (shadow)'
    >>> traffic(Deployment("m", 3, split={"a": 3, "b": 4}, split_weights={"a": 50, "b": 50}))
    'a v3 50% · b v4 50%'
    """
    if d.split:
        weights = d.split_weights or {}
        parts = [f"{arm} v{v} {weights.get(arm, 0):g}%" for arm, v in sorted(d.split.items())]
    elif d.champion is None:
        return None
    elif d.canary is not None:
        parts = [
            f"v{d.champion} {100 - d.canary_weight:g}%",
            f"v{d.canary} {d.canary_weight:g}% (canary)",
        ]
    else:
        parts = [f"v{d.champion} 100%"]
    if d.shadow is not None:
        parts.append(f"v{d.shadow} gets copies (shadow)")
    return " · ".join(parts)


def model_overview(project: Project) -> UiTable:
    """One row per registered model: what serves, how, how well, and the loop's state."""
    table = UiTable(
        "models",
        [
            "model",
            "health",
            "champion",
            "canary",
            "canary_weight",
            "shadow",
            "traffic",
            "predictions_per_min",
            "latency_p50_ms",
            "latency_p99_ms",
            "error_rate",
            "live_metric",
            "open_alerts",
            "last_run",
            "last_run_state",
            "next_scheduled",
            "window_end",
        ],
        title="Models",
    )
    deployments = {d.model: d for d in project.deployments()}
    firing: dict[str, list[str]] = {}
    for alert in project.alerts(status="firing", limit=1000):
        firing.setdefault(alert.model, []).append(alert.severity)
    paused = {r.model for r in project.rollouts(state="paused")}
    for registered in project.models():
        name = registered.name
        d = deployments.get(name)
        figures = _latest_figures(project, name)
        last = project.pipeline_runs(name, limit=1)
        severities = firing.get(name, [])
        if "critical" in severities:
            health = "critical"
        elif "warning" in severities or name in paused or (last and last[0].state == "failed"):
            health = "warning"
        elif d is None or d.champion is None:
            health = "not serving"
        else:
            health = "ok"
        table.rows.append(
            [
                name,
                health,
                d.champion if d else None,
                d.canary if d else None,
                d.canary_weight if d and d.canary is not None else None,
                d.shadow if d else None,
                traffic(d) if d else None,
                figures.get("rate_per_min"),
                figures.get("latency.p50"),
                figures.get("latency.p99"),
                figures.get("error_rate"),
                figures.get("live_metric"),
                len(severities),
                last[0].id if last else None,
                last[0].state if last else None,
                _next_scheduled(project, name),
                figures.get("window_end"),
            ]
        )
    return table


def _age(value: timedelta) -> str:
    """A duration in its two largest units: ``"412d 3h"``, ``"5h 12m"``, ``"42s"``.

    >>> _age(timedelta(days=2, hours=3, minutes=4)), _age(timedelta(seconds=42.5))
    ('2d 3h', '42s')
    """
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def controller(project: Project) -> UiTable:
    """The retraining loop's controller (``driftloop run``): who holds its lease, since
    when, until when it is renewed, whether it is alive, and the runs in progress."""
    import sqlalchemy as sa

    from driftloop.core import clock
    from driftloop.loop.runs import ACTIVE
    from driftloop.loop.tables import leases
    from driftloop.loop.tables import pipeline_runs as runs

    table = UiTable(
        "controller",
        ["lease", "holder", "state", "acquired_at", "renewed_until", "runs_in_progress"],
        title="Retraining loop",
    )
    with project.store.connect() as conn:
        held = conn.execute(sa.select(leases).order_by(leases.c.name)).all()
        active = conn.execute(
            sa.select(sa.func.count()).select_from(runs).where(runs.c.state.in_(ACTIVE))
        ).scalar_one()
    now = clock.now()
    if not held:
        table.rows.append(["controller", None, "never started", None, None, active])
    for lease in held:
        state = "running" if lease.expires_at > now else "stopped"
        table.rows.append(
            [lease.name, lease.holder, state, lease.acquired_at, lease.expires_at, active]
        )
    return table


def sources(project: Project, *, only: str | None = None) -> UiTable:
    """Each source (or the one named ``only``) with its latest batch and its data
    freshness against the contract's ``max_age`` rule: ``fresh`` when the newest event is
    younger than it, ``stale`` when older, ``no rule`` when the contract has none."""
    from driftloop.core import clock
    from driftloop.data.contract import format_duration

    table = UiTable(
        "sources",
        [
            "source",
            "contract_version",
            "versions",
            "rows",
            "latest_at",
            "newest_event",
            "age",
            "max_age",
            "freshness",
            "quarantined",
        ],
        title="Data freshness",
    )
    now = clock.now()
    held: dict[str, int] = {}
    for entry in project.quarantined(only):
        held[entry.source] = held.get(entry.source, 0) + 1
    for state in project.sources():
        if only is not None and state.name != only:
            continue
        versions = project.versions(state.name)
        events = [v.event_max for v in versions if v.event_max is not None]
        newest = max(events) if events else None
        max_age = state.contract.batch.max_age
        age = now - newest if newest is not None else None
        if max_age is None:
            freshness = "no rule"
        elif age is None:
            freshness = "no data"
        else:
            freshness = "fresh" if age <= max_age else "stale"
        table.rows.append(
            [
                state.name,
                state.contract_version,
                len(versions),
                sum(v.rows for v in versions),
                versions[-1].created_at if versions else None,
                newest,
                _age(age) if age is not None else None,
                format_duration(max_age) if max_age is not None else None,
                freshness,
                held.get(state.name, 0),
            ]
        )
    return table


def model_versions(project: Project, model: str, *, offset: int = 0, limit: int = 100) -> UiTable:
    """The model's versions, newest first, with their metrics and verdicts."""
    every = list(reversed(project.model_versions(model)))
    versions = every[offset : offset + limit]
    names = {k for v in versions for k in (v.metrics or {})}
    first = [m for m in _VERSION_METRICS if m in names]
    metric_names = (first + sorted(names - set(first)))[:6]
    table = UiTable(
        f"{model}-versions",
        ["version", "created_at", "verdict", "aliases", "run", *metric_names],
        title="Versions",
    )
    aliases: dict[int, list[str]] = {}
    for alias, version in project.model_aliases(model).items():
        aliases.setdefault(version, []).append(alias)
    table.page(every, offset, limit)
    for v in versions:
        table.rows.append(
            [
                v.version,
                v.created_at,
                v.tags.get("verdict"),
                ", ".join(sorted(aliases.get(v.version, []))),
                v.run_id,
                *((v.metrics or {}).get(m) for m in metric_names),
            ]
        )
    return table


def alias_history(project: Project, model: str, *, offset: int = 0, limit: int = 100) -> UiTable:
    """Every move of the model's aliases, newest first: which version served when."""
    table = UiTable(
        f"{model}-aliases",
        ["at", "alias", "from_version", "to_version", "who", "reason"],
        title="Alias history",
    )
    for m in table.page(list(reversed(project.alias_history(model))), offset, limit):
        table.rows.append([m.at, m.alias, m.from_version, m.to_version, m.who, m.reason])
    return table


def pipeline_runs(
    project: Project, model: str | None = None, *, offset: int = 0, limit: int = 100
) -> UiTable:
    """Pipeline runs, newest first."""
    table = UiTable(
        "runs",
        [
            "run",
            "model",
            "state",
            "step",
            "version",
            "created_at",
            "finished_at",
            "training_seconds",
            "error",
        ],
        title="Pipeline runs",
    )
    found = project.pipeline_runs(model, limit=offset + limit + 1)
    for r in table.page(found, offset, limit):
        table.rows.append(
            [
                r.id,
                r.model,
                r.state,
                r.step,
                r.outputs.get("version"),
                r.created_at,
                r.finished_at,
                round(r.training_seconds, 2),
                r.error,
            ]
        )
    return table


def firings(
    project: Project, model: str | None = None, *, offset: int = 0, limit: int = 100
) -> UiTable:
    """The controller's evaluations of the retraining policies that it recorded, newest
    first: fired (with the run it started) or suppressed, and why."""
    from driftloop.loop.firings import list_firings

    table = UiTable(
        "firings",
        ["firing", "model", "at", "outcome", "reason", "run", "triggers"],
        title="Trigger firings",
    )
    found = list_firings(project.store, model, limit=offset + limit + 1)
    for f in table.page(found, offset, limit):
        when = f.evidence.get("when")
        summary = when.get("summary") if isinstance(when, dict) else None
        table.rows.append([f.id, f.model, f.at, f.outcome, f.reason, f.run_id, summary])
    return table


def rollouts(
    project: Project, model: str | None = None, *, offset: int = 0, limit: int = 100
) -> UiTable:
    """Rollouts, newest first, with where they stand and why they ended."""
    table = UiTable(
        "rollouts",
        [
            "rollout",
            "model",
            "version",
            "previous",
            "state",
            "phase",
            "step",
            "measurements",
            "created_at",
            "reason",
            "run",
        ],
        title="Rollouts",
    )
    for r in table.page(project.rollouts(model, limit=offset + limit + 1), offset, limit):
        table.rows.append(
            [
                r.id,
                r.model,
                r.version,
                r.previous,
                r.state,
                r.phase,
                r.step,
                r.measurements,
                r.created_at,
                r.reason,
                r.run_id,
            ]
        )
    return table


def quarantine(
    project: Project, *, source: str | None = None, offset: int = 0, limit: int = 100
) -> UiTable:
    """Rejected batches kept in quarantine (of one source, or all), newest first."""
    table = UiTable(
        "quarantine",
        ["entry", "source", "status", "created_at", "bytes", "failed_rules"],
        title="Quarantine",
    )
    for q in table.page(project.quarantined(source), offset, limit):
        report = q.validation
        failed = len(report.failures) if report is not None else None
        table.rows.append([q.id, q.source, q.status, q.created_at, q.bytes, failed])
    return table


@dataclass
class Heatmap:
    """Drift per column (rows) and window (columns): the statistic over its threshold,
    whether the column drifted, and each window's id (for links)."""

    table: UiTable
    drifted: list[list[bool | None]]
    window_ids: list[int]


def drift_heatmap(project: Project, model: str, *, windows: int = 30) -> Heatmap:
    """The latest ``windows`` monitoring windows' drift, one row per column, each cell
    the drift statistic divided by its threshold (above 1: beyond it)."""
    found = project.monitoring_windows(model, limit=windows)
    columns = sorted({m.column for w in found for m in w.metrics if m.metric == "drift.value"})
    ends = [w.window.end.strftime("%Y-%m-%d %H:%M") for w in found]
    table = UiTable(f"{model}-drift", ["column", *ends], title="Drift by window")
    cells: dict[tuple[str, int], tuple[float | None, bool | None]] = {}
    for i, w in enumerate(found):
        for m in w.metrics:
            if m.metric != "drift.value":
                continue
            details = m.details or {}
            threshold = details.get("threshold")
            ratio = None
            if m.value is not None and isinstance(threshold, int | float) and threshold > 0:
                ratio = round(m.value / threshold, 4)
            flag = details.get("drifted")
            cells[(m.column, i)] = (ratio, bool(flag) if flag is not None else None)
    drifted: list[list[bool | None]] = []
    for column in columns:
        row = [cells.get((column, i), (None, None)) for i in range(len(found))]
        table.rows.append([column, *(ratio for ratio, _ in row)])
        drifted.append([flag for _, flag in row])
    return Heatmap(table, drifted, [w.window.id for w in found])


def window_series(project: Project, model: str, *, offset: int = 0, windows: int = 200) -> UiTable:
    """One row per monitoring window, oldest first: its traffic, latency, errors, share
    of drifted columns and live metric; the latest ``windows`` after the ``offset``
    newest."""
    table = UiTable(
        f"{model}-windows",
        [
            "window",
            "start",
            "end",
            "rows",
            "drift_share",
            "latency_p50_ms",
            "latency_p99_ms",
            "error_rate",
            "prediction_drift",
            "labelled",
            "roc_auc",
        ],
        title="Windows",
    )
    import sqlalchemy as sa

    from driftloop.monitoring.tables import monitoring_metrics as m
    from driftloop.monitoring.tables import monitoring_windows as t

    project.model_aliases(model)  # an unknown model: NotFoundError
    names = {
        "drift.share": "drift_share",
        "latency.p50": "latency_p50_ms",
        "latency.p99": "latency_p99_ms",
        "error_rate": "error_rate",
        "performance.labelled": "labelled",
        "performance.roc_auc": "roc_auc",
    }
    latest = (
        sa.select(t.c.id)
        .where(t.c.model == model)
        .order_by(t.c.end.desc(), t.c.id.desc())
        .offset(offset)
        .limit(windows + 1)
    )
    # one query, no details (histograms): the figures of the latest windows
    query = (
        sa.select(
            t.c.id,
            t.c.start,
            t.c.end,
            t.c.rows,
            t.c.version,
            m.c.metric,
            m.c.value,
            m.c.version.label("metric_version"),
        )
        .join(m, m.c.window_id == t.c.id)
        .where(
            t.c.id.in_(latest),
            sa.or_(
                sa.and_(m.c.column == "", m.c.metric.in_(list(names))),
                sa.and_(m.c.column == "prediction", m.c.metric == "drift.value"),
            ),
        )
        .order_by(t.c.end, t.c.id)
    )
    with project.store.connect() as conn:
        found = conn.execute(query).all()
    rows: dict[int, dict[str, Any]] = {}
    for r in found:
        row = rows.setdefault(r.id, {"window": r.id, "start": r.start, "end": r.end,
                                     "rows": r.rows})  # fmt: skip
        key = "prediction_drift" if r.metric == "drift.value" else names[r.metric]
        # the version that served the window, else the overall figure, else any
        rank = 0 if r.metric_version == r.version else 1 if r.metric_version is None else 2
        if key not in row or rank < row[f"_{key}"]:
            row[key], row[f"_{key}"] = r.value, rank
    found_rows = list(rows.values())  # oldest first: one more than a page when more follow
    table.offset, table.limit, table.more = offset, windows, len(found_rows) > windows
    for row in found_rows[-windows:]:
        table.rows.append([row.get(c) for c in table.columns])
    return table


_QUALITY_COLUMNS = {
    "quality.null_rate": "null_rate",
    "quality.out_of_range": "out_of_range",
    "quality.unseen": "unseen",
    "quality.type_errors": "type_errors",
    "quality.contract": "against_contract",
    "quality.missing_rate": "missing_inputs",
}


def data_quality(project: Project, model: str, *, windows: int = 30) -> UiTable:
    """Data quality per input column: each figure of the latest window (shares of the
    column's values; type errors as a count), and in how many of the latest ``windows``
    the column had any problem at all."""
    import sqlalchemy as sa

    from driftloop.monitoring.tables import monitoring_metrics as m
    from driftloop.monitoring.tables import monitoring_windows as t

    project.model_aliases(model)  # an unknown model: NotFoundError
    table = UiTable(
        f"{model}-quality",
        ["column", *_QUALITY_COLUMNS.values(), "windows_with_problems", "windows"],
        title=f"Data quality (the latest window; problems over the latest {windows})",
    )
    latest = sa.select(t.c.id).where(t.c.model == model).order_by(t.c.end.desc()).limit(windows)
    query = (
        sa.select(t.c.id, t.c.end, m.c.metric, m.c.column, m.c.value)
        .join(m, m.c.window_id == t.c.id)
        .where(t.c.id.in_(latest), m.c.metric.in_(list(_QUALITY_COLUMNS)))
        .order_by(t.c.end, t.c.id)
    )
    with project.store.connect() as conn:
        found = conn.execute(query).all()
    if not found:
        return table
    newest = found[-1].id
    counted = len({r.id for r in found})
    figures: dict[str, dict[str, float | None]] = {}
    problems: dict[str, set[int]] = {}
    for r in found:
        column = r.column or "(all)"
        if r.id == newest:
            figures.setdefault(column, {})[_QUALITY_COLUMNS[r.metric]] = r.value
        if r.value:
            problems.setdefault(column, set()).add(r.id)
        else:
            problems.setdefault(column, set())
    for column in sorted(problems, key=lambda c: (c == "(all)", c)):
        latest_figures = figures.get(column, {})
        table.rows.append(
            [
                column,
                *(latest_figures.get(name) for name in _QUALITY_COLUMNS.values()),
                len(problems[column]),
                counted,
            ]
        )
    return table


def _pick(found: WindowMetrics, metric: str, column: str = "") -> float | None:
    """A window's figure: the one of the version that served it, else the first one
    measured."""
    values = [
        m
        for m in found.metrics
        if m.metric == metric and m.column == column and m.value is not None
    ]
    served = [m for m in values if m.version == found.window.version]
    chosen = served or values
    return chosen[0].value if chosen else None


def alerts(
    project: Project, model: str | None = None, *, offset: int = 0, limit: int = 100
) -> UiTable:
    """Alerts, newest first, with the evidence's text."""
    table = UiTable(
        "alerts",
        [
            "alert",
            "model",
            "rule",
            "column",
            "severity",
            "status",
            "opened_at",
            "last_window",
            "value",
            "threshold",
            "evidence",
        ],
        title="Alerts",
    )
    for a in table.page(project.alerts(model, limit=offset + limit + 1), offset, limit):
        table.rows.append(
            [
                a.id,
                a.model,
                a.rule,
                a.column,
                a.severity,
                a.status,
                a.opened_at,
                a.last_window,
                a.value,
                a.threshold,
                a.text,
            ]
        )
    return table


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict):
        shown = {k: v for k, v in detail.items() if k not in ("trace", "split")}
        return ", ".join(f"{k}={v}" for k, v in shown.items())
    return "" if detail is None else str(detail)


def run_timeline(project: Project, run_id: str) -> UiTable:
    """A pipeline run's timeline, oldest first: each step with its outputs."""
    _, events = project.pipeline_run(run_id)
    table = UiTable(f"run-{run_id}", ["at", "event", "step", "detail"], title="Timeline")
    for e in events:
        at = datetime.fromisoformat(e["at"]) if isinstance(e["at"], str) else e["at"]
        table.rows.append([at, e["kind"], e["step"], _detail_text(e["detail"])])
    return table


def rollout_measurements(project: Project, rollout_id: int) -> UiTable:
    """A rollout's measurements, oldest first, each with its verdict and why."""
    detail = project.rollout(rollout_id)
    table = UiTable(
        f"rollout-{rollout_id}-measurements",
        [
            "seq",
            "at",
            "phase",
            "step",
            "metric",
            "value",
            "champion_value",
            "rows",
            "status",
            "reason",
        ],
        title="Analysis measurements",
    )
    for m in detail.measurements:
        table.rows.append(
            [
                m.seq,
                m.at,
                m.phase,
                m.step,
                m.metric,
                m.value,
                m.champion_value,
                m.rows,
                m.status,
                m.reason,
            ]
        )
    return table


def rollout_timeline(project: Project, rollout_id: int) -> UiTable:
    """A rollout's events and deployment changes, in time order."""
    detail = project.rollout(rollout_id)
    table = UiTable(
        f"rollout-{rollout_id}-timeline", ["at", "event", "who", "message"], title="Rollout"
    )
    for entry in detail.timeline():
        table.rows.append(
            [entry.get("at"), entry.get("kind"), entry.get("who"), entry.get("message")]
        )
    return table


def log_days(project: Project, model: str) -> list[date]:
    """The days the model's prediction log holds, oldest first."""
    folder = project.config.serving.predictions / f"model={model}"
    if not folder.is_dir():
        return []
    return sorted(date.fromisoformat(p.name.removeprefix("date=")) for p in folder.glob("date=*"))


def recent_predictions(project: Project, model: str, *, limit: int = 20) -> UiTable:
    """The model's latest predictions (from the log's last day), newest first."""
    from driftloop.serving.predictionlog import read_log

    project.model_aliases(model)  # an unknown model: NotFoundError
    table = UiTable(
        f"{model}-predictions",
        ["request_id", "at", "version", "role", "prediction", "error"],
        title="Latest predictions",
    )
    days = log_days(project, model)
    if not days:
        return table
    since = datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=UTC)
    log = read_log(project.config.serving.predictions, model, since=since)
    n = log.num_rows
    tail = log.slice(max(0, n - limit), limit)
    error = tail.column("error") if "error" in tail.column_names else None
    for i in reversed(range(tail.num_rows)):
        table.rows.append(
            [
                tail.column("request_id")[i].as_py(),
                tail.column("at")[i].as_py(),
                tail.column("version")[i].as_py(),
                tail.column("role")[i].as_py(),
                tail.column("prediction")[i].as_py(),
                None if error is None else error[i].as_py(),
            ]
        )
    return table


def dataset_users(project: Project, dataset_id: str) -> UiTable:
    """The model versions whose training read a dataset version (forward lineage)."""
    from driftloop.registry.lineage import dataset_users as users

    table = UiTable(
        f"dataset-{dataset_id[:12]}-users",
        ["model", "version", "created_at"],
        title="Model versions trained on it",
    )
    for v in users(project.store, dataset_id):
        table.rows.append([v.model, v.version, v.created_at])
    return table


def validation_report(project: Project, entry_id: str) -> UiTable:
    """The rules a quarantined batch failed: column, failing rows, the first ones and
    their values, the message."""
    entry = project.quarantine_entry(entry_id)
    table = UiTable(
        f"quarantine-{entry.id}",
        ["rule", "column", "failing_rows", "first_rows", "first_values", "message"],
        title=f"Why {entry.id} was rejected",
    )
    report = entry.validation
    if report is None:  # rejected before validation (an unreadable file...): the reason
        reason = (entry.report or {}).get("error") or (entry.report or {}).get("message")
        table.rows.append([(entry.report or {}).get("stage"), None, None, "", "", reason])
        return table
    for r in report.failures:
        table.rows.append(
            [
                r.rule,
                r.column,
                r.failing,
                ", ".join(str(v) for v in r.rows[:5]),
                ", ".join(repr(v) for v in r.values[:5]),
                r.message,
            ]
        )
    return table


def dataset_versions(
    project: Project, *, source: str | None = None, offset: int = 0, limit: int = 100
) -> UiTable:
    """Dataset versions of one source or of every source, newest first."""
    table = UiTable(
        "datasets",
        ["dataset", "source", "rows", "created_at", "event_min", "event_max", "input"],
        title="Dataset versions",
    )
    found = sorted(project.versions(source), key=lambda v: v.created_at, reverse=True)
    versions = table.page(found, offset, limit)
    for v in versions:
        table.rows.append(
            [
                v.id,
                v.source,
                v.rows,
                v.created_at,
                v.event_min,
                v.event_max,
                (v.provenance or {}).get("input_uri"),
            ]
        )
    return table


def column_profiles(name: str, profile: DatasetProfile | None) -> UiTable:
    """A profile as a table, one row per column: its kind, counts, range, mean and
    spread, or its distinct and most frequent values."""
    from driftloop.data.profile import profile_summary

    table = UiTable(
        f"{name}-profile",
        ["column", "kind", "count", "nulls", "min", "max", "mean", "std", "distinct", "top"],
        title="Profile",
    )
    if profile is None:
        return table
    for column, p in profile_summary(profile)["columns"].items():
        top = ", ".join(f"{t['value']} ({t['count']:,})" for t in p.get("top", [])[:3])
        table.rows.append(
            [
                column,
                p["kind"],
                p["count"],
                p["nulls"],
                p.get("min"),
                p.get("max"),
                p.get("mean"),
                p.get("std"),
                p.get("distinct"),
                top + (", …" if len(p.get("top", [])) > 3 or p.get("other") else ""),
            ]
        )
    return table
