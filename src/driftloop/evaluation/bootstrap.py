"""Paired bootstrap confidence intervals for the difference between two models.

Both models are scored on the same rows, and each resample draws the same rows for
both, so the interval reflects how the *difference* varies, which is much tighter
than comparing two separate intervals.

A resample is turned into a row of counts (how often each row was drawn): every
built-in metric is a weighted metric, so one ``(r, n)`` count matrix per chunk of
resamples feeds both models' kernels (see :mod:`driftloop.evaluation.metrics`), and
no per-resample Python loop runs unless custom metrics are asked for. Chunks bound
memory to about ``CHUNK_ELEMENTS`` weights; each chunk has its own random stream
spawned from ``seed``, so results are deterministic for a seed whatever the number
of ``threads`` (one by default: on a 2-core machine a second thread bought nothing,
the work being memory-bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftloop.errors import InputError
from driftloop.evaluation.metrics import (
    CustomFn,
    FloatArray,
    Metric,
    as_rows,
    make_kernel,
    resolve_metrics,
    validate,
)

__all__ = ["CHUNK_ELEMENTS", "Difference", "paired_bootstrap"]

CHUNK_ELEMENTS = 1 << 22
"""About how many weights (resamples x rows) one chunk holds: 4M, 32 MB as float64."""


@dataclass(frozen=True)
class Difference:
    """How much better or worse model b (challenger) is than model a (champion).

    ``observed`` is ``b - a`` on the rows as given; ``low`` and ``high`` are the
    percentile interval of the resampled differences and ``std_error`` their
    standard deviation. Resamples where a metric is undefined (NaN, e.g. AUC of a
    resample with one class) are left out of the interval; ``resamples`` counts
    those that were used.
    """

    metric: str
    a: float
    b: float
    observed: float
    low: float
    high: float
    std_error: float
    confidence: float
    resamples: int

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of zero."""
        return bool(self.low > 0 or self.high < 0)


def _counts(rng: np.random.Generator, size: int, n: int) -> FloatArray:
    """Row counts of ``size`` resamples of ``n`` rows drawn with replacement."""
    idx = rng.integers(0, n, size=(size, n))
    idx += (np.arange(size) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def paired_bootstrap(
    task: str,
    y: Any,
    pred_a: Any,
    pred_b: Any,
    *,
    metrics: Iterable[str] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float = 0.5,
    bins: int = 10,
    custom: Mapping[str, CustomFn | Metric] | None = None,
    rows: Mapping[str, Any] | None = None,
    threads: int = 1,
) -> dict[str, Difference]:
    """Observed difference ``b - a`` of each metric with its bootstrap interval.

    ``pred_a`` is usually the champion and ``pred_b`` the challenger, both scored on
    the rows of ``y``. Custom metrics (``custom``, or registered names in
    ``metrics``) are called once per resample on the drawn rows: correct, but a
    Python loop, so keep them cheap.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 500)
    >>> noise = rng.normal(0, 1, 500)
    >>> a = 1 / (1 + np.exp(-(y - 0.5 + 2 * noise)))
    >>> b = 1 / (1 + np.exp(-(y - 0.5 + 0.5 * noise)))
    >>> d = paired_bootstrap("binary", y, a, b, metrics=["roc_auc"], resamples=200)
    >>> d["roc_auc"].low > 0
    True
    """
    yy, pa = validate(task, y, pred_a)
    _, pb = validate(task, y, pred_b)
    if pa.shape != pb.shape:
        raise InputError(
            f"pred_a and pred_b differ in shape ({pa.shape} vs {pb.shape})", column="pred_b"
        )
    if resamples < 1:
        raise InputError(f"resamples must be at least 1, got {resamples}", field="resamples")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}", field="confidence")
    names, extra = resolve_metrics(task, metrics, custom)
    n = len(yy)
    columns = as_rows(rows, n)
    ka = make_kernel(task, yy, pa, threshold=threshold, bins=bins)
    kb = make_kernel(task, yy, pb, threshold=threshold, bins=bins)

    def evaluate(weights: FloatArray) -> dict[str, FloatArray]:
        """Per metric, a (2, r) array: model a's values then model b's."""
        out: dict[str, FloatArray] = {}
        if names:
            with np.errstate(divide="ignore", invalid="ignore"):
                va, vb = ka.evaluate(weights), kb.evaluate(weights)
            out = {m: np.stack([va[m], vb[m]]) for m in names}
        for m, metric in extra.items():
            assert metric.fn is not None
            values = np.empty((2, len(weights)))
            for r, counts in enumerate(weights.astype(np.intp)):
                drawn = np.repeat(np.arange(n), counts)
                sub = {c: v[drawn] for c, v in columns.items()}
                values[0, r] = metric.fn(yy[drawn], pa[drawn], sub)
                values[1, r] = metric.fn(yy[drawn], pb[drawn], sub)
            out[m] = values
        return out

    observed = evaluate(np.ones((1, n)))
    per_chunk = max(1, min(resamples, CHUNK_ELEMENTS // n))
    sizes = [per_chunk] * (resamples // per_chunk)
    if resamples % per_chunk:
        sizes.append(resamples % per_chunk)
    streams = np.random.SeedSequence(seed).spawn(len(sizes))

    def run(i: int) -> dict[str, FloatArray]:
        rng = np.random.default_rng(streams[i])
        values = evaluate(_counts(rng, sizes[i], n))
        return {m: v[1] - v[0] for m, v in values.items()}

    workers = max(1, min(threads, len(sizes))) if not extra else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run, range(len(sizes))))

    alpha = (1.0 - confidence) / 2.0
    result: dict[str, Difference] = {}
    for m in [*names, *extra]:
        diffs = np.concatenate([p[m] for p in parts])
        diffs = diffs[np.isfinite(diffs)]
        a, b = float(observed[m][0, 0]), float(observed[m][1, 0])
        if len(diffs):
            low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
            se = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        else:
            low = high = se = float("nan")
        result[m] = Difference(
            metric=m,
            a=a,
            b=b,
            observed=b - a,
            low=float(low),
            high=float(high),
            std_error=se,
            confidence=confidence,
            resamples=len(diffs),
        )
    return result
