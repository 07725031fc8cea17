"""Champion against challenger on the same rows: the evidence behind a promotion."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from driftloop.errors import DefinitionError
from driftloop.evaluation.compare import ROC_POINTS, check_gates, compare, roc_points
from driftloop.evaluation.gates import CalibrationBound, Change, SliceRegression, Threshold
from driftloop.evaluation.metrics import METRICS, Metric

N = 400
rng = np.random.default_rng(5)
Y = rng.integers(0, 2, N).astype(np.float64)
NOISE = rng.normal(0, 1, N)
WEAK = 1 / (1 + np.exp(-(Y - 0.5 + 2.0 * NOISE)))
STRONG = 1 / (1 + np.exp(-(2 * (Y - 0.5) + 0.5 * NOISE)))
COUNTRY = np.array(["fr", "de"] * (N // 2))
AMOUNT = rng.uniform(1, 100, N)

RESAMPLES = 200


def cost(y: Any, pred: Any, rows: Any) -> float:
    """Money lost on the positives the model misses."""
    return float((rows["amount"] * (pred < 0.5) * y).sum())


def test_without_a_champion_there_are_no_differences_and_change_gates_are_skipped() -> None:
    """A first model is judged on thresholds only; change and slice gates say why they skip."""
    report = compare(
        "binary",
        Y,
        STRONG,
        gates=[
            Threshold("roc_auc", min=0.6),
            Change("roc_auc", min_delta=0.0),
            SliceRegression("roc_auc", max_drop=0.05),
        ],
        slices={"country": COUNTRY},
    )
    assert report.differences == {}
    assert report.champion is None
    assert report.champion_metrics is None
    assert report.champion_slices is None
    assert report.resamples == 0
    assert report.verdict.passed
    passed, change, slices = report.verdict.results
    assert passed.passed is True
    assert change.passed is None
    assert "no champion" in change.reason
    assert slices.passed is None
    body = report.to_dict()
    assert body["champion"] is None
    assert all(m["champion"] is None and m["difference"] is None for m in body["metrics"])
    assert body["roc"]["champion"] is None
    assert body["calibration"]["champion"] is None


def test_with_a_champion_every_metric_has_a_paired_difference_with_an_interval() -> None:
    """Each metric of the task gets b - a with a bootstrap interval around it."""
    report = compare(
        "binary",
        Y,
        STRONG,
        WEAK,
        champion={"label": "fraud v3 (champion)", "version": 3},
        resamples=RESAMPLES,
    )
    assert set(report.differences) == set(METRICS.names("binary"))
    assert report.resamples == RESAMPLES
    auc = report.differences["roc_auc"]
    expected = roc_auc_score(Y, STRONG) - roc_auc_score(Y, WEAK)
    assert auc.observed == pytest.approx(expected)
    assert auc.low <= auc.observed <= auc.high
    assert auc.low > 0  # the strong model is clearly better
    body = report.to_dict()
    assert body["champion"] == {"label": "fraud v3 (champion)", "version": 3}
    for metric in body["metrics"]:
        assert metric["champion"] is not None
        assert metric["difference"]["resamples"] > 0
        assert metric["difference"]["low"] <= metric["difference"]["high"]


def test_change_gates_judge_the_improvement_over_the_champion() -> None:
    """A better challenger passes "not worse"; the weaker one fails it."""
    gates = [Change("roc_auc", min_delta=0.0, use_interval=True)]
    better = compare("binary", Y, STRONG, WEAK, gates=gates, resamples=RESAMPLES)
    worse = compare("binary", Y, WEAK, STRONG, gates=gates, resamples=RESAMPLES)
    assert better.verdict.passed
    assert not worse.verdict.passed


def test_with_a_champion_slices_are_computed_for_both_models() -> None:
    """Each slice of the challenger has the champion's metrics beside it."""
    report = compare(
        "binary",
        Y,
        STRONG,
        WEAK,
        slices={"country": COUNTRY},
        gates=[SliceRegression("roc_auc", max_drop=0.0)],
        resamples=RESAMPLES,
    )
    assert report.champion_slices is not None
    assert [s.label for s in report.champion_slices] == ["country = de", "country = fr"]
    assert report.verdict.passed
    slices = report.to_dict()["slices"]
    assert [s["label"] for s in slices] == ["country = de", "country = fr"]
    for s in slices:
        assert s["count"] == N // 2
        assert s["challenger"]["roc_auc"] > s["champion"]["roc_auc"]


