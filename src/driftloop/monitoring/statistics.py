"""Drift statistics between a reference sample and a current one, vectorised.

A :class:`NumericReference` keeps what every numeric statistic needs from the
reference, computed once: its sorted finite values (for Kolmogorov-Smirnov and the
Wasserstein distance), its standard deviation (to normalise Wasserstein), and bin edges
fitted on it alone — ``bins`` equal-width bins over its range plus one outer bin below
and one above, so a current value outside the reference's range still lands in a bin —
with its share per bin (for PSI and Jensen-Shannon). A :class:`CategoricalReference`
keeps the count of each category. A reference is fitted once per model version and
persisted; comparing a window to it costs one sort of the window per numeric column
(KS, Wasserstein) and one ``searchsorted`` (binned statistics).

Each function returns a :class:`Statistic`: its value, its p-value when it is a test,
and whether it signals drift at its threshold. The values equal scipy's on the same
data:

- ``ks``: ``scipy.stats.ks_2samp`` (two-sided; the exact distribution for small
  samples, the asymptotic one otherwise, as scipy's ``method="auto"``);
- ``wasserstein``: ``scipy.stats.wasserstein_distance`` divided by the reference's
  standard deviation (population, ``ddof=0``), as Evidently normalises it;
- ``chisquare``: ``scipy.stats.chi2_contingency`` (no continuity correction) on the
  2 x k table of reference and current counts — a test of two samples, unlike a
  goodness-of-fit test that treats the reference's shares as exact;
- ``psi``: the population stability index over the reference's bins, empty shares
  floored at 1e-4 (as Evidently);
- ``jensenshannon``: ``scipy.spatial.distance.jensenshannon`` (natural log) of the two
  binned distributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats
from scipy.spatial import distance

from driftloop.errors import InputError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CategoricalReference",
    "NumericReference",
    "Statistic",
    "StatisticName",
    "auto_statistic",
    "category_counts",
    "chisquare",
    "jensenshannon",
    "ks",
    "numeric_statistics",
    "psi",
    "wasserstein",
    "wasserstein_and_ks",
]

StatisticName = Literal["ks", "wasserstein", "chisquare", "psi", "jensenshannon"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,  # p-value
    "chisquare": 0.05,  # p-value
    "wasserstein": 0.1,  # distance in reference standard deviations
    "psi": 0.1,
    "jensenshannon": 0.1,
}
"""Evidently's defaults: a test drifts below its p-value threshold, a distance above."""

PSI_FLOOR = 1e-4
SMALL_SAMPLE = 1000
"""Evidently's automatic choice switches from tests to distances above this many rows."""
_EXACT_KS_MAX = 10_000  # scipy's ks_2samp "auto": exact below this sample size


@dataclass(frozen=True)
class Statistic:
    """One statistic of one column: value, p-value for tests, threshold and verdict."""

    name: str
    value: float
    threshold: float
    p_value: float | None = None

    @property
    def is_test(self) -> bool:
        return self.p_value is not None

    @property
    def drifted(self) -> bool:
        if self.p_value is not None:
            return self.p_value < self.threshold
        return self.value > self.threshold


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


