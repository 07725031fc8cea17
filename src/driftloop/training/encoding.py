"""Feature tables to model inputs: one float matrix, the same way at training and serving.

The encoding is part of a model version's signature: each input column is either
``numeric`` (ints, floats and bools as float64) or ``categorical`` (strings, coded as
the index of the value in the categories seen in training, sorted). Missing values
and categories unseen in training become NaN, which tree models handle natively::

    >>> import pyarrow as pa
    >>> table = pa.table({"amount": [1.5, None], "channel": ["web", "pos"]})
    >>> inputs = fit_inputs(table, ["amount", "channel"])
    >>> [(i.name, i.type, i.categories) for i in inputs]
    [('amount', 'numeric', ()), ('channel', 'categorical', ('pos', 'web'))]
    >>> encode(pa.table({"amount": [2.0], "channel": ["app"]}), inputs).tolist()
    [[2.0, nan]]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import DefinitionError, InputError

__all__ = ["InputColumn", "encode", "fit_inputs", "inputs_from_signature"]

MAX_CATEGORIES = 10_000
"""More distinct values than this in a string feature is refused: it is an id, not a category."""


@dataclass(frozen=True)
class InputColumn:
    """One column of the model's input matrix."""

    name: str
    type: str
    """``numeric`` or ``categorical``."""
    categories: tuple[str, ...] = ()
    ref: str = ""
    """The feature reference it came from (``view@version:feature``)."""
    arrow_type: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "type": self.type, "ref": self.ref}
        if self.arrow_type:
            body["arrow_type"] = self.arrow_type
        if self.type == "categorical":
            body["categories"] = list(self.categories)
        return body


def _kind(name: str, type_: pa.DataType) -> str:
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_):
        return "numeric"
    if pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "categorical"
    if pa.types.is_dictionary(type_):
        return "categorical"
    raise DefinitionError(
        f"feature {name!r} has type {type_}, which a model cannot take as input; "
        "use a numeric, bool or string feature (derive one with an expression)"
    )


def fit_inputs(
    table: pa.Table, columns: Sequence[str], refs: Mapping[str, str] | None = None
) -> list[InputColumn]:
    """The input columns for ``columns`` of ``table``, with categories learnt from it."""
    inputs = []
    for name in columns:
        if name not in table.column_names:
            raise InputError(f"the training table has no column {name!r}", column=name)
        column = table.column(name)
        kind = _kind(name, column.type)
        categories: tuple[str, ...] = ()
        if kind == "categorical":
            values = pc.unique(pc.cast(column, pa.string())).drop_null()
            if len(values) > MAX_CATEGORIES:
                raise DefinitionError(
                    f"feature {name!r} has {len(values)} distinct values (more than "
                    f"{MAX_CATEGORIES}): it looks like an identifier, not a category"
                )
            categories = tuple(values.take(pc.sort_indices(values)).to_pylist())
        inputs.append(
            InputColumn(
                name,
                kind,
                categories,
                (refs or {}).get(name, ""),
                arrow_type=str(column.type),
            )
        )
    return inputs


def encode(
    table: pa.Table,
    inputs: Sequence[InputColumn],
    *,
    out: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """The ``(rows, len(inputs))`` float64 matrix of ``table`` under ``inputs``.

    The matrix is column-major (Fortran order): each input is written as one contiguous
    column, chunk by chunk, without an intermediate copy of the whole column. ``out``,
    if given, is filled instead of a new matrix (e.g. a memory-mapped file).
    """
    shape = (table.num_rows, len(inputs))
    if out is None:
        out = np.empty(shape, dtype=np.float64, order="F")
    elif out.shape != shape:
        raise InputError(f"the output matrix has shape {out.shape}, expected {shape}")
    schema = table.schema
    for j, spec in enumerate(inputs):
        index = schema.get_field_index(spec.name)
        if index < 0:
            raise InputError(f"input column {spec.name!r} is missing", column=spec.name)
        column = table.column(index)
        if spec.type == "categorical":
            if column.type != pa.string():
                column = pc.cast(column, pa.string())
            codes = pc.index_in(column, value_set=_value_set(spec.categories))
            values = pc.cast(codes, pa.float64())
        else:
            if _kind(spec.name, column.type) != "numeric":
                raise InputError(
                    f"input column {spec.name!r} must be numeric, got {column.type}",
                    column=spec.name,
                )
            values = column if column.type == pa.float64() else pc.cast(column, pa.float64())
        start = 0
        for chunk in values.chunks:
            # a float array's nulls come out as NaN
            out[start : start + len(chunk), j] = chunk.to_numpy(zero_copy_only=False)
            start += len(chunk)
    return out


@functools.lru_cache(maxsize=1024)
def _value_set(categories: tuple[str, ...]) -> pa.Array:
    return pa.array(categories, pa.string())


def inputs_from_signature(signature: Mapping[str, Any]) -> list[InputColumn]:
    """The input columns recorded in a model version's signature."""
    return [
        InputColumn(
            str(item["name"]),
            str(item["type"]),
            tuple(item.get("categories", ())),
            str(item.get("ref", "")),
            arrow_type=str(item.get("arrow_type", "")),
        )
        for item in signature.get("inputs", [])
    ]
