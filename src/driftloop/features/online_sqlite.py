"""The SQLite online store: the embedded default, one file, no server.

Layout: one wide table per view, named ``v_<random hex>`` (a new name each time
the view is created, so a stale cache in another process fails loudly instead of
reading a recreated view with its old schema). Columns are positional and typed
- ``k0..`` keys (INTEGER or TEXT, the primary key), ``f0..`` features (REAL,
INTEGER, TEXT; bools and timestamps as INTEGER 0/1 and epoch microseconds), ``ev``
and ``wr`` (event and write time in microseconds) - so feature names never meet
SQL quoting or SQLite's case-insensitive column names. The real names and types
live in ``__driftloop_online_views``.

SQLite stores a NaN REAL as NULL and -0.0 as 0, so each row also keeps ``n0..``:
two flag bits per float feature (31 features per INTEGER word) marking NaN and
negative zero. Reads put those values back.

Writes are one ``INSERT ... ON CONFLICT DO UPDATE`` run by ``executemany`` over
column lists in a single ``BEGIN IMMEDIATE`` transaction: readers see all of a
write or none of it, and rows are never torn. Reads use ``WHERE k0 IN (?, ...)``
(or a join on a ``VALUES`` list for composite keys) with parameter lists padded
to powers of two, so a handful of prepared statements serve every batch size.

Connections (WAL, synchronous=NORMAL, busy timeout) are pooled: a thread takes
an idle one or opens a new one, so threads never share a connection and readers
are not blocked by a long write.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import ConfigError, NotFoundError, StateError
from driftloop.features.online import (
    ARROW_TYPES,
    TIMESTAMP,
    ViewSchema,
    WriteBatch,
    build_result,
    check_view_name,
    key_values,
    prepare_write,
    python_values,
    row_columns,
    row_type,
    unique,
    written_at_now,
)

__all__ = ["SQLiteOnlineStore"]

META = "__driftloop_online_views"
MAX_PARAMS = 1024  # bound variables per read statement (SQLite allows 32766)
FLOATS_PER_WORD = 31  # two flag bits (NaN, -0.0) per float, clear of the sign bit
NAN, NEGATIVE_ZERO = 1, 2
_SQL_TYPES = {"float64": "REAL", "int64": "INTEGER", "bool": "INTEGER", "string": "TEXT"}
_SQL_TYPES["timestamp"] = "INTEGER"


@dataclass
class _View:
    """A view's table and the SQL to use it, cached per store."""

    schema: ViewSchema
    table: str
    selects: dict[tuple[tuple[int, ...], int], str] = field(default_factory=dict)
    row_types: dict[tuple[int, ...], pa.StructType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        floats = [i for i, (_, kind) in enumerate(self.schema.features) if kind == "float64"]
        # feature index -> (flag word, shift of its two flag bits)
        self.float_flags = {
            f: (n // FLOATS_PER_WORD, 2 * (n % FLOATS_PER_WORD)) for n, f in enumerate(floats)
        }
        self.nan_words = math.ceil(len(floats) / FLOATS_PER_WORD)
        self.key_columns = [f"k{i}" for i in range(len(self.schema.keys))]
        self.key_of_row = itemgetter(*range(len(self.key_columns)))

    def create_sql(self) -> str:
        keys = self.schema.keys
        if len(keys) == 1 and keys[0][1] == "int64":
            columns = ["k0 INTEGER PRIMARY KEY"]
            suffix = ""
        else:
            columns = [f"k{i} {_SQL_TYPES[kind]} NOT NULL" for i, (_, kind) in enumerate(keys)]
            suffix = " WITHOUT ROWID"
        columns += [f"f{i} {_SQL_TYPES[kind]}" for i, (_, kind) in enumerate(self.schema.features)]
        columns += ["ev INTEGER NOT NULL", "wr INTEGER NOT NULL"]
        columns += [f"n{w} INTEGER NOT NULL DEFAULT 0" for w in range(self.nan_words)]
        if suffix:
            columns.append(f"PRIMARY KEY ({', '.join(self.key_columns)})")
        return f'CREATE TABLE "{self.table}" ({", ".join(columns)}){suffix}'

    def upsert_sql(self) -> str:
        values = [f"f{i}" for i in range(len(self.schema.features))] + ["ev", "wr"]
        values += [f"n{w}" for w in range(self.nan_words)]
        columns = self.key_columns + values
        return (
            f'INSERT INTO "{self.table}" ({", ".join(columns)}) '
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(self.key_columns)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in values)
        )

    def row_type(self, selected: tuple[int, ...]) -> pa.StructType:
        """The struct of a fetched row: keys, selected features, ev, wr, flag words."""
        found = self.row_types.get(selected)
        if found is None:
            # SQLite gives bools as 0/1 integers: read as int8, cast afterwards.
            kinds = [self.schema.features[i][1] for i in selected]
            types = [ARROW_TYPES[kind] for _, kind in self.schema.keys]
            types += [pa.int8() if k == "bool" else ARROW_TYPES[k] for k in kinds]
            types += [TIMESTAMP, TIMESTAMP, *([pa.int64()] * self.nan_words)]
            found = self.row_types.setdefault(selected, row_type(types))
        return found

    def select_sql(self, selected: tuple[int, ...], rows: int) -> str:
        """SELECT keys, selected features, ev, wr, NaN words for ``rows`` key tuples."""
        sql = self.selects.get((selected, rows))
        if sql is None:
            wanted = [*self.key_columns, *(f"f{i}" for i in selected), "ev", "wr"]
            wanted += [f"n{w}" for w in range(self.nan_words)]
            if len(self.key_columns) == 1:
                sql = (
                    f'SELECT {", ".join(wanted)} FROM "{self.table}" '
                    f"WHERE k0 IN ({', '.join('?' * rows)})"
                )
            else:
                # (k0, k1) IN (VALUES ...) scans the table; a join on VALUES searches the key.
                width = len(self.key_columns)
                aliases = [f"q{i}" for i in range(width)]
                row = f"({', '.join('?' * width)})"
                on = " AND ".join(
                    f"t.{k} = q.{a}" for k, a in zip(self.key_columns, aliases, strict=True)
                )
                sql = (
                    f"WITH q({', '.join(aliases)}) AS (VALUES {', '.join([row] * rows)}) "
                    f"SELECT {', '.join('t.' + c for c in wanted)} "
                    f'FROM q CROSS JOIN "{self.table}" AS t ON {on}'
                )
            self.selects[(selected, rows)] = sql
        return sql


def _chunks(wanted: list[Any], size: int) -> Iterator[list[Any]]:
    """``wanted`` in slices of at most ``size``, each padded to a power of two."""
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        padded = 1 << (len(chunk) - 1).bit_length()
        yield chunk + [chunk[-1]] * (padded - len(chunk))


class SQLiteOnlineStore:
    """An online store in one SQLite file, safe across threads and processes.

    >>> import tempfile, pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with SQLiteOnlineStore(f"{tmp}/online.db") as store:
    ...         at = datetime(2024, 1, 1, tzinfo=UTC)
    ...         table = pa.table({"id": ["a"], "__event_time": [at], "x": [float("nan")]})
    ...         store.write("v@1", ["id"], table)
    ...         store.read("v@1", pa.table({"id": ["a"]})).column("x").to_pylist()
    1
    [nan]
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._views: dict[str, _View] = {}
        self._closed = False
        with self._connection() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY, "
                "table_name TEXT NOT NULL UNIQUE, schema TEXT NOT NULL)"
            )

    @classmethod
    def from_url(cls, url: str) -> SQLiteOnlineStore:
        """Open ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        prefix = "sqlite:///"
        path = url[len(prefix) :] if url.lower().startswith(prefix) else ""
        if not path or "?" in path or "#" in path:
            raise ConfigError(
                f"online store URL {url!r}: expected sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (no query string)"
            )
        return cls(path)

    def __enter__(self) -> SQLiteOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({str(self.path)!r})"

    # --- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StateError("the online store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, begin: str) -> Iterator[None]:
        conn.execute(begin)
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")

    def _load(self, conn: sqlite3.Connection, view: str) -> _View | None:
        """The view as stored now (cache refreshed), or None."""
        row = conn.execute(f"SELECT table_name, schema FROM {META} WHERE name = ?", (view,))
        found = row.fetchone()
        if found is None:
            self._views.pop(view, None)
            return None
        cached = self._views.get(view)
        if cached is not None and cached.table == found[0]:
            return cached
        stored = _View(ViewSchema.from_dict(view, json.loads(found[1])), found[0])
        self._views[view] = stored
        return stored

    def _cached(self, conn: sqlite3.Connection, view: str) -> _View:
        stored = self._views.get(view) or self._load(conn, check_view_name(view))
        if stored is None:
            raise NotFoundError("feature view", view)
        return stored

    def _reloaded(self, conn: sqlite3.Connection, view: str, stale: _View) -> _View | None:
        """After a failed statement: the view when it changed under us, else None."""
        fresh = self._load(conn, view)
        if fresh is None:
            raise NotFoundError("feature view", view) from None
        return fresh if fresh.table != stale.table else None

    # --- writing -------------------------------------------------------------------

    def write(self, view: str, keys: Sequence[str], table: pa.Table) -> int:
        batch = prepare_write(view, keys, table)
        written = written_at_now()
        with self._connection() as conn, self._transaction(conn, "BEGIN IMMEDIATE"):
            stored = self._load(conn, view)
            if stored is None:
                stored = _View(batch.schema, f"v_{secrets.token_hex(8)}")
                conn.execute(stored.create_sql())
                conn.execute(
                    f"INSERT INTO {META} (name, table_name, schema) VALUES (?, ?, ?)",
                    (view, stored.table, json.dumps(batch.schema.to_dict())),
                )
            else:
                batch = batch.conform(stored.schema)
            if batch.num_rows:
                conn.executemany(
                    stored.upsert_sql(), zip(*_write_columns(stored, batch, written), strict=False)
                )
        self._views[view] = stored
        return batch.num_rows

    # --- reading -------------------------------------------------------------------

    def read(self, view: str, keys: pa.Table, features: Sequence[str] | None = None) -> pa.Table:
        with self._connection() as conn:
            stored = self._cached(conn, view)
            while True:
                schema = stored.schema
                key_arrays = schema.read_keys(keys)
                selected = schema.select(features)
                wanted = key_values(key_arrays)
                if not wanted:
                    rows: list[tuple[Any, ...]] = []
                    break
                try:
                    rows = self._fetch(conn, stored, selected, unique(wanted))
                    break
                except sqlite3.OperationalError:
                    fresh = self._reloaded(conn, view, stored)
                    if fresh is None:
                        raise
                    stored = fresh
        return _result(stored, selected, key_arrays, wanted, rows)

    def _fetch(
        self, conn: sqlite3.Connection, stored: _View, selected: tuple[int, ...], wanted: list[Any]
    ) -> list[tuple[Any, ...]]:
        width = len(stored.key_columns)
        size = MAX_PARAMS // width
        if len(wanted) <= size:
            chunk = next(_chunks(wanted, size))
            params = chunk if width == 1 else list(chain.from_iterable(chunk))
            return conn.execute(stored.select_sql(selected, len(chunk)), params).fetchall()
        rows: list[tuple[Any, ...]] = []
        with self._transaction(conn, "BEGIN"):  # one snapshot for all the chunks
            for chunk in _chunks(wanted, size):
                params = chunk if width == 1 else list(chain.from_iterable(chunk))
                rows += conn.execute(stored.select_sql(selected, len(chunk)), params).fetchall()
        return rows

    # --- the rest ------------------------------------------------------------------

    def delete(self, view: str) -> None:
        check_view_name(view)
        with self._connection() as conn, self._transaction(conn, "BEGIN IMMEDIATE"):
            stored = self._load(conn, view)
            if stored is None:
                raise NotFoundError("feature view", view)
            conn.execute(f'DROP TABLE "{stored.table}"')
            conn.execute(f"DELETE FROM {META} WHERE name = ?", (view,))
            self._views.pop(view, None)

    def views(self) -> list[str]:
        with self._connection() as conn:
            return [name for (name,) in conn.execute(f"SELECT name FROM {META} ORDER BY name")]

    def count(self, view: str) -> int:
        """The number of entities stored for ``view``."""
        with self._connection() as conn:
            stored = self._cached(conn, view)
            while True:
                try:
                    (n,) = conn.execute(f'SELECT count(*) FROM "{stored.table}"').fetchone()
                    return int(n)
                except sqlite3.OperationalError:
                    fresh = self._reloaded(conn, view, stored)
                    if fresh is None:
                        raise
                    stored = fresh

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _write_columns(stored: _View, batch: WriteBatch, written: int) -> list[Iterable[Any]]:
    """Per SQL parameter, the values of every row (NaN and null both become NULL)."""
    schema = batch.schema
    if batch.num_rows > 1:
        # Upserts in key order touch each B-tree page once: 2-3x faster than random order.
        # The sort is stable, so of two rows with the same key the last still wins.
        names = [f"k{i}" for i in range(len(batch.key_arrays))]
        order = pc.sort_indices(
            pa.Table.from_arrays(batch.key_arrays, names=names),
            sort_keys=[(name, "ascending") for name in names],
        )
        batch = WriteBatch(
            schema,
            [a.take(order) for a in batch.key_arrays],
            batch.event_time.take(order),
            [a.take(order) for a in batch.feature_arrays],
        )
    columns: list[Iterable[Any]] = [
        python_values(a, kind) for a, (_, kind) in zip(batch.key_arrays, schema.keys, strict=True)
    ]
    words: list[Any] = [None] * stored.nan_words
    for feature, (array, (_, kind)) in enumerate(
        zip(batch.feature_arrays, schema.features, strict=True)
    ):
        if kind != "float64":
            columns.append(python_values(array, kind))
            continue
        values = array.to_numpy(zero_copy_only=False)  # nulls become NaN, stored as NULL
        columns.append(values.tolist())
        nan = np.isnan(values)
        if array.null_count:
            nan &= array.is_valid().to_numpy(zero_copy_only=False)
        negative_zero = (values == 0) & np.signbit(values)
        if nan.any() or negative_zero.any():
            word, shift = stored.float_flags[feature]
            flags = (nan * NAN | negative_zero * NEGATIVE_ZERO).astype(np.int64) << shift
            words[word] = flags if words[word] is None else words[word] | flags
    columns += [python_values(batch.event_time, "timestamp"), repeat(written)]
    columns += [repeat(0) if w is None else w.tolist() for w in words]
    return columns


def _result(
    stored: _View,
    selected: tuple[int, ...],
    key_arrays: list[pa.Array],
    wanted: list[Any],
    rows: list[tuple[Any, ...]],
) -> pa.Table:
    """Rows fetched in any order, arranged in the order of ``wanted``."""
    schema = stored.schema
    by_key = dict(zip(map(stored.key_of_row, rows), rows, strict=True))
    width = len(stored.key_columns)
    null_row = (None,) * (width + len(selected) + 2 + stored.nan_words)
    ordered = list(map(by_key.get, wanted, repeat(null_row)))
    found = list(map(by_key.__contains__, wanted))
    columns = row_columns(ordered, stored.row_type(selected), range(width, len(null_row)))
    n = len(selected)
    features, times, words = columns[:n], columns[n : n + 2], columns[n + 2 :]
    for position, feature in enumerate(selected):
        if schema.features[feature][1] == "bool":
            features[position] = features[position].cast(pa.bool_())
    for word, flags in enumerate(words):
        if pc.max(flags).as_py():  # some NaN or -0.0 among the rows found
            _restore_floats(stored, selected, features, word, flags.fill_null(0).to_numpy())
    return build_result(schema, selected, key_arrays, [*features, *times], found)


def _restore_floats(
    stored: _View, selected: tuple[int, ...], features: list[pa.Array], word: int, bits: Any
) -> None:
    """Put back the NaN and -0.0 values that flag word ``word`` marks (SQLite lost them)."""
    for position, feature in enumerate(selected):
        at = stored.float_flags.get(feature)
        if at is None or at[0] != word:
            continue
        mine = (bits >> at[1]) & (NAN | NEGATIVE_ZERO)
        for flag, value in ((NAN, math.nan), (NEGATIVE_ZERO, -0.0)):
            where = (mine & flag).astype(bool)
            if where.any():
                features[position] = pc.if_else(pa.array(where), value, features[position])
