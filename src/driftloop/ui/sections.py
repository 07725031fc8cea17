"""Parts of the dashboard's pages built from several tables or stores: the metric
charts, the timeline of versions served, a profile's distributions, and the links from
an alert to its histogram and from a prediction to its lineage (with the lookup of a
logged prediction by its request id)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from driftloop.errors import InputError, NotFoundError
from driftloop.monitoring import series
from driftloop.ui import tables
from driftloop.ui.charts import alias_timeline, histogram_chart, time_chart
from driftloop.ui.pages import render_table

if TYPE_CHECKING:
    from driftloop.project import Project

__all__ = [
    "alert_link",
    "alias_section",
    "find_prediction",
    "metric_charts",
    "prediction_link",
    "profile_charts",
    "short",
]


def prediction_link(model: str) -> Callable[[dict[str, Any]], str | None]:
    """A logged prediction's link: its lineage, looked up around its time."""

    def link(row: dict[str, Any]) -> str | None:
        at = row.get("at")
        suffix = f"?at={quote(at.isoformat())}" if isinstance(at, datetime) else ""
        request_id = quote(str(row["request_id"]), safe="")
        return f"/ui/predictions/{quote(model, safe='')}/{request_id}{suffix}"

    return link


def short(value: Any) -> Any:
    text = value if isinstance(value, int | float) or value is None else str(value)
    return text[:200] + "…" if isinstance(text, str) and len(text) > 200 else text


def metric_charts(project: Project, model: str, versions: tables.UiTable) -> str:
    """The offline metric of each version at its creation, and the live one per window."""
    metric = next((m for m in ("roc_auc", "accuracy", "rmse") if m in versions.columns), None)
    parts = []
    if metric is not None:
        i, t = versions.columns.index(metric), versions.columns.index("created_at")
        rows = list(reversed(versions.rows))
        parts.append(
            time_chart(f"offline {metric} per version", [r[t] for r in rows], [r[i] for r in rows])
        )
    live = tables.window_series(project, model)
    if live.rows:
        end, auc = live.columns.index("end"), live.columns.index("roc_auc")
        parts.append(
            time_chart(
                "live roc_auc per window", [r[end] for r in live.rows], [r[auc] for r in live.rows]
            )
        )
    return f"<section><h2>Metric over time</h2>{''.join(parts)}</section>" if parts else ""


def _serving_moves(project: Project, model: str) -> list[Any]:
    """Every change of what served the model, oldest first: the registry's alias moves
    and the deployment's canary and shadow, as ``(at, alias, to_version)`` moves."""
    from types import SimpleNamespace

    moves: list[Any] = list(project.alias_history(model))
    canary = shadow = None
    for change in project.deployment_history(model):
        state = change.state
        if state.canary != canary:
            moves.append(SimpleNamespace(at=change.at, alias="canary", to_version=state.canary))
            canary = state.canary
        if state.shadow != shadow:
            moves.append(SimpleNamespace(at=change.at, alias="shadow", to_version=state.shadow))
            shadow = state.shadow
    return sorted(moves, key=lambda m: m.at)


def _served_until(project: Project, model: str, moves: list[Any]) -> datetime:
    """Where the timeline ends: the model's latest known activity (a move, the end of
    its latest monitoring window, the last day of its prediction log), not past now."""
    from datetime import UTC, timedelta

    from driftloop.core import clock

    now = clock.now()
    ends = [m.at for m in moves]
    last_window = series.last_end(project.store, model, None)
    if last_window is not None:
        ends.append(last_window)
    days = tables.log_days(project, model)
    if days:
        last = days[-1]
        ends.append(datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))
    return min(max(ends), now) if ends else now


def alias_section(project: Project, model: str, *, offset: int, pager: Callable[[int], str]) -> str:
    """Which version served when: the aliases' and deployment's timeline, then the
    alias moves as a table (the page at ``offset``)."""
    moves = _serving_moves(project, model)
    chart = alias_timeline(moves, _served_until(project, model, moves))
    table = render_table(
        tables.alias_history(project, model, offset=offset),
        f"/ui/api/models/{model}/aliases",
        pager=pager,
    )
    return f'<section class="aliases"><h2>Which version served when</h2>{chart}</section>{table}'


