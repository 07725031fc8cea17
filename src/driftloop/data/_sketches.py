"""Mergeable summaries of one column's values, the building blocks of a profile.

Each summary is built from one batch's values and merged with others of its kind
without the data they came from. ``driftloop.data.profile`` combines them into
column profiles; this module knows nothing of profiles. What each one guarantees:

- ``Histogram``: counts of finite values in equal-width bins over ``[min, max]``,
  exact for one batch. Equal widths need only the range, so a merge re-fits the bins
  on the merged range and spreads each input bin's count uniformly over the new bins
  it overlaps, rounded so that the total stays exact. The shape therefore blurs by up
  to one input bin per merge. The equi-depth view lives in the quantile sketch.
- ``QuantileSketch``: order statistics kept at up to ``SKETCH_SIZE`` evenly spaced
  ranks, linear in between; exact while the count fits (also after merges whose total
  fits). One batch's sketch is off by at most half a knot gap, ``n / 510`` ranks. A
  merge sums the inputs' piecewise-linear models and keeps knots at values that occur
  in the data, so its quantiles are within ``2 N / 255 + inputs + 1`` ranks of the
  truth (tested); measured errors are 0.02-0.25% of N, also after 100 merges in a
  row. Merging all sketches in one call is the most accurate. ``cdf`` is exact at
  knot values.
- HyperLogLog (``hll_registers``, ``merge_hll``, ``hll_estimate``): ``p=12``, so
  ``HLL_REGISTERS`` one-byte registers and about 1.6% standard error. Merging takes
  the register-wise maximum: exact, associative and commutative, so the merged
  registers equal those of the union. Registers that saw no value are ``b""``.
- The string hash behind HyperLogLog is a fixed 64-bit function of the UTF-8 bytes
  (splitmix64 mixing, 8 bytes per step), the same in every process and on every
  machine. Stored profiles (format 1) hold registers built with it: changing it
  would silently corrupt merges with profiles already stored.

Merges are associative for the HyperLogLog registers; the sketch and the histogram
are associative only within the bounds above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "DEFAULT_BINS",
    "HLL_REGISTERS",
    "SKETCH_SIZE",
    "Histogram",
    "QuantileSketch",
    "histogram_of_sorted",
    "hll_estimate",
    "hll_registers",
    "merge_histograms",
    "merge_hll",
    "merge_sketches",
    "sketch_of_sorted",
]

SKETCH_SIZE = 256
DEFAULT_BINS = 20

_HLL_P = 12
HLL_REGISTERS = 1 << _HLL_P
_Floats = npt.NDArray[np.float64]
_U64 = npt.NDArray[np.uint64]
_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(9)], dtype=np.uint64)  # i low bytes


# --- histogram -----------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Counts of finite values in equal-width bins ``edges[i] <= v < edges[i + 1]``.

    The last bin also holds ``max``. A column with a single value has edges ``[v, v]``:
    one bin of width zero, treated as a point mass. An empty column has no bins.
    """

    edges: list[float]
    counts: list[int]

    def rebin(self, edges: npt.ArrayLike) -> tuple[float, list[float], float]:
        """Spread the counts onto other edges, uniformly within each bin.

        Returns ``(below, counts, above)``: the mass under the first edge, per new bin
        and over the last edge. Used to merge histograms and to compare two of them.
        """
        target = np.asarray(edges, dtype=np.float64)
        if not self.counts:
            return 0.0, [0.0] * (len(target) - 1), 0.0
        total = float(sum(self.counts))
        cum = self._mass(target, inclusive=False)
        cum[-1] = self._mass(target[-1:], inclusive=True)[0]
        return float(cum[0]), np.diff(cum).tolist(), total - float(cum[-1])

    def _mass(self, x: _Floats, *, inclusive: bool) -> _Floats:
        """Mass of values below ``x`` (or at most ``x``), uniform within bins."""
        e = np.asarray(self.edges, dtype=np.float64)
        lo, width = e[:-1], np.diff(e)
        xs = x[:, None]
        point = (xs >= lo) if inclusive else (xs > lo)
        spread = np.clip((xs - lo) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        frac = np.where(width > 0, spread, point)
        result: _Floats = frac @ np.asarray(self.counts, dtype=np.float64)
        return result


def histogram_of_sorted(s: _Floats, lo: float, hi: float, bins: int) -> Histogram:
    """The histogram of the sorted finite values ``s``, ``bins`` bins over ``[lo, hi]``.

    ``lo`` and ``hi`` are the minimum and maximum as the caller keeps them (exact ints
    for integer columns); a single bin of width zero when they are equal.
    """
    n = len(s)
    if lo == hi:
        return Histogram([float(lo), float(hi)], [n])
    edges = _edges(float(lo), float(hi), bins)
    cuts = np.searchsorted(s, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], cuts, [n])))
    return Histogram(edges.tolist(), counts.tolist())


