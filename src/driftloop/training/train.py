"""From a :class:`ModelSpec` to a fitted model: label rows, training set, time split, fit.

:func:`prepare` reads the label source as known at ``as_of``, keeps the rows whose
label is known by then, asks the feature store for a point-in-time correct training
set (stored, with its lineage), splits it by time and encodes it; :func:`fit` trains
on the training part in a child process. Evaluation and registration are the next
steps (see :mod:`driftloop.loop.pipeline`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core import clock
from driftloop.data.datasets import read_source
from driftloop.errors import DefinitionError, InputError
from driftloop.features.definitions import Entity
from driftloop.features.registry import get_entity
from driftloop.features.store import (
    FeatureContext,
    TrainingSet,
    get_training_set,
    pinned_features,
    save_training_set,
)
from driftloop.training.encoding import InputColumn, encode, fit_inputs
from driftloop.training.fit import FitChild, FitResult, fit_in_child, preload_for
from driftloop.training.spec import ModelSpec

__all__ = [
    "Prepared",
    "fit",
    "label_rows",
    "prepare",
    "signature",
    "start_child",
    "store_training_set",
]

_TS = pa.timestamp("us", tz="UTC")
KNOWN_AT = "__label_known_at"
"""The column :func:`label_rows` adds: when each row's label became known."""
_KNOWN = KNOWN_AT


@dataclass(frozen=True)
class Prepared:
    """A model's data, ready to fit and evaluate."""

    training_set: TrainingSet
    inputs: list[InputColumn]
    X_train: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.float64]
    X_valid: npt.NDArray[np.float64]
    y_valid: npt.NDArray[np.float64]
    valid: pa.Table
    """The validation rows of the training set (keys, timestamp, label, features...)."""
    classes: list[Any] | None
    """Multiclass: the label value of each class index; binary: ``[negative, positive]``."""
    split: dict[str, Any]
    keys: list[str]
    entity_rows: pa.Table
    """The label rows the training set was built from (its entity rows)."""
    phases_s: dict[str, float] = field(default_factory=dict)
    """Seconds spent reading the labels, building the training set, splitting and encoding."""


def _entity(ctx: FeatureContext, spec: ModelSpec) -> Entity:
    entity = spec.label.entity
    return entity if isinstance(entity, Entity) else get_entity(ctx.store, entity)


def label_rows(
    ctx: FeatureContext,
    spec: ModelSpec,
    *,
    as_of: datetime,
    extra: list[str],
    since: datetime | None = None,
) -> tuple[pa.Table, int]:
    """The label source's rows whose label is known at ``as_of``, oldest first, with the
    entity keys, the timestamp, the label, ``extra`` columns and when the label became
    known; also how many rows were left out because their label was missing or not yet
    known. ``since``: when the label's timestamp is the source's event time, the batches
    with no row at or after it are not read (their rows may still come back)."""
    label = spec.label
    keys = _entity(ctx, spec).join_keys
    wanted = [*keys, label.timestamp, label.column, *extra]
    if label.known_at:
        wanted.append(label.known_at)
    wanted = list(dict.fromkeys(wanted))
    if since is not None:
        from driftloop.data.sources import get_source_state

        if get_source_state(ctx.store, label.source).contract.event_time != label.timestamp:
            since = None
    table = read_source(ctx.store, ctx.artifacts, label.source, as_of=as_of, event_since=since)
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise DefinitionError(
            f"model {spec.name!r}: the label source {label.source!r} has no column "
            f"{missing[0]!r} (it has {', '.join(table.column_names)})"
        )
    table = table.select(wanted)
    ts_type = table.schema.field(label.timestamp).type
    if not pa.types.is_timestamp(ts_type):
        raise DefinitionError(
            f"model {spec.name!r}: label timestamp column {label.timestamp!r} is {ts_type}, "
            "not a timestamp"
        )
    ts = pc.cast(table.column(label.timestamp), _TS)
    if label.known_at:
        known = pc.cast(table.column(label.known_at), _TS)
    else:
        delay = pa.scalar(label.delay(spec.name), pa.duration("us"))
        known = pc.add(ts, delay)
    usable = pc.and_kleene(
        pc.is_valid(table.column(label.column)),
        pc.less_equal(known, pa.scalar(as_of, _TS)),
    )
    usable = pc.fill_null(usable, False)
    table = table.append_column(_KNOWN, known).filter(usable)
    left_out = int(len(usable) - pc.sum(usable).as_py()) if len(usable) else 0
    order = pc.sort_indices(table, sort_keys=[(label.timestamp, "ascending")])
    return table.take(order), left_out


