"""The online store contract, run against the memory, SQLite and Redis backends."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.errors import (
    ConfigError,
    InputError,
    MissingExtraError,
    NotFoundError,
    StateError,
)
from driftloop.features.online import (
    MemoryOnlineStore,
    OnlineStore,
    SupportsCount,
    open_online_store,
)
from driftloop.features.online_redis import RedisOnlineStore

VIEW = "customer_stats@3f2a9c1b"
AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
META = ["__event_time", "__written_at", "__found"]
TRICKY_STRINGS = [
    "",
    "plain",
    'quote " and \\ backslash \\" \\\\',
    "line\nbreak\r\ttab",
    "nul \x00 and \x01 \x1f controls",
    "sep | % %7C : :: , [ ] { } null NaN",
    "日本語 émoji 🚀 \u2028 \u00a0 \ufeff",
    '["looks", "like", {"json": 1}]',
    "\\u0041 not an escape",
]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    server: str = request.getfixturevalue("redis_server")
    return f"{server}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "redis"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend that outlives its process."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    server: str = request.getfixturevalue("redis_server")
    return f"{server}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(store_url: str) -> Iterator[OnlineStore]:
    """An open store, closed after the test."""
    opened = open_online_store(store_url)
    yield opened
    opened.close()


def rows(ids: list[Any], **features: Any) -> pa.Table:
    """A write table keyed by ``id`` with one event time and the given feature columns."""
    columns: dict[str, Any] = {"id": ids, "__event_time": pa.array([AT] * len(ids), TS)}
    columns.update(features)
    return pa.table(columns)


def keys(*ids: Any, type_: pa.DataType | None = None) -> pa.Table:
    """A read request for the given ``id`` values."""
    return pa.table({"id": pa.array(list(ids), type_)})


def same_values(left: list[Any], right: list[Any]) -> bool:
    """Equal lists, where NaN equals NaN and -0.0 differs from 0.0."""
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        if isinstance(a, float) and isinstance(b, float):
            if math.isnan(a) != math.isnan(b) or (not math.isnan(a) and a != b):
                return False
            if math.copysign(1, a) != math.copysign(1, b):
                return False
        elif type(a) is not type(b) or a != b:
            return False
    return True


# --- round trips ------------------------------------------------------------------------


def test_every_feature_type_round_trips_exactly(store: OnlineStore) -> None:
    """Floats (NaN, infinities, -0.0), int64 extremes, bools, any unicode and microsecond
    timestamps come back exactly as written, with nulls kept apart from NaN."""
    n = len(TRICKY_STRINGS)
    floats = [math.nan, None, -0.0, 0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
    floats += [0.1] * (n - len(floats))
    ints = [2**63 - 1, -(2**63), None, 0, -1] + [7] * (n - 5)
    bools = [True, False, None] + [True] * (n - 3)
    times = [AT, None, datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999)]
    times = [t.replace(tzinfo=UTC) if t else t for t in times] + [AT] * (n - 4)
    strings = [*TRICKY_STRINGS[:-1], None]
    table = rows(
        list(range(n)),
        f=pa.array(floats, pa.float64()),
        i=pa.array(ints, pa.int64()),
        b=pa.array(bools, pa.bool_()),
        s=pa.array(strings, pa.string()),
        t=pa.array(times, TS),
    )
    assert store.write(VIEW, ["id"], table) == n

    got = store.read(VIEW, keys(*range(n)))

    assert got.schema.names == ["id", "f", "i", "b", "s", "t", *META]
    assert [got.schema.field(c).type for c in ["id", "f", "i", "b", "s", "t"]] == [
        pa.int64(),
        pa.float64(),
        pa.int64(),
        pa.bool_(),
        pa.string(),
        TS,
    ]
    assert same_values(got.column("f").to_pylist(), floats)
    assert got.column("f").null_count == 1
    assert got.column("i").to_pylist() == ints
    assert got.column("b").to_pylist() == bools
    assert got.column("s").to_pylist() == strings
    assert got.column("t").to_pylist() == times
    assert got.column("__event_time").to_pylist() == [AT] * n
    assert got.column("__found").to_pylist() == [True] * n


def test_string_keys_with_any_unicode_round_trip(store: OnlineStore) -> None:
    """String keys holding separators, quotes, newlines and non-ASCII text are found exactly."""
    table = rows(TRICKY_STRINGS, x=pa.array(range(len(TRICKY_STRINGS)), pa.int64()))
    store.write(VIEW, ["id"], table)

    got = store.read(VIEW, keys(*reversed(TRICKY_STRINGS), "absent"))

    assert got.column("id").to_pylist() == [*reversed(TRICKY_STRINGS), "absent"]
    assert got.column("x").to_pylist() == [*reversed(range(len(TRICKY_STRINGS))), None]


def test_written_at_comes_from_the_driftloop_clock(store: OnlineStore) -> None:
    """Each row's __written_at is the time of the clock in use when it was written."""
    clock = SimulatedClock(datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    with use_clock(clock):
        store.write(VIEW, ["id"], rows([1], x=[1.0]))
        clock.advance(timedelta(hours=1))
        store.write(VIEW, ["id"], rows([2], x=[2.0]))

    got = store.read(VIEW, keys(1, 2))

    assert got.column("__written_at").to_pylist() == [
        datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2030, 1, 2, 4, 4, 5, 678901, tzinfo=UTC),
    ]


