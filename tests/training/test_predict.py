"""One way to score any stored model, whatever library it came from."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from driftloop.errors import StateError
from driftloop.training.flavors import flavor_for, get_flavor
from driftloop.training.predict import predict

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 3))
Y_BINARY = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
Y_MULTI = np.digitize(X[:, 0], [-0.5, 0.5]).astype(np.int64)
Y_REG = X @ np.array([1.0, -2.0, 0.5]) + 3.0


def stored(model: object) -> Any:
    """The model as it comes back from the artifact store: saved and loaded by its flavor."""
    flavor = flavor_for(model)
    return get_flavor(flavor.name).load(flavor.save(model))


def classifiers(y: np.ndarray) -> dict[str, Any]:
    return {
        "sklearn": LogisticRegression().fit(X, y),
        "lightgbm": lightgbm.LGBMClassifier(
            n_estimators=5, num_threads=1, deterministic=True, verbose=-1
        ).fit(X, y),
        "xgboost": xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y),
    }


def regressors() -> dict[str, Any]:
    return {
        "sklearn": LinearRegression().fit(X, Y_REG),
        "lightgbm": lightgbm.LGBMRegressor(
            n_estimators=5, num_threads=1, deterministic=True, verbose=-1
        ).fit(X, Y_REG),
        "xgboost": xgboost.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(X, Y_REG),
    }


@pytest.fixture(scope="module")
def binary() -> dict[str, Any]:
    return classifiers(Y_BINARY)


@pytest.fixture(scope="module")
def multi() -> dict[str, Any]:
    return classifiers(Y_MULTI)


@pytest.fixture(scope="module")
def regression() -> dict[str, Any]:
    return regressors()


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost"])
def test_a_binary_model_gives_the_probability_of_class_one(
    flavor: str, binary: dict[str, Any]
) -> None:
    """Loaded back as an estimator or a native booster, a binary model scores (n,) in [0, 1],
    the fitted estimator's predict_proba(X)[:, 1]."""
    fitted = binary[flavor]
    loaded = stored(fitted)
    if flavor != "sklearn":
        assert type(loaded).__name__ == "Booster"
    scores = predict(loaded, X, "binary")
    assert scores.shape == (len(X),)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, fitted.predict_proba(X)[:, 1], rtol=1e-6)


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost"])
def test_a_multiclass_model_gives_one_probability_per_class_summing_to_one(
    flavor: str, multi: dict[str, Any]
) -> None:
    """Three classes give an (n, 3) matrix whose rows sum to 1, as predict_proba."""
    fitted = multi[flavor]
    scores = predict(stored(fitted), X, "multiclass")
    assert scores.shape == (len(X), 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    np.testing.assert_allclose(scores, fitted.predict_proba(X), rtol=1e-5)


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost"])
def test_a_regressor_gives_its_values(flavor: str, regression: dict[str, Any]) -> None:
    """A regressor scores (n,) values, the fitted estimator's predict(X)."""
    fitted = regression[flavor]
    values = predict(stored(fitted), X, "regression")
    assert values.shape == (len(X),)
    np.testing.assert_allclose(values, fitted.predict(X), rtol=1e-5)


def test_a_regressor_with_predict_proba_still_gives_values() -> None:
    """For regression, predict is used even if the model could give probabilities."""
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, Y_BINARY)
    assert predict(model, X, "regression").tolist() == model.predict(X).astype(float).tolist()


class Scores:
    """A stand-in third-party model (trusted pickle) returning fixed scores."""

    def __init__(self, out: np.ndarray, *, proba: bool = True) -> None:
        self.out = out
        if proba:
            self.predict_proba = self._given

    def _given(self, X: np.ndarray) -> np.ndarray:
        return self.out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.out


def test_binary_scores_are_clipped_to_probabilities() -> None:
    """A model scoring outside [0, 1] is clipped into it."""
    model = Scores(np.array([-0.5, 0.3, 1.7]), proba=False)
    assert predict(model, np.zeros((3, 1)), "binary").tolist() == [0.0, 0.3, 1.0]


def test_a_binary_model_with_more_than_two_columns_is_a_state_error() -> None:
    """Three probability columns cannot be a binary model."""
    model = Scores(np.full((2, 3), 1 / 3))
    with pytest.raises(StateError, match="3 columns"):
        predict(model, np.zeros((2, 1)), "binary")


def test_a_multiclass_model_with_one_column_is_a_state_error() -> None:
    """A multiclass model must score every class."""
    with pytest.raises(StateError, match="one probability per class"):
        predict(Scores(np.array([0.2, 0.8])), np.zeros((2, 1)), "multiclass")


def test_multiclass_rows_are_normalised() -> None:
    """Scores that do not sum to one are divided by their row sum."""
    out = predict(Scores(np.array([[1.0, 3.0], [2.0, 2.0]])), np.zeros((2, 1)), "multiclass")
    assert out.tolist() == [[0.25, 0.75], [0.5, 0.5]]


def test_a_model_without_predict_is_a_state_error() -> None:
    """Something that cannot score is named in the error."""
    with pytest.raises(StateError, match="object has neither predict_proba nor predict"):
        predict(object(), np.zeros((1, 1)), "binary")
