"""Model metrics in plain numpy, computed for many row weightings at once.

Every built-in metric is computed by a *kernel*: the per-row work (losses, hits,
the sort order for the ranking metrics) is done once, and :meth:`evaluate` then
turns a ``(r, n)`` matrix of row weights into ``r`` values per metric with matrix
products and cumulative sums. One weighting of all ones is the plain metric; the
bootstrap passes resample counts, the slices pass group masks, so all three share
one implementation (checked against scikit-learn in the tests).

Tasks and their metrics (``↑`` higher is better):

- ``binary`` (``y`` in {0, 1}, ``pred`` the score of class 1 in [0, 1]):
  ``roc_auc`` ↑, ``pr_auc`` ↑ (average precision), ``log_loss``, ``brier``,
  ``accuracy`` ↑, ``precision`` ↑, ``recall`` ↑, ``f1`` ↑ (a row is predicted
  positive when ``pred >= threshold``) and ``ece`` (expected calibration error).
- ``multiclass`` (``y`` labels 0..k-1, ``pred`` an ``n x k`` probability matrix):
  ``accuracy`` ↑, ``macro_f1`` ↑, ``log_loss``.
- ``regression``: ``rmse``, ``mae``, ``mape``, ``r2`` ↑.

Undefined values are NaN rather than errors, because a slice or a resample may
legitimately lack a class: ``roc_auc`` and ``pr_auc`` when only one class is
present (``pr_auc`` needs a positive), ``r2`` when ``y`` is constant, ``mape``
when every ``y`` is 0. ``precision``, ``recall`` and ``f1`` with a zero
denominator are 0, as scikit-learn's ``zero_division=0``.

>>> import numpy as np
>>> m = compute_metrics("binary", np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> round(m["roc_auc"], 2), m["accuracy"]
(0.75, 0.75)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from driftloop.errors import InputError, NotFoundError, StateError

__all__ = [
    "EPS",
    "METRICS",
    "TASKS",
    "Calibration",
    "CustomFn",
    "Metric",
    "MetricRegistry",
    "Task",
    "calibration",
    "compute_metrics",
]

FloatArray = npt.NDArray[np.float64]
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
EPS = 1e-15
"""Probabilities are clipped to ``[EPS, 1 - EPS]`` before taking logs."""

CustomFn = Callable[[npt.NDArray[Any], npt.NDArray[Any], Mapping[str, npt.NDArray[Any]]], float]
"""A business metric: ``fn(y, pred, rows) -> float``; ``rows`` holds extra columns."""


@dataclass(frozen=True)
class Metric:
    """A named metric and the direction in which it improves.

    Built-in metrics have ``fn=None`` (their kernel computes them); a custom one
    carries ``fn(y, pred, rows)``, where ``rows`` maps extra column names to
    arrays aligned with ``y`` (e.g. a transaction amount for a cost metric).

    >>> Metric("cost", lambda y, p, rows: 0.0, greater_is_better=False).greater_is_better
    False
    """

    name: str
    fn: CustomFn | None = None
    greater_is_better: bool = True
    tasks: tuple[str, ...] = TASKS


class MetricRegistry:
    """The metrics known by name: the built-ins plus registered business metrics.

    >>> reg = MetricRegistry()
    >>> reg.register(Metric("cost", lambda y, p, rows: float(len(y)), greater_is_better=False))
    >>> reg.get("cost").greater_is_better, "roc_auc" in reg.names("binary")
    (False, True)
    """

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        for task, table in _BUILTIN.items():
            for name, up in table.items():
                known = self._metrics.get(name)
                tasks = (*known.tasks, task) if known else (task,)
                self._metrics[name] = Metric(name, None, up, tasks)

    def register(self, metric: Metric) -> None:
        """Add a custom metric; a name already taken is a :class:`StateError`."""
        if metric.fn is None:
            raise InputError(f"metric {metric.name!r} needs a function", metric=metric.name)
        if metric.name in self._metrics:
            raise StateError(f"a metric named {metric.name!r} is already registered")
        self._metrics[metric.name] = metric

    def get(self, name: str) -> Metric:
        """The metric called ``name``, or :class:`NotFoundError` listing the known ones."""
        try:
            return self._metrics[name]
        except KeyError:
            raise NotFoundError("metric", name, known=sorted(self._metrics)) from None

    def names(self, task: str | None = None) -> list[str]:
        """Names of the metrics that apply to ``task`` (all when ``None``)."""
        return [n for n, m in self._metrics.items() if task is None or task in m.tasks]

    def __contains__(self, name: object) -> bool:
        return name in self._metrics


_BUILTIN: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True,
        "pr_auc": True,
        "log_loss": False,
        "brier": False,
        "accuracy": True,
        "precision": True,
        "recall": True,
        "f1": True,
        "ece": False,
    },
    "multiclass": {"accuracy": True, "macro_f1": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "mape": False, "r2": True},
}

METRICS = MetricRegistry()
"""The default registry: register business metrics here to use them by name."""


# ---------------------------------------------------------------- validation


def check_task(task: str) -> None:
    """Raise :class:`InputError` unless ``task`` is one of :data:`TASKS`."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r} (expected one of {', '.join(TASKS)})", task=task)


