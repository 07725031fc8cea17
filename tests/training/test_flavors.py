"""Model flavors: safe, repeatable save and load through the artifact store."""

from __future__ import annotations

import doctest
import io
import pathlib
import pickle
import zipfile

import lightgbm
import numpy as np
import pytest
import scipy.sparse
import xgboost
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import driftloop.training.flavors as flavors_module
from driftloop.core.artifacts import ArtifactStore
from driftloop.errors import ArtifactCorrupted, ArtifactError, NotFoundError, StateError
from driftloop.training.flavors import flavor_for, get_flavor, load_model, save_model

Data = tuple[NDArray[np.float64], NDArray[np.int64]]


@pytest.fixture(scope="module")
def data() -> Data:
    features, labels = make_classification(n_samples=200, n_features=6, random_state=7)
    return features, labels


@pytest.fixture
def store(tmp_path: pathlib.Path) -> ArtifactStore:
    return ArtifactStore.from_uri(str(tmp_path / "artifacts"))


def _hgb(data: Data) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(*data)


def _lgbm(data: Data) -> lightgbm.LGBMClassifier:
    model = lightgbm.LGBMClassifier(
        n_estimators=5, deterministic=True, num_threads=1, random_state=0, verbose=-1
    )
    return model.fit(*data)


def _xgb(data: Data) -> xgboost.XGBClassifier:
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3, n_jobs=1, random_state=0)
    return model.fit(*data)


