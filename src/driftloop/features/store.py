"""The feature store: training sets (offline), materialization and online lookups.

:func:`get_training_set` gives, for each entity row (keys + timestamp t), every
requested feature as of t, point-in-time correct (see ``offline.py`` and
``aggregates.py`` for the exact rules), in input order, and stores the result as an
immutable, content-addressed training set with its lineage. :func:`materialize`
writes the same values, as of a time T, into the online store, incrementally from a
stored watermark; :func:`get_online_features` reads them back with their age, and
serves a view's declared default for a value older than its TTL.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.config import OfflineConfig
from driftloop.core.hashing import sha256_bytes
from driftloop.core.metadata import MetadataStore
from driftloop.data.datasets import list_versions, write_parquet
from driftloop.data.sources import get_source_state
from driftloop.errors import DefinitionError, InputError, NotFoundError
from driftloop.features.aggregates import window_aggregates
from driftloop.features.definitions import FeatureView
from driftloop.features.offline import latest_values
from driftloop.features.online import OnlineStore
from driftloop.features.registry import FeatureRef, parse_refs, resolve_view
from driftloop.features.sourcedata import SourceBatch, ViewData, quote, register_view_source
from driftloop.features.tables import materializations, training_sets

__all__ = [
    "FeatureContext",
    "MaterializeResult",
    "TrainingSet",
    "get_online_features",
    "get_training_set",
    "materialize",
    "pinned_features",
    "save_training_set",
]

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class FeatureContext:
    """What the feature store works with: stores, settings, declared definitions."""

    store: MetadataStore
    artifacts: ArtifactStore
    offline: OfflineConfig
    declared: Mapping[str, FeatureView]
    who: str


@dataclass(frozen=True)
class TrainingSet:
    """A training set: the table and where every value came from.

    ``id`` is the sha256 of its stored Parquet file, or None when it was not stored.
    """

    id: str | None
    table: pa.Table = field(repr=False)
    features: list[str]
    views: list[dict[str, str]]
    dataset_versions: dict[str, list[str]]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rows": self.table.num_rows,
            "columns": self.table.column_names,
            "features": self.features,
            "views": self.views,
            "dataset_versions": self.dataset_versions,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    version: str
    until: datetime
    previous_watermark: datetime | None
    entities: int


@dataclass(frozen=True)
class _Selection:
    """One view and the features asked of it, with their output column names."""

    view: FeatureView
    features: list[str]
    outputs: list[str]


@contextlib.contextmanager
def _duckdb(config: OfflineConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    settings: dict[str, Any] = {"memory_limit": config.memory_limit}
    if config.threads:
        settings["threads"] = config.threads
    if config.temp_directory is not None:
        config.temp_directory.mkdir(parents=True, exist_ok=True)
        settings["temp_directory"] = str(config.temp_directory)
    con = duckdb.connect(config=settings)
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def view_data(ctx: FeatureContext, view: FeatureView, *, as_of: datetime | None = None) -> ViewData:
    """The view's source batches (accepted dataset versions), verified, ready for DuckDB."""
    state = get_source_state(ctx.store, view.source_name)
    event_time = view.event_time or state.contract.event_time
    batches = []
    for version in list_versions(ctx.store, view.source_name, as_of=as_of):
        path = ctx.artifacts.verified_local_path(version.id)
        table = None
        if path is None:
            with ctx.artifacts.open_input(version.id) as handle:
                table = pq.read_table(handle)
        batches.append(SourceBatch(version.id, version.created_at, path=path, table=table))
    return ViewData(view, event_time, batches, state.contract.arrow_schema)


def _select(ctx: FeatureContext, refs: Sequence[FeatureRef], full_names: bool) -> list[_Selection]:
    grouped: dict[tuple[str, str | None], list[str]] = {}
    for ref in refs:
        grouped.setdefault((ref.view, ref.version), []).append(ref.feature)
    selections = []
    for (name, version), wanted in grouped.items():
        view = resolve_view(ctx.store, name, version, ctx.declared)
        features: list[str] = []
        for feature in wanted:
            if feature == "*":
                features.extend(f for f in view.feature_names if f not in features)
            elif feature not in view.feature_names:
                raise NotFoundError(f"feature of view {name!r}", feature, known=view.feature_names)
            elif feature not in features:
                features.append(feature)
        outputs = [f"{name}__{f}" if full_names else f for f in features]
        selections.append(_Selection(view, features, outputs))
    seen: dict[str, str] = {}
    for sel in selections:
        for out in sel.outputs:
            if out in seen:
                raise DefinitionError(
                    f"feature {out!r} is asked of both {seen[out]!r} and {sel.view.name!r}; "
                    "pass full_names=True (CLI: --full-names) to name them view__feature"
                )
            seen[out] = sel.view.name
    return selections