def test_a_slice_too_small_has_no_metrics_for_either_model() -> None:
    """Below min_slice_size a slice is counted but not scored."""
    report = compare(
        "binary", Y, STRONG, WEAK, slices={"country": COUNTRY}, min_slice_size=N, resamples=20
    )
    for s in report.to_dict()["slices"]:
        assert s["too_small"] is True
        assert s["challenger"] is None
        assert s["champion"] is None


def test_check_gates_refuses_something_that_is_not_a_gate() -> None:
    """A bare string or dict is not a gate."""
    with pytest.raises(DefinitionError, match="is not a gate"):
        check_gates(["roc_auc >= 0.7"], "binary")
    with pytest.raises(DefinitionError, match="is not a gate"):
        compare("binary", Y, STRONG, gates=[{"metric": "roc_auc"}])  # type: ignore[list-item]


def test_check_gates_refuses_a_metric_the_task_does_not_have() -> None:
    """An RMSE gate on a classifier, or ECE on a regressor, is a definition error."""
    with pytest.raises(DefinitionError, match=r"'rmse'.*binary"):
        check_gates([Threshold("rmse", max=1.0)], "binary")
    with pytest.raises(DefinitionError, match=r"'ece'.*regression"):
        check_gates([CalibrationBound(max_ece=0.1)], "regression")


def test_check_gates_accepts_the_task_metrics_and_custom_ones() -> None:
    """Built-in metrics of the task and declared business metrics may be gated on."""
    check_gates(
        [Threshold("roc_auc", min=0.5), CalibrationBound(max_ece=0.1), Change("cost")],
        "binary",
        {"cost": cost},
    )
    check_gates([Threshold("macro_f1", min=0.5)], "multiclass")


def test_roc_auc_of_the_curve_equals_scikit_learn() -> None:
    """The trapezoid area under the curve is the ROC AUC, ties included."""
    tied = np.round(STRONG, 1)
    for scores in (STRONG, WEAK, tied):
        assert roc_points(Y, scores)["auc"] == pytest.approx(roc_auc_score(Y, scores))


def test_the_roc_curve_runs_from_zero_to_one_and_never_decreases() -> None:
    """Both rates start at 0, end at 1, and only grow."""
    roc = roc_points(Y, WEAK)
    fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all()
    assert (np.diff(tpr) >= 0).all()


def test_a_long_roc_curve_is_thinned_to_at_most_200_points_keeping_its_ends() -> None:
    """5000 distinct scores give a curve of at most ROC_POINTS points, same area."""
    y = rng.integers(0, 2, 5000).astype(np.float64)
    p = rng.uniform(0, 1, 5000)
    roc = roc_points(y, p)
    assert ROC_POINTS == 200
    assert 100 < len(roc["fpr"]) <= ROC_POINTS
    assert len(roc["fpr"]) == len(roc["tpr"])
    assert (roc["fpr"][0], roc["fpr"][-1]) == (0.0, 1.0)
    assert roc["auc"] == pytest.approx(roc_auc_score(y, p))
    assert len(roc_points(y, p, points=10)["fpr"]) <= 10


def test_a_roc_curve_with_one_class_has_no_area() -> None:
    """All-negative labels give the diagonal and no AUC."""
    assert roc_points(np.zeros(5), np.linspace(0, 1, 5)) == {
        "fpr": [0.0, 1.0],
        "tpr": [0.0, 1.0],
        "auc": None,
    }


def test_the_report_dict_is_strict_json_even_with_undefined_metrics() -> None:
    """NaN metrics (AUC of a slice with one class) become null: json.dumps(allow_nan=False)
    works."""
    y = Y.copy()
    country = COUNTRY.copy()
    y[country == "de"] = 0.0  # one class only in the "de" slice: its AUC is NaN
    report = compare(
        "binary",
        y,
        STRONG,
        WEAK,
        slices={"country": country, "amount": AMOUNT},
        custom={"cost": cost},
        rows={"amount": AMOUNT},
        resamples=20,
    )
    body = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    de = next(s for s in body["slices"] if s["label"] == "country = de")
    assert de["challenger"]["roc_auc"] is None
    assert body["verdict"]["passed"] is True
    assert body["model"] == ""
    assert body["rows"] == N


