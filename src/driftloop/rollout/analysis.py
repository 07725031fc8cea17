"""Measurements of a challenger on live traffic, from the prediction log and feedback.

:func:`measure` reads one window of a model's prediction log (through a
:class:`RolloutLog`, the way monitoring reads it) and computes each
:class:`~driftloop.rollout.policy.AnalysisMetric` of the challenger — the records of its
version in its role (``shadow`` or ``canary``) — next to the same figure of the champion
(the records of the champion version answered as ``champion`` in the same window):

- ``error_rate``: records with an ``error`` over all records (one per instance);
- ``latency``: a percentile of ``latency_ms`` over the requests that were answered
  (one value per request, failed records left out);
- ``prediction_drift``: a drift statistic of the challenger's predictions against the
  champion's (:mod:`driftloop.monitoring.statistics`, the champion's predictions
  being the reference);
- ``metric_delta``: an evaluation metric of the challenger minus the champion's, on the
  predictions whose label is known at the time of the measurement, in the hours when
  both versions served (the challenger's shadow copies count too).

Each :class:`Measurement` is judged successful, failed or inconclusive by the metric's
conditions (:func:`~driftloop.rollout.policy.judge`); too few rows make it inconclusive
without judging the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import InputError
from driftloop.evaluation.metrics import compute_metrics
from driftloop.monitoring.references import encode_labels
from driftloop.monitoring.statistics import (
    DEFAULT_THRESHOLDS,
    NumericReference,
    chisquare,
    jensenshannon,
    ks,
    psi,
    wasserstein,
)
from driftloop.rollout.policy import AnalysisMetric, Status, judge

__all__ = ["Analysed", "Measurement", "RolloutLog", "Subject", "measure"]

_STATISTICS: dict[str, Callable[..., Any]] = {
    "ks": ks,
    "wasserstein": wasserstein,
    "chisquare": chisquare,
    "psi": psi,
    "jensenshannon": jensenshannon,
}
_TESTS = ("ks", "chisquare")
"""Statistics whose measured value is a p-value (the others give a distance)."""


class RolloutLog(Protocol):
    """Where a rollout reads the prediction and feedback logs: the methods of
    :class:`driftloop.monitoring.runner.LogReader` it needs (a project's log has them)."""

    def predictions(self, model: str, since: datetime, until: datetime) -> pa.Table:
        """Records of ``model`` with ``since <= at < until``, ordered by time."""
        ...

    def join_labels(self, model: str, table: pa.Table, since: datetime, now: datetime) -> pa.Table:
        """``table`` joined with the labels known for it at ``now`` (``label``,
        ``label_text``; null while awaited)."""
        ...


@dataclass(frozen=True)
class Subject:
    """What is measured: ``version`` of ``model`` answering as ``role`` (``shadow`` or
    ``canary``), against the ``champion`` version; ``outputs`` maps a version to its
    signature's ``output`` (task, classes, threshold), needed by ``metric_delta``."""

    model: str
    version: int
    champion: int
    role: str
    outputs: Mapping[int, Mapping[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """One metric measured over one window, and its verdict.

    ``value`` is the challenger's figure (for ``metric_delta`` its difference from the
    champion's), ``champion_value`` the champion's figure in the same window, ``rows``
    what the figure was computed from (predictions, requests or labelled predictions).
    """

    metric: str
    phase: str
    value: float | None
    champion_value: float | None
    status: Status
    reason: str
    window: tuple[datetime, datetime]
    rows: int
    details: dict[str, Any] = field(default_factory=dict)
    step: int | None = None
    seq: int = 0
    """The rollout's measurement number (1, 2, ...): all metrics measured at once share it."""
    at: datetime | None = None
    """When it was recorded."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "metric": self.metric,
            "phase": self.phase,
            "step": self.step,
            "value": self.value,
            "champion_value": self.champion_value,
            "status": self.status,
            "reason": self.reason,
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "rows": self.rows,
            "at": None if self.at is None else self.at.isoformat(),
            "details": self.details,
        }


@dataclass(frozen=True)
class _Figure:
    """A metric's figures before judging: None where they cannot be computed."""

    value: float | None
    champion: float | None
    rows: int
    champion_rows: int
    details: dict[str, Any] = field(default_factory=dict)
    short: str | None = None
    """Why the figure is inconclusive without judging (too few rows...)."""


def _mask(table: pa.Table, version: int, role: str) -> pa.Array:
    if table.num_rows == 0:
        return pa.array([], pa.bool_())
    return pc.and_(
        pc.equal(table.column("version"), pa.scalar(version, table.column("version").type)),
        pc.equal(table.column("role"), role),
    )


def _sides(table: pa.Table, subject: Subject) -> tuple[pa.Table, pa.Table]:
    """The challenger's records and the champion's in ``table``."""
    if table.num_rows == 0 or "version" not in table.column_names:
        empty = table.slice(0, 0)
        return empty, empty
    return (
        table.filter(_mask(table, subject.version, subject.role)),
        table.filter(_mask(table, subject.champion, "champion")),
    )


_HOUR_US = 3_600_000_000


def _paired_sides(table: pa.Table, subject: Subject) -> tuple[pa.Table, pa.Table]:
    """For a live metric difference: the challenger's records in any role (its shadow
    copies and its canary answers) and the champion's, both kept only in the hours when
    both served. Labels, and how hard the requests are, change from hour to hour and day
    to day: comparing a challenger's canary day with a champion's whole rollout would
    compare days, not versions. At a 100 % step the champion serves nothing, so those
    hours drop out and the figure stays that of the hours compared."""
    if table.num_rows == 0 or "version" not in table.column_names:
        empty = table.slice(0, 0)
        return empty, empty
    mine = pc.and_(
        pc.equal(table.column("version"), pa.scalar(subject.version, table.column("version").type)),
        pc.is_in(table.column("role"), pa.array(["shadow", "canary"])),
    )
    challenger = table.filter(mine)
    champion = table.filter(_mask(table, subject.champion, "champion"))

    def hours(side: pa.Table) -> npt.NDArray[np.int64]:
        micros = pc.cast(side.column("at"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
        values: npt.NDArray[np.int64] = micros.to_numpy(zero_copy_only=False) // _HOUR_US
        return values

    mine_hours, their_hours = hours(challenger), hours(champion)
    both = np.intersect1d(mine_hours, their_hours)
    return (
        challenger.filter(pa.array(np.isin(mine_hours, both))),
        champion.filter(pa.array(np.isin(their_hours, both))),
    )


def _failed(table: pa.Table) -> npt.NDArray[np.bool_]:
    if "error" not in table.column_names or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=bool)
    failed: npt.NDArray[np.bool_] = pc.is_valid(table.column("error")).to_numpy(
        zero_copy_only=False
    )
    return failed


def _answered(table: pa.Table) -> pa.Table:
    """The records that are not failures."""
    if "error" not in table.column_names or table.num_rows == 0:
        return table
    return table.filter(pc.is_null(table.column("error")))


def _error_rate(metric: AnalysisMetric, challenger: pa.Table, champion: pa.Table) -> _Figure:
    def rate(table: pa.Table) -> tuple[float | None, int]:
        failed = int(_failed(table).sum())
        return (failed / table.num_rows if table.num_rows else None), failed

    value, errors = rate(challenger)
    base, champion_errors = rate(champion)
    return _Figure(
        value,
        base,
        challenger.num_rows,
        champion.num_rows,
        {"errors": errors, "champion_errors": champion_errors},
    )


def _latencies(table: pa.Table) -> npt.NDArray[np.float64]:
    """One latency per request (its records share it)."""
    answered = _answered(table)
    if answered.num_rows == 0:
        return np.empty(0)
    grouped = answered.group_by("request_id").aggregate([("latency_ms", "max")])
    values: npt.NDArray[np.float64] = (
        grouped.column("latency_ms_max").to_numpy(zero_copy_only=False).astype(np.float64)
    )
    return values[np.isfinite(values)]


def _latency(metric: AnalysisMetric, challenger: pa.Table, champion: pa.Table) -> _Figure:
    q = float(metric.percentile or 99.0)
    ours, theirs = _latencies(challenger), _latencies(champion)
    value = float(np.percentile(ours, q)) if ours.size else None
    base = float(np.percentile(theirs, q)) if theirs.size else None
    return _Figure(value, base, int(ours.size), int(theirs.size), {"percentile": q})


def _predictions(table: pa.Table) -> npt.NDArray[np.float64]:
    if table.num_rows == 0:
        return np.empty(0)
    values = table.column("prediction").to_numpy(zero_copy_only=False).astype(np.float64)
    finite: npt.NDArray[np.float64] = values[np.isfinite(values)]
    return finite


def _drift(metric: AnalysisMetric, challenger: pa.Table, champion: pa.Table) -> _Figure:
    ours, theirs = _predictions(challenger), _predictions(champion)
    name = metric.statistic
    details: dict[str, Any] = {
        "statistic": name,
        "kind": "p-value" if name in _TESTS else "distance",
    }
    if ours.size == 0 or theirs.size < metric.min_rows:
        return _Figure(None, None, int(ours.size), int(theirs.size), details)
    # the champion's predictions are the reference (chi-square: counts in its bins)
    statistic = _STATISTICS[name](NumericReference.fit(theirs), ours, DEFAULT_THRESHOLDS[name])
    value = statistic.p_value if statistic.p_value is not None else statistic.value
    details.update(value=statistic.value, p_value=statistic.p_value)
    details["means"] = {"challenger": float(ours.mean()), "champion": float(theirs.mean())}
    return _Figure(float(value), None, int(ours.size), int(theirs.size), details)


def _scores(table: pa.Table, task: str) -> npt.NDArray[np.float64]:
    if task == "multiclass" and "probabilities" in table.column_names:
        lists = table.column("probabilities").combine_chunks()
        width = len(lists[0].as_py() or []) if len(lists) else 0
        flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
        return flat.reshape(len(lists), width) if width else np.empty((0, 0))
    scores: npt.NDArray[np.float64] = (
        table.column("prediction").to_numpy(zero_copy_only=False).astype(np.float64)
    )
    return scores


def _live_metric(
    name: str, table: pa.Table, output: Mapping[str, Any] | None
) -> tuple[float | None, int]:
    """``name`` on the labelled, answered records of one version, and how many there are."""
    table = _answered(table)
    if not output or not output.get("task") or table.num_rows == 0:
        return None, 0
    label = table.column("label") if "label" in table.column_names else None
    text = table.column("label_text") if "label_text" in table.column_names else None
    if label is None and text is None:
        return None, 0
    y = encode_labels(label, text, dict(output))
    known = np.isfinite(y)
    if not known.any():
        return None, 0
    part = table.filter(pa.array(known))
    task = str(output["task"])
    try:
        values = compute_metrics(
            task,
            y[known],
            _scores(part, task),
            threshold=float(output.get("threshold") or 0.5),
            metrics=[name],
        )
    except InputError:
        return None, int(known.sum())
    value = values.get(name)
    return (value if value is not None and np.isfinite(value) else None), int(known.sum())


def _delta(
    metric: AnalysisMetric, challenger: pa.Table, champion: pa.Table, subject: Subject
) -> _Figure:
    name = str(metric.metric)
    ours, rows = _live_metric(name, challenger, subject.outputs.get(subject.version))
    theirs, champion_rows = _live_metric(name, champion, subject.outputs.get(subject.champion))
    details: dict[str, Any] = {"metric": name, "challenger": ours, "labelled": rows}
    details.update(champion_labelled=champion_rows)
    short = None
    if min(rows, champion_rows) < metric.min_labelled:
        short = (
            f"{rows} labelled challenger and {champion_rows} labelled champion predictions, "
            f"fewer than min_labelled {metric.min_labelled}"
        )
    elif ours is None or theirs is None:
        short = f"{name} is undefined on the labelled predictions (e.g. one class only)"
    value = None if ours is None or theirs is None else ours - theirs
    return _Figure(value, theirs, rows, champion_rows, details, short)


def _figure(
    metric: AnalysisMetric, challenger: pa.Table, champion: pa.Table, subject: Subject
) -> _Figure:
    if metric.kind == "error_rate":
        return _error_rate(metric, challenger, champion)
    if metric.kind == "latency":
        return _latency(metric, challenger, champion)
    if metric.kind == "prediction_drift":
        return _drift(metric, challenger, champion)
    return _delta(metric, challenger, champion, subject)


def _verdict(
    metric: AnalysisMetric, figure: _Figure, carried: float | None
) -> tuple[Status, str, _Figure]:
    """The status and why, and the figure judged (with the champion's value carried
    from an earlier window when a relative condition needs it and the champion served
    too little in this one)."""
    if figure.short is not None:
        return "inconclusive", figure.short, figure
    if metric.kind != "metric_delta" and figure.rows < metric.min_rows:
        return (
            "inconclusive",
            f"{figure.rows} challenger rows in the window, fewer than min_rows {metric.min_rows}",
            figure,
        )
    value = figure.value
    if value is None or not math.isfinite(value):
        return "inconclusive", "no value could be computed for the challenger", figure
    success, failure = metric.success_condition, metric.failure_condition
    relative = any(c is not None and c.relative for c in (success, failure))
    if relative and figure.champion_rows < metric.min_rows:
        if carried is None:
            return (
                "inconclusive",
                f"{figure.champion_rows} champion rows in the window, fewer than min_rows "
                f"{metric.min_rows}, to compare with",
                figure,
            )
        figure = replace(
            figure, champion=carried, details={**figure.details, "champion_carried": True}
        )
    status, reason = judge(success, failure, value, figure.champion)
    if figure.details.get("champion_carried"):
        reason += " (the champion's figure of an earlier window: it served too little in this one)"
    return status, f"{metric.name} {reason}", figure


def _clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (stored as JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class Analysed:
    """What :func:`measure` found in one window."""

    measurements: list[Measurement]
    requests: int
    """Requests the challenger answered (or shadowed) in ``[start, end)``."""


def _requests(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    return int(pc.count_distinct(table.column("request_id")).as_py() or 0)


def measure(
    metrics: Sequence[AnalysisMetric],
    log: RolloutLog,
    subject: Subject,
    *,
    start: datetime,
    end: datetime,
    since: datetime,
    now: datetime,
    phase: str,
    step: int | None = None,
    champion_values: Mapping[str, float] | None = None,
) -> Analysed:
    """Measure every metric over ``[start, end)`` (those with ``over="rollout"`` over
    ``[since, end)``, ``since`` being when the rollout started), with the labels known
    at ``now``; one read of the log per span.

    ``champion_values``: the champion's figure per metric from the last window where it
    was judged; a condition relative to the champion uses it when the champion served
    too little in this window (at a 100 % step it serves nothing)."""
    tables: dict[datetime, pa.Table] = {}
    labelled: dict[datetime, pa.Table] = {}

    def records(begin: datetime) -> pa.Table:
        if begin not in tables:
            tables[begin] = log.predictions(subject.model, begin, end)
        return tables[begin]

    def with_labels(begin: datetime) -> pa.Table:
        if begin not in labelled:
            table = records(begin)
            labelled[begin] = (
                log.join_labels(subject.model, table, begin, now) if table.num_rows else table
            )
        return labelled[begin]

    out: list[Measurement] = []
    for metric in metrics:
        begin = since if metric.over == "rollout" else start
        if metric.kind == "metric_delta":
            challenger, champion = _paired_sides(with_labels(begin), subject)
        else:
            challenger, champion = _sides(records(begin), subject)
        figure = _figure(metric, challenger, champion, subject)
        status, reason, figure = _verdict(metric, figure, (champion_values or {}).get(metric.name))
        out.append(
            Measurement(
                metric=metric.name,
                phase=phase,
                value=_clean(figure.value),
                champion_value=_clean(figure.champion),
                status=status,
                reason=reason,
                window=(begin, end),
                rows=figure.rows,
                details=_clean({**figure.details, "champion_rows": figure.champion_rows}),
                step=step,
            )
        )
    return Analysed(out, _requests(_sides(records(start), subject)[0]))