def pinned_features(
    ctx: FeatureContext, features: Sequence[str], *, full_names: bool = False
) -> dict[str, str]:
    """Each output column of ``features`` and the exact reference (``view@version:feature``)
    it resolves to now, so the same values can be asked for after the views change."""
    return {
        out: f"{sel.view.name}@{sel.view.version}:{feature}"
        for sel in _select(ctx, parse_refs(features), full_names)
        for feature, out in zip(sel.features, sel.outputs, strict=True)
    }


def _as_table(rows: Any) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if type(rows).__name__ == "DataFrame":
        return pa.Table.from_pandas(rows, preserve_index=False)
    if isinstance(rows, Sequence) and all(isinstance(r, Mapping) for r in rows):
        return pa.Table.from_pylist(list(rows))
    if isinstance(rows, Mapping):
        return pa.table(dict(rows))
    raise InputError(
        f"entity rows must be a pyarrow.Table, a pandas.DataFrame, a list of dicts or a "
        f"dict of columns, not {type(rows).__name__}"
    )


def _entity_relation(
    con: duckdb.DuckDBPyConnection,
    rows: pa.Table,
    view: FeatureView,
    ts: pa.ChunkedArray,
    name: str,
) -> str:
    columns: dict[str, Any] = {"__row": pa.array(np.arange(rows.num_rows, dtype=np.int64))}
    for key, type_ in view.entity.keys.items():
        if key not in rows.column_names:
            raise InputError(
                f"the entity rows have no column {key!r}, a join key of entity "
                f"{view.entity.name!r} (feature view {view.name!r}); they have: "
                f"{', '.join(rows.column_names)}"
            )
        target = pa.int64() if type_ == "int" else pa.string()
        try:
            columns[key] = pc.cast(rows.column(key), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"entity rows column {key!r} cannot be read as the {type_} join key of "
                f"entity {view.entity.name!r}: {exc}"
            ) from None
    columns["__ts"] = ts
    con.register(name, pa.table(columns))
    return quote(name)


def _timestamps(rows: pa.Table, column: str) -> pa.ChunkedArray:
    if column not in rows.column_names:
        raise InputError(
            f"the entity rows have no timestamp column {column!r} (they have: "
            f"{', '.join(rows.column_names)}); pass timestamp_column="
        )
    values = rows.column(column)
    if not pa.types.is_timestamp(values.type):
        raise InputError(f"entity rows column {column!r} must be a timestamp, not {values.type}")
    if values.type.tz is None:
        raise InputError(
            f"entity rows column {column!r} has timestamps without a timezone; localise "
            "them to UTC first (driftloop never guesses a zone)"
        )
    if values.null_count:
        raise InputError(f"entity rows column {column!r} has {values.null_count} null timestamps")
    return pc.cast(values, _TS)


def compute_features(
    ctx: FeatureContext,
    rows: pa.Table,
    ts: pa.ChunkedArray,
    selections: Sequence[_Selection],
    *,
    missing_flags: bool,
    as_of: datetime | None = None,
) -> tuple[pa.Table, dict[str, list[str]]]:
    """The features of ``selections`` for each row at ``ts``; also the source versions used."""
    columns: dict[str, Any] = {}
    used: dict[str, list[str]] = {}
    with _duckdb(ctx.offline) as con:
        for i, sel in enumerate(selections):
            view = sel.view
            data = view_data(ctx, view, as_of=as_of)
            used.setdefault(view.source_name, [])
            used[view.source_name] = sorted({*used[view.source_name], *data.versions})
            source = register_view_source(con, data, f"source_{i}", sel.features)
            entity = _entity_relation(con, rows, view, ts, f"entity_{i}")
            if view.aggregates:
                result = window_aggregates(con, entity, source, view, sel.features)
            else:
                result = latest_values(con, entity, source, view, sel.features)
            defaults = view.defaults
            types = view.feature_types
            for feature, out in zip(sel.features, sel.outputs, strict=True):
                values = result.column(feature)
                if missing_flags:
                    columns[f"{out}__missing"] = pc.is_null(values)
                default = defaults[feature]
                if default is not None:
                    values = pc.fill_null(values, pa.scalar(default, types[feature]))
                columns[out] = pc.cast(values, types[feature])
    return pa.table(columns) if columns else pa.table({}), used


