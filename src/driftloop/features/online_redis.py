"""The Redis online store: one string key per entity, for serving from several machines.

Keys:

- ``<prefix>::views`` - a hash: view name -> JSON of its keys, features and a random
  generation id (``gen``) drawn when the view is created;
- ``<prefix>:<view>:<gen>:<entity key>`` - one row. In ``<view>``, ``%`` and ``:``
  are percent-escaped, so a view's keys never match another view's pattern. A
  single key is written as is (integers in decimal); a composite key joins its
  parts with ``|``, escaping ``%`` and ``|`` inside string parts.

A row is a JSON array: the features in schema order, then ``__event_time`` and
``__written_at`` as epoch microseconds. Floats use the shortest representation
that reads back to the same double, with ``NaN``/``Infinity`` spelled the way
Python's ``json`` reads them; strings are JSON strings (control characters are
kept raw and read with ``strict=False``). Rows are built with Arrow compute kernels
and read with one ``json.loads`` per batch, so no Python code runs per row.

A write is one MULTI/EXEC (MSETs, plus the HSET creating the view) under WATCH of
the views hash: readers see all of it or none. A read is one round trip: HGET of
the view's schema and MGET of the rows in one pipeline; when the schema differs
from the cached one (the view was recreated elsewhere) the read is redone.
Deleting a view removes its hash entry and records its generation's key prefix in
``<prefix>::dropped`` in one MULTI/EXEC (the view disappears at once), then unlinks
the generation's rows with SCAN and forgets the prefix. A deletion cut short by a
crash leaves the prefix recorded: the next ``delete`` on the store unlinks those rows
first, so no row outlives its view for good.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import is_not
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import (
    BackendUnavailable,
    ConfigError,
    MissingExtraError,
    NotFoundError,
    StateError,
)
from driftloop.features.online import (
    ViewSchema,
    WriteBatch,
    build_result,
    check_view_name,
    prepare_write,
    row_columns,
    written_at_now,
)

__all__ = ["RedisOnlineStore"]

DEFAULT_PREFIX = "driftloop"
CHUNK = 10_000  # keys per MSET/MGET command
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


_F = TypeVar("_F", bound=Callable[..., Any])


def _reachable(method: _F) -> _F:
    """Turn the client's connection failures into BackendUnavailable naming the server."""

    @functools.wraps(method)
    def wrapper(self: RedisOnlineStore, *args: Any, **kwargs: Any) -> Any:
        redis = _import_redis()
        try:
            return method(self, *args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailable("the Redis online store", self._safe_url, str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise MissingExtraError("the Redis online store", extra="redis", package="redis") from None
    return redis


@dataclass(frozen=True)
class _View:
    schema: ViewSchema
    raw: bytes  # the hash entry it was parsed from
    key_prefix: str  # <prefix>:<view>:<gen>:
    null_row: bytes  # the JSON row read for a missing entity


def _escape_view(view: str) -> str:
    return view.replace("%", "%25").replace(":", "%3A")


def _json_column(array: pa.Array, kind: str) -> pa.Array:
    """JSON text of each value of ``array`` (``null`` for nulls)."""
    if kind == "float64":
        text = pc.cast(array, pa.string())
        values = array.to_numpy(zero_copy_only=False)
        if (~np.isfinite(values) | ((values == 0) & np.signbit(values))).any():
            text = pc.replace_substring(text, "nan", "NaN")
            text = pc.replace_substring(text, "inf", "Infinity")
            text = pc.replace_substring_regex(text, "^-0$", "-0.0")  # "-0" would read as int 0
    elif kind == "int64":
        text = pc.cast(array, pa.string())
    elif kind == "bool":
        text = pc.if_else(array, "true", "false")
    elif kind == "timestamp":
        text = pc.cast(array.view(pa.int64()), pa.string())
    else:
        text = pc.replace_substring(array, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(text, "null")


def _json_rows(batch: WriteBatch, written: int) -> list[str]:
    """One JSON array per row: the features, then event and write time in microseconds."""
    kinds = [kind for _, kind in batch.schema.features]
    parts = [_json_column(a, k) for a, k in zip(batch.feature_arrays, kinds, strict=True)]
    parts += [_json_column(batch.event_time, "timestamp"), pa.scalar(str(written))]
    rows = pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("[", rows, "]", "").to_pylist()  # type: ignore[no-any-return]


def _key_tails(schema: ViewSchema, arrays: Sequence[pa.Array]) -> pa.Array:
    """The entity part of each row's Redis key."""
    if len(arrays) == 1:
        return arrays[0] if schema.keys[0][1] == "string" else pc.cast(arrays[0], pa.string())
    parts = []
    for array, (_, kind) in zip(arrays, schema.keys, strict=True):
        if kind == "string":
            escaped = pc.replace_substring(array, "%", "%25")
            parts.append(pc.replace_substring(escaped, "|", "%7C"))
        else:
            parts.append(pc.cast(array, pa.string()))
    return pc.binary_join_element_wise(*parts, "|")


def _redis_keys(stored: _View, tails: pa.Array) -> list[str]:
    keys = pc.binary_join_element_wise(stored.key_prefix, tails, "")
    return keys.to_pylist()  # type: ignore[no-any-return]


class RedisOnlineStore:
    """An online store in Redis; see the module docstring for the layout.

    ``RedisOnlineStore("redis://127.0.0.1:6379/0", prefix="shop")`` keeps every key
    under ``shop:``. Stores with different prefixes share a database safely as long
    as no prefix equals another followed by ``:`` and a view name.
    """

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or re.search(r"\s", prefix):
            raise ConfigError(f"Redis online store prefix {prefix!r}: non-empty, no whitespace")
        self.prefix = prefix
        # redis-py's annotations type replies as sync-or-async unions; the client is used as Any.
        self._client: Any = _import_redis().Redis.from_url(url)
        self._url = url
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        self._safe_url = f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"
        self._views_key = f"{prefix}::views"
        self._dropped_key = f"{prefix}::dropped"
        self._cache: dict[str, _View] = {}
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> RedisOnlineStore:
        """Open ``redis://[user:password@]host:port/db[?prefix=name]`` (or ``rediss://``)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        if len(prefixes) > 1:
            raise ConfigError(f"online store URL {url!r}: prefix is given more than once")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return cls(
            urlunsplit(parts._replace(query=rest)),
            prefix=prefixes[0] if prefixes else DEFAULT_PREFIX,
        )

    def __enter__(self) -> RedisOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore(prefix={self.prefix!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("the online store is closed")

    def _parse(self, view: str, raw: bytes) -> _View:
        """The view stored as ``raw`` in the views hash, from the cache when unchanged."""
        cached = self._cache.get(view)
        if cached is not None and cached.raw == raw:
            return cached
        data = json.loads(raw)
        schema = ViewSchema.from_dict(view, data)
        stored = _View(
            schema,
            raw,
            f"{self.prefix}:{_escape_view(view)}:{data['gen']}:",
            b"[" + b",".join([b"null"] * (len(schema.features) + 2)) + b"]",
        )
        self._cache[view] = stored
        return stored

    def _current(self, view: str) -> _View:
        self._check_open()
        cached = self._cache.get(view)
        if cached is not None:
            return cached
        raw = self._client.hget(self._views_key, check_view_name(view))
        if raw is None:
            raise NotFoundError("feature view", view)
        return self._parse(view, raw)

    # --- writing -------------------------------------------------------------------

    @_reachable
    def write(self, view: str, keys: Sequence[str], table: pa.Table) -> int:
        self._check_open()
        redis = _import_redis()
        batch = prepare_write(view, keys, table)
        written = written_at_now()
        encoded_for: WriteBatch | None = None
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._views_key)
                    raw = pipe.hget(self._views_key, view)
                    if raw is None:
                        data = {**batch.schema.to_dict(), "gen": secrets.token_hex(6)}
                        raw = json.dumps(data).encode()
                        stored = self._parse(view, raw)
                        created = True
                    else:
                        stored = self._parse(view, raw)
                        batch = batch.conform(stored.schema)
                        created = False
                    if encoded_for is not batch:  # again only when conform reordered columns
                        tails = _key_tails(batch.schema, batch.key_arrays)
                        values = _json_rows(batch, written) if batch.num_rows else []
                        encoded_for = batch
                    redis_keys = _redis_keys(stored, tails)
                    pairs = list(chain.from_iterable(zip(redis_keys, values, strict=True)))
                    pipe.multi()
                    if created:
                        pipe.hset(self._views_key, view, raw)
                    for start in range(0, len(pairs), 2 * CHUNK):
                        pipe.execute_command("MSET", *pairs[start : start + 2 * CHUNK])
                    pipe.execute()
                    return batch.num_rows
                except redis.WatchError:
                    continue

    # --- reading -------------------------------------------------------------------

    @_reachable
    def read(self, view: str, keys: pa.Table, features: Sequence[str] | None = None) -> pa.Table:
        stored = self._current(view)
        while True:
            schema = stored.schema
            key_arrays = schema.read_keys(keys)
            selected = schema.select(features)
            redis_keys = _redis_keys(stored, _key_tails(schema, key_arrays))
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(self._views_key, view)
            for start in range(0, len(redis_keys), CHUNK):
                pipe.mget(redis_keys[start : start + CHUNK])
            raw, *chunks = pipe.execute()
            if raw is None:
                self._cache.pop(view, None)
                raise NotFoundError("feature view", view)
            if raw == stored.raw:
                break
            stored = self._parse(view, raw)  # recreated elsewhere: read again
        values: list[Any] = chunks[0] if len(chunks) == 1 else list(chain(*chunks))
        missing: dict[Any, bytes] = {None: stored.null_row}
        text = b"[" + b",".join(map(missing.get, values, values)) + b"]"
        # pyarrow reads a struct from a tuple (a list would mean key/value pairs)
        rows = list(map(tuple, json.loads(text, strict=False)))
        found = list(map(is_not, values, repeat(None)))
        columns = row_columns(rows, schema.stored_row, schema.stored_columns(selected))
        return build_result(schema, selected, key_arrays, columns, found)

    # --- the rest ------------------------------------------------------------------

    @_reachable
    def delete(self, view: str) -> None:
        self._check_open()
        redis = _import_redis()
        check_view_name(view)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._views_key)
                    raw = pipe.hget(self._views_key, view)
                    if raw is None:
                        raise NotFoundError("feature view", view)
                    stored = self._parse(view, raw)
                    pipe.multi()
                    pipe.hdel(self._views_key, view)
                    pipe.sadd(self._dropped_key, stored.key_prefix)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        self._cache.pop(view, None)
        # this generation, and any a crashed deletion left behind
        for prefix in self._client.smembers(self._dropped_key):
            self._unlink_generation(prefix.decode() if isinstance(prefix, bytes) else prefix)

    def _unlink_generation(self, key_prefix: str) -> None:
        """Unlink every row under ``key_prefix`` (a dropped generation), then forget it."""
        pattern = _GLOB_SPECIAL.sub(r"\\\1", key_prefix) + "*"
        doomed: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=1000):
            doomed.append(key)
            if len(doomed) >= 1000:
                self._client.unlink(*doomed)
                doomed = []
        if doomed:
            self._client.unlink(*doomed)
        self._client.srem(self._dropped_key, key_prefix)

    @_reachable
    def views(self) -> list[str]:
        self._check_open()
        names: Iterable[bytes] = self._client.hkeys(self._views_key)
        return sorted(name.decode() for name in names)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()
