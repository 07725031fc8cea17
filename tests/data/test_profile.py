"""Tests for driftloop.data.profile: column statistics that merge without rescanning."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftloop.data.profile import (
    QUANTILES,
    SKETCH_SIZE,
    CategoricalProfile,
    DatasetProfile,
    NumericProfile,
    diff_profiles,
    merge_profiles,
    profile_table,
)
from driftloop.errors import InputError, NotFoundError


def numeric(profile: DatasetProfile, name: str) -> NumericProfile:
    column = profile.columns[name]
    assert isinstance(column, NumericProfile)
    return column


def categorical(profile: DatasetProfile, name: str) -> CategoricalProfile:
    column = profile.columns[name]
    assert isinstance(column, CategoricalProfile)
    return column


def rank_error(sorted_values: np.ndarray, q: float, value: float) -> float:
    """How many ranks ``value`` is away from the order statistic at position q*(n-1)."""
    target = q * (len(sorted_values) - 1)
    below = np.searchsorted(sorted_values, value, side="left")
    at_most = np.searchsorted(sorted_values, value, side="right")
    return float(max(0.0, below - 1 - target, target - at_most))


def random_values(seed: int, n: int, shape: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if shape == "normal":
        return rng.normal(3.0, 2.0, n)
    if shape == "lognormal":
        return rng.lognormal(0.0, 2.0, n)
    if shape == "ints":
        return rng.integers(-3, 4, n).astype(np.float64)
    return np.where(rng.random(n) < 0.6, 0.0, rng.random(n))  # heavy tie at zero


def zipf(n: int) -> np.ndarray:
    """Probabilities proportional to 1/rank: a few frequent values and a long tail."""
    weights = 1.0 / np.arange(1, n + 1)
    return weights / weights.sum()


EXACT = ("kind", "count", "nulls", "nans", "infs", "zeros", "min", "max")


def assert_same_exact_fields(a: NumericProfile, b: NumericProfile) -> None:
    assert [getattr(a, f) for f in EXACT] == [getattr(b, f) for f in EXACT]
    if b.mean is None:
        assert (a.mean, a.std) == (None, None)
    else:
        assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-9)
        assert a.std == pytest.approx(b.std, rel=1e-7, abs=1e-9)
    assert sum(a.histogram.counts) == sum(b.histogram.counts) == a.finite


# --- one table ----------------------------------------------------------------------


def test_numeric_statistics_match_numpy() -> None:
    """Count, nulls, min, max, mean, population std and quantiles equal numpy's on random data."""
    rng = np.random.default_rng(7)
    values = rng.normal(10.0, 3.0, 5000)
    mask = rng.random(5000) < 0.1
    p = numeric(profile_table(pa.table({"x": pa.array(values, mask=mask)})), "x")
    kept = values[~mask]
    assert (p.kind, p.count, p.nulls, p.nans, p.infs) == ("numeric", len(kept), mask.sum(), 0, 0)
    assert (p.min, p.max) == (kept.min(), kept.max())
    assert p.mean == pytest.approx(kept.mean(), rel=1e-12)
    assert p.std == pytest.approx(kept.std(), rel=1e-12)
    expected = np.quantile(kept, QUANTILES)
    assert list(p.quantiles) == [f"{q:g}" for q in QUANTILES]
    assert list(p.quantiles.values()) == pytest.approx(expected, rel=1e-12)


def test_histogram_counts_match_numpy_with_equal_width_bins() -> None:
    """The histogram has `bins` equal-width bins over [min, max] and numpy's counts."""
    values = np.random.default_rng(1).exponential(2.0, 3000)
    p = numeric(profile_table(pa.table({"x": values}), bins=25), "x")
    counts, edges = np.histogram(values, bins=25)
    assert p.histogram.edges == pytest.approx(edges.tolist(), rel=1e-12)
    assert p.histogram.counts == counts.tolist()


