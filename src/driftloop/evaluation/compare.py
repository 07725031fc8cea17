"""Champion against challenger on the same rows: metrics, intervals, slices, gates.

:func:`compare` gathers everything a promotion decision needs into one
:class:`EvaluationReport`, whose :meth:`~EvaluationReport.to_dict` is the JSON
report and the input of the HTML page (:func:`driftloop.evaluation.html.report_html`)
and of the model card::

    report = compare("binary", y, challenger_pred, champion_pred,
                     gates=[Change("roc_auc", min_delta=0.0)], slices={"country": country})
    report.verdict.passed
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.core import clock
from driftloop.errors import DefinitionError
from driftloop.evaluation.bootstrap import Difference, paired_bootstrap
from driftloop.evaluation.gates import (
    CalibrationBound,
    Change,
    Gate,
    SliceRegression,
    Threshold,
    Verdict,
    evaluate_gates,
)
from driftloop.evaluation.metrics import METRICS, CustomFn, Metric, calibration, compute_metrics
from driftloop.evaluation.slices import SliceResult, slice_metrics

__all__ = ["EvaluationReport", "check_gates", "compare", "roc_points"]

ROC_POINTS = 200
"""At most this many points of each ROC curve are kept in a report."""


def _num(value: Any) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class EvaluationReport:
    """The evidence for one champion-versus-challenger decision."""

    model: str
    task: str
    rows: int
    threshold: float
    confidence: float
    resamples: int
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    differences: dict[str, Difference]
    challenger_slices: list[SliceResult]
    champion_slices: list[SliceResult] | None
    calibration: dict[str, Any] | None
    roc: dict[str, Any] | None
    verdict: Verdict
    created_at: datetime = field(default_factory=clock.now)
    greater_is_better: dict[str, bool] = field(default_factory=dict)
    """Per metric, whether higher is better (custom metrics say so themselves)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (NaN values are None)."""
        champion_slices = {(s.column, s.label): s for s in (self.champion_slices or [])}
        metrics = []
        for name, value in self.challenger_metrics.items():
            diff = self.differences.get(name)
            metrics.append(
                {
                    "name": name,
                    "greater_is_better": self.greater_is_better.get(name, _builtin_direction(name)),
                    "challenger": _num(value),
                    "champion": _num(self.champion_metrics.get(name))
                    if self.champion_metrics is not None
                    else None,
                    "difference": None
                    if diff is None
                    else {
                        "observed": _num(diff.observed),
                        "low": _num(diff.low),
                        "high": _num(diff.high),
                        "std_error": _num(diff.std_error),
                        "resamples": diff.resamples,
                    },
                }
            )
        slices = []
        for s in self.challenger_slices:
            other = champion_slices.get((s.column, s.label))
            slices.append(
                {
                    "column": s.column,
                    "label": s.label,
                    "count": s.count,
                    "too_small": s.too_small,
                    "challenger": None
                    if s.metrics is None
                    else {k: _num(v) for k, v in s.metrics.items()},
                    "champion": None
                    if other is None or other.metrics is None
                    else {k: _num(v) for k, v in other.metrics.items()},
                }
            )
        return {
            "model": self.model,
            "task": self.task,
            "created_at": self.created_at.isoformat(),
            "rows": self.rows,
            "threshold": self.threshold,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "challenger": self.challenger,
            "champion": self.champion,
            "metrics": metrics,
            "slices": slices,
            "calibration": self.calibration,
            "roc": self.roc,
            "verdict": self.verdict.to_dict(),
        }


def _builtin_direction(name: str) -> bool:
    return METRICS.get(name).greater_is_better if name in METRICS else True


def _directions(custom: Mapping[str, CustomFn | Metric] | None) -> Callable[[str], bool]:
    """Whether higher is better for a metric: a custom :class:`Metric` says so itself."""

    def better(name: str) -> bool:
        metric = (custom or {}).get(name)
        if isinstance(metric, Metric):
            return metric.greater_is_better
        return _builtin_direction(name)

    return better


def roc_points(
    y: npt.NDArray[np.float64], p: npt.NDArray[np.float64], *, points: int = ROC_POINTS
) -> dict[str, Any]:
    """The ROC curve (false and true positive rates at each distinct score), thinned to
    at most ``points`` points, and its area."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    distinct = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]
    tps = np.cumsum(ys)[distinct]
    fps = (distinct + 1) - tps
    positives, negatives = tps[-1] if len(tps) else 0.0, fps[-1] if len(fps) else 0.0
    if positives == 0 or negatives == 0:
        return {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": None}
    fpr = np.r_[0.0, fps / negatives]
    tpr = np.r_[0.0, tps / positives]
    auc = float(np.trapezoid(tpr, fpr))
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {
        "fpr": [round(float(v), 5) for v in fpr],
        "tpr": [round(float(v), 5) for v in tpr],
        "auc": auc,
    }


def _calibration(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> dict[str, Any]:
    table = calibration(y, p)
    return {
        "ece": _num(table.ece),
        "bins": [{k: _num(v) for k, v in row.items()} for row in table.rows()],
    }


def check_gates(gates: Sequence[Any], task: str, custom: Mapping[str, Any] | None = None) -> None:
    """Refuse gates that are not gate objects or name metrics the task does not have."""
    known = {*METRICS.names(task), *(custom or {})}
    for gate in gates:
        if not isinstance(gate, Threshold | Change | SliceRegression | CalibrationBound):
            raise DefinitionError(
                f"{gate!r} is not a gate; use Threshold, Change, SliceRegression or "
                "CalibrationBound from driftloop.evaluation.gates"
            )
        if gate.metric not in known:
            raise DefinitionError(
                f"gate {gate.describe()!r} names metric {gate.metric!r}, which a {task} model "
                f"does not have (known: {', '.join(sorted(known))})"
            )


def compare(
    task: str,
    y: Any,
    challenger_pred: Any,
    champion_pred: Any | None = None,
    *,
    model: str = "",
    challenger: Mapping[str, Any] | None = None,
    champion: Mapping[str, Any] | None = None,
    gates: Sequence[Gate] = (),
    slices: Mapping[str, Any] | None = None,
    custom: Mapping[str, CustomFn | Metric] | None = None,
    rows: Mapping[str, Any] | None = None,
    threshold: float = 0.5,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_size: int = 30,
    numeric_bins: int = 5,
) -> EvaluationReport:
    """Score the challenger (and the champion, if any) on the rows of ``y``.

    Every metric of the task and ``custom`` business metrics; with a champion, the
    paired bootstrap interval of each difference; per-slice metrics of ``slices``
    (columns by name); for binary tasks the reliability table and the ROC curve; and
    the verdict of ``gates``. ``challenger`` / ``champion`` describe the two models
    (``label``, ``version``...) for the report.
    """
    check_gates(gates, task, custom)
    kw: dict[str, Any] = {"threshold": threshold, "custom": custom, "rows": rows}
    b = compute_metrics(task, y, challenger_pred, **kw)
    a = compute_metrics(task, y, champion_pred, **kw) if champion_pred is not None else None
    yy = np.asarray(y, dtype=np.float64)
    pb = np.asarray(challenger_pred, dtype=np.float64)
    differences: dict[str, Difference] = {}
    if champion_pred is not None:
        differences = paired_bootstrap(
            task,
            y,
            champion_pred,
            challenger_pred,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            threshold=threshold,
            custom=custom,
            rows=rows,
        )
    slice_kw: dict[str, Any] = {
        "numeric_bins": numeric_bins,
        "min_size": min_slice_size,
        "threshold": threshold,
    }
    columns = dict(slices or {})
    b_slices = slice_metrics(task, y, challenger_pred, columns, **slice_kw) if columns else []
    a_slices = (
        slice_metrics(task, y, champion_pred, columns, **slice_kw)
        if columns and champion_pred is not None
        else None
    )
    cal: dict[str, Any] | None = None
    roc: dict[str, Any] | None = None
    if task == "binary":
        pa_ = np.asarray(champion_pred, dtype=np.float64) if champion_pred is not None else None
        cal = {
            "challenger": _calibration(yy, pb),
            "champion": _calibration(yy, pa_) if pa_ is not None else None,
        }
        roc = {
            "challenger": roc_points(yy, pb),
            "champion": roc_points(yy, pa_) if pa_ is not None else None,
        }
    better = _directions(custom)
    verdict = evaluate_gates(
        gates,
        challenger=b,
        champion=a,
        differences=differences,
        challenger_slices=b_slices,
        champion_slices=a_slices,
        greater_is_better=better,
    )
    return EvaluationReport(
        model=model,
        task=task,
        rows=len(yy),
        threshold=threshold,
        confidence=confidence,
        resamples=resamples if champion_pred is not None else 0,
        challenger=dict(challenger or {"label": "challenger", "version": None}),
        champion=dict(champion or {"label": "champion"}) if champion_pred is not None else None,
        challenger_metrics=b,
        champion_metrics=a,
        differences=differences,
        challenger_slices=b_slices,
        champion_slices=a_slices,
        calibration=cal,
        roc=roc,
        verdict=verdict,
        greater_is_better={name: better(name) for name in b},
    )
