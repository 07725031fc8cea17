"""One way to score any stored model: probabilities for classifiers, values for regressors.

Models come back from their flavor as scikit-learn estimators, ``lightgbm.Booster``,
``xgboost.Booster`` or (trusted pickle) anything with ``predict_proba``/``predict``.
:func:`predict` hides the difference: a binary model gives the probability of class 1
(shape ``(n,)``), a multiclass model one probability per class (``(n, k)``), a
regressor its values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.errors import StateError

__all__ = ["predict"]


def _raw(model: Any, X: npt.NDArray[np.float64], task: str) -> Any:
    module = type(model).__module__.partition(".")[0]
    if module == "xgboost" and type(model).__name__ == "Booster":
        import xgboost

        return model.predict(xgboost.DMatrix(X))
    if module == "lightgbm" and type(model).__name__ == "Booster":
        return model.predict(X)
    if task != "regression" and hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    if hasattr(model, "predict"):
        return model.predict(X)
    raise StateError(f"a {type(model).__qualname__} has neither predict_proba nor predict")


def predict(model: Any, X: npt.NDArray[np.float64], task: str) -> npt.NDArray[np.float64]:
    """Scores of ``model`` on ``X`` in the shape the evaluation metrics of ``task`` take."""
    out = np.asarray(_raw(model, X, task), dtype=np.float64)
    if task == "binary":
        if out.ndim == 2:
            if out.shape[1] != 2:
                raise StateError(
                    f"a binary model returned {out.shape[1]} columns of probabilities, not 2"
                )
            out = out[:, 1]
        return np.clip(out, 0.0, 1.0)
    if task == "multiclass":
        if out.ndim != 2:
            raise StateError("a multiclass model must return one probability per class")
        total: npt.NDArray[np.float64] = out.sum(axis=1, keepdims=True)
        return out / total
    return out.reshape(len(X))
