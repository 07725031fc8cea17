"""Metrics per slice of the rows: per category value and per numeric quantile bin.

Each column is turned into integer group codes in one pass (``np.unique`` for
categories, ``np.searchsorted`` on quantile edges for numbers); the groups' 0/1
membership rows are then the weight matrix of the task's metric kernel, so every
slice of a column is evaluated in a few matrix operations (in chunks of groups to
bound memory), with the same code as the overall metrics.

A numeric column with at most ``numeric_bins`` distinct values is sliced per value,
like a category. Missing values (None, NaN) form their own ``"<col> is missing"``
slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.errors import InputError
from driftloop.evaluation.bootstrap import CHUNK_ELEMENTS
from driftloop.evaluation.metrics import make_kernel, validate

__all__ = ["SliceResult", "slice_metrics"]


@dataclass(frozen=True)
class SliceResult:
    """One slice: which rows (``label``), how many, and their metrics.

    ``metrics`` is ``None`` and ``too_small`` is true when the slice has fewer than
    ``min_size`` rows; ``low``/``high`` are the bin bounds of a numeric slice.
    """

    column: str
    label: str
    count: int
    metrics: dict[str, float] | None
    too_small: bool
    value: Any = None
    low: float | None = None
    high: float | None = None


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _groups(
    name: str, values: Any, n: int, numeric_bins: int
) -> tuple[npt.NDArray[np.intp], list[dict[str, Any]]]:
    """Group code of every row, and per code its label and value or bounds."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise InputError(
            f"slice column {name!r} must be 1-D with {n} values, got shape {arr.shape}",
            column=name,
        )
    if arr.dtype.kind in "iuf":
        x = arr.astype(np.float64)
        missing = np.isnan(x)
        present = x[~missing]
        distinct = np.unique(present)
        if len(distinct) > numeric_bins:
            edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, numeric_bins + 1)))
            k = len(edges) - 1
            codes = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, k - 1)
            info = [
                {
                    "label": f"{name} in [{_fmt(edges[i])}, {_fmt(edges[i + 1])}"
                    + ("]" if i == k - 1 else ")"),
                    "low": float(edges[i]),
                    "high": float(edges[i + 1]),
                }
                for i in range(k)
            ]
        else:
            codes = np.searchsorted(distinct, x)
            k = len(distinct)
            info = [{"label": f"{name} = {_fmt(v)}", "value": v.item()} for v in distinct]
        codes[missing] = k
        info.append({"label": f"{name} is missing"})
        return codes.astype(np.intp), info
    obj = arr.astype(object)
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in obj], bool)
    keys = obj.astype(str) if arr.dtype.kind == "O" else arr.astype(str)
    keys[missing] = ""
    uniq, first, codes = np.unique(keys, return_index=True, return_inverse=True)
    info = [
        {"label": f"{name} is missing"}
        if missing[first[i]]
        else {"label": f"{name} = {uniq[i]}", "value": obj[first[i]]}
        for i in range(len(uniq))
    ]
    return codes.astype(np.intp), info


def slice_metrics(
    task: str,
    y: Any,
    pred: Any,
    columns: Mapping[str, Any],
    *,
    numeric_bins: int = 5,
    min_size: int = 30,
    threshold: float = 0.5,
    bins: int = 10,
) -> list[SliceResult]:
    """Count and metrics of every slice of every column, column by column in order.

    >>> import numpy as np
    >>> y = np.array([0, 1] * 50)
    >>> p = np.where(y == 1, 0.8, 0.3)
    >>> out = slice_metrics("binary", y, p, {"country": ["fr"] * 90 + ["de"] * 10})
    >>> [(s.label, s.count, s.too_small) for s in out]
    [('country = de', 10, True), ('country = fr', 90, False)]
    >>> out[1].metrics["accuracy"]
    1.0
    """
    yy, pp = validate(task, y, pred)
    if numeric_bins < 1:
        raise InputError(f"numeric_bins must be at least 1, got {numeric_bins}", field="bins")
    n = len(yy)
    kernel = make_kernel(task, yy, pp, threshold=threshold, bins=bins)
    results: list[SliceResult] = []
    for name, values in columns.items():
        codes, info = _groups(name, values, n, numeric_bins)
        counts = np.bincount(codes, minlength=len(info))
        big = np.flatnonzero(counts >= max(min_size, 1))
        values_by_group: dict[int, dict[str, float]] = {}
        step = max(1, CHUNK_ELEMENTS // n)
        for start in range(0, len(big), step):
            chosen = big[start : start + step]
            weights = (codes[None, :] == chosen[:, None]).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = kernel.evaluate(weights)
            for j, group in enumerate(chosen):
                values_by_group[int(group)] = {m: float(out[m][j]) for m in kernel.names}
        for group, meta in enumerate(info):
            count = int(counts[group])
            if count == 0:
                continue
            results.append(
                SliceResult(
                    column=name,
                    label=meta["label"],
                    count=count,
                    metrics=values_by_group.get(group),
                    too_small=group not in values_by_group,
                    value=meta.get("value"),
                    low=meta.get("low"),
                    high=meta.get("high"),
                )
            )
    return results