def get_training_set(
    ctx: FeatureContext,
    entity_rows: Any,
    features: Sequence[str],
    *,
    timestamp_column: str = "event_time",
    full_names: bool = False,
    missing_flags: bool = False,
    store: bool = True,
    as_of: datetime | None = None,
) -> TrainingSet:
    """Point-in-time correct features for each entity row, stored with its lineage.

    ``as_of`` limits the source data to what had been ingested by then (default: all of
    it), so a training set built "as of" a past time is the one that could have been
    built at that time.
    """
    rows = _as_table(entity_rows)
    refs = parse_refs(features)
    selections = _select(ctx, refs, full_names)
    ts = _timestamps(rows, timestamp_column)
    clash = sorted({o for s in selections for o in s.outputs} & set(rows.column_names))
    if clash:
        raise DefinitionError(
            f"feature {clash[0]!r} has the name of an entity rows column; rename the column "
            "or pass full_names=True"
        )
    computed, used = compute_features(
        ctx, rows, ts, selections, missing_flags=missing_flags, as_of=as_of
    )
    table = rows
    for name in computed.column_names:
        table = table.append_column(name, computed.column(name))
    views = [{"name": s.view.name, "version": s.view.version} for s in selections]
    refs_out = [str(r) for r in refs]
    now = clock.now()
    unstored = TrainingSet(None, table, refs_out, views, used, now)
    if not store:
        return unstored
    return save_training_set(
        ctx,
        unstored,
        rows,
        timestamp_column=timestamp_column,
        full_names=full_names,
        missing_flags=missing_flags,
    )


def save_training_set(
    ctx: FeatureContext,
    training_set: TrainingSet,
    entity_rows: pa.Table,
    *,
    timestamp_column: str = "event_time",
    full_names: bool = False,
    missing_flags: bool = False,
) -> TrainingSet:
    """Store an unstored training set (from ``store=False``) with its lineage; the
    options are those it was built with. Storing the same content again is a no-op."""
    table = training_set.table
    data = write_parquet(table)
    digest = ctx.artifacts.put_bytes(data)
    entity_digest = sha256_bytes(write_parquet(entity_rows))
    with ctx.store.transaction() as conn:
        exists = conn.execute(
            sa.select(training_sets.c.id).where(training_sets.c.id == digest)
        ).first()
        if exists is None:
            conn.execute(
                training_sets.insert().values(
                    id=digest,
                    rows=table.num_rows,
                    bytes=len(data),
                    schema=[{"name": f.name, "type": str(f.type)} for f in table.schema],
                    entity_rows_sha256=entity_digest,
                    features=training_set.features,
                    views=training_set.views,
                    dataset_versions=training_set.dataset_versions,
                    options={
                        "timestamp_column": timestamp_column,
                        "full_names": full_names,
                        "missing_flags": missing_flags,
                    },
                    created_at=training_set.created_at,
                    created_by=ctx.who,
                )
            )
    return dataclasses.replace(training_set, id=digest)


def load_training_set(ctx: FeatureContext, ref: str) -> TrainingSet:
    """A stored training set by id (or a prefix of at least 6 characters)."""
    with ctx.store.connect() as conn:
        rows = conn.execute(
            sa.select(training_sets).where(training_sets.c.id.startswith(ref.lower())).limit(2)
        ).all()
    if len(ref) < 6 or len(rows) != 1:
        raise NotFoundError("training set", ref)
    row = rows[0]
    with ctx.artifacts.open_input(row.id) as handle:
        ctx.artifacts.verify(row.id)
        table = pq.read_table(handle)
    return TrainingSet(
        row.id,
        table,
        list(row.features),
        list(row.views),
        dict(row.dataset_versions),
        row.created_at,
    )


# -- materialization -------------------------------------------------------------------


def _watermark(ctx: FeatureContext, view: FeatureView) -> datetime | None:
    with ctx.store.connect() as conn:
        return conn.execute(
            sa.select(materializations.c.watermark).where(
                materializations.c.view == view.name, materializations.c.version == view.version
            )
        ).scalar_one_or_none()


def _changed_entities(
    con: duckdb.DuckDBPyConnection,
    source: str,
    view: FeatureView,
    since: datetime | None,
    until: datetime,
) -> pa.Table:
    """The entities whose online value may differ at ``until`` from the one at ``since``.

    Latest values change for entities with a row that became known, or whose event
    time passed, after ``since`` (late rows included: their created time is recent).
    Windowed aggregates also change for entities whose old rows slide out of the
    window, so every entity with a row in the windows ending at ``since`` or ``until``.
    """
    keys = ", ".join(quote(k) for k in view.entity.keys)
    not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in view.entity.keys)
    params: list[Any] = [until, until]
    where = f"__event <= ? AND __created <= ? AND {not_null}"
    if since is not None:
        if view.aggregates:
            widest = max(a.window_delta for a in view.aggregates)
            where += " AND __event >= ?"
            params.append(since - widest)
        else:
            where += " AND (__created > ? OR __event > ?)"
            params += [since, since]
    return con.sql(
        f"SELECT DISTINCT {keys} FROM {source} WHERE {where}", params=params
    ).to_arrow_table()