def test_a_custom_business_metric_appears_among_the_metrics() -> None:
    """A custom metric is computed for both models, with its paired difference."""
    report = compare(
        "binary",
        Y,
        STRONG,
        WEAK,
        custom={"cost": cost},
        rows={"amount": AMOUNT},
        resamples=20,
        gates=[Threshold("cost", max=1e9)],
    )
    assert report.challenger_metrics["cost"] == pytest.approx(cost(Y, STRONG, {"amount": AMOUNT}))
    assert report.champion_metrics is not None
    assert report.champion_metrics["cost"] == pytest.approx(cost(Y, WEAK, {"amount": AMOUNT}))
    assert "cost" in report.differences
    metric = next(m for m in report.to_dict()["metrics"] if m["name"] == "cost")
    assert metric["challenger"] == pytest.approx(report.challenger_metrics["cost"])
    assert metric["difference"] is not None
    assert report.verdict.passed


def test_a_custom_metric_where_lower_is_better_is_judged_that_way() -> None:
    """A cost declared as Metric(greater_is_better=False) improves when it falls: the
    change gate passes for the cheaper challenger and the report says lower is better."""
    lower = {"cost": Metric("cost", cost, greater_is_better=False)}
    gates = [Change("cost", min_delta=0.0, use_interval=True)]
    rows = {"amount": AMOUNT}
    cheaper = compare("binary", Y, STRONG, WEAK, custom=lower, rows=rows, gates=gates, resamples=20)
    dearer = compare("binary", Y, WEAK, STRONG, custom=lower, rows=rows, gates=gates, resamples=20)
    assert cheaper.verdict.passed
    assert not dearer.verdict.passed
    metric = next(m for m in cheaper.to_dict()["metrics"] if m["name"] == "cost")
    assert metric["greater_is_better"] is False


def test_binary_reports_calibration_and_roc_for_both_models() -> None:
    """A binary report holds the reliability table and the ROC curve of each model."""
    report = compare("binary", Y, STRONG, WEAK, resamples=20)
    assert report.calibration is not None
    assert report.roc is not None
    assert len(report.calibration["challenger"]["bins"]) == 10
    assert report.calibration["champion"]["ece"] is not None
    assert report.roc["champion"]["auc"] == pytest.approx(roc_auc_score(Y, WEAK))


def test_regression_has_no_calibration_or_roc() -> None:
    """A regressor is scored by its errors only."""
    y = rng.normal(size=200)
    report = compare("regression", y, y + 0.1, y + 0.5, resamples=50)
    assert report.calibration is None
    assert report.roc is None
    assert set(report.challenger_metrics) == {"rmse", "mae", "mape", "r2"}
    assert report.differences["rmse"].observed == pytest.approx(0.1 - 0.5)
    body = report.to_dict()
    assert (body["calibration"], body["roc"]) == (None, None)
    json.dumps(body, allow_nan=False)


def test_multiclass_has_no_calibration_or_roc() -> None:
    """A multiclass report holds accuracy, macro F1 and log loss, and no curves."""
    y = rng.integers(0, 3, 150).astype(np.float64)
    pred = np.full((150, 3), 0.1)
    pred[np.arange(150), y.astype(int)] = 0.8
    report = compare("multiclass", y, pred, gates=[Threshold("accuracy", min=0.9)])
    assert report.calibration is None
    assert report.roc is None
    assert report.challenger_metrics["accuracy"] == 1.0
    assert set(report.challenger_metrics) == {"accuracy", "macro_f1", "log_loss"}
    assert report.verdict.passed
    json.dumps(report.to_dict(), allow_nan=False)


def test_the_report_describes_the_two_models_and_its_settings() -> None:
    """Model name, labels, threshold and confidence are carried into the dict."""
    report = compare(
        "binary",
        Y,
        STRONG,
        WEAK,
        model="fraud",
        challenger={"label": "fraud (challenger)", "version": None},
        threshold=0.3,
        confidence=0.9,
        resamples=20,
    )
    body = report.to_dict()
    assert body["model"] == "fraud"
    assert body["challenger"] == {"label": "fraud (challenger)", "version": None}
    assert body["champion"] == {"label": "champion"}
    assert (body["threshold"], body["confidence"], body["resamples"]) == (0.3, 0.9, 20)
    assert report.differences["accuracy"].confidence == 0.9
    directions = {m["name"]: m["greater_is_better"] for m in body["metrics"]}
    assert directions["roc_auc"] is True
    assert directions["log_loss"] is False
