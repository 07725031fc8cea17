"""Model flavors: how a fitted model becomes bytes in the artifact store, and back.

A flavor is a small object with :meth:`~Flavor.matches`, :meth:`~Flavor.save` and
:meth:`~Flavor.load`. The safe flavors never run code on load:

========== ================================================= =================================
flavor     saves                                             loads as
========== ================================================= =================================
sklearn    skops, normalised to be byte-for-byte repeatable  the estimator, after checking
           (fixed zip dates, ids renumbered)                 every type against an allow-list
lightgbm   the native text model (``model_to_string``)       ``lightgbm.Booster``
xgboost    the native JSON model (``save_raw("json")``)      ``xgboost.Booster``
pickle     cloudpickle (needs ``trust_pickle=True``)         whatever was saved
========== ================================================= =================================

A fitted model saved twice gives the same bytes, so deterministic training gives
the same artifact digest::

    >>> from sklearn.linear_model import LogisticRegression
    >>> from driftloop.core.artifacts import ArtifactStore
    >>> store = ArtifactStore.from_uri("memory://doctest-flavors")
    >>> model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> digest, flavor = save_model(store, model)
    >>> flavor
    'sklearn'
    >>> save_model(store, model) == (digest, flavor)
    True
    >>> load_model(store, digest, flavor).predict([[0.5], [2.5]]).tolist()
    [0, 1]

LightGBM and XGBoost are optional extras, imported only by their flavor.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import zipfile
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from driftloop.errors import ArtifactError, MissingExtraError, NotFoundError, StateError

if TYPE_CHECKING:
    from driftloop.core.artifacts import ArtifactStore

__all__ = [
    "TRUSTED_PACKAGES",
    "Flavor",
    "LightGBMFlavor",
    "PickleFlavor",
    "SklearnFlavor",
    "XGBoostFlavor",
    "flavor_for",
    "get_flavor",
    "load_model",
    "save_model",
]

TRUSTED_PACKAGES = frozenset({"sklearn", "numpy", "scipy"})
"""Top-level packages whose classes a skops blob may name; functions are never trusted."""

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
"""The date written on every zip entry, so saving is repeatable."""

_PICKLE_PROTOCOL = 5


class Flavor(Protocol):
    """How one family of models is saved to bytes and loaded back."""

    name: str

    def matches(self, model: object) -> bool:
        """Whether this flavor can save ``model``."""
        ...

    def save(self, model: object) -> bytes:
        """The model's bytes; the same fitted model always gives the same bytes."""
        ...

    def load(self, data: bytes) -> object:
        """The model saved as ``data``; :class:`ArtifactError` if it cannot be read."""
        ...


def _from_package(model: object, package: str) -> bool:
    """Whether ``model``'s class, or one of its bases, comes from ``package``.

    Reads module names only, so an optional package is never imported to answer.
    """
    return any(cls.__module__.partition(".")[0] == package for cls in type(model).__mro__)


def _unreadable(flavor: str, exc: BaseException) -> ArtifactError:
    return ArtifactError(f"not a readable {flavor} model: {exc}", flavor=flavor)


# -- sklearn (skops) -------------------------------------------------------


class SklearnFlavor:
    """scikit-learn estimators and pipelines, stored with skops.

    Only classes from :data:`TRUSTED_PACKAGES` may appear in the blob (besides the
    types skops trusts by default); anything else, such as a lambda in a
    ``FunctionTransformer`` or a custom transformer class, is refused by name when
    saving and when loading.
    """

    name = "sklearn"

    def matches(self, model: object) -> bool:
        """Whether ``model`` is a scikit-learn estimator (``BaseEstimator`` subclass)."""
        return _from_package(model, "sklearn")

    def save(self, model: object) -> bytes:
        """skops bytes with fixed zip dates and renumbered object ids."""
        import skops.io

        data = _normalise_skops(skops.io.dumps(model))
        self._trusted_types(data)
        return data

    def load(self, data: bytes) -> object:
        """The estimator, loaded with exactly the allowed types trusted."""
        import skops.io

        trusted = self._trusted_types(data)
        try:
            return skops.io.loads(data, trusted=trusted)
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
            raise _unreadable(self.name, exc) from exc

    def _trusted_types(self, data: bytes) -> list[str]:
        """The non-default types named in ``data``; :class:`StateError` if one is refused."""
        import skops.io

        try:
            names: list[str] = skops.io.get_untrusted_types(data=data)
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
            raise _unreadable(self.name, exc) from exc
        refused = sorted(n for n in names if not _is_trusted_class(n))
        if refused:
            raise StateError(
                f"the sklearn model contains types driftloop does not trust: "
                f"{', '.join(refused)}; only classes from "
                f"{', '.join(sorted(TRUSTED_PACKAGES))} can be stored without pickle "
                "(replace lambdas and custom classes, or save with flavor='pickle' "
                "and trust_pickle=True)",
                flavor=self.name,
                untrusted_types=refused,
            )
        return names


