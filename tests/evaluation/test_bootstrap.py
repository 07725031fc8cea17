"""Tests for driftloop.evaluation.bootstrap: paired intervals for challenger minus champion."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn import metrics as skm

from driftloop.errors import InputError, NotFoundError
from driftloop.evaluation import bootstrap as module
from driftloop.evaluation.bootstrap import paired_bootstrap
from driftloop.evaluation.metrics import compute_metrics


def models(n: int = 2000, seed: int = 0):
    """A binary target, a weak champion and a clearly better challenger."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    noise = rng.normal(size=n)
    weak = 1 / (1 + np.exp(-(2 * y - 1 + 2.5 * noise)))
    strong = 1 / (1 + np.exp(-(2 * y - 1 + 0.7 * noise)))
    return y, weak, strong


def test_docstring_examples_hold() -> None:
    """The module's >>> examples run and give what they show."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_same_seed_gives_identical_intervals() -> None:
    """Two runs with one seed agree exactly; another seed gives other resamples."""
    y, a, b = models()
    first = paired_bootstrap("binary", y, a, b, resamples=200, seed=7)
    again = paired_bootstrap("binary", y, a, b, resamples=200, seed=7)
    other = paired_bootstrap("binary", y, a, b, resamples=200, seed=8)
    assert first == again
    assert first["roc_auc"].low != other["roc_auc"].low


def test_threads_do_not_change_the_result() -> None:
    """Each chunk has its own random stream, so running chunks on two threads changes nothing."""
    y, a, b = models(n=3000)
    one = paired_bootstrap("binary", y, a, b, resamples=3000, seed=1)
    two = paired_bootstrap("binary", y, a, b, resamples=3000, seed=1, threads=2)
    assert one == two


def test_observed_difference_is_challenger_minus_champion_and_lies_in_the_interval() -> None:
    """``observed`` is b - a of the plain metrics and sits inside its percentile interval."""
    y, a, b = models()
    out = paired_bootstrap("binary", y, a, b, resamples=300)
    ma, mb = compute_metrics("binary", y, a), compute_metrics("binary", y, b)
    for name, diff in out.items():
        assert diff.a == pytest.approx(ma[name])
        assert diff.observed == pytest.approx(mb[name] - ma[name])
        assert diff.low <= diff.observed <= diff.high, name
        assert diff.std_error >= 0
        assert diff.resamples == 300
    assert out["roc_auc"].b == pytest.approx(skm.roc_auc_score(y, b))


def test_clearly_better_challenger_gets_an_interval_above_zero() -> None:
    """A much better challenger has AUC and PR AUC intervals above 0 and log loss below 0."""
    y, a, b = models()
    out = paired_bootstrap("binary", y, a, b, resamples=300)
    assert out["roc_auc"].low > 0
    assert out["pr_auc"].low > 0
    assert out["log_loss"].high < 0
    assert out["roc_auc"].excludes_zero()


def test_identical_models_give_zero_difference_and_an_interval_around_zero() -> None:
    """The same predictions twice give observed 0 and an interval that holds 0."""
    y, a, _ = models()
    out = paired_bootstrap("binary", y, a, a.copy(), resamples=100)
    for diff in out.values():
        assert diff.observed == 0
        assert diff.low <= 0 <= diff.high
        assert not diff.excludes_zero()


def test_interval_width_tracks_the_standard_error() -> None:
    """A 95% interval spans roughly four bootstrap standard errors."""
    y, a, b = models(n=5000)
    diff = paired_bootstrap("binary", y, a, b, metrics=["brier"], resamples=1000)["brier"]
    assert 3.0 * diff.std_error < diff.high - diff.low < 5.0 * diff.std_error


def test_regression_and_multiclass_and_custom_metrics_are_compared() -> None:
    """Other tasks and custom metrics (called per resample) get intervals too."""
    rng = np.random.default_rng(2)
    y = rng.uniform(1, 5, 400)
    out = paired_bootstrap(
        "regression",
        y,
        y + rng.normal(0, 1, 400),
        y + rng.normal(0, 0.2, 400),
        resamples=100,
        metrics=["rmse", "worst"],
        custom={"worst": lambda t, p, rows: float(np.max(np.abs(t - p)))},
    )
    assert set(out) == {"rmse", "worst"}
    assert out["rmse"].high < 0
    labels = rng.integers(0, 3, 400)
    probs = np.full((400, 3), 0.2)
    probs[np.arange(400), labels] = 0.6
    multi = paired_bootstrap("multiclass", labels, np.full((400, 3), 1 / 3), probs, resamples=50)
    assert multi["accuracy"].low > 0


def test_bad_requests_are_refused() -> None:
    """Unknown metrics, mismatched prediction shapes and bad settings raise clear errors."""
    y, a, b = models(n=100)
    with pytest.raises(NotFoundError, match="unknown metric 'auc'"):
        paired_bootstrap("binary", y, a, b, metrics=["auc"])
    with pytest.raises(InputError, match="differ in length"):
        paired_bootstrap("binary", y, a, b[:50])
    with pytest.raises(InputError, match="confidence"):
        paired_bootstrap("binary", y, a, b, confidence=1.5)
    with pytest.raises(InputError, match="resamples"):
        paired_bootstrap("binary", y, a, b, resamples=0)