def test_input_columns_are_cast_losslessly(store: OnlineStore) -> None:
    """int32 keys, float32 and large_string features and non-UTC timestamps are stored as
    int64, float64, string and UTC microseconds."""
    paris = timezone(timedelta(hours=2))
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "__event_time": pa.array([AT.astimezone(paris)] * 2, pa.timestamp("ms", "+02:00")),
            "x": pa.array([0.5, 1.5], pa.float32()),
            "s": pa.array(["a", "b"], pa.large_string()),
        }
    )
    store.write(VIEW, ["id"], table)

    got = store.read(VIEW, keys(2, 1, type_=pa.int16()))

    assert got.schema.field("id").type == pa.int64()
    assert got.column("x").to_pylist() == [1.5, 0.5]
    assert got.column("s").to_pylist() == ["b", "a"]
    assert got.column("__event_time").to_pylist() == [AT.replace(microsecond=123000)] * 2


# --- reading ----------------------------------------------------------------------------


def test_read_returns_rows_in_input_order_with_duplicates(store: OnlineStore) -> None:
    """A read gives one row per requested key, in request order, repeating duplicates."""
    store.write(VIEW, ["id"], rows([10, 20, 30], x=[1.0, 2.0, 3.0]))

    got = store.read(VIEW, keys(30, 10, 30, 20, 10))

    assert got.column("id").to_pylist() == [30, 10, 30, 20, 10]
    assert got.column("x").to_pylist() == [3.0, 1.0, 3.0, 2.0, 1.0]


def test_unknown_entities_read_as_nulls_not_found(store: OnlineStore) -> None:
    """Keys never written come back with null features and times and __found false."""
    store.write(VIEW, ["id"], rows(["a"], x=[1.0], s=["hi"]))

    got = store.read(VIEW, keys("zz", "a", "b"))

    assert got.column("id").to_pylist() == ["zz", "a", "b"]
    assert got.column("x").to_pylist() == [None, 1.0, None]
    assert got.column("s").to_pylist() == [None, "hi", None]
    assert got.column("__event_time").to_pylist() == [None, AT, None]
    assert got.column("__written_at").null_count == 2
    assert got.column("__found").to_pylist() == [False, True, False]


def test_read_selects_features_in_the_order_asked(store: OnlineStore) -> None:
    """Asking for some features returns only those, in the order asked, once each."""
    store.write(VIEW, ["id"], rows([1], a=[1.0], b=[2], c=["three"]))

    got = store.read(VIEW, keys(1), features=["c", "a", "c"])

    assert got.schema.names == ["id", "c", "a", *META]
    assert got.to_pylist()[0]["c"] == "three"
    assert store.read(VIEW, keys(1), features=[]).schema.names == ["id", *META]


def test_empty_read_returns_an_empty_table_with_the_schema(store: OnlineStore) -> None:
    """Reading no keys returns zero rows with the same columns and types as any read."""
    store.write(VIEW, ["id"], rows([1], x=[1.0], s=["a"]))

    got = store.read(VIEW, keys(type_=pa.int64()))

    assert got.num_rows == 0
    assert got.schema == store.read(VIEW, keys(1)).schema


