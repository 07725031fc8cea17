"""The reference profile of a model version: its training data, fitted once.

When a training run registers a version, :func:`build_reference` fits a
:class:`~driftloop.monitoring.drift.TableReference` on the columns monitoring will
compare, named as in the prediction log:

- ``feature.<input>``: each model input over the training set's rows;
- ``prediction``: the version's predictions on its validation rows (held out, so not
  over-confident), as the log records them — P(class 1) for a binary model, P(the
  predicted class) for a multiclass one, the value for a regressor;
- ``label``: the training labels, encoded as monitoring encodes labels received as
  feedback (:func:`encode_labels`): the class index as text for classifiers, the value
  for regressors.

The reference is stored once in the artifact store and its digest recorded in the
version's lineage (``lineage["reference"]``); :func:`load_reference` reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core.artifacts import ArtifactStore
from driftloop.monitoring.drift import TableReference

__all__ = ["build_reference", "encode_labels", "load_reference", "logged_predictions"]

_cache: dict[str, TableReference] = {}


def logged_predictions(scores: npt.NDArray[np.float64], task: str) -> npt.NDArray[np.float64]:
    """Scores as the prediction log's ``prediction`` column holds them."""
    if task == "multiclass" and scores.ndim == 2:
        result: npt.NDArray[np.float64] = scores.max(axis=1)
        return result
    return np.asarray(scores, dtype=np.float64).ravel()


def build_reference(
    features: pa.Table,
    predictions: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    task: str,
) -> TableReference:
    """The reference of one version (see the module doc); ``labels`` are the encoded
    training labels (class indices for classifiers)."""
    if task == "regression":
        label = pa.array(np.asarray(labels, dtype=np.float64))
    else:
        label = pc.cast(pa.array(np.asarray(labels).astype(np.int64)), pa.string())
    # each part has its own rows: the training set, its validation rows, its labelled rows
    parts = [
        TableReference.fit(
            features.rename_columns([f"feature.{n}" for n in features.column_names])
        ),
        TableReference.fit(
            pa.table({"prediction": pa.array(logged_predictions(predictions, task))})
        ),
        TableReference.fit(pa.table({"label": label})),
    ]
    return TableReference(
        {k: v for p in parts for k, v in p.columns.items()},
        {k: v for p in parts for k, v in p.unique_values.items()},
        {k: v for p in parts for k, v in p.null_shares.items()},
    )


def encode_labels(
    labels: pa.ChunkedArray | pa.Array | None,
    label_text: pa.ChunkedArray | pa.Array | None,
    output: dict[str, Any],
) -> npt.NDArray[np.float64]:
    """Labels received as feedback (numbers in ``label``, text in ``label_text``) in the
    space the version's predictions are in: for a binary model 1.0 for its positive class
    and 0.0 for the other (a label naming a class, compared as text, or else the number
    1 or 0), for a multiclass one the class index, for a regressor the value; NaN where
    no label arrived or the label is not one of the classes."""
    task = output.get("task")
    n = len(labels) if labels is not None else len(label_text or [])
    numbers = (
        np.full(n, np.nan)
        if labels is None
        else pc.cast(labels, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    )
    if task == "regression":
        return numbers
    classes: Sequence[Any] = output.get("classes") or []
    # compare labels with the classes as text, the way they arrive over JSON
    text = pc.cast(labels, pa.string()) if labels is not None else pa.nulls(n, pa.string())
    if labels is not None:
        # a number 1.0 reads "1", as an integer class would print
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        as_int = pa.array(np.where(whole, numbers, 0).astype(np.int64)).cast(pa.string())
        text = pc.if_else(pa.array(whole), as_int, text)
    if label_text is not None:
        text = pc.coalesce(label_text, text)
    text = pc.utf8_lower(text)
    names = [str(c).lower() for c in classes]
    aliases = {"true": "1", "false": "0"}
    keys = pa.array(names + [aliases.get(c, c) for c in names if c in aliases])
    index = np.concatenate(
        [np.arange(len(names)), [i for i, c in enumerate(names) if c in aliases]]
    )
    position = pc.index_in(text, value_set=keys).to_numpy(zero_copy_only=False)
    out = np.full(n, np.nan)
    found = ~np.isnan(position.astype(np.float64))
    out[found] = index[position[found].astype(np.int64)]
    if task == "binary":
        # a label of 1 or 0 that names no class is the positive or the negative class
        bare = np.isnan(out) & ((numbers == 0.0) | (numbers == 1.0))
        out[bare] = numbers[bare]
    return out


def load_reference(artifacts: ArtifactStore, digest: str) -> TableReference:
    """The reference stored under ``digest`` (cached: references never change)."""
    cached = _cache.get(digest)
    if cached is None:
        cached = TableReference.from_bytes(artifacts.get_bytes(digest))
        if len(_cache) > 32:
            _cache.clear()
        _cache[digest] = cached
    return cached
