"""Custom models: a class of the user's own, stored with cloudpickle only when trusted."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from driftloop.errors import StateError
from driftloop.training.fit import fit_in_child

DEFINITIONS = textwrap.dedent(
    """
    import numpy as np

    class MeanThreshold:
        '''Predicts class 1 above the mean of the first column: a model of our own.'''

        def fit(self, X, y):
            self.cut = float(X[:, 0].mean())
            return self

        def predict_proba(self, X):
            p = (X[:, 0] > self.cut).astype(float)
            return np.column_stack([1 - p, p])

    def train_mean_threshold(X, y, params):
        return MeanThreshold().fit(X, y)
    """
)


def _definitions(tmp_path: Path) -> ModuleType:
    """The file loaded the way a project's definitions module is (not importable by name)."""
    path = tmp_path / "definitions.py"
    path.write_text(DEFINITIONS)
    spec = importlib.util.spec_from_file_location("_driftloop_definitions_custom", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name)
    return module


X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([0.0, 0.0, 1.0, 1.0])


def test_a_custom_model_from_the_definitions_module_is_stored_by_value_when_trusted(
    tmp_path: Path,
) -> None:
    """Its class lives only in the definitions file, yet the parent loads the model back."""
    module = _definitions(tmp_path)
    result = fit_in_child(module.train_mean_threshold, X, Y, task="binary", trust_pickle=True)
    assert result.flavor == "pickle"
    assert result.model.predict_proba(X)[:, 1].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_a_custom_model_is_refused_without_the_trust_flag(tmp_path: Path) -> None:
    """Without trust_pickle the run fails and says which flag would store it."""
    module = _definitions(tmp_path)
    with pytest.raises(StateError, match="trust_pickle=True"):
        fit_in_child(module.train_mean_threshold, X, Y, task="binary")