def test_large_batch_read_finds_every_key(store: OnlineStore) -> None:
    """A read of 5,000 shuffled keys plus unknown ones returns each row in request order."""
    ids = list(range(0, 10_000, 2))
    store.write(VIEW, ["id"], rows(ids, x=[float(i) for i in ids], s=[f"s{i}" for i in ids]))
    wanted = [*ids[2500:], -1, 1, 3, *ids[:2500]]
    wanted.reverse()

    got = store.read(VIEW, keys(*wanted))

    expect_found = [i % 2 == 0 and i >= 0 for i in wanted]
    assert got.column("id").to_pylist() == wanted
    assert got.column("__found").to_pylist() == expect_found
    assert got.column("x").to_pylist() == [
        float(i) if f else None for i, f in zip(wanted, expect_found, strict=True)
    ]
    assert got.column("s").to_pylist() == [
        f"s{i}" if f else None for i, f in zip(wanted, expect_found, strict=True)
    ]


def test_composite_keys_identify_entities_by_all_parts(store: OnlineStore) -> None:
    """Entities keyed by several columns are told apart even when the parts contain separators."""
    table = pa.table(
        {
            "shop": ["a|b", "a", "a", "x%7Cy", "x|y"],
            "sku": ["c", "b|c", "c", "z", "z"],
            "n": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "__event_time": pa.array([AT] * 5, TS),
            "qty": pa.array([10, 20, 30, 40, 50], pa.int64()),
        }
    )
    store.write(VIEW, ["shop", "sku", "n"], table)

    request = pa.table(
        {
            "shop": ["x|y", "a", "a|b", "a", "a"],
            "sku": ["z", "c", "c", "b|c", "c"],
            "n": pa.array([5, 3, 1, 2, 1], pa.int64()),
        }
    )
    got = store.read(VIEW, request)

    assert got.schema.names[:3] == ["shop", "sku", "n"]
    assert got.column("qty").to_pylist() == [50, 30, 10, 20, None]
    assert got.column("__found").to_pylist() == [True, True, True, True, False]


# --- writing ----------------------------------------------------------------------------


def test_write_upserts_by_entity_key(store: OnlineStore) -> None:
    """A second write replaces the rows of the keys it holds and leaves the others alone."""
    store.write(VIEW, ["id"], rows([1, 2], x=[1.0, 2.0], s=["one", "two"]))
    later = AT + timedelta(days=1)
    update = pa.table(
        {
            "id": [2, 3],
            "__event_time": pa.array([later] * 2, TS),
            "x": pa.array([None, 3.0], pa.float64()),
            "s": ["TWO", "three"],
        }
    )
    assert store.write(VIEW, ["id"], update) == 2

    got = store.read(VIEW, keys(1, 2, 3))

    assert got.column("x").to_pylist() == [1.0, None, 3.0]
    assert got.column("s").to_pylist() == ["one", "TWO", "three"]
    assert got.column("__event_time").to_pylist() == [AT, later, later]


def test_last_row_wins_when_a_write_repeats_a_key(store: OnlineStore) -> None:
    """When one table holds a key several times, the row nearest its end is kept."""
    ids = [5, 1, 5, 2, 5, 1]
    store.write(VIEW, ["id"], rows(ids, x=[float(v) for v in range(6)]))

    got = store.read(VIEW, keys(1, 2, 5))

    assert got.column("x").to_pylist() == [5.0, 3.0, 4.0]
    if isinstance(store, SupportsCount):
        assert store.count(VIEW) == 3