def merge_histograms(parts: list[Histogram], lo: float, hi: float) -> Histogram:
    """One histogram over the merged range ``[lo, hi]``, as fine as the finest input."""
    total = sum(sum(h.counts) for h in parts)
    if lo == hi:
        return Histogram([lo, hi], [total])
    bins = max((len(h.counts) for h in parts if len(h.counts) > 1), default=DEFAULT_BINS)
    edges = _edges(lo, hi, bins)
    acc = np.zeros(bins)
    for h in parts:
        acc += h.rebin(edges)[1]
    cum = np.maximum.accumulate(np.clip(np.rint(np.cumsum(acc)), 0, total))
    cum[-1] = total
    return Histogram(edges.tolist(), np.diff(cum, prepend=0.0).astype(np.int64).tolist())


def _edges(lo: float, hi: float, bins: int) -> _Floats:
    """Equal-width edges; interpolated so that a range near the float limits cannot overflow."""
    t = np.linspace(0.0, 1.0, bins + 1)
    edges = np.maximum.accumulate(lo * (1.0 - t) + hi * t)
    edges[0], edges[-1] = lo, hi
    return edges


# --- quantile sketch -----------------------------------------------------------------


@dataclass(frozen=True)
class QuantileSketch:
    """Finite values summarised as order statistics at known ranks.

    ``values[i]`` is the value of rank ``ranks[i]`` (0-based) among ``count`` values;
    ranks run from 0 (the minimum) to ``count - 1`` (the maximum) in at most
    ``SKETCH_SIZE`` even steps, and values between knots are interpolated linearly.
    Up to ``SKETCH_SIZE`` values, every value is kept and the sketch is exact. Ties
    show as equal values at different ranks, so a frequent value stays exact.
    """

    values: list[float]
    ranks: list[int]

    @property
    def count(self) -> int:
        return self.ranks[-1] + 1 if self.ranks else 0

    @property
    def exact(self) -> bool:
        """True when every value is kept."""
        return len(self.ranks) == self.count

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Values at the given probabilities, interpolated like numpy's "linear" method."""
        if not self.ranks:
            return [math.nan] * len(qs)
        pos = np.asarray(qs, dtype=np.float64) * (self.count - 1)
        result: list[float] = np.interp(pos, self.ranks, self.values).tolist()
        return result

    def cdf(self, x: npt.ArrayLike) -> _Floats:
        """Share of values at most ``x``: exact at knot values, linear in between."""
        xs = np.asarray(x, dtype=np.float64)
        if not self.ranks:
            return np.full(xs.shape, math.nan)
        v, r = np.asarray(self.values), np.asarray(self.ranks, dtype=np.float64)
        i = np.clip(np.searchsorted(v, xs, side="right") - 1, 0, len(v) - 1)
        j = np.minimum(i + 1, len(v) - 1)
        gap = v[j] - v[i]
        step = np.clip((xs - v[i]) / np.where(gap > 0, gap, 1.0), 0.0, 1.0)
        rank = r[i] + step * (r[j] - r[i])
        return np.where(xs < v[0], 0.0, (rank + 1.0) / self.count)


