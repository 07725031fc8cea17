"""Tests for driftloop.evaluation.metrics: numpy metrics that agree with scikit-learn."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from driftloop.errors import InputError, NotFoundError, StateError
from driftloop.evaluation import metrics as module
from driftloop.evaluation.metrics import (
    METRICS,
    BinaryKernel,
    Metric,
    MetricRegistry,
    calibration,
    compute_metrics,
)


def binary_data(seed: int, n: int = 500, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 0.6 * rng.random(n) + 0.4 * y * rng.random(n)
    if decimals is not None:
        p = np.round(p, decimals)
    return y, np.clip(p, 0.001, 0.999)


def test_docstring_examples_hold() -> None:
    """The module's >>> examples run and give what they show."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), decimals=st.sampled_from([None, 1, 2]))
def test_binary_metrics_match_sklearn(seed: int, decimals: int | None) -> None:
    """Every binary metric equals scikit-learn's on random scores, with or without ties."""
    y, p = binary_data(seed, decimals=decimals)
    m = compute_metrics("binary", y, p, threshold=0.4)
    hit = p >= 0.4
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p), rel=1e-9)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, hit))
    assert m["precision"] == pytest.approx(skm.precision_score(y, hit, zero_division=0))
    assert m["recall"] == pytest.approx(skm.recall_score(y, hit, zero_division=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, hit, zero_division=0))


def test_perfect_and_inverted_rankings_give_auc_one_and_zero() -> None:
    """A perfect ranking has ROC and PR AUC 1; the inverted ranking has ROC AUC 0."""
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    perfect = compute_metrics("binary", y, p)
    inverted = compute_metrics("binary", y, 1 - p)
    assert (perfect["roc_auc"], perfect["pr_auc"], perfect["accuracy"]) == (1.0, 1.0, 1.0)
    assert inverted["roc_auc"] == 0.0
    assert inverted["pr_auc"] == pytest.approx(skm.average_precision_score(y, 1 - p))


def test_all_tied_scores_give_auc_one_half() -> None:
    """When every score is the same, ROC AUC is 0.5 and PR AUC the positive rate."""
    y = np.array([0, 1, 1, 0, 1])
    m = compute_metrics("binary", y, np.full(5, 0.3))
    assert m["roc_auc"] == 0.5
    assert m["pr_auc"] == pytest.approx(0.6)


def test_single_class_gives_nan_auc_not_an_error() -> None:
    """With one class present ROC and PR AUC are NaN; the other metrics still compute."""
    m = compute_metrics("binary", [0, 0, 0], [0.1, 0.6, 0.2])
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["pr_auc"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["precision"] == 0.0
    assert m["recall"] == 0.0


def test_reliability_table_counts_sum_to_rows_and_ece_matches_metric() -> None:
    """Bin counts add up to the rows, means agree with a direct computation, ECE matches."""
    y, p = binary_data(3, n=1000)
    cal = calibration(y, p, bins=10)
    assert cal.count.sum() == 1000
    assert len(cal.edges) == 11
    in_bin = (p >= 0.3) & (p < 0.4)
    assert cal.mean_predicted[3] == pytest.approx(p[in_bin].mean())
    assert cal.observed_rate[3] == pytest.approx(y[in_bin].mean())
    assert cal.ece == pytest.approx(compute_metrics("binary", y, p)["ece"])
    filled = cal.count > 0
    direct = np.sum(cal.count[filled] * np.abs(cal.mean_predicted - cal.observed_rate)[filled])
    assert cal.ece == pytest.approx(direct / 1000)


def test_probability_one_falls_in_the_last_bin_and_empty_bins_are_nan() -> None:
    """A score of exactly 1 is counted in the last bin; empty bins have NaN means."""
    cal = calibration([1, 1], [1.0, 0.95], bins=4)
    assert cal.count.tolist() == [0, 0, 0, 2]
    assert math.isnan(cal.mean_predicted[0])
    assert cal.rows()[3]["count"] == 2


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5))
def test_multiclass_metrics_match_sklearn(seed: int, k: int) -> None:
    """Multiclass accuracy, macro F1 and log loss equal scikit-learn's."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, 300)
    logits = rng.normal(size=(300, k))
    logits[np.arange(300), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = compute_metrics("multiclass", y, probs)
    predicted = probs.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=list(range(k))))


def test_macro_f1_averages_only_classes_seen() -> None:
    """A class neither true nor predicted is left out of macro F1, as in scikit-learn."""
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]])
    y = np.array([0, 2, 0])
    m = compute_metrics("multiclass", y, probs)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, probs.argmax(axis=1), average="macro"))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_regression_metrics_match_sklearn(seed: int) -> None:
    """RMSE, MAE, MAPE and R² equal scikit-learn's when no target is zero."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(1, 10, 200)
    p = y + rng.normal(0, 1, 200)
    m = compute_metrics("regression", y, p)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p))
    assert m["r2"] == pytest.approx(skm.r2_score(y, p))