TRUSTED_FUNCTIONS = frozenset({"functools.partial", "sklearn.utils.validation.check_array"})
"""The few callables scikit-learn itself stores inside fitted estimators (a
HistGradientBoosting model with categorical features holds
``partial(check_array, ...)``). A partial is only as trusted as what it wraps, and
skops checks that separately."""


def _is_trusted_class(name: str) -> bool:
    """Whether ``name`` ("pkg.module.Class") is a class of a trusted package, or one
    of :data:`TRUSTED_FUNCTIONS`."""
    if name in TRUSTED_FUNCTIONS:
        return True
    module_name, _, attr = name.rpartition(".")
    if module_name.partition(".")[0] not in TRUSTED_PACKAGES:
        return False
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return isinstance(getattr(module, attr, None), type)


def _normalise_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so the same model always gives the same bytes.

    skops names array files and marks shared objects with ``id()`` values (and
    bytes with random uuids), and stamps entries with the current time. Ids and
    file names are renumbered in schema order and every entry gets a fixed date.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        names = set(src.namelist()) - {"schema.json"}
        renames: dict[str, str] = {}
        schema = _renumber(schema, names, renames, {})
        if set(renames) != names:
            # skops writes no file its schema does not reference; refuse rather than drop one.
            raise StateError(
                f"skops wrote files its schema does not reference: {sorted(names - set(renames))}"
            )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for old, new in renames.items():
                content = src.read(old)
                if old.endswith(".npz"):  # scipy sparse matrices: a zip with its own dates
                    content = _fixed_dates(content)
                _write_entry(dst, new, content, zipfile.ZIP_STORED)
            schema_text = json.dumps(schema, indent=2).encode()
            _write_entry(dst, "schema.json", schema_text, zipfile.ZIP_STORED)
    return out.getvalue()


def _renumber(node: Any, names: set[str], renames: dict[str, str], ids: dict[int, int]) -> Any:
    if isinstance(node, list):
        return [_renumber(item, names, renames, ids) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and type(value) is int:
            result[key] = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str) and value in names:
            suffix = value[value.rfind(".") :] if "." in value else ""
            result[key] = renames.setdefault(value, f"{len(renames)}{suffix}")
        else:
            result[key] = _renumber(value, names, renames, ids)
    return result


def _fixed_dates(data: bytes) -> bytes:
    """The same zip with a fixed date on every entry (names and compression kept)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            _write_entry(dst, info.filename, src.read(info), info.compress_type)
    return out.getvalue()


def _write_entry(dst: zipfile.ZipFile, name: str, content: bytes, compression: int) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compression
    info.create_system = 3  # unix, whatever platform saves
    info.external_attr = 0o644 << 16
    dst.writestr(info, content)


# -- lightgbm ----------------------------------------------------------------


def _import_lightgbm() -> ModuleType:
    try:
        import lightgbm
    except ImportError as exc:
        raise MissingExtraError(
            "the lightgbm model flavor", extra="lightgbm", package="lightgbm"
        ) from exc
    return lightgbm


class LightGBMFlavor:
    """LightGBM boosters and their scikit-learn wrappers, as the native text model.

    Loads as a ``lightgbm.Booster``: for a binary classifier its ``predict``
    returns the probability of class 1 (the wrapper's ``predict_proba(X)[:, 1]``).
    Train with ``deterministic=True``, ``num_threads=1`` and a seed for repeatable bytes.
    """

    name = "lightgbm"

    def matches(self, model: object) -> bool:
        """Whether ``model`` is a ``lightgbm.Booster`` or ``LGBMModel``."""
        return _from_package(model, "lightgbm")

    def save(self, model: object) -> bytes:
        """The booster's ``model_to_string()``, UTF-8 encoded."""
        lightgbm = _import_lightgbm()
        booster = model.booster_ if isinstance(model, lightgbm.LGBMModel) else model
        if not isinstance(booster, lightgbm.Booster):
            raise StateError(
                f"the lightgbm flavor cannot save a {type(model).__qualname__}",
                flavor=self.name,
            )
        text: str = booster.model_to_string()
        return text.encode("utf-8")

    def load(self, data: bytes) -> object:
        """A ``lightgbm.Booster`` built from the text model."""
        lightgbm = _import_lightgbm()
        try:
            return lightgbm.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
            raise _unreadable(self.name, exc) from exc


# -- xgboost -----------------------------------------------------------------


def _import_xgboost() -> ModuleType:
    try:
        import xgboost
    except ImportError as exc:
        raise MissingExtraError(
            "the xgboost model flavor", extra="xgboost", package="xgboost-cpu"
        ) from exc
    return xgboost


class XGBoostFlavor:
    """XGBoost boosters and their scikit-learn wrappers, as the native JSON model.

    Loads as an ``xgboost.Booster``; predict with ``booster.predict(xgboost.DMatrix(X))``
    (for ``binary:logistic`` that is the probability of class 1).
    """

    name = "xgboost"

    def matches(self, model: object) -> bool:
        """Whether ``model`` is an ``xgboost.Booster`` or ``XGBModel``."""
        return _from_package(model, "xgboost")

    def save(self, model: object) -> bytes:
        """The booster's ``save_raw("json")``."""
        xgboost = _import_xgboost()
        booster = model.get_booster() if isinstance(model, xgboost.XGBModel) else model
        if not isinstance(booster, xgboost.Booster):
            raise StateError(
                f"the xgboost flavor cannot save a {type(model).__qualname__}",
                flavor=self.name,
            )
        return bytes(booster.save_raw("json"))

    def load(self, data: bytes) -> object:
        """An ``xgboost.Booster`` loaded from the JSON model."""
        xgboost = _import_xgboost()
        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(data))
        except xgboost.core.XGBoostError as exc:
            raise _unreadable(self.name, exc) from exc
        return booster


