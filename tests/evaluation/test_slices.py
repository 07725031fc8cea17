"""Tests for driftloop.evaluation.slices: metrics per category and per numeric bin."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from driftloop.errors import InputError
from driftloop.evaluation import slices as module
from driftloop.evaluation.metrics import compute_metrics
from driftloop.evaluation.slices import slice_metrics


def data(n: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 * rng.random(n) + 0.4 * y, 0, 1)
    country = rng.choice(np.array(["fr", "de", "it", "lu"]), n, p=[0.5, 0.3, 0.18, 0.02])
    age = rng.uniform(18, 80, n)
    return y, p, country, age


def test_docstring_examples_hold() -> None:
    """The module's >>> examples run and give what they show."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_category_slices_count_every_row_and_match_direct_metrics() -> None:
    """Counts per value add up to the rows and each slice's metrics equal those of its rows."""
    y, p, country, _ = data()
    out = slice_metrics("binary", y, p, {"country": country})
    assert sum(s.count for s in out) == len(y)
    fr = next(s for s in out if s.label == "country = fr")
    mask = country == "fr"
    assert fr.count == mask.sum()
    assert fr.metrics is not None
    expected = compute_metrics("binary", y[mask], p[mask])
    assert fr.metrics == pytest.approx(expected)


def test_slices_below_min_size_have_a_count_but_no_metrics() -> None:
    """A slice with fewer than min_size rows is reported too small, without metrics."""
    y, p, country, _ = data()
    out = {s.label: s for s in slice_metrics("binary", y, p, {"country": country}, min_size=50)}
    lu = out["country = lu"]
    assert lu.too_small
    assert lu.metrics is None
    assert 0 < lu.count < 50
    assert all(s.metrics is not None for s in out.values() if s.count >= 50)


def test_numeric_bins_cover_every_row_with_quantile_labels() -> None:
    """Quantile bins hold every row once, about equally, under [lo, hi) labels."""
    y, p, _, age = data()
    out = slice_metrics("binary", y, p, {"age": age}, numeric_bins=4)
    assert len(out) == 4
    assert sum(s.count for s in out) == len(y)
    assert all(240 <= s.count <= 260 for s in out)
    assert out[0].label.startswith("age in [")
    assert out[0].label.endswith(")")
    assert out[-1].label.endswith("]")
    assert out[0].low == pytest.approx(age.min())
    assert out[-1].high == pytest.approx(age.max())
    first = (age >= out[0].low) & (age < out[0].high)
    assert out[0].count == first.sum()


def test_missing_values_and_few_distinct_numbers_form_their_own_slices() -> None:
    """NaN and None form an 'is missing' slice; a 0/1 numeric flag is sliced per value."""
    y, p, _, age = data(n=200)
    age = age.copy()
    age[:40] = np.nan
    tags = np.array([None] * 50 + ["a"] * 150, dtype=object)
    flag = np.arange(200) % 2
    out = slice_metrics("binary", y, p, {"age": age, "tag": tags, "flag": flag}, min_size=10)
    labels = {s.label: s.count for s in out}
    assert labels["age is missing"] == 40
    assert labels["tag is missing"] == 50
    assert labels["tag = a"] == 150
    assert labels["flag = 0"] == labels["flag = 1"] == 100
    assert sum(c for label, c in labels.items() if label.startswith("age")) == 200


def test_regression_slices_and_bad_columns() -> None:
    """Regression slices carry regression metrics; a column of the wrong length is refused."""
    rng = np.random.default_rng(1)
    y = rng.uniform(1, 2, 100)
    out = slice_metrics("regression", y, y + 0.5, {"g": np.repeat(["x", "y"], 50)})
    assert [s.metrics["mae"] for s in out if s.metrics] == pytest.approx([0.5, 0.5])
    with pytest.raises(InputError, match="slice column 'g'"):
        slice_metrics("regression", y, y, {"g": ["x"] * 99})
