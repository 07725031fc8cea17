"""Model specs: declared once, checked at once, hashed into a version."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from driftloop import Entity
from driftloop.errors import DefinitionError
from driftloop.evaluation.gates import Change, Threshold
from driftloop.training.spec import Label, ModelSpec, TimeSplit, trainer_name

LABEL = Label("transactions", "is_fraud", entity="customer", known_after="1d")


def make(**overrides: Any) -> ModelSpec:
    body: dict[str, Any] = {
        "name": "fraud",
        "task": "binary",
        "features": ["last_tx:amount", "spend:*"],
        "label": LABEL,
    }
    body.update(overrides)
    return ModelSpec(**body)


def my_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    return None


def test_a_spec_keeps_its_declared_defaults() -> None:
    """A minimal spec trains with HistGradientBoosting on a 20% time split."""
    spec = make()
    assert spec.trainer_name == "hist_gradient_boosting"
    assert spec.split == TimeSplit(validation=None, fraction=0.2, gap="0s")
    assert spec.time_limit_s == 3600.0
    assert spec.label.delay() == timedelta(days=1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "1bad name"}, "model name"),
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"features": []}, "features must be a non-empty list"),
        ({"features": "last_tx:amount"}, "features must be a non-empty list"),
        ({"label": "is_fraud"}, "label must be a Label"),
        ({"trainer": "random_forest"}, "unknown builtin trainer 'random_forest'"),
        ({"trainer": 42}, "trainer must be a name or a function"),
        ({"split": "7d"}, "split must be a TimeSplit"),
        ({"split": TimeSplit(fraction=1.0)}, "split fraction"),
        ({"split": TimeSplit(fraction=0.0)}, "split fraction"),
        ({"split": TimeSplit(validation="0s")}, "validation window must be positive"),
        ({"split": TimeSplit(validation="a week")}, "split validation"),
        ({"split": TimeSplit(gap=-60)}, "split gap must not be negative"),
        ({"threshold": 1.5}, "threshold must be in"),
        ({"resamples": 0}, "resamples must be an integer >= 1"),
        ({"min_slice_size": 2.5}, "min_slice_size must be an integer"),
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"memory_limit_mb": 10}, "memory_limit_mb must be at least 64"),
        ({"time_limit": "0s"}, "time_limit must be positive"),
        ({"time_limit": "forever"}, "time_limit"),
        ({"slices": [3]}, "slices must be a list of column names"),
        ({"slices": "channel"}, "slices must be a list of column names"),
        ({"label": Label("t", "y", entity="c", known_after="soon")}, "label known_after"),
        ({"label": Label("t", "y", entity="c", known_after=-1)}, "known_after must not be neg"),
    ],
)
def test_a_bad_field_is_a_definition_error_naming_the_model_and_field(
    overrides: dict[str, Any], field: str
) -> None:
    """Each mistake is refused when the spec is declared, with the model and the field."""
    with pytest.raises(DefinitionError) as caught:
        make(**overrides)
    assert field in caught.value.message
    if "name" not in overrides:
        assert "'fraud'" in caught.value.message


def test_a_bad_feature_reference_names_the_model() -> None:
    """A feature reference that does not parse is reported under the model's name."""
    with pytest.raises(DefinitionError, match="model 'fraud': "):
        make(features=["no view here"])


def test_the_label_entity_may_be_an_entity_or_its_name() -> None:
    """Label.entity_name is the same either way."""
    customer = Entity("customer", keys={"customer_id": "string"})
    assert Label("t", "y", entity=customer).entity_name == "customer"
    assert Label("t", "y", entity="customer").entity_name == "customer"


def test_a_user_trainer_is_named_by_module_and_qualname() -> None:
    """A function trainer is recorded as module.qualname; a builtin by its name."""
    spec = make(trainer=my_trainer)
    assert spec.trainer_name == f"{my_trainer.__module__}.my_trainer"
    assert spec.to_dict()["trainer"] == spec.trainer_name
    assert trainer_name("xgboost") == "xgboost"


def test_to_dict_is_json_ready_with_durations_and_gates_spelled_out() -> None:
    """Durations read like "1d", gates as typed dicts, functions by name; json.dumps works."""
    spec = make(
        trainer=my_trainer,
        params={"max_iter": 200, "tol": float("inf"), "window": timedelta(hours=6)},
        split=TimeSplit(validation="7d", gap=timedelta(hours=12)),
        gates=[Threshold("roc_auc", min=0.7), Change("roc_auc", min_delta=0.0)],
        metrics={"cost": lambda y, p, rows: 0.0, "alpha": lambda y, p, rows: 1.0},
        slices=["channel"],
    )
    body = spec.to_dict()
    json.dumps(body, allow_nan=False)
    assert body["label"] == {
        "source": "transactions",
        "column": "is_fraud",
        "entity": "customer",
        "timestamp": "event_time",
        "known_after": "1d",
        "known_at": None,
        "positive": None,
    }
    assert body["split"] == {"validation": "1w", "fraction": None, "gap": "12h"}
    assert body["params"] == {"max_iter": 200, "tol": "inf", "window": "6h"}
    assert body["gates"] == [
        {"type": "Threshold", "metric": "roc_auc", "min": 0.7, "max": None},
        {
            "type": "Change",
            "metric": "roc_auc",
            "min_delta": 0.0,
            "min_relative": None,
            "use_interval": False,
        },
    ]
    assert body["metrics"] == ["alpha", "cost"]
    assert body["slices"] == ["channel"]


def test_a_fraction_split_reports_its_fraction() -> None:
    """Without a window the split is the most recent fraction, and says so."""
    assert TimeSplit(fraction=0.3).to_dict() == {"validation": None, "fraction": 0.3, "gap": "0s"}


def test_the_version_is_the_same_for_the_same_declaration() -> None:
    """Two equal declarations have the same version; it is a short hex hash."""
    assert make().version == make().version
    assert len(make().version) == 16
    int(make().version, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"params": {"max_iter": 100}},
        {"gates": [Threshold("roc_auc", min=0.7)]},
        {"gates": [Threshold("roc_auc", min=0.75)]},
        {"features": ["last_tx:amount"]},
        {"label": Label("transactions", "is_fraud", entity="customer", known_after="2d")},
        {"split": TimeSplit(validation="7d")},
        {"trainer": "lightgbm"},
        {"threshold": 0.4},
        {"seed": 1},
    ],
)
def test_the_version_changes_when_the_definition_does(change: dict[str, Any]) -> None:
    """Changing params, gates or anything else declared gives another version."""
    assert make(**change).version != make().version


def test_gates_with_different_bounds_have_different_versions() -> None:
    """The version tells min=0.7 from min=0.75 on the same metric."""
    a = make(gates=[Threshold("roc_auc", min=0.7)])
    b = make(gates=[Threshold("roc_auc", min=0.75)])
    assert a.version != b.version