def test_sketch_of_one_table_is_within_half_a_rank_gap() -> None:
    """A one-table sketch answers any quantile within half a knot gap of the true rank."""
    values = np.random.default_rng(2).standard_t(3, 100_000)
    p = numeric(profile_table(pa.table({"x": values})), "x")
    assert len(p.sketch.values) == SKETCH_SIZE
    ordered = np.sort(values)
    gap = len(values) / (SKETCH_SIZE - 1)
    qs = np.linspace(0.0, 1.0, 201)
    for q, v in zip(qs, p.sketch.quantiles(qs), strict=True):
        assert rank_error(ordered, q, v) <= gap / 2 + 1


def test_sketch_cdf_is_exact_at_knots_and_close_elsewhere() -> None:
    """The sketch's CDF equals the empirical CDF at kept values and is close between knots."""
    small = numeric(profile_table(pa.table({"x": [0.0, 1.0, 1.0, 2.0, 5.0]})), "x").sketch
    assert small.cdf([-1.0, 0.0, 1.0, 2.0, 5.0, 9.0]).tolist() == [0.0, 0.2, 0.6, 0.8, 1.0, 1.0]
    values = np.random.default_rng(6).normal(size=50_000)
    sketch = numeric(profile_table(pa.table({"x": values})), "x").sketch
    xs = np.linspace(-3.0, 3.0, 61)
    empirical = np.searchsorted(np.sort(values), xs, side="right") / len(values)
    assert np.abs(sketch.cdf(xs) - empirical).max() <= 1 / (SKETCH_SIZE - 1)


def test_nan_and_inf_are_counted_apart_and_left_out_of_statistics() -> None:
    """NaN and infinities count as values, not nulls, and are excluded from the moments."""
    col = pa.array([1.0, float("nan"), float("inf"), -float("inf"), None, 2.0, 0.0, -0.0])
    p = numeric(profile_table(pa.table({"x": col})), "x")
    assert (p.count, p.nulls, p.nans, p.infs, p.finite, p.zeros) == (7, 1, 1, 2, 4, 2)
    assert (p.min, p.max, p.mean) == (0.0, 2.0, 0.75)
    assert p.std == pytest.approx(np.std([1.0, 2.0, 0.0, 0.0]))


def test_int64_extremes_keep_exact_min_and_max() -> None:
    """Integer min and max stay exact Python ints even at the int64 and uint64 limits."""
    lo, hi = -(2**63), 2**63 - 1
    table = pa.table(
        {
            "i": pa.array([lo, hi, 0, None], pa.int64()),
            "u": pa.array([0, 2**64 - 1, 1, 2], pa.uint64()),
        }
    )
    prof = profile_table(table)
    i, u = numeric(prof, "i"), numeric(prof, "u")
    assert (i.min, i.max, i.count, i.nulls) == (lo, hi, 3, 1)
    assert isinstance(i.min, int)
    assert i.mean == pytest.approx(0.0, abs=1e4)
    assert (u.min, u.max) == (0, 2**64 - 1)
    assert sum(i.histogram.counts) == 3


def test_timestamps_with_time_zone_are_epoch_microseconds() -> None:
    """Timezone-aware nanosecond timestamps and dates profile as UTC epoch microseconds."""
    paris = dt.timezone(dt.timedelta(hours=1))
    first = dt.datetime(2024, 3, 1, 12, 0, tzinfo=paris)
    second = dt.datetime(2024, 3, 2, 12, 0, tzinfo=paris)
    table = pa.table(
        {
            "at": pa.array([first, second, None], pa.timestamp("ns", tz="Europe/Paris")),
            "day": pa.array([dt.date(1970, 1, 2), dt.date(1970, 1, 1), None], pa.date32()),
        }
    )
    prof = profile_table(table)
    at, day = numeric(prof, "at"), numeric(prof, "day")
    assert at.kind == "timestamp"
    assert at.min == int(first.timestamp()) * 1_000_000
    assert at.max == int(second.timestamp()) * 1_000_000
    assert (at.count, at.nulls) == (2, 1)
    assert (day.kind, day.min, day.max) == ("timestamp", 0, 86_400_000_000)


