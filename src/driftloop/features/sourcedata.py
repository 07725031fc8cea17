"""A feature view's source rows, as DuckDB sees them.

The offline engines (``offline.py`` for latest values, ``aggregates.py`` for windowed
aggregates) read a view's source through :func:`register_view_source`, which creates a
DuckDB view with, per source row:

- the entity's join keys (cast to the entity's key types),
- ``__event`` (timestamp, UTC): the row's event time,
- ``__created`` (timestamp, UTC): when the row became known: the view's created-time
  column when it has one, else the time its batch was ingested,
- ``__batch`` (timestamp, UTC): when its batch was ingested (the last tie-breaker),
- the view's features (for latest-value views: their expressions evaluated; for
  aggregate views: the aggregated columns under their own names).

Local Parquet blobs are scanned in place; blobs on other filesystems are read through
pyarrow and registered as Arrow tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.errors import DefinitionError
from driftloop.features.definitions import DUCK_TYPES, FeatureView

__all__ = ["SourceBatch", "ViewData", "quote", "register_view_source"]


def quote(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SourceBatch:
    """One accepted batch (dataset version) of the view's source."""

    version: str
    created_at: datetime
    path: str | None = None
    table: pa.Table | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ViewData:
    """A feature view with its resolved event-time column and the batches to read."""

    view: FeatureView
    event_time: str
    batches: Sequence[SourceBatch]
    source_schema: pa.Schema

    @property
    def versions(self) -> list[str]:
        return [b.version for b in self.batches]


def _transformed(data: ViewData) -> pa.Table:
    """Every batch through the view's Python transform, with its ``__batch`` time."""
    assert data.view.transform is not None
    parts = []
    for batch in data.batches:
        table = batch.table if batch.table is not None else pq.read_table(str(batch.path))
        try:
            out = data.view.transform(table)
        except Exception as exc:
            raise DefinitionError(
                f"feature view {data.view.name!r}: its transform failed on batch "
                f"{batch.version[:12]}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(out, pa.Table):
            out = pa.Table.from_pandas(out, preserve_index=False)
        parts.append(
            out.append_column(
                "__batch", pa.array([batch.created_at] * out.num_rows, pa.timestamp("us", tz="UTC"))
            )
        )
    if not parts:
        return data.source_schema.empty_table().append_column(
            "__batch", pa.array([], pa.timestamp("us", tz="UTC"))
        )
    return pa.concat_tables(parts, promote_options="default")


def _raw_relation(con: duckdb.DuckDBPyConnection, data: ViewData, name: str) -> str:
    """Register the raw union of the batches (all source columns + ``__batch``)."""
    schema = data.source_schema
    if data.view.transform is not None:
        con.register(f"{name}__transformed", _transformed(data))
        return quote(name + "__transformed")
    if not data.batches:
        con.register(f"{name}__empty", schema.empty_table())
        return f"(SELECT *, NULL::TIMESTAMPTZ AS __batch FROM {quote(name + '__empty')})"
    local = [b for b in data.batches if b.path is not None]
    parts: list[str] = []
    if local:
        mapping = pa.table(
            {
                "__file": [b.path for b in local],
                "__batch": pa.array([b.created_at for b in local], pa.timestamp("us", tz="UTC")),
            }
        )
        con.register(f"{name}__files", mapping)
        files = ", ".join("'" + str(b.path).replace("'", "''") + "'" for b in local)
        cols = ", ".join(f"p.{quote(f.name)}" for f in schema)
        parts.append(
            f"SELECT {cols}, m.__batch FROM read_parquet([{files}], filename = '__file', "
            f"union_by_name = true) AS p JOIN {quote(name + '__files')} AS m "
            "ON p.__file = m.__file"
        )
    remote = [b for b in data.batches if b.path is None]
    if remote:
        tables = []
        for batch in remote:
            if batch.table is None:
                raise DefinitionError(f"batch {batch.version} has neither a path nor a table")
            table = batch.table
            for f in schema:
                if f.name not in table.column_names:
                    table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
            table = table.select(schema.names).cast(schema)
            tables.append(
                table.append_column(
                    "__batch",
                    pa.array([batch.created_at] * table.num_rows, pa.timestamp("us", tz="UTC")),
                )
            )
        con.register(f"{name}__remote", pa.concat_tables(tables))
        cols = ", ".join(quote(f.name) for f in schema)
        parts.append(f"SELECT {cols}, __batch FROM {quote(name + '__remote')}")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")"


def register_view_source(
    con: duckdb.DuckDBPyConnection, data: ViewData, name: str, features: Sequence[str]
) -> str:
    """Create the DuckDB view ``name`` over the view's source (see the module docstring)
    with the given features, and return ``name`` quoted."""
    view = data.view
    raw = _raw_relation(con, data, name)
    keys = [
        f"CAST({quote(k)} AS {DUCK_TYPES[t]}) AS {quote(k)}" for k, t in view.entity.keys.items()
    ]
    event = f"CAST({quote(data.event_time)} AS TIMESTAMPTZ) AS __event"
    if view.created_time is not None:
        created = f"CAST({quote(view.created_time)} AS TIMESTAMPTZ) AS __created"
    else:
        created = "__batch AS __created"
    exprs: list[str] = []
    unknown = sorted(set(features) - set(view.feature_names))
    if unknown:
        raise DefinitionError(
            f"feature view {view.name!r} has no feature {unknown[0]!r} "
            f"(it has: {', '.join(view.feature_names)})"
        )
    if view.aggregates:
        wanted = {a.feature_name: a for a in view.aggregates}
        # a join key is already selected (cast to its key type) above
        columns = sorted({wanted[f].column for f in features} - set(view.entity.keys))
        exprs = [quote(c) for c in columns]
    else:
        by_name = {f.name: f for f in view.features}
        for name_ in features:
            feature = by_name[name_]
            duck_type = DUCK_TYPES[feature.type]
            exprs.append(
                f"CAST(({feature.expr or quote(feature.name)}) AS {duck_type}) "
                f"AS {quote(feature.name)}"
            )
    select = ", ".join([*keys, event, created, "__batch AS __batch", *exprs])
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT {select} FROM {raw}")
    return quote(name)
