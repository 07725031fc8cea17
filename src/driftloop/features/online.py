"""Online stores: the latest feature values per entity, for the serving path.

The materializer computes the latest row per entity of a feature view and
:meth:`OnlineStore.write` upserts it; the server calls :meth:`OnlineStore.read`
with the entity keys of a request. Three backends share one contract:

- :class:`MemoryOnlineStore` (``memory://``): dicts, for tests and one process;
- :class:`~driftloop.features.online_sqlite.SQLiteOnlineStore`
  (``sqlite:///path.db``): the embedded default, safe across threads and processes;
- :class:`~driftloop.features.online_redis.RedisOnlineStore`
  (``redis://host:port/db?prefix=...``): for several machines.

A view is named by an opaque string (``"customer_stats@3f2a9c1b"``: the view's
name and version hash). Its key columns are int64 or string; its features are
float64, int64, bool, string or timestamp[us, UTC]. Every row also carries
``__event_time`` (when the values happened) and ``__written_at`` (when they were
written, from :func:`driftloop.core.clock.now`)::

    >>> import pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> store = open_online_store("memory://")
    >>> at = datetime(2024, 1, 1, tzinfo=UTC)
    >>> rows = pa.table({"customer": [1, 2], "__event_time": [at, at], "spend": [9.5, 3.0]})
    >>> store.write("customer_stats@3f2a9c1b", ["customer"], rows)
    2
    >>> got = store.read("customer_stats@3f2a9c1b", pa.table({"customer": [2, 7, 2]}))
    >>> got.column("spend").to_pylist(), got.column("__found").to_pylist()
    ([3.0, None, 3.0], [True, False, True])

Reading returns one row per requested key, in the order asked (duplicates
included), with ``__found`` false and null values for unknown entities.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import repeat
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core import clock
from driftloop.errors import ConfigError, InputError, NotFoundError, StateError

__all__ = [
    "EVENT_TIME",
    "FOUND",
    "WRITTEN_AT",
    "MemoryOnlineStore",
    "OnlineStore",
    "SupportsCount",
    "open_online_store",
]

EVENT_TIME = "__event_time"
WRITTEN_AT = "__written_at"
FOUND = "__found"

Kind = Literal["float64", "int64", "bool", "string", "timestamp"]
KEY_KINDS: tuple[Kind, ...] = ("int64", "string")
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[Kind, pa.DataType] = {
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": TIMESTAMP,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_WHITESPACE = re.compile(r"\s")


@runtime_checkable
class OnlineStore(Protocol):
    """Latest feature values per entity key, one wide row per entity and view."""

    def write(self, view: str, keys: Sequence[str], table: pa.Table) -> int:
        """Upsert each row of ``table`` by its key columns; return the rows written.

        ``table`` holds the key columns named by ``keys``, ``__event_time`` and the
        feature columns. When a key appears twice in one table the last row wins.
        The first write of a view fixes its keys and features (names and types);
        a later write with other ones raises :class:`~driftloop.errors.StateError`.
        """
        ...

    def read(self, view: str, keys: pa.Table, features: Sequence[str] | None = None) -> pa.Table:
        """One row per row of ``keys``, in the same order, duplicates included.

        Columns: the key columns, the requested ``features`` (all when None),
        ``__event_time``, ``__written_at`` and ``__found``; unknown entities get
        nulls and ``__found`` false.
        """
        ...

    def delete(self, view: str) -> None:
        """Remove the view and all its rows; an unknown view raises NotFoundError."""
        ...

    def views(self) -> list[str]:
        """The names of the stored views, sorted."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise StateError. Closing twice is fine."""
        ...


@runtime_checkable
class SupportsCount(Protocol):
    """An online store that can count a view's entities cheaply."""

    def count(self, view: str) -> int:
        """The number of entities stored for ``view``."""
        ...


# --- schemas and validation -----------------------------------------------------------


def check_view_name(view: object) -> str:
    """Return ``view`` when it is a usable view name: a non-empty string, no whitespace."""
    if not isinstance(view, str) or not view or _WHITESPACE.search(view):
        raise InputError(
            f"feature view name {view!r} must be a non-empty string without whitespace",
            view=str(view),
        )
    return view