def test_decimal_columns_are_numeric() -> None:
    """Decimal columns profile as numeric values."""
    col = pa.array([Decimal("1.25"), Decimal("2.75"), None], pa.decimal128(5, 2))
    p = numeric(profile_table(pa.table({"d": col})), "d")
    assert (p.count, p.nulls, p.min, p.max, p.mean) == (2, 1, 1.25, 2.75, 2.0)


def test_categorical_top_counts_and_distinct() -> None:
    """Strings give exact top-k counts, `other` for the rest, and an exact distinct count."""
    col = pa.array(["a", "b", "a", None, "c", "a", "b", "d", ""])
    p = categorical(profile_table(pa.table({"c": col}), top_k=2), "c")
    assert (p.kind, p.count, p.nulls, p.distinct) == ("categorical", 8, 1, 5)
    assert p.top == [("a", 3), ("b", 2)]
    assert (p.other, p.top_error) == (3, 0)


def test_top_ties_are_broken_by_value() -> None:
    """Values with equal counts are ordered by value, so the top list is deterministic."""
    col = pa.array(["c", "b", "a", "c", "b", "a", "d"])
    p = categorical(profile_table(pa.table({"c": col}), top_k=3), "c")
    assert p.top == [("a", 2), ("b", 2), ("c", 2)]
    assert p.other == 1


def test_dictionary_encoded_strings_profile_like_plain_strings() -> None:
    """Dictionary-encoded strings, one dictionary per chunk, profile exactly like plain strings."""
    plain = pa.chunked_array([pa.array(["x", "y", None, "x"]), pa.array(["z", "x"])])
    encoded = pa.chunked_array([chunk.dictionary_encode() for chunk in plain.chunks])
    assert profile_table(pa.table({"c": encoded})) == profile_table(pa.table({"c": plain}))


def test_string_view_columns_profile_like_strings() -> None:
    """A string_view column, nulls included, profiles exactly like a string column."""
    values = ["a", "b", "a", None]
    view = profile_table(pa.table({"c": pa.array(values, pa.string_view())}))
    assert view == profile_table(pa.table({"c": pa.array(values, pa.string())}))


def test_booleans_profile_as_true_false_counts() -> None:
    """Booleans count "true" and "false" values and their nulls."""
    p = categorical(profile_table(pa.table({"b": [True, False, True, None]})), "b")
    assert (p.kind, p.count, p.nulls, p.distinct, p.other) == ("boolean", 3, 1, 2, 0)
    assert p.top == [("true", 2), ("false", 1)]


def test_many_chunks_give_the_same_profile_as_one_chunk() -> None:
    """A table of 400 small chunks profiles exactly like the same table in one chunk."""
    rng = np.random.default_rng(4)
    whole = pa.table(
        {
            "x": pa.array(rng.normal(size=4000), mask=rng.random(4000) < 0.05),
            "c": pa.array(rng.choice(["p", "q", "r"], 4000)),
            "t": pa.array(rng.integers(0, 10**12, 4000), pa.timestamp("us", tz="UTC")),
        }
    )
    chunked = pa.Table.from_batches(whole.to_batches(max_chunksize=10))
    assert chunked.column("x").num_chunks == 400
    assert profile_table(chunked) == profile_table(whole)


