"""Drift statistics equal scipy's on the same data, and signal drift where there is some."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from driftloop.errors import InputError
from driftloop.monitoring.statistics import (
    CategoricalReference,
    NumericReference,
    auto_statistic,
    chisquare,
    jensenshannon,
    ks,
    psi,
    wasserstein,
)

RNG = np.random.default_rng(42)


@pytest.mark.parametrize(("n", "m"), [(200, 150), (30_000, 20_000)])
def test_ks_equals_scipys_two_sample_test(n: int, m: int) -> None:
    """Statistic and p-value equal scipy.stats.ks_2samp (exact small, asymptotic large)."""
    ref = RNG.normal(size=n)
    cur = RNG.normal(0.05, 1.0, size=m)
    ours = ks(NumericReference.fit(ref), cur)
    theirs = stats.ks_2samp(ref, cur)
    assert ours.value == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_wasserstein_equals_scipys_divided_by_the_reference_std() -> None:
    ref = RNG.lognormal(size=5000)
    cur = RNG.lognormal(0.1, size=4000)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert wasserstein(NumericReference.fit(ref), cur).value == pytest.approx(expected, rel=1e-10)


def test_chisquare_is_the_two_sample_contingency_test() -> None:
    ref = RNG.choice(["a", "b", "c"], size=3000, p=[0.5, 0.3, 0.2])
    cur = RNG.choice(["a", "b", "c", "d"], size=2000, p=[0.45, 0.3, 0.2, 0.05])
    ours = chisquare(CategoricalReference.fit(ref), cur)
    table = [
        [np.sum(ref == c) for c in "abcd"],
        [np.sum(cur == c) for c in "abcd"],
    ]
    theirs = stats.chi2_contingency(table, correction=False)
    assert ours.value == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    assert ours.drifted


def test_binned_statistics_use_the_reference_bins_with_outer_bins() -> None:
    """PSI and Jensen-Shannon over 10 equal-width bins of the reference's range plus a
    bin below and one above: values outside the reference still count."""
    ref = RNG.uniform(0, 10, size=10_000)
    cur = np.concatenate([RNG.uniform(0, 10, size=9000), RNG.uniform(10, 20, size=1000)])
    reference = NumericReference.fit(ref, bins=10)
    edges = np.linspace(ref.min(), ref.max(), 11)
    inner = np.histogram(cur, bins=edges)[0]
    above = np.sum(cur > ref.max())
    actual = np.array([0, *inner, above], dtype=float) / cur.size
    expected = np.array([0, *np.histogram(ref, bins=edges)[0], 0], dtype=float) / ref.size
    p, q = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    assert psi(reference, cur).value == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert jensenshannon(reference, cur).value == pytest.approx(
        distance.jensenshannon(expected, actual)
    )
    assert psi(reference, cur).drifted
    assert jensenshannon(reference, cur).drifted


def test_categorical_psi_and_jensenshannon_compare_category_shares() -> None:
    ref = ["a"] * 50 + ["b"] * 50
    reference = CategoricalReference.fit(ref)
    assert psi(reference, ["a"] * 50 + ["b"] * 50).value == pytest.approx(0.0)
    shifted = jensenshannon(reference, ["a"] * 90 + ["b"] * 10)
    assert shifted.value == pytest.approx(distance.jensenshannon([0.5, 0.5], [0.9, 0.1]))
    assert shifted.drifted


def test_undrifted_samples_do_not_signal_drift() -> None:
    ref = RNG.normal(size=20_000)
    cur = RNG.normal(size=20_000)
    reference = NumericReference.fit(ref)
    assert not ks(reference, cur).drifted
    assert not wasserstein(reference, cur).drifted
    assert not psi(reference, cur).drifted
    assert not jensenshannon(reference, cur).drifted


def test_the_automatic_choice_follows_evidentlys_defaults() -> None:
    assert auto_statistic("numeric", 1000, 50) == "ks"
    assert auto_statistic("numeric", 1001, 50) == "wasserstein"
    assert auto_statistic("numeric", 500, 3) == "chisquare"
    assert auto_statistic("categorical", 5000, 12) == "jensenshannon"


def test_empty_samples_are_refused_with_a_clear_error() -> None:
    with pytest.raises(InputError, match="at least one finite value"):
        NumericReference.fit([np.nan, np.inf])
    reference = NumericReference.fit([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="no finite values"):
        ks(reference, [np.nan])
    with pytest.raises(InputError, match="empty"):
        chisquare(CategoricalReference.fit(["a"]), [])


def test_all_numeric_statistics_at_once_equal_each_computed_alone() -> None:
    """numeric_statistics shares one pooled sort and one binning; the figures are the
    same as each function's, for large (asymptotic KS) and small (exact) samples."""
    from driftloop.monitoring.statistics import numeric_statistics

    for n in (500, 20_000):
        ref = RNG.gamma(2.0, size=n)
        cur = RNG.gamma(2.1, size=n)
        reference = NumericReference.fit(ref)
        together = numeric_statistics(reference, cur)
        alone = {
            "ks": ks(reference, cur),
            "wasserstein": wasserstein(reference, cur),
            "chisquare": chisquare(reference, cur),
            "psi": psi(reference, cur),
            "jensenshannon": jensenshannon(reference, cur),
        }
        for name, statistic in alone.items():
            assert together[name].value == pytest.approx(statistic.value, rel=1e-12), name
            if statistic.p_value is None:
                assert together[name].p_value is None
            else:
                assert together[name].p_value == pytest.approx(statistic.p_value, rel=1e-9)