def test_columns_may_come_in_another_order(store: OnlineStore) -> None:
    """A later write with the same columns in another order is accepted."""
    store.write(VIEW, ["id"], rows([1], a=[1.0], b=["x"]))
    reordered = pa.table({"b": ["y"], "__event_time": pa.array([AT], TS), "a": [2.0], "id": [1]})
    store.write(VIEW, ["id"], reordered)

    assert store.read(VIEW, keys(1)).select(["a", "b"]).to_pylist() == [{"a": 2.0, "b": "y"}]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.append_column("extra", pa.array([1.0])), "feature 'extra' is new"),
        (lambda t: t.drop_columns(["b"]), "feature 'b' is missing"),
        (
            lambda t: t.set_column(2, "a", pa.array([1], pa.int64())),
            "feature 'a' is int64, was float64",
        ),
        (lambda t: t.set_column(0, "id", pa.array(["1"])), "key 'id' is string, was int64"),
    ],
)
def test_schema_change_is_refused(store: OnlineStore, change: Any, expected: str) -> None:
    """A write whose features or keys differ from the view's first write raises StateError
    naming the view and the difference, and changes nothing."""
    first = rows([1], a=[1.0], b=["x"])
    store.write(VIEW, ["id"], first)

    with pytest.raises(StateError) as raised:
        store.write(VIEW, ["id"], change(rows([1], a=[9.0], b=["y"])))

    assert VIEW in str(raised.value)
    assert expected in str(raised.value)
    assert store.read(VIEW, keys(1)).select(["a", "b"]).to_pylist() == [{"a": 1.0, "b": "x"}]


def test_an_empty_write_creates_the_view(store: OnlineStore) -> None:
    """Writing zero rows registers the view and fixes its schema."""
    empty = rows(pa.array([], pa.int64()), x=pa.array([], pa.float64()))
    assert store.write(VIEW, ["id"], empty) == 0

    assert store.views() == [VIEW]
    assert store.read(VIEW, keys(1)).column("__found").to_pylist() == [False]
    with pytest.raises(StateError):
        store.write(VIEW, ["id"], rows([1], x=pa.array(["text"])))


# --- errors -----------------------------------------------------------------------------


def test_unknown_view_raises_not_found(store: OnlineStore) -> None:
    """Reading or deleting a view never written raises NotFoundError naming it."""
    with pytest.raises(NotFoundError, match="unknown feature view 'nope@1'"):
        store.read("nope@1", keys(1))
    with pytest.raises(NotFoundError, match="nope@1"):
        store.delete("nope@1")


def test_unknown_feature_raises_not_found_listing_known(store: OnlineStore) -> None:
    """Asking for a feature the view lacks raises NotFoundError naming it and the known ones."""
    store.write(VIEW, ["id"], rows([1], spend=[1.0], visits=[2]))

    with pytest.raises(NotFoundError) as raised:
        store.read(VIEW, keys(1), features=["spend", "age"])

    assert raised.value.name == "age"
    assert "known: spend, visits" in str(raised.value)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (pa.table({"id": [1], "x": [1.0]}), "no column '__event_time'"),
        (pa.table({"x": [1.0], "__event_time": pa.array([AT], TS)}), "no column 'id'"),
        (rows([1, None], x=[1.0, 2.0]), "null"),
        (rows([1.5], x=[1.0]), "keys are int64 or string"),
        (rows([1], x=pa.array([[1]])), "list<item: int64>"),
        (rows([1], __found=[True]), "reserved"),
        (pa.table({"id": [1], "__event_time": pa.array([1], pa.timestamp("us"))}), "timezone"),
        (rows([1], x=pa.array([1], pa.timestamp("ns", "UTC"))), "cannot be stored"),
    ],
)
def test_bad_writes_raise_input_error(store: OnlineStore, table: pa.Table, problem: str) -> None:
    """A write with missing, null, reserved or unsupported columns raises InputError saying why."""
    with pytest.raises(InputError, match=problem):
        store.write(VIEW, ["id"], table)
    assert store.views() == []


@pytest.mark.parametrize("view", ["", "has space", "tab\there", "new\nline"])
def test_view_names_must_be_non_empty_without_whitespace(store: OnlineStore, view: str) -> None:
    """A view name that is empty or holds whitespace is refused."""
    with pytest.raises(InputError, match="view name"):
        store.write(view, ["id"], rows([1], x=[1.0]))


def test_bad_read_keys_raise_input_error(store: OnlineStore) -> None:
    """A read missing a key column, with the wrong key type or with null keys raises InputError."""
    store.write(VIEW, ["id"], rows([1], x=[1.0]))

    with pytest.raises(InputError, match="no column 'id'"):
        store.read(VIEW, pa.table({"other": [1]}))
    with pytest.raises(InputError, match="keyed by int64"):
        store.read(VIEW, keys("1"))
    with pytest.raises(InputError, match="null"):
        store.read(VIEW, keys(1, None, type_=pa.int64()))