def sketch_of_sorted(s: _Floats) -> QuantileSketch:
    """The sketch of the sorted finite values ``s``: exact up to ``SKETCH_SIZE`` values."""
    ranks = _knot_ranks(len(s))
    return QuantileSketch(s[ranks].tolist(), ranks.tolist())


def merge_sketches(sketches: list[QuantileSketch]) -> QuantileSketch:
    """One sketch of the union of the sketched values, within the bound above."""
    sketches = [s for s in sketches if s.ranks]
    if len(sketches) <= 1:
        return sketches[0] if sketches else QuantileSketch([], [])
    total = sum(s.count for s in sketches)
    values = [np.asarray(s.values, dtype=np.float64) for s in sketches]
    if total <= SKETCH_SIZE and all(s.exact for s in sketches):
        return QuantileSketch(np.sort(np.concatenate(values)).tolist(), list(range(total)))
    # Each sketch is a model: half a value at its min and at its max, and between
    # neighbouring knots ``r[i+1] - r[i]`` values spread evenly (or at one point when
    # the knot values tie). Summing the models gives the merged count function: linear
    # between the union of knot values, with jumps at them.
    union = np.unique(np.concatenate(values))
    lo = np.concatenate([v[:-1] for v in values])
    hi = np.concatenate([v[1:] for v in values])
    weight = np.concatenate([np.diff(np.asarray(s.ranks, dtype=np.float64)) for s in sketches])
    # Near-ties become points: a huge density would swamp the running sum below.
    spread = (hi - lo) > (union[-1] - union[0]) * 1e-12
    ends = np.concatenate([v[[0, -1]] for v in values])
    points = np.concatenate((ends, lo[~spread]))
    point_weight = np.concatenate((np.full(len(ends), 0.5), weight[~spread]))
    size = len(union)
    point_mass = np.bincount(np.searchsorted(union, points), point_weight, minlength=size)
    density = weight[spread] / (hi[spread] - lo[spread])
    change = np.bincount(np.searchsorted(union, lo[spread]), density, minlength=size)
    change -= np.bincount(np.searchsorted(union, hi[spread]), density, minlength=size)
    between = np.maximum(np.cumsum(change)[:-1], 0.0) * np.diff(union)
    below = np.concatenate(([0.0], np.cumsum(point_mass[:-1] + between)))
    mass = np.empty(2 * size)
    mass[0::2], mass[1::2] = below, below + point_mass
    mass = np.maximum.accumulate(mass)
    # The quantile function is linear through the breakpoints (mass below u, u) and
    # (mass at most u, u). Knots are chosen among them, so they hold values that occur
    # in the data (made-up values would diffuse over repeated merges): around each
    # evenly spaced target rank, the breakpoint whose mass is most trusted, i.e. whose
    # value is a knot of the inputs with the widest gaps (others' models may be off by
    # up to their gap), then the nearest. This keeps a long-lived profile that absorbs
    # small batches one at a time on its own exact knots.
    pick = np.arange(2 * size)
    if 2 * size > SKETCH_SIZE:
        gaps = np.array([s.count / max(len(s.ranks) - 1, 1) for s in sketches])
        distinct = [v[np.diff(v, prepend=-np.inf) > 0] for v in values]  # values are sorted
        owner_gap = np.repeat(gaps, [len(v) for v in distinct])
        where = np.searchsorted(union, np.concatenate(distinct))
        doubt = np.repeat(gaps.sum() - np.bincount(where, owner_gap, minlength=size), 2)
        target = _knot_ranks(total).astype(np.float64) + 0.5
        group = np.searchsorted((target[:-1] + target[1:]) / 2, mass)
        order = np.lexsort((np.abs(mass - target[group]), doubt, group))
        filled, first = np.unique(group[order], return_index=True)
        # A target whose window holds no breakpoint takes the nearest one outside it.
        empty = np.setdiff1d(np.arange(len(target)), filled)
        right = np.clip(np.searchsorted(mass, target[empty]), 1, 2 * size - 1)
        nearest = right - (target[empty] - mass[right - 1] <= mass[right] - target[empty])
        pick = np.unique(np.concatenate(([0], order[first], nearest, [2 * size - 1])))
    # Rank r sits at mass r + 0.5: a value's first rank is the first centre at or after
    # its mass below, its last rank the last centre at or before its mass at most.
    centre = mass[pick] - 0.5
    ranks = np.where(pick % 2 == 0, np.ceil(centre), np.floor(centre))
    ranks = np.maximum.accumulate(np.clip(ranks, 0, total - 1)).astype(np.int64)
    ranks, first = np.unique(ranks, return_index=True)
    merged = union[pick // 2][first]
    merged[0], merged[-1] = union[0], union[-1]
    return QuantileSketch(merged.tolist(), ranks.tolist())


def _knot_ranks(n: int) -> npt.NDArray[np.int64]:
    if n <= SKETCH_SIZE:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.rint(np.linspace(0, n - 1, SKETCH_SIZE)).astype(np.int64))