def _split(
    spec: ModelSpec, table: pa.Table
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, Any]]:
    """Train and validation masks over ``table`` (sorted by time) and what they hold."""
    ts = pc.cast(table.column(spec.label.timestamp), _TS).to_numpy().astype("datetime64[us]")
    known = pc.cast(table.column(_KNOWN), _TS).to_numpy().astype("datetime64[us]")
    n = len(ts)
    split = spec.split
    if n == 0:
        raise InputError(
            f"model {spec.name!r}: no labelled rows are known yet in source {spec.label.source!r}",
            source=spec.label.source,
        )
    gap = np.timedelta64(int(split.gap_delta().total_seconds() * 1e6), "us")
    if split.validation is not None:
        window = np.timedelta64(int(split.to_delta().total_seconds() * 1e6), "us")
        cutoff = ts[-1] - window
        # the window is (cutoff, newest], the gap (cutoff - gap, cutoff]: a row at the
        # cutoff itself is training data, not lost between the two
        valid = ts > cutoff
        before = ts <= cutoff - gap
    else:
        cutoff = ts[min(n - 1, int(n * (1.0 - split.fraction)))]
        valid = ts >= cutoff
        before = ts < cutoff - gap
    train = before & (known <= cutoff)
    if not train.any() or not valid.any():
        raise InputError(
            f"model {spec.name!r}: the time split leaves {int(train.sum())} training and "
            f"{int(valid.sum())} validation rows out of {n}; widen the data or change the split",
            rows=n,
        )

    def span(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
        chosen = ts[mask]
        return {
            "rows": int(mask.sum()),
            "start": _iso(chosen.min()),
            "end": _iso(chosen.max()),
        }

    info = {
        "cutoff": _iso(cutoff),
        "train": span(train),
        "validation": span(valid),
        "unused": int(n - train.sum() - valid.sum()),
        "rule": split.to_dict(),
    }
    return train, valid, info


def _rows(table: pa.Table, mask: npt.NDArray[np.bool_]) -> pa.Table:
    """The rows of ``mask``: a zero-copy slice when they are one contiguous run (the usual
    case, the rows being in time order), else a filtered copy."""
    count = int(mask.sum())
    first = int(np.argmax(mask)) if count else 0
    if count and mask[first : first + count].all():
        return table.slice(first, count)
    return table.filter(pa.array(mask))


def _iso(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="us")) + "+00:00"


def _targets(
    spec: ModelSpec, labels: pa.ChunkedArray, train: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], list[Any]]:
    """The label as 0/1 (binary), class indices (multiclass) or floats, and the classes.

    Multiclass classes are those of the ``train`` rows, so the codes a model learns are
    0..k-1; a row of a class unseen in training gets NaN."""
    name = f"label column {spec.label.column!r}"
    if spec.task == "regression":
        if not (pa.types.is_integer(labels.type) or pa.types.is_floating(labels.type)):
            raise DefinitionError(
                f"model {spec.name!r}: {name} is {labels.type}, not numeric, "
                "so it cannot be a regression target"
            )
        return pc.cast(labels, pa.float64()).to_numpy(), []
    if spec.task == "binary":
        positive = spec.label.positive
        if positive is not None:
            hit = pc.equal(labels, pa.scalar(positive, labels.type))
            values = sorted(set(pc.unique(labels).to_pylist()) - {positive}, key=str)
            return pc.cast(hit, pa.float64()).to_numpy(), [values[0] if values else None, positive]
        if pa.types.is_boolean(labels.type):
            return pc.cast(labels, pa.float64()).to_numpy(), [False, True]
        seen = sorted(pc.unique(labels).to_pylist(), key=str)
        if pa.types.is_integer(labels.type) and set(seen) <= {0, 1}:
            return pc.cast(labels, pa.float64()).to_numpy(), [0, 1]
        raise DefinitionError(
            f"model {spec.name!r}: {name} holds {seen[:5]} for a binary task; it must be a "
            "bool or 0/1, or set Label(positive=...) to the value meaning class 1"
        )
    classes = pc.unique(labels.filter(pa.array(train)))
    classes = classes.take(pc.sort_indices(classes))
    if len(classes) < 2:
        raise InputError(
            f"model {spec.name!r}: {name} has {len(classes)} class(es); a multiclass "
            "model needs at least 2",
            column=spec.label.column,
        )
    codes = pc.fill_null(pc.cast(pc.index_in(labels, value_set=classes), pa.float64()), np.nan)
    return codes.to_numpy(), classes.to_pylist()


