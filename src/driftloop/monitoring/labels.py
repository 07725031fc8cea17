"""Labels from a model's label source, as feedback records.

A model spec names where its labels come from (``Label(source=..., column=...,
known_after=... | known_at=...)``): the same rows that trained it keep arriving as the
source is ingested. `as_feedback` turns the rows whose label is known by
``now`` into feedback records by entity (``key.<name>``, ``event_time`` = the row's
timestamp, ``at`` = when the label became known), so that
:func:`~driftloop.serving.predictionlog.join_feedback` gives each prediction the label
of the first row for its entity at or after the prediction — a prediction made before
the outcome it predicts. Performance then needs no feedback calls at all.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from driftloop.features.store import FeatureContext
from driftloop.training.spec import ModelSpec
from driftloop.training.train import KNOWN_AT, label_rows

__all__ = ["as_feedback", "known_labels"]

_TS = pa.timestamp("us", tz="UTC")


def known_labels(
    ctx: FeatureContext, spec: ModelSpec, *, now: datetime, since: datetime | None = None
) -> pa.Table:
    """The label source's rows whose label is known at ``now``, skipping the batches
    older than ``since`` when they can be told apart (see
    :func:`~driftloop.training.train.label_rows`)."""
    table, _ = label_rows(ctx, spec, as_of=now, extra=[], since=since)
    return table


def as_feedback(spec: ModelSpec, rows: pa.Table, *, model: str, since: datetime) -> pa.Table:
    """Feedback records (see the module doc) for the label rows (:func:`known_labels`)
    with a timestamp at or after ``since``."""
    label = spec.label
    table = rows.filter(
        pc.greater_equal(pc.cast(rows.column(label.timestamp), _TS), pa.scalar(since, _TS))
    )
    skip = {label.timestamp, label.column, label.known_at, KNOWN_AT}
    keys = [c for c in table.column_names if c not in skip]
    values = table.column(label.column)
    n = table.num_rows
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "request_id": pa.nulls(n, pa.string()),
        "instance": pa.nulls(n, pa.int32()),
        "at": pc.cast(table.column(KNOWN_AT), _TS),
        "event_time": pc.cast(table.column(label.timestamp), _TS),
        "model": pa.repeat(pa.scalar(model, pa.string()), n),
    }
    if spec.task == "binary":
        if label.positive is not None:
            hit = pc.equal(values, pa.scalar(label.positive, values.type))
        else:
            hit = values if pa.types.is_boolean(values.type) else pc.equal(values, 1)
        columns["label"] = pc.cast(hit, pa.float64())
    elif spec.task == "multiclass":
        columns["label"] = pa.nulls(n, pa.float64())
        columns["label_text"] = pc.cast(values, pa.string())
    else:
        columns["label"] = pc.cast(values, pa.float64())
    for key in keys:
        columns[f"key.{key}"] = table.column(key)
    return pa.table(columns)