# -- pickle ------------------------------------------------------------------


def _import_cloudpickle() -> ModuleType:
    try:
        import cloudpickle
    except ImportError as exc:
        raise MissingExtraError(
            "the pickle flavor for custom models", extra="custom", package="cloudpickle"
        ) from exc
    module: ModuleType = cloudpickle
    return module


class PickleFlavor:
    """Any object, with cloudpickle (extra ``[custom]``).

    cloudpickle stores classes and functions that cannot be imported by name (those
    of a project's definitions module) by value. Loading a pickle runs code chosen by
    whoever wrote it, so this flavor is only handed out with ``trust_pickle=True``.
    """

    name = "pickle"

    def matches(self, model: object) -> bool:
        """Always: pickle is the flavor of last resort."""
        return True

    def save(self, model: object) -> bytes:
        """``cloudpickle.dumps`` with a fixed protocol."""
        data: bytes = _import_cloudpickle().dumps(model, protocol=_PICKLE_PROTOCOL)
        return data

    def load(self, data: bytes) -> object:
        """``pickle.loads``: runs whatever code the pickle names."""
        _import_cloudpickle()  # a by-value class needs cloudpickle's helpers to load
        try:
            # Only reachable through trust_pickle=True.
            return pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError, ImportError, AttributeError) as exc:
            raise _unreadable(self.name, exc) from exc


# -- choosing a flavor -------------------------------------------------------

# Order matters: the LightGBM and XGBoost wrappers are scikit-learn estimators too.
_SAFE_FLAVORS: tuple[Flavor, ...] = (LightGBMFlavor(), XGBoostFlavor(), SklearnFlavor())
_PICKLE = PickleFlavor()
_ALL_NAMES = sorted([*(f.name for f in _SAFE_FLAVORS), _PICKLE.name])


def _pickle_refused(what: str) -> StateError:
    return StateError(
        f"{what} needs the pickle flavor, which runs code when loading; "
        "pass trust_pickle=True only for models from a source you trust",
        flavor=_PICKLE.name,
    )


def flavor_for(model: object, *, trust_pickle: bool = False) -> Flavor:
    """The flavor that saves ``model``: sklearn, lightgbm or xgboost, else pickle if trusted.

    Raises :class:`StateError` for any other model unless ``trust_pickle`` is set.
    """
    for flavor in _SAFE_FLAVORS:
        if flavor.matches(model):
            return flavor
    if trust_pickle:
        return _PICKLE
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise _pickle_refused(f"a {kind} is not a scikit-learn, LightGBM or XGBoost model: it")


def get_flavor(name: str, *, trust_pickle: bool = False) -> Flavor:
    """The flavor called ``name``; ``"pickle"`` only with ``trust_pickle``.

    Raises :class:`NotFoundError` for an unknown name.
    """
    for flavor in _SAFE_FLAVORS:
        if flavor.name == name:
            return flavor
    if name == _PICKLE.name:
        if not trust_pickle:
            raise _pickle_refused("this model")
        return _PICKLE
    raise NotFoundError("model flavor", name, known=_ALL_NAMES)


def save_model(
    store: ArtifactStore,
    model: object,
    *,
    trust_pickle: bool = False,
    flavor: str | None = None,
) -> tuple[str, str]:
    """Store ``model`` and return ``(digest, flavor name)``.

    The flavor is chosen by :func:`flavor_for` unless ``flavor`` names one.
    """
    chosen = (
        flavor_for(model, trust_pickle=trust_pickle)
        if flavor is None
        else get_flavor(flavor, trust_pickle=trust_pickle)
    )
    if not chosen.matches(model):
        raise StateError(
            f"the {chosen.name} flavor cannot save a {type(model).__qualname__}",
            flavor=chosen.name,
        )
    return store.put_bytes(chosen.save(model)), chosen.name


def load_model(
    store: ArtifactStore, digest: str, flavor: str, *, trust_pickle: bool = False
) -> object:
    """Load the model stored under ``digest`` with the flavor it was saved with.

    The blob is verified against its digest first (:class:`ArtifactCorrupted`); a
    blob the flavor cannot read raises :class:`ArtifactError` naming the digest.
    """
    chosen = get_flavor(flavor, trust_pickle=trust_pickle)
    data = store.get_bytes(digest)
    try:
        return chosen.load(data)
    except ArtifactError as exc:
        raise ArtifactError(
            f"artifact {digest}: {exc.message}", digest=digest, flavor=chosen.name
        ) from exc
