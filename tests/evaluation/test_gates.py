"""Gates judge a challenger against the champion and say why."""

from __future__ import annotations

import numpy as np

from driftloop.evaluation.bootstrap import paired_bootstrap
from driftloop.evaluation.gates import (
    CalibrationBound,
    Change,
    SliceRegression,
    Threshold,
    evaluate_gates,
)
from driftloop.evaluation.metrics import compute_metrics
from driftloop.evaluation.slices import slice_metrics


def _models(n: int = 4000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    signal = y + rng.normal(0, 1.0, n)
    weak = 1 / (1 + np.exp(-signal))
    strong = 1 / (1 + np.exp(-(y * 2 + rng.normal(0, 0.8, n) - 1)))
    return y, weak, strong


def test_value_thresholds_pass_and_fail_with_the_value_named() -> None:
    """A metric inside its bounds passes; outside, the reason gives the value and bound."""
    verdict = evaluate_gates(
        [Threshold("roc_auc", min=0.5), Threshold("roc_auc", min=0.99)],
        challenger={"roc_auc": 0.8},
    )
    assert [r.passed for r in verdict.results] == [True, False]
    assert "roc_auc = 0.8 < 0.99" in verdict.results[1].reason
    assert not verdict.passed


def test_without_a_champion_change_and_slice_gates_are_skipped_and_said_so() -> None:
    """A first model passes change gates as skipped, with the reason stated."""
    verdict = evaluate_gates(
        [Change("roc_auc", min_delta=0.0), SliceRegression("roc_auc", max_drop=0.01)],
        challenger={"roc_auc": 0.7},
    )
    assert verdict.passed
    assert [r.passed for r in verdict.results] == [None, None]
    assert all("no champion yet" in r.reason for r in verdict.results)
    assert verdict.reasons[0].startswith("SKIP:")


def test_a_missing_metric_fails_the_gate() -> None:
    """A gate on a metric that was not computed fails rather than passing silently."""
    verdict = evaluate_gates(
        [Threshold("pr_auc", min=0.1), CalibrationBound(0.1)], challenger={"roc_auc": 0.7}
    )
    assert [r.passed for r in verdict.results] == [False, False]
    assert "pr_auc was not computed" in verdict.results[0].reason


def test_not_worse_reads_the_same_for_metrics_where_lower_is_better() -> None:
    """min_delta=0 means 'not worse': a lower log loss passes, a higher one fails."""
    better = evaluate_gates(
        [Change("log_loss", min_delta=0.0)],
        challenger={"log_loss": 0.30},
        champion={"log_loss": 0.35},
    )
    worse = evaluate_gates(
        [Change("log_loss", min_delta=0.0)],
        challenger={"log_loss": 0.40},
        champion={"log_loss": 0.35},
    )
    assert better.passed
    assert not worse.passed
    assert "improvement -0.05" in worse.results[0].reason


def test_relative_changes_are_fractions_of_the_champion() -> None:
    """A 2% relative improvement passes a 1% bar and fails a 5% bar."""
    metrics = {"challenger": {"roc_auc": 0.816}, "champion": {"roc_auc": 0.8}}
    ok = evaluate_gates([Change("roc_auc", min_relative=0.01)], **metrics)
    strict = evaluate_gates([Change("roc_auc", min_relative=0.05)], **metrics)
    assert ok.passed
    assert not strict.passed


def test_an_interval_gate_needs_the_lower_bound_to_clear() -> None:
    """A clearly better challenger clears the interval gate; an identical one does not."""
    y, weak, strong = _models()
    diffs = paired_bootstrap("binary", y, weak, strong, resamples=200, seed=3)
    a, b = compute_metrics("binary", y, weak), compute_metrics("binary", y, strong)
    gates = [
        Change("roc_auc", min_delta=0.0, use_interval=True),
        Change("log_loss", min_delta=0.0, use_interval=True),
    ]
    assert evaluate_gates(gates, challenger=b, champion=a, differences=diffs).passed
    same = paired_bootstrap("binary", y, weak, weak, resamples=200, seed=3)
    tied = evaluate_gates(
        [Change("roc_auc", min_delta=0.001, use_interval=True)],
        challenger=a,
        champion=a,
        differences=same,
    )
    assert not tied.passed
    missing = evaluate_gates(
        [Change("roc_auc", min_delta=0.0, use_interval=True)], challenger=b, champion=a
    )
    assert "no bootstrap interval" in missing.results[0].reason


def test_a_slice_regression_names_the_worst_slice() -> None:
    """When one slice gets much worse, the gate fails and names it."""
    y, _weak, strong = _models()
    group = np.where(np.arange(len(y)) % 2 == 0, "even", "odd")
    degraded = strong.copy()
    degraded[group == "odd"] = 1 - degraded[group == "odd"]
    champion = slice_metrics("binary", y, strong, {"group": group})
    challenger = slice_metrics("binary", y, degraded, {"group": group})
    verdict = evaluate_gates(
        [SliceRegression("roc_auc", max_drop=0.05)],
        challenger={},
        champion={},
        challenger_slices=challenger,
        champion_slices=champion,
    )
    assert not verdict.passed
    assert "odd" in verdict.results[0].reason
    same = evaluate_gates(
        [SliceRegression("roc_auc", max_drop=0.05)],
        challenger={},
        champion={},
        challenger_slices=champion,
        champion_slices=champion,
    )
    assert same.passed


def test_a_calibration_bound_checks_the_expected_calibration_error() -> None:
    """ECE above the bound fails with its value."""
    verdict = evaluate_gates([CalibrationBound(max_ece=0.05)], challenger={"ece": 0.08})
    assert not verdict.passed
    assert "ece = 0.08 > 0.05" in verdict.results[0].reason
    assert verdict.to_dict()["passed"] is False