def prepare(
    ctx: FeatureContext,
    spec: ModelSpec,
    *,
    as_of: datetime | None = None,
    store: bool = True,
    child: FitChild | None = None,
) -> Prepared:
    """Label rows → stored training set → time split → encoded matrices.

    ``store=False`` leaves the training set unstored (its id None); store it later with
    :func:`store_training_set`, e.g. while the model fits. With ``child``, the training
    matrix is written straight into that child's hand-over file.
    """
    as_of = as_of or clock.now()
    begun = time.perf_counter()
    outputs = pinned_features(ctx, list(spec.features))
    extra = [c for c in spec.slices if c not in outputs]
    rows, left_out = label_rows(ctx, spec, as_of=as_of, extra=extra)
    keys = _entity(ctx, spec).join_keys
    labelled = time.perf_counter()
    training_set = get_training_set(
        ctx,
        rows,
        list(spec.features),
        timestamp_column=spec.label.timestamp,
        store=store,
        as_of=as_of,
    )
    built = time.perf_counter()
    table = training_set.table
    train_mask, valid_mask, split = _split(spec, table)
    split["label_rows_left_out"] = left_out
    split["as_of"] = as_of.isoformat()
    # the training rows need only their features; the validation rows keep every column
    train = _rows(table.select(list(outputs)), train_mask)
    valid = _rows(table, valid_mask)
    y_all, classes = _targets(spec, table.column(spec.label.column), train_mask)
    y_train, y_valid = y_all[train_mask], y_all[valid_mask]
    if spec.task != "regression" and len(np.unique(y_train)) < 2:
        raise InputError(
            f"model {spec.name!r}: the training rows hold a single class of "
            f"{spec.label.column!r}; a classifier needs both",
            column=spec.label.column,
        )
    if spec.task == "multiclass":
        # a class first seen in validation cannot be predicted: leave those rows out
        seen = np.isin(y_valid, np.unique(y_train))
        if not seen.all():
            split["validation_rows_with_unseen_class"] = int((~seen).sum())
            valid, y_valid = valid.filter(pa.array(seen)), y_valid[seen]
    inputs = fit_inputs(train, list(outputs), outputs)
    out = child.matrix(train.num_rows, len(inputs)) if child is not None else None
    X_train, X_valid = encode(train, inputs, out=out), encode(valid, inputs)
    return Prepared(
        training_set=training_set,
        inputs=inputs,
        X_train=X_train,
        y_train=y_train,
        X_valid=X_valid,
        y_valid=y_valid,
        valid=valid,
        classes=classes or None,
        split=split,
        keys=keys,
        entity_rows=rows,
        phases_s={
            "label_rows": labelled - begun,
            "training_set": built - labelled,
            "split_encode": time.perf_counter() - built,
        },
    )


def store_training_set(ctx: FeatureContext, spec: ModelSpec, prepared: Prepared) -> TrainingSet:
    """Store the training set of ``prepared`` (made with ``store=False``) and return it."""
    return save_training_set(
        ctx, prepared.training_set, prepared.entity_rows, timestamp_column=spec.label.timestamp
    )


def _params(spec: ModelSpec, inputs: list[InputColumn]) -> dict[str, Any]:
    """The trainer's parameters; HistGradientBoosting learns which inputs are categories."""
    params = dict(spec.params)
    if spec.trainer == "hist_gradient_boosting" and "categorical_features" not in params:
        mask = [i.type == "categorical" and len(i.categories) <= 255 for i in inputs]
        if any(mask):
            params["categorical_features"] = mask
    return params


def start_child(spec: ModelSpec) -> FitChild:
    """A child process for the spec's fit, started now so that it imports its libraries
    while the parent prepares the data (use it as a context manager)."""
    return FitChild(threads=spec.threads, seed=spec.seed, preload=preload_for(spec.trainer))


def fit(spec: ModelSpec, prepared: Prepared, child: FitChild | None = None) -> FitResult:
    """Fit the spec's trainer on the training rows, in ``child`` or a new child process."""
    kwargs: dict[str, Any] = {
        "task": spec.task,
        "params": _params(spec, prepared.inputs),
        "time_limit_s": spec.time_limit_s,
        "memory_limit_mb": spec.memory_limit_mb,
        "trust_pickle": spec.trust_pickle,
    }
    if child is not None:
        return child.fit(spec.trainer, prepared.X_train, prepared.y_train, **kwargs)
    return fit_in_child(
        spec.trainer,
        prepared.X_train,
        prepared.y_train,
        seed=spec.seed,
        threads=spec.threads,
        **kwargs,
    )


def signature(spec: ModelSpec, prepared: Prepared) -> dict[str, Any]:
    """What the model takes and gives: input columns and the output schema."""
    output: dict[str, Any] = {"task": spec.task}
    if spec.task == "binary":
        output.update(
            prediction="probability of the positive class",
            classes=prepared.classes,
            threshold=spec.threshold,
        )
    elif spec.task == "multiclass":
        output.update(prediction="probability of each class", classes=prepared.classes)
    else:
        output.update(prediction="value")
    return {
        "inputs": [i.to_dict() for i in prepared.inputs],
        "features": [i.ref for i in prepared.inputs],
        "entity_keys": prepared.keys,
        "output": output,
    }