_MAX_CHARTED_DISTINCT = 1000
"""A categorical column with more distinct values (an identifier) gets no chart."""


def profile_charts(profile: Any) -> str:
    """A histogram per numeric or time column, and the most frequent values of each
    categorical one (but identifiers), from a dataset profile."""
    from driftloop.data.profile import profile_summary

    if profile is None:
        return ""
    charts = []
    for column, p in profile_summary(profile)["columns"].items():
        if "histogram" in p:
            edges, counts = p["histogram"]["edges"], p["histogram"]["counts"]
            if len(edges) != len(counts) + 1:
                continue
            labels = [f"{_edge(lo)} to {_edge(hi)}" for lo, hi in itertools.pairwise(edges)]
            ends = (_edge(edges[0], short=True), _edge(edges[-1], short=True))
            charts.append(histogram_chart(column, labels, counts, ends=ends))
        elif p.get("top") and p.get("distinct", 0) <= _MAX_CHARTED_DISTINCT:
            top = p["top"][:12]
            charts.append(
                histogram_chart(
                    f"{column} (most frequent)",
                    [str(t["value"]) for t in top],
                    [int(t["count"]) for t in top],
                )
            )
    if not charts:
        return ""
    return f"<section><h2>Distributions</h2>{''.join(charts)}</section>"


def _edge(value: Any, *, short: bool = False) -> str:
    """A bin edge: a number to 4 digits, a time (ISO text) to the minute, or only its
    day when ``short``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("T", " ")
    return text[:10] if short else text[:16]


def alert_link(model: str) -> Callable[[dict[str, Any]], str | None]:
    """An alert's link: its last window's report, at the histogram of its column."""
    from driftloop.monitoring.html import histogram_anchors

    def link(row: dict[str, Any]) -> str | None:
        window = row.get("last_window")
        if window is None:
            return None
        column = str(row.get("column") or "").split("@v")[0]
        anchor = histogram_anchors([column])[column] if column else ""
        return f"/ui/models/{model}/windows/{window}" + (f"#{anchor}" if anchor else "")

    return link


_DAYS_PER_READ = 7
"""Without its time, a prediction is looked for a week of the log at a time, newest
first: a recent request is found after one small read, not a scan of the whole log."""


def _log_spans(project: Project, model: str) -> list[tuple[datetime, datetime]]:
    """The log's days as ``(since, until)`` spans of :data:`_DAYS_PER_READ` days,
    newest first."""
    from datetime import UTC, timedelta

    days = tables.log_days(project, model)
    spans = []
    for i in range(len(days), 0, -_DAYS_PER_READ):
        first, last = days[max(0, i - _DAYS_PER_READ)], days[i - 1]
        since = datetime(first.year, first.month, first.day, tzinfo=UTC)
        until = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        spans.append((since, until))
    return spans


def find_prediction(
    project: Project, model: str, request_id: str, around: str | None = None
) -> dict[str, Any]:
    """The served record of one request (the champion's or canary's answer); with
    ``around`` (its time, ISO 8601) only the log's hour around it is read, without it
    the log a week at a time, newest first."""
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.compute as pc

    from driftloop.serving.predictionlog import read_log

    project.model_aliases(model)  # an unknown model: NotFoundError
    if around:
        try:
            at = datetime.fromisoformat(around)
        except ValueError:
            raise InputError(f"at={around!r} is not an ISO 8601 time", field="at") from None
        if at.tzinfo is None:
            raise InputError(f"at={around!r} has no time zone", field="at")
        spans = [(at - timedelta(hours=1), at + timedelta(hours=1))]
    else:
        spans = _log_spans(project, model)
    root = project.config.serving.predictions
    for since, until in spans:
        found = read_log(root, model, since=since, until=until, request_id=request_id)
        if found.num_rows and "request_id" in found.column_names:
            served = found.filter(pc.is_in(found.column("role"), pa.array(["champion", "canary"])))
            row: dict[str, Any] = (served if served.num_rows else found).slice(0, 1).to_pylist()[0]
            return row
    raise NotFoundError("prediction", request_id)