def _numeric(values: Any, column: str, ndim: int) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"column {column!r} is not numeric: {exc}", column=column) from None
    if arr.ndim != ndim:
        shape = "a 1-D array" if ndim == 1 else "an n x k matrix"
        raise InputError(f"column {column!r} must be {shape}, got shape {arr.shape}", column=column)
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argmax(bad.reshape(len(arr), -1).any(axis=1)))
        raise InputError(
            f"column {column!r} has a NaN or infinite value at row {row}", column=column, row=row
        )
    return arr


def _first_row(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.argmax(mask.reshape(len(mask), -1).any(axis=1)))


def _check_probabilities(p: FloatArray, column: str) -> None:
    bad = (p < 0.0) | (p > 1.0)
    if bad.any():
        row = _first_row(bad)
        raise InputError(
            f"column {column!r} holds probabilities but has a value outside [0, 1] at row {row}",
            column=column,
            row=row,
        )


def validate(task: str, y: Any, pred: Any) -> tuple[FloatArray, FloatArray]:
    """Check and convert ``y`` and ``pred`` for ``task``; bad input is an :class:`InputError`."""
    check_task(task)
    yy = _numeric(y, "y", 1)
    pp = _numeric(pred, "pred", 2 if task == "multiclass" else 1)
    if len(yy) != len(pp):
        raise InputError(
            f"columns 'y' and 'pred' differ in length ({len(yy)} vs {len(pp)})", column="pred"
        )
    if len(yy) == 0:
        raise InputError("no rows to evaluate", column="y")
    if task == "binary":
        bad = (yy != 0.0) & (yy != 1.0)
        if bad.any():
            row = _first_row(bad)
            raise InputError(
                f"column 'y' must be 0 or 1 for a binary task, got {yy[row]!r} at row {row}",
                column="y",
                row=row,
            )
        _check_probabilities(pp, "pred")
    elif task == "multiclass":
        k = pp.shape[1]
        bad = (yy != np.round(yy)) | (yy < 0) | (yy >= k)
        if bad.any():
            row = _first_row(bad)
            raise InputError(
                f"column 'y' must hold class labels 0..{k - 1}, got {yy[row]!r} at row {row}",
                column="y",
                row=row,
            )
        _check_probabilities(pp, "pred")
        off = np.abs(pp.sum(axis=1) - 1.0) > 1e-6
        if off.any():
            row = _first_row(off)
            raise InputError(
                f"column 'pred' rows must sum to 1, row {row} sums to {pp[row].sum():.6g}",
                column="pred",
                row=row,
            )
    return yy, pp


# ---------------------------------------------------------------- kernels


class Kernel(Protocol):
    """Per-row work done once; :meth:`evaluate` maps row weights to metric values."""

    names: tuple[str, ...]

    def evaluate(self, weights: FloatArray) -> dict[str, FloatArray]:
        """Metric values, one per row of the ``(r, n)`` weight matrix."""
        ...


