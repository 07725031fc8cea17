"""A trained version loaded for serving: features as served, defaults, overrides, scores."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from driftloop.cli.init import write_example
from driftloop.errors import InputError, StateError
from driftloop.project import Project
from driftloop.serving.runtime import LoadedVersion, ModelCache
from driftloop.training.encoding import encode
from driftloop.training.predict import predict


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with 'fraud' trained, promoted and materialized."""
    folder = tmp_path_factory.mktemp("serving") / "shop"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        for batch in ("transactions-1.csv", "transactions-2.csv"):
            project.ingest("transactions", folder / "data" / batch)
        project.train("fraud", promote=True)
        project.materialize()
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Iterator[Project]:
    with Project(Path(shutil.copytree(template, tmp_path / "shop"))) as opened:
        yield opened


def _loaded(project: Project) -> LoadedVersion:
    return LoadedVersion.load(project._features(), project.model_version("fraud", "champion"))


def test_served_features_are_the_online_values_for_known_entities(project: Project) -> None:
    """A known customer's inputs equal the online store's values; its latest values are
    not missing (a windowed sum over an empty window is: it falls back to its default)."""
    loaded = _loaded(project)
    customers = ["cu_0001", "cu_0002"]
    keys = pa.table({"customer_id": customers})
    served = loaded.features(project.online, 2, keys=keys)
    online = project.get_online_features(
        [{"customer_id": c} for c in customers], ["last_transaction:*", "customer_spend:*"]
    )
    assert served.table.column_names == loaded.input_names
    for name in loaded.input_names:
        assert served.table.column(name).to_pylist() == online.column(name).to_pylist()
    assert not served.missing["amount"].any()
    assert not served.missing["channel"].any()


def test_an_unknown_entity_gets_the_declared_defaults_flagged_missing(project: Project) -> None:
    """No online row: every input is its view's default and counted as missing."""
    loaded = _loaded(project)
    served = loaded.features(project.online, 1, keys=pa.table({"customer_id": ["cu_9999"]}))
    assert served.table.column("amount").to_pylist() == [0.0]
    assert served.table.column("channel").to_pylist() == ["unknown"]
    assert all(flags.all() for flags in served.missing.values())


def test_values_in_the_request_override_the_online_store(project: Project) -> None:
    """A feature given in the request is served as given and not looked up."""
    loaded = _loaded(project)
    served = loaded.features(
        project.online, 1, keys=pa.table({"customer_id": ["cu_0001"]}), values={"amount": [123.5]}
    )
    assert served.table.column("amount").to_pylist() == [123.5]
    assert not served.missing["amount"].any()


def test_raw_values_alone_can_be_scored_without_keys(project: Project) -> None:
    """Without entity keys, the request's values are used and the rest are defaults."""
    loaded = _loaded(project)
    served = loaded.features(None, 2, values={"amount": [10.0, 5000.0], "channel": ["web", "pos"]})
    scores = loaded.score(served.table)
    assert scores.score.shape == (2,)
    assert ((scores.score >= 0) & (scores.score <= 1)).all()
    assert served.missing["amount_sum_7d"].all()


def test_scores_are_the_models_probabilities_and_labels_at_the_threshold(
    project: Project,
) -> None:
    """The binary score is predict_proba's class 1; the label is the class above 0.5."""
    loaded = _loaded(project)
    served = loaded.features(
        project.online, 3, keys=pa.table({"customer_id": ["cu_0001", "cu_0002", "cu_0003"]})
    )
    scores = loaded.score(served.table)
    expected = predict(loaded.model, encode(served.table, loaded.inputs), "binary")
    np.testing.assert_array_equal(scores.score, expected)
    assert scores.classes == [False, True]
    assert scores.prediction.tolist() == [bool(p >= 0.5) for p in expected]


def test_bad_requests_name_the_field(project: Project) -> None:
    """An unknown feature, a wrong type, a missing key or a wrong count is an InputError."""
    loaded = _loaded(project)
    with pytest.raises(InputError, match="unknown feature 'colour'"):
        loaded.features(None, 1, values={"colour": ["red"]})
    with pytest.raises(InputError, match="feature 'amount' must be double"):
        loaded.features(None, 1, values={"amount": ["lots"]})
    with pytest.raises(InputError, match="entity key 'customer_id' is missing"):
        loaded.features(project.online, 1, keys=pa.table({"id": [1]}))
    with pytest.raises(InputError, match="2 values for 1 instances"):
        loaded.features(None, 1, values={"amount": [1.0, 2.0]})


def test_a_version_registered_without_a_signature_cannot_be_served(project: Project) -> None:
    """Hand-registered versions have no inputs to serve: a StateError says so."""
    version = project.register_model("other", artifact_digest="0" * 64, flavor="sklearn")
    with pytest.raises(StateError, match="has no signature"):
        LoadedVersion.load(project._features(), version)


def test_the_cache_loads_each_version_once_and_forgets_undeployed_ones(project: Project) -> None:
    """get() returns the same object; retain() drops versions no longer wanted."""
    cache = ModelCache(project._features())
    first = cache.get("fraud", 1)
    assert cache.get("fraud", 1) is first
    assert cache.loaded() == [("fraud", 1)]
    cache.retain([])
    assert cache.loaded() == []


def test_gradient_boosting_categorical_preprocessing_is_replaced_by_an_equal_remap() -> None:
    """A fitted HistGradientBoosting with categorical inputs serves through a numpy remap
    instead of scikit-learn's per-call ColumnTransformer; the probabilities are the same
    bits, for known, unknown and missing categories alike."""
    import copy

    from sklearn.ensemble import HistGradientBoostingClassifier

    from driftloop.serving.runtime import fast_preprocessing

    rng = np.random.default_rng(7)
    X = np.column_stack(
        [rng.normal(size=2000), rng.integers(0, 5, 2000), rng.normal(size=2000)]
    ).astype(np.float64)
    y = (X[:, 0] + (X[:, 1] == 3) > 0.5).astype(int)
    model = HistGradientBoostingClassifier(
        max_iter=20, categorical_features=[False, True, False], random_state=0
    ).fit(X, y)
    original = copy.deepcopy(model)
    fast = fast_preprocessing(model)
    assert type(fast._preprocessor).__name__ == "_CategoricalRemap"
    probe = X[:300].copy()
    probe[::7, 1] = np.nan  # missing
    probe[::11, 1] = 17.0  # never seen in training
    np.testing.assert_array_equal(fast.predict_proba(probe), original.predict_proba(probe))


def test_models_without_categorical_preprocessing_are_left_as_they_are() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression

    from driftloop.serving.runtime import fast_preprocessing

    X = np.random.default_rng(1).normal(size=(200, 3))
    numeric = HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 0])
    assert fast_preprocessing(numeric)._preprocessor is None
    linear = LogisticRegression().fit(X, X[:, 0] > 0)
    assert fast_preprocessing(linear) is linear