def test_a_closed_store_refuses_calls(store_url: str) -> None:
    """After close(), every call raises StateError; closing again is harmless."""
    store = open_online_store(store_url)
    store.close()
    store.close()

    with pytest.raises(StateError, match="closed"):
        store.write(VIEW, ["id"], rows([1], x=[1.0]))
    with pytest.raises(StateError, match="closed"):
        store.views()


# --- views and deletion -----------------------------------------------------------------


def test_views_lists_stored_views_sorted(store: OnlineStore) -> None:
    """views() names every written view once, sorted."""
    for view in ["b@2", "a@1", "b@1", "a@1"]:
        store.write(view, ["id"], rows([1], x=[1.0]))

    assert store.views() == ["a@1", "b@1", "b@2"]


def test_delete_removes_only_that_view(store: OnlineStore) -> None:
    """Deleting a view drops it and its rows, even when other view names extend its name."""
    names = ["v", "v:1", "v*", "v%3A1", "v[1]"]
    for i, view in enumerate(names):
        store.write(view, ["id"], rows([1, 2], x=[float(i)] * 2))

    store.delete("v")

    assert store.views() == sorted(names[1:])
    with pytest.raises(NotFoundError):
        store.read("v", keys(1))
    for i, view in enumerate(names[1:], start=1):
        assert store.read(view, keys(1, 2)).column("x").to_pylist() == [float(i)] * 2


def test_a_deleted_view_can_be_written_again_with_a_new_schema(store: OnlineStore) -> None:
    """After delete, the view name is free: a new write starts empty with its own schema."""
    store.write(VIEW, ["id"], rows([1, 2], x=[1.0, 2.0]))
    store.delete(VIEW)

    store.write(VIEW, ["id"], rows([2], y=["new"]))

    got = store.read(VIEW, keys(1, 2))
    assert got.schema.names == ["id", "y", *META]
    assert got.column("y").to_pylist() == [None, "new"]


def test_a_redis_deletion_cut_short_is_finished_by_the_next_one(redis_server: str) -> None:
    """A crash between dropping a view and unlinking its rows leaves the generation
    recorded: the next delete on the store unlinks those rows too."""
    import redis

    prefix = f"t{uuid.uuid4().hex[:12]}"
    store = open_online_store(f"{redis_server}?prefix={prefix}")
    assert isinstance(store, RedisOnlineStore)
    store.write("a", ["id"], rows([1, 2, 3], x=[1.0, 2.0, 3.0]))
    store.write("b", ["id"], rows([1], x=[1.0]))
    client = redis.Redis.from_url(redis_server)
    gen = json.loads(client.hget(f"{prefix}::views", "a"))["gen"]
    # what delete("a") does in its transaction, then the process dies
    client.hdel(f"{prefix}::views", "a")
    client.sadd(f"{prefix}::dropped", f"{prefix}:a:{gen}:")
    assert len(list(client.scan_iter(match=f"{prefix}:a:*"))) == 3

    store.delete("b")

    assert list(client.scan_iter(match=f"{prefix}:*")) == []
    assert client.smembers(f"{prefix}::dropped") == set()
    assert store.views() == []
    store.close()
    client.close()


def test_count_capability(store: OnlineStore) -> None:
    """Memory and SQLite stores count a view's entities; Redis, where counting scans, does not
    claim the capability."""
    store.write(VIEW, ["id"], rows([1, 2, 3], x=[1.0, 2.0, 3.0]))

    if isinstance(store, RedisOnlineStore):
        assert not isinstance(store, SupportsCount)
    else:
        assert isinstance(store, SupportsCount)
        assert store.count(VIEW) == 3


# --- concurrency and persistence --------------------------------------------------------