def test_empty_table_profiles_every_column_with_zero_counts() -> None:
    """A table with no rows gives zero counts, no statistics, and round-trips through JSON."""
    table = pa.table(
        {
            "x": pa.array([], pa.float64()),
            "c": pa.array([], pa.string()),
            "b": pa.array([], pa.bool_()),
            "t": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )
    prof = profile_table(table)
    assert prof.rows == 0
    x = numeric(prof, "x")
    assert (x.count, x.min, x.max, x.mean, x.std, x.quantiles) == (0, None, None, None, None, {})
    assert (x.histogram.counts, x.sketch.values) == ([], [])
    assert categorical(prof, "c").top == []
    assert numeric(prof, "t").kind == "timestamp"
    assert DatasetProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof


def test_all_null_columns_count_only_nulls() -> None:
    """Columns holding only nulls, of any type including Arrow's null type, count only nulls."""
    table = pa.table(
        {
            "x": pa.array([None, None], pa.float64()),
            "c": pa.array([None, None], pa.string()),
            "n": pa.array([None, None]),
        }
    )
    prof = profile_table(table)
    x = numeric(prof, "x")
    assert (x.count, x.nulls, x.mean) == (0, 2, None)
    assert (categorical(prof, "c").count, categorical(prof, "c").nulls) == (0, 2)
    assert (categorical(prof, "n").count, categorical(prof, "n").nulls) == (0, 2)


def test_single_value_column_has_one_zero_width_bin() -> None:
    """A column of one repeated value has std 0 and a single bin of width zero."""
    p = numeric(profile_table(pa.table({"x": [7.0] * 50})), "x")
    assert (p.min, p.max, p.std) == (7.0, 7.0, 0.0)
    assert (p.histogram.edges, p.histogram.counts) == ([7.0, 7.0], [50])
    assert set(p.quantiles.values()) == {7.0}


def test_kinds_select_and_override_columns() -> None:
    """Given kinds, only those columns are profiled, and an integer can be categorical."""
    table = pa.table({"a": [1, 2, 2], "b": [0.5, 1.5, 2.5], "s": ["x", "y", "x"]})
    prof = profile_table(table, {"a": "categorical", "b": "numeric"})
    assert list(prof.columns) == ["a", "b"]
    assert categorical(prof, "a").top == [("2", 2), ("1", 1)]


def test_bad_kinds_and_arguments_raise_driftloop_errors() -> None:
    """An unknown column, an impossible kind or a bad argument raise errors naming the problem."""
    table = pa.table({"s": ["x"]})
    with pytest.raises(NotFoundError, match="'missing'"):
        profile_table(table, {"missing": "numeric"})
    with pytest.raises(InputError, match="cannot be profiled as numeric") as info:
        profile_table(table, {"s": "numeric"})
    assert info.value.fields["column"] == "s"
    with pytest.raises(InputError, match="bins"):
        profile_table(table, bins=0)


# --- merging ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 3000),
    shape=st.sampled_from(["normal", "lognormal", "ints", "ties"]),
    null_rate=st.sampled_from([0.0, 0.2]),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=7),
)
def test_merging_random_splits_equals_profiling_the_whole_table(
    seed: int, n: int, shape: str, null_rate: float, cuts: list[float]
) -> None:
    """Merged random splits equal the whole table on exact fields, quantiles within the bound."""
    rng = np.random.default_rng(seed)
    values = random_values(seed, n, shape)
    table = pa.table(
        {
            "x": pa.array(values, mask=rng.random(n) < null_rate),
            "c": pa.array(rng.choice(["a", "b", "c", "d"], n)),
            "b": pa.array(rng.random(n) < 0.3),
        }
    )
    bounds = [0, *sorted(int(c * n) for c in cuts), n]
    parts = [profile_table(table.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    whole, merged = profile_table(table), merge_profiles(parts)

    assert merged.rows == whole.rows
    assert merged.columns["c"] == whole.columns["c"]  # four categories: top lists are complete
    assert merged.columns["b"] == whole.columns["b"]
    w, m = numeric(whole, "x"), numeric(merged, "x")
    assert_same_exact_fields(m, w)
    if w.finite:
        # Each input's model is off by at most its knot gap (+1 rank), and the merged
        # knots by one more gap: 2 N / (SKETCH_SIZE - 1) + inputs + 1 ranks in all.
        bound = 2 * w.finite / (SKETCH_SIZE - 1) + len(parts) + 1
        ordered = np.sort(np.asarray(table.column("x").drop_null()))
        for q in (*QUANTILES, 0.0, 0.1, 0.33, 0.9, 1.0):
            value = m.sketch.quantiles([q])[0]
            assert rank_error(ordered, q, value) <= bound
        for key, value in m.quantiles.items():
            assert rank_error(ordered, float(key), value) <= bound


def test_absorbing_batches_one_at_a_time_stays_accurate() -> None:
    """A running profile that absorbs 60 batches one merge at a time keeps its quantiles close."""
    rng = np.random.default_rng(10)
    batches = [rng.lognormal(i / 30, 2.0, 1500) for i in range(60)]
    running = profile_table(pa.table({"x": batches[0]}))
    for batch in batches[1:]:
        running = merge_profiles([running, profile_table(pa.table({"x": batch}))])
    ordered = np.sort(np.concatenate(batches))
    bound = 2 * len(ordered) / (SKETCH_SIZE - 1) + 3
    sketch = numeric(running, "x").sketch
    for q in np.linspace(0.0, 1.0, 41):
        assert rank_error(ordered, q, sketch.quantiles([q])[0]) <= bound


def test_merging_small_exact_sketches_is_exact() -> None:
    """While the total count fits in the sketch, merged quantiles equal numpy's exactly."""
    values = np.random.default_rng(3).normal(size=200)
    table = pa.table({"x": values})
    merged = numeric(
        merge_profiles([profile_table(table.slice(i, 40)) for i in range(0, 200, 40)]), "x"
    )
    assert merged.sketch.exact
    assert list(merged.quantiles.values()) == pytest.approx(np.quantile(values, QUANTILES))


def test_merged_histogram_keeps_totals_and_shape() -> None:
    """A merged histogram keeps every count and stays close to the histogram of the whole data."""
    values = np.random.default_rng(5).normal(size=100_000)
    table = pa.table({"x": values})
    cuts = [0, 7_000, 31_000, 32_000, 80_000, 100_000]
    parts = [profile_table(table.slice(a, b - a)) for a, b in itertools.pairwise(cuts)]
    h = numeric(merge_profiles(parts), "x").histogram
    true, _ = np.histogram(values, bins=np.asarray(h.edges))
    assert sum(h.counts) == len(values)
    assert np.abs(np.asarray(h.counts) - true).sum() / len(values) < 0.02


def test_merging_one_profile_returns_an_equal_profile() -> None:
    """Merging a single profile returns a profile equal to it; merging none gives an empty one."""
    prof = profile_table(pa.table({"x": [1.0, 2.0, 4.0], "c": ["a", "b", None]}))
    assert merge_profiles([prof]) == prof
    assert merge_profiles([]) == DatasetProfile(rows=0, columns={})


def test_merge_is_associative() -> None:
    """((a+b)+c) and (a+(b+c)) agree on exact fields, complete top lists and HLL registers."""
    rng = np.random.default_rng(11)
    tables = [
        pa.table(
            {
                "x": rng.normal(i, 1.0, 2000),
                "c": pa.array(rng.choice([f"v{j}" for j in range(40)], 2000)),
                "id": pa.array([f"id{j}" for j in rng.integers(0, 10**6, 2000)]),
            }
        )
        for i in range(3)
    ]
    a, b, c = (profile_table(t, top_k=50) for t in tables)
    left = merge_profiles([merge_profiles([a, b]), c])
    right = merge_profiles([a, merge_profiles([b, c])])
    assert_same_exact_fields(numeric(left, "x"), numeric(right, "x"))
    assert left.columns["c"] == right.columns["c"]
    assert categorical(left, "id").hll == categorical(right, "id").hll
    ordered = np.sort(np.concatenate([t.column("x").to_numpy() for t in tables]))
    bound = 3 * len(ordered) / (SKETCH_SIZE - 1) + 4
    for q, value in numeric(left, "x").quantiles.items():
        assert rank_error(ordered, float(q), value) <= bound
        assert rank_error(ordered, float(q), numeric(right, "x").quantiles[q]) <= bound


def test_columns_missing_from_some_profiles_merge_over_the_others() -> None:
    """A column absent from some profiles is merged over the profiles that have it."""
    a = profile_table(pa.table({"x": [1.0, 2.0], "only_a": ["p", "q"]}))
    b = profile_table(pa.table({"x": [3.0]}))
    merged = merge_profiles([a, b])
    assert merged.rows == 3
    assert numeric(merged, "x").count == 3
    assert merged.columns["only_a"] == a.columns["only_a"]


def test_merging_different_kinds_raises() -> None:
    """A column that is numeric in one profile and categorical in another cannot be merged."""
    a = profile_table(pa.table({"x": [1.0]}))
    b = profile_table(pa.table({"x": ["1.0"]}))
    with pytest.raises(InputError, match="categorical") as info:
        merge_profiles([a, b])
    assert info.value.fields["column"] == "x"


def test_single_values_merge_into_a_histogram_over_both() -> None:
    """Two single-value profiles merge into a histogram whose end bins hold each value."""
    a = profile_table(pa.table({"x": [7.0] * 10}))
    b = profile_table(pa.table({"x": [9.0] * 30}))
    h = numeric(merge_profiles([a, b]), "x").histogram
    assert (h.edges[0], h.edges[-1], len(h.counts)) == (7.0, 9.0, 20)
    assert (h.counts[0], h.counts[-1], sum(h.counts)) == (10, 30, 40)


def test_top_k_merge_is_exact_while_values_fit_the_tracked_counts() -> None:
    """Up to TRACKED_VALUES distinct values, merged top-k counts equal the whole table's exactly."""
    rng = np.random.default_rng(8)
    values = rng.choice([f"v{j:03d}" for j in range(200)], 30_000, p=zipf(200))
    table = pa.table({"c": pa.array(values)})
    parts = [profile_table(table.slice(i, 5000), top_k=10) for i in range(0, 30_000, 5000)]
    merged = categorical(merge_profiles(parts), "c")
    assert merged == categorical(profile_table(table, top_k=10), "c")
    assert (len(merged.top), len(merged.top) + len(merged.tail)) == (10, 200)
    assert (merged.top_error, merged.untracked) == (0, 0)


def test_top_k_merge_beyond_tracked_values_is_low_by_at_most_top_error() -> None:
    """With more values than are tracked, merged counts are lower bounds within top_error."""
    rng = np.random.default_rng(8)
    values = rng.choice([f"v{j:04d}" for j in range(2000)], 60_000, p=zipf(2000))
    table = pa.table({"c": pa.array(values)})
    parts = [profile_table(table.slice(i, 10_000)) for i in range(0, 60_000, 10_000)]
    truth = dict(zip(*np.unique(values, return_counts=True), strict=True))
    merged = categorical(merge_profiles(parts), "c")
    assert merged.top_error > 0
    for value, count in merged.tracked:
        assert count <= truth[value] <= count + merged.top_error
    assert [v for v, _ in merged.top] == sorted(truth, key=lambda v: (-truth[v], v))[:20]
    assert merged.other == merged.count - sum(c for _, c in merged.top)


def test_distinct_count_of_merged_profiles_uses_hyperloglog() -> None:
    """Merged distinct counts of overlapping high-cardinality batches are within 5% of the truth."""
    batches = [
        pa.table({"id": pa.array([f"user-{i}" for i in range(s, s + 20_000)])})
        for s in (0, 10_000, 25_000)
    ]
    merged = categorical(merge_profiles([profile_table(b) for b in batches]), "id")
    assert merged.distinct == pytest.approx(45_000, rel=0.05)
    assert categorical(profile_table(batches[0]), "id").distinct == 20_000


# --- serialisation ------------------------------------------------------------------


def test_to_dict_round_trips_through_strict_json() -> None:
    """to_dict gives strict JSON (no NaN literals) that from_dict turns into an equal profile."""
    rng = np.random.default_rng(9)
    table = pa.table(
        {
            "x": pa.array([*rng.normal(size=500), float("nan"), float("inf")]),
            "i": pa.array(rng.integers(0, 100, 502)),
            "c": pa.array(rng.choice(["a", "b"], 502)),
            "b": pa.array(rng.random(502) < 0.5),
            "t": pa.array(rng.integers(0, 10**15, 502), pa.timestamp("us", tz="UTC")),
            "huge": pa.array([1e200, -1e200] * 251),  # its variance overflows to inf
        }
    )
    for prof in (profile_table(table), merge_profiles([profile_table(table)] * 3)):
        text = json.dumps(prof.to_dict(), allow_nan=False)
        assert DatasetProfile.from_dict(json.loads(text)) == prof
    assert profile_table(table).to_dict()["columns"]["huge"]["std"] == "inf"


def test_from_dict_rejects_malformed_input() -> None:
    """A dict that is not a profile raises InputError instead of a bare KeyError."""
    with pytest.raises(InputError, match="malformed profile"):
        DatasetProfile.from_dict({"rows": 1, "columns": {"x": {"kind": "numeric"}}})


# --- diff ---------------------------------------------------------------------------


def test_diff_reports_added_removed_columns_and_a_shifted_mean() -> None:
    """diff_profiles lists added and removed columns and the change in mean, std and median."""
    rng = np.random.default_rng(12)
    old = profile_table(pa.table({"x": rng.normal(0, 1, 5000), "gone": ["a"] * 5000}))
    new = profile_table(pa.table({"x": rng.normal(3, 1, 5000), "added": [1] * 5000}))
    d = diff_profiles(old, new)
    assert (d["added"], d["removed"]) == (["added"], ["gone"])
    x = d["columns"]["x"]
    assert x["kind_changed"] is False
    assert x["mean"]["change"] == pytest.approx(3.0, abs=0.1)
    assert x["median"]["change"] == pytest.approx(3.0, abs=0.1)
    assert x["std"]["change"] == pytest.approx(0.0, abs=0.1)
    assert x["psi"] > 1.0
    json.dumps(d, allow_nan=False)


def test_diff_reports_kind_change_and_category_moves() -> None:
    """diff_profiles flags a kind change and the categories that appeared, vanished or moved."""
    old = profile_table(pa.table({"k": [1.0] * 100, "c": ["a"] * 50 + ["b"] * 50}))
    new = profile_table(pa.table({"k": ["1"] * 100, "c": ["a"] * 80 + ["z"] * 20}))
    d = diff_profiles(old, new)
    assert d["columns"]["k"]["kind"] == {"old": "numeric", "new": "categorical"}
    assert d["columns"]["k"]["kind_changed"] is True
    c = d["columns"]["c"]
    assert (c["appeared"], c["disappeared"]) == (["z"], ["b"])
    assert c["share_changes"][0] == {"value": "b", "old": 0.5, "new": 0.0, "change": -0.5}


def test_psi_is_near_zero_for_identical_distributions_and_large_for_shifted_ones() -> None:
    """PSI stays below 0.02 for two samples of one distribution and exceeds 0.2 after a shift."""
    rng = np.random.default_rng(13)
    cats = [f"v{j}" for j in range(10)]

    def sample(shift: float, p: list[float]) -> DatasetProfile:
        return profile_table(
            pa.table(
                {
                    "x": rng.normal(shift, 1.0, 50_000),
                    "c": pa.array(rng.choice(cats, 50_000, p=p)),
                }
            )
        )

    even, skewed = [0.1] * 10, [0.55] + [0.05] * 9
    base = sample(0.0, even)
    same = diff_profiles(base, sample(0.0, even))["columns"]
    moved = diff_profiles(base, sample(1.0, skewed))["columns"]
    assert same["x"]["psi"] < 0.02
    assert same["c"]["psi"] < 0.02
    assert moved["x"]["psi"] > 0.2
    assert moved["c"]["psi"] > 0.2
    assert diff_profiles(base, base)["columns"]["x"]["psi"] == pytest.approx(0.0, abs=1e-12)