def _ratio(num: FloatArray, den: FloatArray, empty: float) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, empty)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _bin_index(p: FloatArray, bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bin of each probability: ``[i/bins, (i+1)/bins)``, the last one closed."""
    return np.minimum((p * bins).astype(np.intp), bins - 1)


class BinaryKernel:
    """Binary metrics for many weightings of the same rows."""

    names = tuple(_BUILTIN["binary"])

    def __init__(self, y: FloatArray, p: FloatArray, threshold: float, bins: int) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"threshold must be in [0, 1], got {threshold}", field="threshold")
        if bins < 1:
            raise InputError(f"bins must be at least 1, got {bins}", field="bins")
        clipped = np.clip(p, EPS, 1 - EPS)
        hit = (p >= threshold).astype(np.float64)
        gaps = np.zeros((len(p), bins))
        gaps[np.arange(len(p)), _bin_index(p, bins)] = p - y
        # columns: positives, log loss, squared error, correct, predicted positive, true positive
        self._columns = np.column_stack(
            [
                y,
                -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)),
                (p - y) ** 2,
                (hit == y).astype(np.float64),
                hit,
                hit * y,
                gaps,
            ]
        )
        self._order = np.argsort(p, kind="stable")
        ps = p[self._order]
        self._sorted_y = y[self._order]
        starts = np.flatnonzero(np.concatenate([[True], ps[1:] != ps[:-1]]))
        self._starts = starts if len(starts) < len(p) else None
        # groups of tied scores (single rows when no ties) that hold a positive row:
        # only those add to the AUC and AP sums, so the work past one cumsum is O(positives)
        has_pos = (
            self._sorted_y if self._starts is None else np.add.reduceat(self._sorted_y, starts)
        )
        self._pos_groups = np.flatnonzero(has_pos > 0)

    def evaluate(self, weights: FloatArray) -> dict[str, FloatArray]:
        """All binary metrics for each row of ``weights``."""
        total = weights.sum(axis=1)
        s = weights @ self._columns
        pos, neg = s[:, 0], total - s[:, 0]
        tp, pp = s[:, 5], s[:, 4]
        auc, ap = self._ranking(weights, pos, neg)
        return {
            "roc_auc": auc,
            "pr_auc": ap,
            "log_loss": s[:, 1] / total,
            "brier": s[:, 2] / total,
            "accuracy": s[:, 3] / total,
            "precision": _ratio(tp, pp, 0.0),
            "recall": _ratio(tp, pos, 0.0),
            "f1": _ratio(2 * tp, pp + pos, 0.0),
            "ece": np.abs(s[:, 6:]).sum(axis=1) / total,
        }

    def _ranking(
        self, weights: FloatArray, pos: FloatArray, neg: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """ROC AUC (Mann-Whitney, ties count half) and average precision, by ascending score."""
        w = np.take(weights, self._order, axis=1)
        if self._starts is None:
            gp = np.take(w, self._pos_groups, axis=1)
        else:  # sum the weights of tied scores into one group
            gp = np.add.reduceat(w * self._sorted_y, self._starts, axis=1)[:, self._pos_groups]
            w = np.add.reduceat(w, self._starts, axis=1)
        gw = np.take(w, self._pos_groups, axis=1)
        up_to = np.cumsum(w, axis=1, out=w)[:, self._pos_groups]  # all weight, score <= group
        pos_up_to = np.cumsum(gp, axis=1)
        neg_below_half = up_to - pos_up_to - 0.5 * (gw - gp)  # negatives below + half the tied
        auc = _ratio(np.einsum("ij,ij->i", gp, neg_below_half), pos * neg, np.nan)
        auc[(pos == 0) | (neg == 0)] = np.nan
        # precision at the threshold "score >= group": positives there over all rows there
        called = (pos + neg)[:, None] - up_to + gw
        hits = pos[:, None] - pos_up_to + gp
        precision = np.divide(hits, np.maximum(called, 1e-300))
        ap = _ratio(np.einsum("ij,ij->i", gp, precision), pos, np.nan)
        return auc, ap


class MulticlassKernel:
    """Multiclass metrics (``pred`` an ``n x k`` probability matrix)."""

    names = tuple(_BUILTIN["multiclass"])

    def __init__(self, y: FloatArray, p: FloatArray) -> None:
        n, k = p.shape
        labels = y.astype(np.intp)
        predicted = np.argmax(p, axis=1)
        rows = np.arange(n)
        true_hot = np.zeros((n, k))
        true_hot[rows, labels] = 1.0
        pred_hot = np.zeros((n, k))
        pred_hot[rows, predicted] = 1.0
        self._k = k
        self._columns = np.column_stack(
            [
                (predicted == labels).astype(np.float64),
                -np.log(np.clip(p[rows, labels], EPS, 1.0)),
                true_hot,
                pred_hot,
                true_hot * pred_hot,
            ]
        )

    def evaluate(self, weights: FloatArray) -> dict[str, FloatArray]:
        """Accuracy, macro F1 (over classes seen in ``y`` or predicted) and log loss."""
        total = weights.sum(axis=1)
        s = weights @ self._columns
        k = self._k
        true_n, pred_n, tp = s[:, 2 : 2 + k], s[:, 2 + k : 2 + 2 * k], s[:, 2 + 2 * k :]
        present = (true_n + pred_n) > 0
        f1 = _ratio(2 * tp, true_n + pred_n, 0.0)
        return {
            "accuracy": s[:, 0] / total,
            "macro_f1": _ratio((f1 * present).sum(axis=1), present.sum(axis=1), np.nan),
            "log_loss": s[:, 1] / total,
        }


class RegressionKernel:
    """Regression metrics; ``mape`` skips rows where ``y == 0``."""

    names = tuple(_BUILTIN["regression"])

    def __init__(self, y: FloatArray, p: FloatArray) -> None:
        err = p - y
        nonzero = y != 0
        ape = np.divide(np.abs(err), np.abs(y), out=np.zeros_like(y), where=nonzero)
        self._columns = np.column_stack(
            [err**2, np.abs(err), ape, nonzero.astype(np.float64), y, y**2]
        )

    def evaluate(self, weights: FloatArray) -> dict[str, FloatArray]:
        """RMSE, MAE, MAPE (a fraction, over rows with ``y != 0``) and R²."""
        total = weights.sum(axis=1)
        s = weights @ self._columns
        ss_tot = s[:, 5] - s[:, 4] ** 2 / np.where(total > 0, total, 1.0)
        ss_tot[ss_tot <= 1e-12 * np.maximum(s[:, 5], 1.0)] = 0.0
        return {
            "rmse": np.sqrt(s[:, 0] / total),
            "mae": s[:, 1] / total,
            "mape": _ratio(s[:, 2], s[:, 3], np.nan),
            "r2": 1.0 - _ratio(s[:, 0], ss_tot, np.nan),
        }


def make_kernel(
    task: str, y: FloatArray, pred: FloatArray, *, threshold: float = 0.5, bins: int = 10
) -> Kernel:
    """The kernel for ``task`` over already validated ``y`` and ``pred``."""
    if task == "binary":
        return BinaryKernel(y, pred, threshold, bins)
    if task == "multiclass":
        return MulticlassKernel(y, pred)
    return RegressionKernel(y, pred)


def resolve_metrics(
    task: str, metrics: Iterable[str] | None, custom: Mapping[str, CustomFn | Metric] | None
) -> tuple[list[str], dict[str, Metric]]:
    """Split requested names into built-ins of ``task`` and custom metrics (by name)."""
    builtin = list(_BUILTIN[task])
    extra: dict[str, Metric] = {}
    for name, fn in (custom or {}).items():
        if name in builtin:
            raise InputError(f"custom metric {name!r} shadows a built-in metric", metric=name)
        extra[name] = fn if isinstance(fn, Metric) else Metric(name, fn)
    if metrics is None:
        return builtin, extra
    chosen: list[str] = []
    for name in metrics:
        if name in builtin or name in extra:
            chosen.append(name)
            continue
        metric = METRICS.get(name)
        if metric.fn is None:
            raise InputError(f"metric {name!r} does not apply to a {task} task", metric=name)
        extra[name] = metric
        chosen.append(name)
    return [n for n in chosen if n in builtin], {n: extra[n] for n in chosen if n in extra}


def as_rows(rows: Mapping[str, Any] | None, n: int) -> dict[str, npt.NDArray[Any]]:
    """Extra per-row columns for custom metrics, checked to have ``n`` values each."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, values in (rows or {}).items():
        arr = np.asarray(values)
        if len(arr) != n:
            raise InputError(f"column {name!r} has {len(arr)} values, expected {n}", column=name)
        out[name] = arr
    return out


def compute_metrics(
    task: str,
    y: Any,
    pred: Any,
    *,
    threshold: float = 0.5,
    bins: int = 10,
    metrics: Iterable[str] | None = None,
    custom: Mapping[str, CustomFn | Metric] | None = None,
    rows: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Every metric of ``task`` (or those named in ``metrics``) for one model's predictions.

    ``custom`` adds business metrics by name, each called as ``fn(y, pred, rows)``;
    names in ``metrics`` that are not built-ins are looked up in :data:`METRICS`.

    >>> import numpy as np
    >>> y = np.array([1.0, 2.0, 4.0])
    >>> compute_metrics("regression", y, y + 1, metrics=["mae", "rmse"])
    {'mae': 1.0, 'rmse': 1.0}
    >>> cost = lambda y, p, rows: float((rows["amount"] * (p < 0.5) * y).sum())
    >>> compute_metrics("binary", [1, 0], [0.2, 0.1], metrics=["cost"],
    ...                 custom={"cost": cost}, rows={"amount": [30.0, 5.0]})
    {'cost': 30.0}
    """
    yy, pp = validate(task, y, pred)
    names, extra = resolve_metrics(task, metrics, custom)
    out: dict[str, float] = {}
    if names:
        kernel = make_kernel(task, yy, pp, threshold=threshold, bins=bins)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = kernel.evaluate(np.ones((1, len(yy))))
        out = {name: float(values[name][0]) for name in names}
    columns = as_rows(rows, len(yy))
    for name, metric in extra.items():
        assert metric.fn is not None
        out[name] = float(metric.fn(yy, pp, columns))
    return out


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A reliability table over equal-width probability bins and its ECE.

    ``count[i]`` rows fall in ``[edges[i], edges[i + 1])`` (the last bin closed);
    ``mean_predicted`` and ``observed_rate`` are NaN for an empty bin. ECE is the
    count-weighted mean of ``|mean_predicted - observed_rate|``.
    """

    edges: FloatArray
    count: npt.NDArray[np.int64]
    mean_predicted: FloatArray
    observed_rate: FloatArray
    ece: float

    def rows(self) -> list[dict[str, float]]:
        """The table as JSON-ready rows (empty bins included, with NaN means)."""
        return [
            {
                "low": float(self.edges[i]),
                "high": float(self.edges[i + 1]),
                "count": int(self.count[i]),
                "mean_predicted": float(self.mean_predicted[i]),
                "observed_rate": float(self.observed_rate[i]),
            }
            for i in range(len(self.count))
        ]


def calibration(y: Any, pred: Any, *, bins: int = 10) -> Calibration:
    """The reliability table of binary predictions.

    >>> cal = calibration([0, 1, 1, 1], [0.1, 0.9, 0.8, 0.45], bins=2)
    >>> cal.count.tolist(), cal.observed_rate.tolist(), round(cal.ece, 4)
    ([2, 2], [0.5, 1.0], 0.1875)
    """
    yy, pp = validate("binary", y, pred)
    if bins < 1:
        raise InputError(f"bins must be at least 1, got {bins}", field="bins")
    index = _bin_index(pp, bins)
    count = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=pp, minlength=bins)
    sum_y = np.bincount(index, weights=yy, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        rate = np.where(count > 0, sum_y / count, np.nan)
    ece = float(np.abs(sum_p - sum_y).sum() / len(yy))
    return Calibration(np.linspace(0.0, 1.0, bins + 1), count, mean_p, rate, ece)