def test_concurrent_readers_see_whole_writes(store: OnlineStore) -> None:
    """Readers running while a writer rewrites every row see each write entirely or not at all."""
    ids = list(range(300))

    def version(v: int) -> pa.Table:
        same = [float(v)] * len(ids)
        return rows(ids, a=same, b=same, c=[v] * len(ids), d=[f"v{v}"] * len(ids))

    store.write(VIEW, ["id"], version(0))
    stop = threading.Event()
    torn: list[Any] = []
    reads = [0] * 3

    def reader(slot: int) -> None:
        request = keys(*reversed(ids))
        while True:
            got = store.read(VIEW, request)
            seen = {*got.column("a").to_pylist(), *got.column("b").to_pylist()}
            seen |= {float(c) for c in got.column("c").to_pylist()}
            seen |= {float(d[1:]) for d in got.column("d").to_pylist()}
            if len(seen) != 1:
                torn.append(sorted(seen))
            reads[slot] += 1
            if stop.is_set():
                return

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for v in range(1, 31):
        store.write(VIEW, ["id"], version(v))
    stop.set()
    for thread in threads:
        thread.join()

    assert torn == []
    assert all(reads)
    assert set(store.read(VIEW, keys(*ids)).column("c").to_pylist()) == {30}


def test_values_persist_across_reopening(persistent_url: str) -> None:
    """Rows written by one store object are read by another opened later on the same URL."""
    with_values = rows([1, 2], x=[math.nan, 2.5], s=["a\nb", None])
    first = open_online_store(persistent_url)
    first.write(VIEW, ["id"], with_values)
    first.close()

    second = open_online_store(persistent_url)
    try:
        got = second.read(VIEW, keys(2, 1))
        assert second.views() == [VIEW]
        assert same_values(got.column("x").to_pylist(), [2.5, math.nan])
        assert got.column("s").to_pylist() == [None, "a\nb"]
    finally:
        second.close()


def test_another_process_recreating_a_view_is_seen(persistent_url: str) -> None:
    """A view deleted and rewritten with another schema by another process is read as new."""
    store = open_online_store(persistent_url)
    try:
        store.write(VIEW, ["id"], rows([1], x=[1.0]))
        assert store.read(VIEW, keys(1)).column("x").to_pylist() == [1.0]
        script = textwrap.dedent(
            f"""
            from datetime import datetime, UTC
            import pyarrow as pa
            from driftloop.features.online import open_online_store
            store = open_online_store({persistent_url!r})
            store.delete({VIEW!r})
            at = pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
            store.write({VIEW!r}, ["id"], pa.table({{"id": [1], "__event_time": at, "y": ["z"]}}))
            store.write("other@1", ["id"], pa.table({{"id": [1], "__event_time": at}}))
            store.close()
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True)

        got = store.read(VIEW, keys(1))
        assert got.schema.names == ["id", "y", *META]
        assert got.column("y").to_pylist() == ["z"]
        assert store.views() == sorted(["other@1", VIEW])
    finally:
        store.close()


# --- opening by URL ---------------------------------------------------------------------


def test_open_online_store_picks_the_backend_by_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory:// and sqlite:/// (relative to the working directory) open their backends."""
    monkeypatch.chdir(tmp_path)
    memory = open_online_store("memory://")
    assert isinstance(memory, MemoryOnlineStore)
    assert isinstance(memory, OnlineStore)
    sqlite = open_online_store("sqlite:///stores/online.db")
    sqlite.write(VIEW, ["id"], rows([1], x=[1.0]))
    sqlite.close()
    assert (tmp_path / "stores" / "online.db").is_file()


@pytest.mark.parametrize(
    "url", ["postgres://db/x", "online.db", "memory://name", "sqlite://", "sqlite:///x.db?mode=ro"]
)
def test_unusable_urls_raise_config_error(url: str) -> None:
    """An unknown scheme or a malformed URL raises ConfigError naming the URL."""
    with pytest.raises(ConfigError, match=url.replace("?", r"\?")):
        open_online_store(url)


def test_redis_url_without_the_redis_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opening a Redis store when the redis package cannot be imported raises MissingExtraError."""
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(MissingExtraError, match=r"driftloop\[redis\]"):
        open_online_store("redis://127.0.0.1:1/0")


def test_an_unreachable_redis_is_a_clear_error_naming_the_server() -> None:
    """Reading from a Redis nobody answers raises BackendUnavailable with its address."""
    import socket

    from driftloop.errors import BackendUnavailable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_online_store(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
            store.views()
    finally:
        store.close()