def materialize(
    ctx: FeatureContext,
    online: OnlineStore,
    views: Sequence[FeatureView],
    *,
    until: datetime | None = None,
    full: bool = False,
) -> list[MaterializeResult]:
    """Write each view's values as of ``until`` (default: now) into the online store.

    Incremental from the view version's stored watermark (the previous ``until``);
    ``full=True`` recomputes every entity. The watermark moves only after the write.
    """
    until = clock.ensure_utc(until) if until is not None else clock.now()
    results = []
    for view in views:
        previous = None if full else _watermark(ctx, view)
        features = view.feature_names
        with _duckdb(ctx.offline) as con:
            data = view_data(ctx, view)
            source = register_view_source(con, data, "source", features)
            keys = _changed_entities(con, source, view, previous, until)
            n = keys.num_rows
            ts = pa.chunked_array([pa.array([until] * n, _TS)]) if n else pa.chunked_array([], _TS)
            entity = _entity_relation(con, keys, view, ts, "entity")
            if view.aggregates:
                values = window_aggregates(con, entity, source, view, features)
                event = pa.array([until] * n, _TS)
            else:
                values = latest_values(con, entity, source, view, features)
                event = values.column("__event_time")
        table = keys.select(view.entity.join_keys)
        table = table.append_column("__event_time", event)
        for feature in features:
            table = table.append_column(feature, values.column(feature))
        if not view.aggregates:
            table = table.filter(pc.is_valid(table.column("__event_time")))
        written = online.write(view.ref, view.entity.join_keys, table) if table.num_rows else 0
        _save_watermark(ctx, view, until, written)
        results.append(MaterializeResult(view.name, view.version, until, previous, written))
    return results


def _save_watermark(ctx: FeatureContext, view: FeatureView, until: datetime, rows: int) -> None:
    now = clock.now()
    with ctx.store.transaction() as conn:
        row = conn.execute(
            sa.select(materializations).where(
                materializations.c.view == view.name, materializations.c.version == view.version
            )
        ).first()
        if row is None:
            conn.execute(
                materializations.insert().values(
                    view=view.name,
                    version=view.version,
                    watermark=until,
                    runs=1,
                    rows_written=rows,
                    updated_at=now,
                )
            )
        else:
            conn.execute(
                materializations.update()
                .where(
                    materializations.c.view == view.name, materializations.c.version == view.version
                )
                .values(
                    watermark=max(until, row.watermark),
                    runs=row.runs + 1,
                    rows_written=row.rows_written + rows,
                    updated_at=now,
                )
            )


# -- online ----------------------------------------------------------------------------


def get_online_features(
    ctx: FeatureContext,
    online: OnlineStore,
    entity_keys: Any,
    features: Sequence[str],
    *,
    full_names: bool = False,
) -> pa.Table:
    """The latest materialized values for each entity, in input order.

    Per view, ``<view>__age_s`` is the age in seconds of the values (now minus their
    event time) and ``<view>__stale`` tells that a value was older than the view's TTL
    and was replaced by the declared default; a missing entity gets the defaults with
    ``<view>__found`` false.
    """
    rows = _as_table(entity_keys)
    selections = _select(ctx, parse_refs(features), full_names)
    now = clock.now()
    table = rows
    for sel in selections:
        view = sel.view
        keys = {}
        for key, type_ in view.entity.keys.items():
            if key not in rows.column_names:
                raise InputError(
                    f"the entity keys have no column {key!r} (entity "
                    f"{view.entity.name!r} of feature view {view.name!r})"
                )
            keys[key] = pc.cast(rows.column(key), pa.int64() if type_ == "int" else pa.string())
        found = online.read(view.ref, pa.table(keys), sel.features)
        event = found.column("__event_time")
        age = pc.divide(pc.cast(pc.subtract(pa.scalar(now, _TS), event), pa.int64()), 1e6)
        ttl = view.ttl_delta if not view.aggregates else None
        stale = pc.greater(age, ttl.total_seconds()) if ttl is not None else pc.is_null(age)
        stale = pc.fill_null(stale, False)
        defaults, types = view.defaults, view.feature_types
        for feature, out in zip(sel.features, sel.outputs, strict=True):
            values = found.column(feature)
            default = pa.scalar(defaults[feature], types[feature])
            values = pc.if_else(stale, default, values)
            if defaults[feature] is not None:
                values = pc.fill_null(values, default)
            table = table.append_column(out, pc.cast(values, types[feature]))
        table = table.append_column(f"{view.name}__age_s", age)
        table = table.append_column(f"{view.name}__stale", stale)
        table = table.append_column(f"{view.name}__found", found.column("__found"))
    return table