@dataclass(frozen=True)
class NumericReference:
    """What the numeric statistics need from a reference sample (see the module doc)."""

    sorted_values: npt.NDArray[np.float64]
    std: float
    edges: npt.NDArray[np.float64]
    """Inner edges: bins are (-inf, e0), [e0, e1), ..., [e_last, +inf)."""
    shares: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, values: npt.ArrayLike, bins: int = 10) -> NumericReference:
        data = np.sort(_finite(values))
        if data.size == 0:
            raise InputError("a numeric reference needs at least one finite value")
        if bins < 1:
            raise InputError(f"bins must be at least 1, got {bins}", field="bins")
        low, high = float(data[0]), float(data[-1])
        edges = np.linspace(low, high, bins + 1) if high > low else np.array([low, low])
        return cls(data, float(np.std(data)), edges, _binned_shares(data, edges))

    @property
    def size(self) -> int:
        return int(self.sorted_values.size)

    def shares_of(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return _binned_shares(values, self.edges)


def _binned_shares(
    values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Shares of ``values`` in the bins below, between and above ``edges``; the last
    inner bin is closed on the right (the reference's maximum falls inside)."""
    positions = np.searchsorted(edges, values, side="right")
    positions[values == edges[-1]] = len(edges) - 1
    counts = np.bincount(positions, minlength=len(edges) + 1).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


@dataclass(frozen=True)
class CategoricalReference:
    """Counts of each category in the reference sample."""

    counts: dict[Any, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, values: Sequence[Any] | npt.ArrayLike | pa.Array) -> CategoricalReference:
        return cls(category_counts(values))

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    def table(self, values: Sequence[Any] | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The 2 x k table: reference and current counts over the union of categories."""
        current = category_counts(values)
        categories = sorted(set(self.counts) | set(current))
        return np.array(
            [
                [self.counts.get(c, 0) for c in categories],
                [current.get(c, 0) for c in categories],
            ],
            dtype=np.float64,
        )


@dataclass(frozen=True)
class _Merged:
    """Both empirical CDFs at every distinct value of the pooled samples."""

    values: npt.NDArray[np.float64]
    cdf_reference: npt.NDArray[np.float64]
    cdf_current: npt.NDArray[np.float64]
    n: int
    m: int


def _merge(reference: NumericReference, current: npt.ArrayLike) -> _Merged:
    """One stable sort of the pooled samples (the reference is sorted already, so the
    sort mostly merges two runs), then cumulative counts at each distinct value."""
    cur = np.sort(_finite(current))
    ref = reference.sorted_values
    n, m = ref.size, cur.size
    if m == 0:
        raise InputError("the current sample has no finite values")
    pooled = np.concatenate([ref, cur])
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    from_reference = order < n
    last = np.append(values[1:] != values[:-1], True)  # last of each run of ties
    cdf_reference = np.cumsum(from_reference)[last] / n
    cdf_current = np.cumsum(~from_reference)[last] / m
    return _Merged(values[last], cdf_reference, cdf_current, n, m)


def _ks(merged: _Merged, threshold: float) -> Statistic:
    d = float(np.max(np.abs(merged.cdf_reference - merged.cdf_current)))
    big, small = max(merged.n, merged.m), min(merged.n, merged.m)
    en = big * small / (big + small)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return Statistic("ks", d, threshold, p)


def _wasserstein(merged: _Merged, std: float, threshold: float) -> Statistic:
    gaps = np.diff(merged.values)
    area = float(np.sum(np.abs(merged.cdf_reference - merged.cdf_current)[:-1] * gaps))
    return Statistic("wasserstein", area / (std if std > 0 else 1.0), threshold)


def category_counts(values: Any) -> dict[Any, int]:
    """Count of each value (as text; nulls as the category ``"null"``), hashed in Arrow;
    counts already made (a mapping) are taken as they are."""
    if isinstance(values, Mapping):
        return {str(k): int(n) for k, n in values.items()}
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    counted = pc.value_counts(pc.fill_null(array, "null"))
    return dict(
        zip(
            counted.field("values").to_pylist(),
            counted.field("counts").to_pylist(),
            strict=True,
        )
    )


def ks(reference: NumericReference, current: npt.ArrayLike, threshold: float = 0.05) -> Statistic:
    """The two-sample Kolmogorov-Smirnov test (two-sided)."""
    cur = _finite(current)
    if cur.size and max(reference.size, cur.size) <= _EXACT_KS_MAX:
        result = stats.ks_2samp(reference.sorted_values, cur)
        return Statistic("ks", float(result.statistic), threshold, float(result.pvalue))
    return _ks(_merge(reference, cur), threshold)


def wasserstein(
    reference: NumericReference, current: npt.ArrayLike, threshold: float = 0.1
) -> Statistic:
    """The Wasserstein-1 distance, in reference standard deviations."""
    return _wasserstein(_merge(reference, current), reference.std, threshold)


def wasserstein_and_ks(
    reference: NumericReference,
    current: npt.ArrayLike,
    thresholds: dict[str, float] | None = None,
) -> tuple[Statistic, Statistic]:
    """:func:`wasserstein` and :func:`ks` of one column, sharing the pooled sort."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    cur = _finite(current)
    merged = _merge(reference, cur)
    distance_ = _wasserstein(merged, reference.std, limits["wasserstein"])
    if max(reference.size, cur.size) <= _EXACT_KS_MAX:
        return distance_, ks(reference, cur, limits["ks"])
    return distance_, _ks(merged, limits["ks"])


def numeric_statistics(
    reference: NumericReference,
    current: npt.ArrayLike,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Statistic]:
    """All five statistics of one numeric column, sharing the pooled sort and the
    binning between them."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    cur = _finite(current)
    if cur.size == 0:
        raise InputError("the current sample has no finite values")
    merged = _merge(reference, cur)
    if max(reference.size, cur.size) <= _EXACT_KS_MAX:
        ks_statistic = ks(reference, cur, limits["ks"])
    else:
        ks_statistic = _ks(merged, limits["ks"])
    shares = reference.shares_of(cur)
    return {
        "ks": ks_statistic,
        "wasserstein": _wasserstein(merged, reference.std, limits["wasserstein"]),
        "chisquare": _chisquare_table(
            np.array([reference.shares * reference.size, shares * cur.size]).round(),
            limits["chisquare"],
        ),
        "psi": Statistic("psi", _psi_value(reference.shares, shares), limits["psi"]),
        "jensenshannon": Statistic(
            "jensenshannon",
            float(distance.jensenshannon(reference.shares, shares)),
            limits["jensenshannon"],
        ),
    }


def _psi_value(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    p = np.maximum(expected, PSI_FLOOR)
    q = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def psi(
    reference: NumericReference | CategoricalReference,
    current: npt.ArrayLike,
    threshold: float = 0.1,
) -> Statistic:
    """The population stability index over the reference's bins (or categories)."""
    expected, actual = _distributions(reference, current)
    return Statistic("psi", _psi_value(expected, actual), threshold)


def jensenshannon(
    reference: NumericReference | CategoricalReference,
    current: npt.ArrayLike,
    threshold: float = 0.1,
) -> Statistic:
    """The Jensen-Shannon distance (natural log) of the binned distributions."""
    expected, actual = _distributions(reference, current)
    return Statistic("jensenshannon", float(distance.jensenshannon(expected, actual)), threshold)


def _distributions(
    reference: NumericReference | CategoricalReference, current: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if isinstance(reference, NumericReference):
        cur = _finite(current)
        if cur.size == 0:
            raise InputError("the current sample has no finite values")
        return reference.shares, reference.shares_of(cur)
    table = reference.table(current)
    totals = table.sum(axis=1, keepdims=True)
    if not totals[1, 0]:
        raise InputError("the current sample is empty")
    shares: npt.NDArray[np.float64] = table / totals
    return shares[0], shares[1]


def chisquare(
    reference: CategoricalReference | NumericReference,
    current: npt.ArrayLike,
    threshold: float = 0.05,
) -> Statistic:
    """Pearson's chi-square test of homogeneity of the two samples' categories (of a
    numeric column: of its counts in the reference's bins)."""
    if isinstance(reference, NumericReference):
        cur = _finite(current)
        table = np.array(
            [reference.shares * reference.size, reference.shares_of(cur) * cur.size]
        ).round()
    else:
        table = reference.table(current)
    return _chisquare_table(table, threshold)


def _chisquare_table(table: npt.NDArray[np.float64], threshold: float) -> Statistic:
    if table[1].sum() == 0:
        raise InputError("the current sample is empty")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # one category on both sides: nothing can differ
        return Statistic("chisquare", 0.0, threshold, 1.0)
    result = stats.chi2_contingency(table, correction=False)
    return Statistic("chisquare", float(result.statistic), threshold, float(result.pvalue))


def auto_statistic(
    kind: Literal["numeric", "categorical"], reference_size: int, unique_values: int
) -> StatisticName:
    """The statistic Evidently's default drift preset picks for a column: tests up to
    1,000 reference rows, distances above; a numeric column with at most 5 distinct
    values counts as categorical.

    (Evidently uses a proportions z-test for binary columns with few rows; driftloop uses
    the chi-square test there, which is the same test for a 2 x 2 table.)
    """
    categorical = kind == "categorical" or unique_values <= 5
    if reference_size <= SMALL_SAMPLE:
        return "chisquare" if categorical else "ks"
    return "jensenshannon" if categorical else "wasserstein"
