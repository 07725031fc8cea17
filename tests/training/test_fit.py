"""Tests for driftloop.training.fit: fitting in a child process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftloop.errors import StateError
from driftloop.training import _testing
from driftloop.training.fit import BUILTIN_TRAINERS, FitResult, fit_in_child

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
Y_BINARY = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
Y_MULTI = np.digitize(X[:, 0], [-0.5, 0.5]).astype(np.int64)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0])

SMALL = {
    "hist_gradient_boosting": {"max_iter": 10},
    "logistic_regression": {},
    "lightgbm": {"n_estimators": 10},
    "xgboost": {"n_estimators": 10},
}


def _child_proba(result: FitResult) -> np.ndarray:
    model: Any = result.model
    if result.flavor == "lightgbm":
        return np.asarray(model.predict(X))
    if result.flavor == "xgboost":
        import xgboost

        return np.asarray(model.predict(xgboost.DMatrix(X)))
    return np.asarray(model.predict_proba(X)[:, 1])


@pytest.mark.parametrize("trainer", sorted(BUILTIN_TRAINERS))
def test_builtin_binary_trainer_predicts_like_an_in_process_fit(trainer: str) -> None:
    """A builtin binary trainer fitted in a child predicts the same probabilities as in-process."""
    result = fit_in_child(trainer, X, Y_BINARY, task="binary", params=SMALL[trainer], seed=3)
    local: Any = BUILTIN_TRAINERS[trainer]("binary", SMALL[trainer], 3)
    local.fit(X, Y_BINARY)
    np.testing.assert_allclose(_child_proba(result), local.predict_proba(X)[:, 1], rtol=1e-6)
    assert result.flavor == {"lightgbm": "lightgbm", "xgboost": "xgboost"}.get(trainer, "sklearn")
    assert result.seed == 3
    assert result.peak_memory_mb > 0
    assert {"python", "numpy", "scikit-learn"} <= result.library_versions.keys()
    if trainer in ("lightgbm", "xgboost"):
        assert trainer in result.library_versions


def test_the_same_training_twice_gives_the_same_artifact_bytes() -> None:
    """Fitting the same trainer on the same data with the same seed twice gives identical bytes."""
    first = fit_in_child(
        "hist_gradient_boosting", X, Y_BINARY, task="binary", params={"max_iter": 5}
    )
    second = fit_in_child(
        "hist_gradient_boosting", X, Y_BINARY, task="binary", params={"max_iter": 5}
    )
    assert first.artifact == second.artifact


def test_a_trainer_past_its_time_limit_is_stopped() -> None:
    """A trainer still running at its time limit is killed and reported as over the limit."""
    with pytest.raises(StateError, match="exceeded its time limit of 2 s"):
        fit_in_child(
            _testing.sleeping_trainer,
            X,
            Y_BINARY,
            task="binary",
            params={"seconds": 60},
            time_limit_s=2,
        )


def test_a_trainer_that_raises_reports_its_exception() -> None:
    """An exception in the trainer becomes a StateError with its type, message and traceback."""
    with pytest.raises(StateError, match="ValueError: no good data") as info:
        fit_in_child(
            _testing.failing_trainer, X, Y_BINARY, task="binary", params={"message": "no good data"}
        )
    assert "failing_trainer" in info.value.fields["traceback"]


def test_a_memory_cap_too_small_for_the_allocation_fails_clearly() -> None:
    """A trainer allocating more than the memory cap fails with a StateError naming the cap."""
    with pytest.raises(StateError, match="out of memory under its cap of 1500 MB"):
        fit_in_child(
            _testing.allocating_trainer,
            X,
            Y_BINARY,
            task="binary",
            params={"megabytes": 4000},
            memory_limit_mb=1500,
        )


def test_a_local_function_is_refused_before_starting() -> None:
    """A trainer the child cannot import, such as a lambda, is refused with an explanation."""
    with pytest.raises(StateError, match="module-level function"):
        fit_in_child(lambda X, y, params: None, X, Y_BINARY, task="binary")


def test_hist_gradient_boosting_fits_regression_and_multiclass() -> None:
    """hist_gradient_boosting gives a regressor for regression and a classifier for multiclass."""
    reg: Any = fit_in_child(
        "hist_gradient_boosting", X, Y_REG, task="regression", params={"max_iter": 20}
    ).model
    assert reg.predict(X).shape == (200,)
    assert np.corrcoef(reg.predict(X), Y_REG)[0, 1] > 0.8
    multi: Any = fit_in_child(
        "hist_gradient_boosting", X, Y_MULTI, task="multiclass", params={"max_iter": 10}
    ).model
    assert multi.predict_proba(X).shape == (200, 3)