def test_mape_skips_zero_targets_and_r2_of_constant_target_is_nan() -> None:
    """Rows with y == 0 do not count in MAPE; R² of a constant target is undefined (NaN)."""
    m = compute_metrics("regression", [0.0, 2.0, 4.0], [5.0, 3.0, 3.0])
    assert m["mape"] == pytest.approx((0.5 + 0.25) / 2)
    assert math.isnan(compute_metrics("regression", [2.0, 2.0], [1.0, 3.0])["r2"])


def test_custom_metric_receives_rows_and_is_reported_by_name() -> None:
    """A business metric given in ``custom`` is called with y, pred and the extra columns."""

    def missed_amount(y, p, rows):
        return float(rows["amount"][(y == 1) & (p < 0.5)].sum())

    m = compute_metrics(
        "binary",
        [1, 1, 0],
        [0.2, 0.9, 0.1],
        custom={"cost": Metric("cost", missed_amount, greater_is_better=False)},
        rows={"amount": [100.0, 7.0, 3.0]},
    )
    assert m["cost"] == 100.0
    assert "roc_auc" in m


def test_registry_knows_directions_and_rejects_duplicates() -> None:
    """The registry tells which way each metric improves and refuses a second 'cost'."""
    reg = MetricRegistry()
    assert not reg.get("log_loss").greater_is_better
    assert reg.get("roc_auc").greater_is_better
    reg.register(Metric("cost", lambda y, p, rows: 1.0, greater_is_better=False))
    with pytest.raises(StateError):
        reg.register(Metric("cost", lambda y, p, rows: 2.0))
    with pytest.raises(StateError):
        reg.register(Metric("rmse", lambda y, p, rows: 2.0))
    with pytest.raises(NotFoundError, match="unknown metric 'nope'"):
        reg.get("nope")
    assert "accuracy" in METRICS.names("multiclass")


@pytest.mark.parametrize(
    ("task", "y", "pred", "match"),
    [
        ("binary", [0, 1], [0.5], "differ in length"),
        ("binary", [0, float("nan")], [0.5, 0.5], "'y' has a NaN .* row 1"),
        ("binary", [0, 1], [0.5, float("nan")], "'pred' has a NaN .* row 1"),
        ("binary", [0, 1], [0.5, 1.2], r"outside \[0, 1\] at row 1"),
        ("binary", [0, 2], [0.5, 0.5], "must be 0 or 1"),
        ("multiclass", [0, 3], [[0.5, 0.5], [0.5, 0.5]], "labels 0..1"),
        ("multiclass", [0, 1], [[0.5, 0.6], [0.5, 0.5]], "sum to 1"),
        ("survival", [0, 1], [0.5, 0.5], "unknown task 'survival'"),
        ("regression", [], [], "no rows"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_column(task, y, pred, match) -> None:
    """Mismatched lengths, NaN, out-of-range probabilities, bad labels and tasks are refused."""
    with pytest.raises(InputError, match=match):
        compute_metrics(task, y, pred)


def test_weighted_kernel_matches_sklearn_sample_weights_with_ties() -> None:
    """Row weights (as the bootstrap and slices use) give scikit-learn's weighted AUC and AP."""
    y, p = binary_data(11, n=400, decimals=1)
    weights = np.random.default_rng(0).integers(0, 4, size=(3, 400)).astype(np.float64)
    values = BinaryKernel(y.astype(np.float64), p, 0.5, 10).evaluate(weights)
    for r, w in enumerate(weights):
        assert values["roc_auc"][r] == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w))
        expected_ap = skm.average_precision_score(y, p, sample_weight=w)
        assert values["pr_auc"][r] == pytest.approx(expected_ap)
        assert values["brier"][r] == pytest.approx(skm.brier_score_loss(y, p, sample_weight=w))
