"""Prediction records handed to the log as they are, and built into Arrow in batches.

Building the Arrow table of one request's records costs about as much as a model's
prediction on a small tree ensemble (a dozen small arrays, one call each). A server
therefore submits a :class:`PredictionRecords` — the request's values as they are,
nothing copied — and the log's writer builds the records of a whole group commit at
once with :meth:`PredictionRecords.build_many`: the columns of hundreds of requests in
one call each. The table has the schema of
:func:`~driftloop.serving.predictionlog.prediction_table`.

Any object with ``num_rows`` and a class method ``build_many(items) -> pa.Table`` can be
submitted to a :class:`~driftloop.serving.predictionlog.RecordLog` the same way
(:class:`Deferred`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["Deferred", "PredictionRecords", "aligned", "probability_lists"]

_TS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROBABILITIES = pa.list_(pa.float64())


@runtime_checkable
class Deferred(Protocol):
    """Records whose Arrow table the log's writer builds, many at a time."""

    @property
    def num_rows(self) -> int: ...

    @classmethod
    def build_many(cls, items: Sequence[Any]) -> pa.Table: ...


@dataclass(frozen=True, eq=False)
class PredictionRecords:
    """The prediction records of one request, one per instance (see
    :func:`~driftloop.serving.predictionlog.prediction_table` for the columns).

    ``error`` says why the version failed to score these instances (their predictions
    are NaN); the table has an ``error`` column only when a record of it has one, so
    the files of a log that never failed keep their columns."""

    request_id: str
    at: datetime
    version: int
    role: str
    latency_ms: float
    prediction: npt.NDArray[np.float64]
    instance: npt.NDArray[np.int32] | None = None
    probabilities: npt.NDArray[np.float64] | None = None
    keys: pa.Table | None = None
    features: pa.Table | None = None
    missing: Mapping[str, npt.NDArray[np.bool_]] | None = None
    error: str | None = None

    prefixes: ClassVar[tuple[str, str, str]] = ("key.", "feature.", "missing.")

    @property
    def num_rows(self) -> int:
        return len(self.prediction)

    @classmethod
    def build_many(cls, items: Sequence[PredictionRecords]) -> pa.Table:
        """The records of ``items`` as one table, in order."""
        counts = np.fromiter((r.num_rows for r in items), np.int64, len(items))
        total = int(counts.sum())

        def repeated(values: list[Any], dtype: Any) -> Any:
            return np.repeat(np.asarray(values, dtype=dtype), counts)

        at_us = [(r.at - _EPOCH) // timedelta(microseconds=1) for r in items]
        instance = np.concatenate(
            [
                np.arange(r.num_rows, dtype=np.int32) if r.instance is None else r.instance
                for r in items
            ]
        ).astype(np.int32, copy=False)
        columns: dict[str, pa.Array] = {
            "request_id": pa.array(repeated([r.request_id for r in items], object), pa.string()),
            "instance": pa.array(instance, pa.int32()),
            "at": pa.array(repeated(at_us, np.int64), _TS),
            "version": pa.array(repeated([r.version for r in items], np.int32), pa.int32()),
            "role": pa.array(repeated([r.role for r in items], object), pa.string()),
            "latency_ms": pa.array(repeated([r.latency_ms for r in items], np.float64)),
            "prediction": pa.array(
                np.concatenate([np.asarray(r.prediction, dtype=np.float64) for r in items])
            ),
            "probabilities": _probabilities(items, total),
        }
        errors = [r.error for r in items]
        if any(e is not None for e in errors):
            columns["error"] = pa.array(repeated(errors, object), pa.string())
        key_prefix, feature_prefix, missing_prefix = cls.prefixes
        for prefix, tables in (
            (key_prefix, [r.keys for r in items]),
            (feature_prefix, [r.features for r in items]),
        ):
            stacked = _stack(tables, counts)
            if stacked is not None:
                for name, column in zip(stacked.column_names, stacked.columns, strict=True):
                    columns[prefix + name] = column
        for name, flags in _stack_flags([r.missing for r in items], counts).items():
            columns[missing_prefix + name] = flags
        return pa.table(columns)


def _stack_flags(
    flags: list[Mapping[str, npt.NDArray[np.bool_]] | None], counts: npt.NDArray[np.int64]
) -> dict[str, pa.Array]:
    """The missing-input flags one under the other (null where a request has none)."""
    names = list(dict.fromkeys(name for f in flags if f for name in f))
    if not names:
        return {}
    out = {}
    for name in names:
        pieces = [f.get(name) if f else None for f in flags]
        if all(p is not None for p in pieces):
            out[name] = pa.array(np.concatenate(pieces))  # type: ignore[arg-type]
            continue
        values = np.concatenate(
            [np.zeros(n, bool) if p is None else p for p, n in zip(pieces, counts, strict=True)]
        )
        absent = np.concatenate(
            [np.full(n, p is None) for p, n in zip(pieces, counts, strict=True)]
        )
        out[name] = pa.array(values, pa.bool_(), mask=absent)
    return out


def probability_lists(matrix: npt.ArrayLike) -> pa.ListArray:
    """One list of class probabilities per row of a (rows, classes) matrix."""
    values = np.ascontiguousarray(matrix, dtype=np.float64)
    offsets = pa.array(np.arange(values.shape[0] + 1, dtype=np.int32) * values.shape[1])
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()))


def _probabilities(items: Sequence[PredictionRecords], total: int) -> pa.Array:
    if all(r.probabilities is None for r in items):
        return pa.nulls(total, _PROBABILITIES)
    return pa.concat_arrays(
        [
            pa.nulls(r.num_rows, _PROBABILITIES)
            if r.probabilities is None
            else probability_lists(r.probabilities)
            for r in items
        ]
    )


def aligned(table: pa.Table | None, schema: pa.Schema, rows: int) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: cast where the type differs, null
    where it has no such column (a missing table: ``rows`` rows of nulls)."""
    columns = []
    for field in schema:
        index = -1 if table is None else table.schema.get_field_index(field.name)
        if table is None or index < 0:
            columns.append(pa.nulls(rows, field.type))
        else:
            column = table.column(index)
            columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _stack(tables: list[pa.Table | None], counts: npt.NDArray[np.int64]) -> pa.Table | None:
    """The tables one under the other, columns unified by name (null where a table has
    no such column, or is None)."""
    present = [t for t in tables if t is not None]
    if not present:
        return None
    first = present[0].schema
    if len(present) == len(tables) and all(t.schema.equals(first) for t in present):
        return pa.concat_tables(present)  # the usual case: one version, one schema
    schema = pa.unify_schemas([t.schema for t in present], promote_options="permissive")
    return pa.concat_tables(
        [aligned(t, schema, n) for t, n in zip(tables, counts.tolist(), strict=True)]
    )