# --- HyperLogLog ---------------------------------------------------------------------


def hll_registers(values: pa.Array) -> bytes:
    """The HyperLogLog registers of the strings in ``values`` (large_string, no nulls)."""
    h = _hash_strings(values)
    index = (h >> np.uint64(64 - _HLL_P)).astype(np.intp)
    rest = (h & np.uint64((1 << (64 - _HLL_P)) - 1)).astype(np.float64)  # 52 bits: exact
    rank = (64 - _HLL_P + 1 - np.frexp(rest)[1]).astype(np.uint8)  # leading zeros + 1
    registers = np.zeros(HLL_REGISTERS, dtype=np.uint8)
    np.maximum.at(registers, index, rank)
    return registers.tobytes()


def merge_hll(parts: Sequence[bytes]) -> bytes:
    """The registers of the union: the register-wise maximum, ``b""`` when all are empty."""
    registers = np.maximum.reduce([_hll_array(hll) for hll in parts])
    return registers.tobytes() if registers.any() else b""


def hll_estimate(hll: bytes) -> float:
    """Ertl's improved estimator (2017): no bias correction tables, good at every size."""
    registers = _hll_array(hll)
    m, q = float(HLL_REGISTERS), 64 - _HLL_P
    hist = np.bincount(registers, minlength=q + 2).astype(np.float64)
    if hist[q + 1] == m:
        return math.inf
    z = m * _ertl_tau(1.0 - hist[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + hist[k])
    z += m * _ertl_sigma(hist[0] / m)
    return m * m / (2.0 * math.log(2.0)) / z


def _hll_array(hll: bytes) -> npt.NDArray[np.uint8]:
    if hll:
        return np.frombuffer(hll, dtype=np.uint8)
    return np.zeros(HLL_REGISTERS, dtype=np.uint8)


def _ertl_sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z, previous = 1.0, x, -1.0
    while z != previous:
        x *= x
        previous = z
        z += x * y
        y += y
    return z


def _ertl_tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z, previous = 1.0, 1.0 - x, -1.0
    while z != previous:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
    return z / 3.0


# --- string hashing ------------------------------------------------------------------


def _mix64(z: _U64) -> _U64:
    """The splitmix64 finalizer: a bijection on 64-bit words with good avalanche."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash_strings(values: pa.Array) -> _U64:
    """A stable 64-bit hash of each string (a large_string array without nulls).

    Strings are consumed 8 bytes per step, all strings at once: the loop runs over
    byte positions (the longest string's length / 8), never over strings.
    """
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[values.offset :][: len(values) + 1]
    lengths = np.diff(offsets)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0)
    padded = np.concatenate((data[: int(offsets[-1])].astype(np.uint8), np.zeros(8, np.uint8)))
    windows = np.lib.stride_tricks.as_strided(padded, (len(padded) - 7, 8), (1, 1))
    h = _mix64(lengths.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    active = np.flatnonzero(lengths > 0)
    step = 0
    while active.size:
        rest = lengths[active] - step
        words = windows[offsets[active] + step].view("<u8")[:, 0]
        words &= _LOW_BYTES[np.minimum(rest, 8)]
        h[active] = _mix64(h[active] ^ words)
        step += 8
        active = active[rest > 8]
    return _mix64(h)