def kind_of(type_: pa.DataType) -> Kind | None:
    """The online-store kind a column of this Arrow type is stored as, if any."""
    if pa.types.is_floating(type_):
        return "float64"
    if pa.types.is_integer(type_):
        return "int64"
    if pa.types.is_boolean(type_):
        return "bool"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_string_view(type_):
        return "string"
    if pa.types.is_dictionary(type_) and kind_of(type_.value_type) == "string":
        return "string"
    if pa.types.is_timestamp(type_) and type_.tz is not None:
        return "timestamp"
    return None


def _type_problem(type_: pa.DataType) -> str:
    if pa.types.is_timestamp(type_):
        return f"has type {type_} without a timezone; give timestamps a timezone (UTC)"
    return f"has type {type_}; supported are float64, int64, bool, string, timestamp[us, UTC]"


def to_kind(column: pa.ChunkedArray | pa.Array, kind: Kind, *, name: str, view: str) -> pa.Array:
    """``column`` as one array of ``kind``'s Arrow type (lossless casts only)."""
    target = ARROW_TYPES[kind]
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.type != target:
        try:
            column = pc.cast(column, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputError(
                f"feature view {view!r}: column {name!r} cannot be stored as {kind}: {error}",
                view=view,
                column=name,
            ) from None
    return column


@dataclass(frozen=True)
class ViewSchema:
    """The keys and features of a view: names and kinds, fixed by its first write."""

    view: str
    keys: tuple[tuple[str, Kind], ...]
    features: tuple[tuple[str, Kind], ...]
    _outputs: dict[tuple[int, ...], pa.Schema] = field(
        default_factory=dict, compare=False, repr=False
    )

    @cached_property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    @cached_property
    def feature_index(self) -> dict[str, int]:
        return {name: i for i, (name, _) in enumerate(self.features)}

    @cached_property
    def all_features(self) -> tuple[int, ...]:
        return tuple(range(len(self.features)))

    @cached_property
    def stored_row(self) -> pa.StructType:
        """The struct of a row as the memory and Redis stores keep it: features, times."""
        return row_type([*(ARROW_TYPES[k] for _, k in self.features), TIMESTAMP, TIMESTAMP])

    @cached_property
    def null_row(self) -> tuple[None, ...]:
        """A stored row of nulls, read for an unknown entity."""
        return (None,) * (len(self.features) + 2)

    def stored_columns(self, selected: tuple[int, ...]) -> tuple[int, ...]:
        """Positions in a stored row of the selected features and the two times."""
        n = len(self.features)
        return (*selected, n, n + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": [list(k) for k in self.keys], "features": [list(f) for f in self.features]}

    @classmethod
    def from_dict(cls, view: str, data: dict[str, Any]) -> ViewSchema:
        return cls(
            view=view,
            keys=tuple((str(n), k) for n, k in data["keys"]),
            features=tuple((str(n), k) for n, k in data["features"]),
        )

    def differences(self, other: ViewSchema) -> list[str]:
        """What ``other`` (a new write) changes compared with this (stored) schema."""
        changes: list[str] = []
        for what, mine, theirs in (
            ("key", dict(self.keys), dict(other.keys)),
            ("feature", dict(self.features), dict(other.features)),
        ):
            changes += [f"{what} {n!r} is missing" for n in mine if n not in theirs]
            changes += [f"{what} {n!r} is new" for n in theirs if n not in mine]
            changes += [
                f"{what} {n!r} is {theirs[n]}, was {mine[n]}"
                for n in mine
                if n in theirs and theirs[n] != mine[n]
            ]
        return changes

    def check_same(self, other: ViewSchema) -> None:
        """Raise StateError naming the differences when ``other`` changes the schema."""
        changes = self.differences(other)
        if changes:
            raise StateError(
                f"feature view {self.view!r} was first written with other columns: "
                + "; ".join(changes)
                + " (a view's keys and features are fixed; write a new view version)",
                view=self.view,
                differences=changes,
            )

    def select(self, features: Sequence[str] | None) -> tuple[int, ...]:
        """The indices of the requested features (all when None), duplicates dropped."""
        if features is None:
            return self.all_features
        if isinstance(features, str):
            raise InputError(
                f"features must be a list of names, not the string {features!r}",
                view=self.view,
            )
        index = self.feature_index
        selected: dict[int, None] = {}
        for name in features:
            position = index.get(name)
            if position is None:
                raise NotFoundError("feature", name, known=self.feature_names)
            selected[position] = None
        return tuple(selected)

    def output_schema(self, selected: tuple[int, ...]) -> pa.Schema:
        """The Arrow schema of a read returning the ``selected`` features."""
        schema = self._outputs.get(selected)
        if schema is None:
            fields = [pa.field(n, ARROW_TYPES[k], nullable=False) for n, k in self.keys]
            fields += [
                pa.field(self.features[i][0], ARROW_TYPES[self.features[i][1]]) for i in selected
            ]
            fields += [pa.field(EVENT_TIME, TIMESTAMP), pa.field(WRITTEN_AT, TIMESTAMP)]
            fields.append(pa.field(FOUND, pa.bool_(), nullable=False))
            schema = self._outputs.setdefault(selected, pa.schema(fields))
        return schema

    def read_keys(self, keys: pa.Table) -> list[pa.Array]:
        """The key columns of a read request, checked and cast to the stored types."""
        if not isinstance(keys, pa.Table | pa.RecordBatch):
            raise InputError(
                f"keys must be a pyarrow Table, not {type(keys).__name__}", view=self.view
            )
        arrays = []
        for name, kind in self.keys:
            position = keys.schema.get_field_index(name)
            if position < 0:
                raise InputError(
                    f"feature view {self.view!r} is keyed by "
                    f"{', '.join(n for n, _ in self.keys)}; the keys table "
                    + ("has several columns" if name in keys.column_names else "has no column")
                    + f" {name!r}",
                    view=self.view,
                    column=name,
                )
            column = keys.column(position)
            if column.type != ARROW_TYPES[kind] and kind_of(column.type) != kind:
                raise InputError(
                    f"key column {name!r} has type {column.type}; "
                    f"feature view {self.view!r} is keyed by {kind}",
                    view=self.view,
                    column=name,
                )
            array = to_kind(column, kind, name=name, view=self.view)
            if array.null_count:
                raise InputError(
                    f"key column {name!r} has {array.null_count} null(s)",
                    view=self.view,
                    column=name,
                )
            arrays.append(array)
        return arrays


@dataclass
class WriteBatch:
    """A validated write: key arrays, event times and feature arrays in schema order."""

    schema: ViewSchema
    key_arrays: list[pa.Array]
    event_time: pa.Array
    feature_arrays: list[pa.Array]

    @property
    def num_rows(self) -> int:
        return len(self.event_time)

    def conform(self, stored: ViewSchema) -> WriteBatch:
        """This batch with its columns in the stored schema's order (after check_same)."""
        stored.check_same(self.schema)
        if stored == self.schema:
            return self
        keys = {n: a for (n, _), a in zip(self.schema.keys, self.key_arrays, strict=True)}
        features = dict(zip(self.schema.feature_names, self.feature_arrays, strict=True))
        return WriteBatch(
            schema=stored,
            key_arrays=[keys[n] for n, _ in stored.keys],
            event_time=self.event_time,
            feature_arrays=[features[n] for n in stored.feature_names],
        )


def prepare_write(view: str, keys: Sequence[str], table: pa.Table) -> WriteBatch:
    """Check a write's view name, key names and columns; cast them to stored types."""
    check_view_name(view)
    if isinstance(keys, str):
        keys = [keys]
    keys = list(keys)
    if not keys or len(set(keys)) != len(keys):
        raise InputError(f"feature view {view!r}: key columns {keys!r} must be distinct names")
    if not isinstance(table, pa.Table | pa.RecordBatch):
        raise InputError(f"a write takes a pyarrow Table, not {type(table).__name__}", view=view)
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(
            f"feature view {view!r}: columns {duplicated} appear more than once", view=view
        )
    missing = [n for n in [*keys, EVENT_TIME] if n not in names]
    if missing:
        raise InputError(
            f"feature view {view!r}: the table has no column {missing[0]!r} "
            f"(it has {', '.join(names)})",
            view=view,
            column=missing[0],
        )
    key_specs: list[tuple[str, Kind]] = []
    key_arrays: list[pa.Array] = []
    for name in keys:
        column = table.column(name)
        kind = kind_of(column.type)
        if kind not in KEY_KINDS:
            raise InputError(
                f"feature view {view!r}: key column {name!r} has type {column.type}; "
                "keys are int64 or string",
                view=view,
                column=name,
            )
        assert kind is not None
        array = to_kind(column, kind, name=name, view=view)
        if array.null_count:
            raise InputError(
                f"feature view {view!r}: key column {name!r} has {array.null_count} null(s)",
                view=view,
                column=name,
            )
        key_specs.append((name, kind))
        key_arrays.append(array)
    event = table.column(EVENT_TIME)
    if kind_of(event.type) != "timestamp":
        raise InputError(
            f"feature view {view!r}: column {EVENT_TIME!r} {_type_problem(event.type)}",
            view=view,
            column=EVENT_TIME,
        )
    event_time = to_kind(event, "timestamp", name=EVENT_TIME, view=view)
    if event_time.null_count:
        raise InputError(
            f"feature view {view!r}: column {EVENT_TIME!r} has {event_time.null_count} null(s)",
            view=view,
            column=EVENT_TIME,
        )
    feature_specs: list[tuple[str, Kind]] = []
    feature_arrays: list[pa.Array] = []
    taken = {*keys, EVENT_TIME}
    for name, column in zip(names, table.columns, strict=True):
        if name in taken:
            continue
        if name.startswith("__"):
            raise InputError(
                f"feature view {view!r}: column {name!r} uses the reserved '__' prefix",
                view=view,
                column=name,
            )
        kind = kind_of(column.type)
        if kind is None:
            raise InputError(
                f"feature view {view!r}: feature {name!r} {_type_problem(column.type)}",
                view=view,
                column=name,
            )
        feature_specs.append((name, kind))
        feature_arrays.append(to_kind(column, kind, name=name, view=view))
    schema = ViewSchema(view=view, keys=tuple(key_specs), features=tuple(feature_specs))
    return WriteBatch(schema, key_arrays, event_time, feature_arrays)


# --- conversions shared by the backends -----------------------------------------------


def micros(when: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    return (clock.ensure_utc(when) - _EPOCH) // _MICROSECOND


def written_at_now() -> int:
    """The ``__written_at`` of a write happening now, in microseconds."""
    return micros(clock.now())


def python_values(array: pa.Array, kind: Kind) -> list[Any]:
    """The values of ``array`` as Python objects; timestamps as epoch microseconds.

    NaN and null stay distinct. Columns without nulls go through numpy, which is
    several times faster than ``to_pylist`` for numbers.
    """
    if kind == "timestamp":
        array = array.view(pa.int64())
    if array.null_count == 0 and kind != "string":
        values: list[Any] = array.to_numpy(zero_copy_only=False).tolist()
        return values
    return array.to_pylist()  # type: ignore[no-any-return]


def key_values(arrays: Sequence[pa.Array]) -> list[Any]:
    """Hashable Python keys: the values of a single key, or tuples of composite keys."""
    if len(arrays) == 1:
        return arrays[0].to_pylist()  # type: ignore[no-any-return]
    return list(zip(*(a.to_pylist() for a in arrays), strict=True))


def row_type(types: Sequence[pa.DataType]) -> pa.StructType:
    """A struct type with one child per value of a stored row, for :func:`row_columns`."""
    return pa.struct([pa.field(f"c{i}", t) for i, t in enumerate(types)])


def row_columns(rows: list[Any], type_: pa.StructType, wanted: Iterable[int]) -> list[pa.Array]:
    """The ``wanted`` columns of Python row tuples, converted in one call.

    Converting all rows as one struct array costs one pyarrow call instead of one per
    column (about half the time of a one-entity read) and needs no transposition.
    """
    struct = pa.array(rows, type_)
    return [struct.field(i) for i in wanted]


def build_result(
    schema: ViewSchema,
    selected: tuple[int, ...],
    key_arrays: Sequence[pa.Array],
    columns: Iterable[pa.Array],
    found: list[bool],
) -> pa.Table:
    """The table a read returns; ``columns`` are the selected features then the times."""
    arrays = [*key_arrays, *columns, pa.array(found, pa.bool_())]
    return pa.Table.from_arrays(arrays, schema=schema.output_schema(selected))


def unique(values: list[Any]) -> list[Any]:
    """``values`` without duplicates, first occurrence order kept."""
    return list(dict.fromkeys(values)) if len(values) > 1 else values


# --- in-memory backend ----------------------------------------------------------------


@dataclass
class _MemoryView:
    schema: ViewSchema
    # key -> (feature values..., event micros, written micros)
    rows: dict[Any, tuple[Any, ...]] = field(default_factory=dict)


class MemoryOnlineStore:
    """An online store in dicts: for tests and single-process use.

    Safe to share between threads: a write becomes visible all at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, _MemoryView] = {}
        self._closed = False

    def __enter__(self) -> MemoryOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self, view: str) -> _MemoryView:
        if self._closed:
            raise StateError("the online store is closed")
        stored = self._views.get(view)
        if stored is None:
            raise NotFoundError("feature view", check_view_name(view))
        return stored

    def write(self, view: str, keys: Sequence[str], table: pa.Table) -> int:
        batch = prepare_write(view, keys, table)
        written = written_at_now()
        with self._lock:
            if self._closed:
                raise StateError("the online store is closed")
            stored = self._views.get(view)
            if stored is not None:
                batch = batch.conform(stored.schema)
            kinds = [k for _, k in batch.schema.features]
            columns: list[Iterable[Any]] = [
                python_values(a, k) for a, k in zip(batch.feature_arrays, kinds, strict=True)
            ]
            columns += [python_values(batch.event_time, "timestamp"), repeat(written)]
            if stored is None:
                stored = self._views[view] = _MemoryView(batch.schema)
            stored.rows.update(
                zip(key_values(batch.key_arrays), zip(*columns, strict=False), strict=True)
            )
        return batch.num_rows

    def read(self, view: str, keys: pa.Table, features: Sequence[str] | None = None) -> pa.Table:
        with self._lock:
            stored = self._view(view)
            schema, rows = stored.schema, stored.rows
            key_arrays = schema.read_keys(keys)
            selected = schema.select(features)
            wanted = key_values(key_arrays)
            ordered = list(map(rows.get, wanted, repeat(schema.null_row)))
            found = list(map(rows.__contains__, wanted))
        columns = row_columns(ordered, schema.stored_row, schema.stored_columns(selected))
        return build_result(schema, selected, key_arrays, columns, found)

    def delete(self, view: str) -> None:
        with self._lock:
            self._view(view)
            del self._views[view]

    def views(self) -> list[str]:
        with self._lock:
            if self._closed:
                raise StateError("the online store is closed")
            return sorted(self._views)

    def count(self, view: str) -> int:
        """The number of entities stored for ``view``."""
        with self._lock:
            return len(self._view(view).rows)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._views.clear()


# --- opening a store by URL -----------------------------------------------------------


def open_online_store(url: str) -> OnlineStore:
    """Open the online store at ``url``.

    - ``memory://``: a new, empty :class:`MemoryOnlineStore`;
    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``;
    - ``redis://[user:password@]host:port/db[?prefix=name]`` (also ``rediss://``);
      keys are ``<prefix>:<view>:...``, the prefix defaulting to ``driftloop``.
    """
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme == "memory":
        if url.rstrip("/") not in ("memory:", "memory:/"):
            raise ConfigError(f"online store URL {url!r}: use 'memory://' with nothing after it")
        return MemoryOnlineStore()
    if scheme == "sqlite":
        from driftloop.features.online_sqlite import SQLiteOnlineStore

        return SQLiteOnlineStore.from_url(url)
    if scheme in ("redis", "rediss"):
        from driftloop.features.online_redis import RedisOnlineStore

        return RedisOnlineStore.from_url(url)
    raise ConfigError(
        f"online store URL {url!r}: unknown scheme "
        "(use memory://, sqlite:///path.db or redis://host:port/db)"
    )