class Doubler(TransformerMixin, BaseEstimator):
    """A custom transformer: not a class driftloop trusts."""

    def fit(self, x: object, y: object = None) -> Doubler:
        return self

    def transform(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x * 2


class Constant:
    """A model that is no scikit-learn, LightGBM or XGBoost model."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.full(len(x), self.value)


def test_sklearn_pipeline_round_trip_predicts_the_same(store: ArtifactStore, data: Data) -> None:
    """A scikit-learn pipeline saved and loaded predicts the same labels and probabilities."""
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(*data)
    digest, flavor = save_model(store, model)
    loaded = load_model(store, digest, flavor)
    assert flavor == "sklearn"
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(data[0]), model.predict(data[0]))
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), model.predict_proba(data[0]))


def test_hist_gradient_boosting_round_trip_predicts_the_same(
    store: ArtifactStore, data: Data
) -> None:
    """A HistGradientBoostingClassifier (tree predictors need the allow-list) predicts the same."""
    model = _hgb(data)
    loaded = load_model(store, *save_model(store, model))
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), model.predict_proba(data[0]))


def test_sklearn_digest_is_the_same_for_the_same_training(store: ArtifactStore, data: Data) -> None:
    """Fitting the same deterministic estimator twice on the same data gives the same digest."""
    for fit in (_hgb, lambda d: LogisticRegression().fit(*d)):
        first, _ = save_model(store, fit(data))
        second, _ = save_model(store, fit(data))
        assert first == second


def test_sklearn_save_of_one_model_is_repeatable(data: Data) -> None:
    """Saving one fitted model twice gives identical bytes."""
    model = make_pipeline(StandardScaler(), _hgb(data))
    flavor = get_flavor("sklearn")
    assert flavor.save(model) == flavor.save(model)


def test_sklearn_bytes_hold_no_clock_time_or_object_ids() -> None:
    """Every zip entry, nested sparse-matrix zips included, is dated 1980 and named by position."""
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    model.extra_ = scipy.sparse.csr_matrix(np.eye(3))
    with zipfile.ZipFile(io.BytesIO(get_flavor("sklearn").save(model))) as outer:
        entries = list(outer.infolist())
        nested = [n for n in outer.namelist() if n.endswith(".npz")]
        assert nested
        with zipfile.ZipFile(io.BytesIO(outer.read(nested[0]))) as inner:
            entries += inner.infolist()
        names = set(outer.namelist()) - {"schema.json"}
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert {n.split(".")[0] for n in names} == {str(i) for i in range(len(names))}


def test_sklearn_digest_changes_with_the_model(store: ArtifactStore, data: Data) -> None:
    """Models trained differently get different digests."""
    one, _ = save_model(store, LogisticRegression(C=1.0).fit(*data))
    other, _ = save_model(store, LogisticRegression(C=0.01).fit(*data))
    assert one != other


def test_lambda_in_a_pipeline_is_refused_by_name(store: ArtifactStore, data: Data) -> None:
    """A FunctionTransformer wrapping a lambda is refused with the lambda's name in the error."""
    model = make_pipeline(FunctionTransformer(lambda x: x * 2), LogisticRegression()).fit(*data)
    with pytest.raises(StateError, match="<lambda>") as caught:
        save_model(store, model)
    assert any("<lambda>" in name for name in caught.value.fields["untrusted_types"])
    assert list(store.digests()) == []


def test_custom_class_in_a_pipeline_is_refused_by_name(store: ArtifactStore, data: Data) -> None:
    """A custom transformer class inside a pipeline is refused with its class named."""
    model = make_pipeline(Doubler(), LogisticRegression()).fit(*data)
    with pytest.raises(StateError, match=r"\.Doubler") as caught:
        save_model(store, model)
    assert caught.value.fields["flavor"] == "sklearn"


def test_untrusted_skops_blob_is_refused_on_load(store: ArtifactStore, data: Data) -> None:
    """A skops blob written elsewhere that names an untrusted type is refused when loading."""
    import skops.io

    model = make_pipeline(Doubler(), LogisticRegression()).fit(*data)
    digest = store.put_bytes(skops.io.dumps(model))
    with pytest.raises(StateError, match="Doubler"):
        load_model(store, digest, "sklearn")


def test_trusted_numpy_function_in_a_pipeline_is_kept(store: ArtifactStore, data: Data) -> None:
    """A FunctionTransformer wrapping a numpy ufunc is stored and loads back."""
    features = np.abs(data[0])
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(
        features, data[1]
    )
    loaded = load_model(store, *save_model(store, model))
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_lightgbm_round_trip_predicts_the_same(store: ArtifactStore, data: Data) -> None:
    """A LightGBM classifier loads as a Booster predicting its class-1 probabilities."""
    model = _lgbm(data)
    digest, flavor = save_model(store, model)
    loaded = load_model(store, digest, flavor)
    assert flavor == "lightgbm"
    assert isinstance(loaded, lightgbm.Booster)
    np.testing.assert_allclose(loaded.predict(data[0]), model.predict_proba(data[0])[:, 1])


def test_lightgbm_booster_is_saved_as_is(store: ArtifactStore, data: Data) -> None:
    """A bare LightGBM Booster gets the same flavor and digest as the classifier wrapping it."""
    model = _lgbm(data)
    assert save_model(store, model.booster_) == save_model(store, model)


def test_lightgbm_digest_is_the_same_for_the_same_training(
    store: ArtifactStore, data: Data
) -> None:
    """Deterministic LightGBM training twice on the same data gives the same digest."""
    assert save_model(store, _lgbm(data)) == save_model(store, _lgbm(data))


def test_xgboost_round_trip_predicts_the_same(store: ArtifactStore, data: Data) -> None:
    """An XGBoost classifier loads back as a Booster predicting the same class-1 probabilities."""
    model = _xgb(data)
    digest, flavor = save_model(store, model)
    loaded = load_model(store, digest, flavor)
    assert flavor == "xgboost"
    assert isinstance(loaded, xgboost.Booster)
    np.testing.assert_allclose(
        loaded.predict(xgboost.DMatrix(data[0])), model.predict_proba(data[0])[:, 1]
    )


def test_xgboost_digest_is_the_same_for_the_same_training(store: ArtifactStore, data: Data) -> None:
    """Seeded single-threaded XGBoost training twice on the same data gives the same digest."""
    assert save_model(store, _xgb(data)) == save_model(store, _xgb(data))


def test_other_models_are_refused_without_trust_pickle(store: ArtifactStore) -> None:
    """A model that is no known library's needs trust_pickle=True, and the error says so."""
    with pytest.raises(StateError, match="trust_pickle=True"):
        save_model(store, Constant(1))
    with pytest.raises(StateError, match="trust_pickle=True"):
        flavor_for(Constant(1))


def test_pickle_round_trip_with_trust_pickle(store: ArtifactStore, data: Data) -> None:
    """With trust_pickle=True any picklable model is saved with pickle and loads back."""
    digest, flavor = save_model(store, Constant(1), trust_pickle=True)
    loaded = load_model(store, digest, flavor, trust_pickle=True)
    assert flavor == "pickle"
    assert isinstance(loaded, Constant)
    np.testing.assert_array_equal(loaded.predict(data[0]), np.ones(len(data[0])))


def test_pickle_blob_is_not_loaded_without_trust_pickle(store: ArtifactStore) -> None:
    """Loading a pickle-flavored artifact without trust_pickle=True is refused before reading it."""
    digest = store.put_bytes(pickle.dumps(Constant(1)))
    with pytest.raises(StateError, match="trust_pickle=True"):
        load_model(store, digest, "pickle")
    with pytest.raises(StateError, match="trust_pickle=True"):
        get_flavor("pickle")


def test_trust_pickle_does_not_change_safe_flavors(data: Data) -> None:
    """A scikit-learn model keeps the sklearn flavor even when pickle is trusted."""
    model = LogisticRegression().fit(*data)
    assert flavor_for(model, trust_pickle=True).name == "sklearn"


def test_explicit_pickle_flavor_stores_an_untrusted_pipeline(
    store: ArtifactStore, data: Data
) -> None:
    """A pipeline skops refuses can be stored with flavor='pickle' and trust_pickle=True."""
    model = make_pipeline(Doubler(), LogisticRegression()).fit(*data)
    digest, flavor = save_model(store, model, flavor="pickle", trust_pickle=True)
    loaded = load_model(store, digest, flavor, trust_pickle=True)
    np.testing.assert_array_equal(loaded.predict(data[0]), model.predict(data[0]))


def test_explicit_flavor_that_does_not_fit_is_refused(store: ArtifactStore, data: Data) -> None:
    """Asking the xgboost flavor to save a scikit-learn model is refused."""
    with pytest.raises(StateError, match="xgboost flavor cannot save"):
        save_model(store, LogisticRegression().fit(*data), flavor="xgboost")


def test_corrupted_blob_raises_artifact_corrupted(store: ArtifactStore, data: Data) -> None:
    """A stored model whose bytes changed on disk raises ArtifactCorrupted when loaded."""
    digest, flavor = save_model(store, LogisticRegression().fit(*data))
    pathlib.Path(store.blob_path(digest)).write_bytes(b"not the model any more")
    with pytest.raises(ArtifactCorrupted):
        load_model(store, digest, flavor)


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost", "pickle"])
def test_unreadable_blob_raises_artifact_error(store: ArtifactStore, flavor: str) -> None:
    """An intact blob that is not a model of the flavor raises ArtifactError naming the digest."""
    digest = store.put_bytes(b"\xffgarbage")
    with pytest.raises(ArtifactError, match=digest) as caught:
        load_model(store, digest, flavor, trust_pickle=True)
    assert caught.value.fields["flavor"] == flavor


def test_unknown_flavor_name_is_not_found(store: ArtifactStore) -> None:
    """An unknown flavor name raises NotFoundError listing the known flavors."""
    with pytest.raises(NotFoundError, match="lightgbm, pickle, sklearn, xgboost"):
        get_flavor("onnx")
    with pytest.raises(NotFoundError):
        load_model(store, "0" * 64, "onnx")


@pytest.mark.parametrize("name", ["sklearn", "lightgbm", "xgboost"])
def test_get_flavor_returns_the_named_flavor(name: str) -> None:
    """get_flavor returns the flavor whose name was asked for."""
    assert get_flavor(name).name == name


def test_module_examples_hold() -> None:
    """The examples in the flavors module's docstrings pass."""
    result = doctest.testmod(flavors_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
