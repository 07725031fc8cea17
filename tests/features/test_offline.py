"""The point-in-time join for latest-value feature views (driftloop.features.offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftloop.features.definitions import Entity, Feature, FeatureView
from driftloop.features.offline import Plan, _by_row, _latest_values, latest_values
from driftloop.features.sourcedata import SourceBatch, ViewData, quote, register_view_source

BASE = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("region", pa.string()),
        ("event_time", TS),
        ("created_time", TS),
        ("amount", pa.float64()),
        ("id", pa.int64()),
    ]
)
CUSTOMER = Entity("customer", keys={"customer_id": "int"})
PLANS: tuple[Plan, ...] = ("asof", "hugeint", "range")


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def make_view(entity: Entity = CUSTOMER, **options: Any) -> FeatureView:
    features = options.pop("features", [Feature("amount", "float"), Feature("id", "int")])
    return FeatureView("profile", entity=entity, source="events", features=features, **options)


def row(customer: int | None, event: datetime | None, id_: int, **more: Any) -> dict[str, Any]:
    return {"customer_id": customer, "event_time": event, "id": id_, "amount": 1.0 * id_, **more}


def batch(created_at: datetime, rows: Sequence[dict[str, Any]], version: str = "") -> SourceBatch:
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    return SourceBatch(version or f"v{created_at.timestamp()}", created_at, table=table)


def join(
    view: FeatureView,
    batches: Sequence[SourceBatch],
    entity_rows: Sequence[dict[str, Any]],
    *,
    features: Sequence[str] | None = None,
    plan: Plan = "asof",
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Register the source and the entity rows, and run the join."""
    con = con or duckdb.connect()
    features = list(features or view.feature_names)
    data = ViewData(view, "event_time", batches, SCHEMA)
    source = register_view_source(con, data, "src", features)
    columns: dict[str, Any] = {"__row": pa.array(range(len(entity_rows)), pa.int64())}
    for key, type_ in view.entity.keys.items():
        arrow = pa.int64() if type_ == "int" else pa.string()
        columns[key] = pa.array([r[key] for r in entity_rows], arrow)
    columns["__ts"] = pa.array([r["ts"] for r in entity_rows], TS)
    con.register("entity_rows", pa.table(columns))
    if plan == "asof":
        return latest_values(con, quote("entity_rows"), source, view, features)
    return _latest_values(con, quote("entity_rows"), source, view, features, plan=plan)


def ids(table: pa.Table) -> list[int | None]:
    return table.column("id").to_pylist()


@pytest.mark.parametrize("plan", PLANS)
def test_latest_value_before_t(plan: Plan) -> None:
    """Each entity row gets the values of its entity's latest row at or before t."""
    rows = [row(1, at(0), 10), row(1, at(5), 11), row(1, at(9), 12), row(2, at(1), 20)]
    out = join(
        make_view(),
        [batch(at(-60), rows)],
        [{"customer_id": 1, "ts": at(6)}, {"customer_id": 2, "ts": at(6)}],
        plan=plan,
    )
    assert out.to_pylist() == [
        {"__row": 0, "amount": 11.0, "id": 11, "__event_time": at(5)},
        {"__row": 1, "amount": 20.0, "id": 20, "__event_time": at(1)},
    ]


def test_result_schema() -> None:
    """The result has __row, the requested features in order, then __event_time in UTC."""
    out = join(
        make_view(),
        [batch(at(-60), [row(1, at(0), 1)])],
        [{"customer_id": 1, "ts": at(1)}],
        features=["id", "amount"],
    )
    assert out.schema == pa.schema(
        [("__row", pa.int64()), ("id", pa.int64()), ("amount", pa.float64()), ("__event_time", TS)]
    )


@pytest.mark.parametrize("plan", PLANS)
def test_event_at_t_is_included(plan: Plan) -> None:
    """A row whose event time equals t is visible at t."""
    out = join(
        make_view(),
        [batch(at(-60), [row(1, at(3), 1)])],
        [{"customer_id": 1, "ts": at(3)}],
        plan=plan,
    )
    assert ids(out) == [1]


@pytest.mark.parametrize("plan", PLANS)
def test_ttl_edge(plan: Plan) -> None:
    """A value exactly ttl old is expired; one microsecond younger is still served."""
    tick = timedelta(microseconds=1)
    rows = [row(1, at(0), 1), row(2, at(0) + tick, 2)]
    entity_rows = [{"customer_id": 1, "ts": at(60)}, {"customer_id": 2, "ts": at(60)}]
    out = join(make_view(ttl="1h"), [batch(at(-60), rows)], entity_rows, plan=plan)
    assert ids(out) == [None, 2]
    assert out.column("__event_time").to_pylist() == [None, at(0) + tick]


@pytest.mark.parametrize("plan", PLANS)
def test_expired_latest_hides_older_rows(plan: Plan) -> None:
    """When the latest value is out of the TTL, older rows are too: no value."""
    rows = [row(1, at(0), 1), row(1, at(10), 2)]
    out = join(
        make_view(ttl="5m"), [batch(at(-60), rows)], [{"customer_id": 1, "ts": at(20)}], plan=plan
    )
    assert ids(out) == [None]


@pytest.mark.parametrize("plan", PLANS)
def test_known_at_hides_late_rows(plan: Plan) -> None:
    """A row created after t is invisible at t (the previous value is served) and visible later."""
    rows = [
        row(1, at(0), 1, created_time=at(0)),
        row(1, at(5), 2, created_time=at(30)),  # happened at 5, learned at 30
    ]
    view = make_view(created_time="created_time")
    entity_rows = [{"customer_id": 1, "ts": at(10)}, {"customer_id": 1, "ts": at(30)}]
    out = join(view, [batch(at(-60), rows)], entity_rows, plan=plan)
    assert ids(out) == [1, 2]
    assert out.column("__event_time").to_pylist() == [at(0), at(5)]


@pytest.mark.parametrize("plan", PLANS)
def test_known_at_respects_ttl_of_fallback(plan: Plan) -> None:
    """When the latest row is not yet known, an older known row is served only inside the TTL."""
    rows = [
        row(1, at(0), 1, created_time=at(0)),
        row(1, at(8), 2, created_time=at(2)),
        row(1, at(9), 3, created_time=at(50)),
    ]
    view = make_view(created_time="created_time", ttl="5m")
    entity_rows = [{"customer_id": 1, "ts": at(10)}, {"customer_id": 1, "ts": at(14)}]
    out = join(view, [batch(at(-60), rows)], entity_rows, plan=plan)
    assert ids(out) == [2, None]


@pytest.mark.parametrize("plan", PLANS)
def test_known_at_only_false_ignores_created_time(plan: Plan) -> None:
    """With known_at_only=False a row is visible from its event time, whatever its created time."""
    rows = [row(1, at(0), 1, created_time=at(0)), row(1, at(5), 2, created_time=at(30))]
    view = make_view(created_time="created_time", known_at_only=False)
    out = join(view, [batch(at(-60), rows)], [{"customer_id": 1, "ts": at(10)}], plan=plan)
    assert ids(out) == [2]


@pytest.mark.parametrize("plan", PLANS)
def test_ties_break_on_created_then_batch(plan: Plan) -> None:
    """Rows with the same event time rank by created time, then by their batch's time."""
    view = make_view(created_time="created_time")
    old = batch(
        at(-60),
        [
            row(1, at(0), 1, created_time=at(2)),
            row(2, at(0), 3, created_time=at(1)),
        ],
    )
    new = batch(
        at(-30),
        [
            row(1, at(0), 2, created_time=at(1)),  # newer batch, older created time: loses
            row(2, at(0), 4, created_time=at(1)),  # same created time, newer batch: wins
        ],
    )
    entity_rows = [{"customer_id": 1, "ts": at(5)}, {"customer_id": 2, "ts": at(5)}]
    assert ids(join(view, [new, old], entity_rows, plan=plan)) == [1, 4]


@pytest.mark.parametrize("plan", PLANS)
def test_created_one_microsecond_later_beats_a_newer_batch(plan: Plan) -> None:
    """Created times one microsecond apart rank before batch times, with three batches."""
    us = timedelta(microseconds=1)
    view = make_view(created_time="created_time")
    batches = [
        batch(
            at(-90),
            [row(1, at(0), 1, created_time=at(1) + us), row(2, at(0), 4, created_time=at(1))],
        ),
        batch(
            at(-60), [row(1, at(0), 2, created_time=at(1)), row(2, at(0), 5, created_time=at(1))]
        ),
        batch(
            at(-30),
            [row(1, at(0), 3, created_time=at(1)), row(2, at(0), 6, created_time=at(1) - us)],
        ),
    ]
    entity_rows = [{"customer_id": 1, "ts": at(5)}, {"customer_id": 2, "ts": at(5)}]
    assert ids(join(view, batches, entity_rows, plan=plan)) == [1, 5]


@pytest.mark.parametrize("plan", PLANS)
def test_missing_created_time(plan: Plan) -> None:
    """A row without a created time is never known; with known_at_only=False it loses ties."""
    rows = [
        row(1, at(0), 1, created_time=at(0)),
        row(1, at(1), 2, created_time=None),
        row(2, at(1), 3, created_time=at(1)),
        row(2, at(1), 4, created_time=None),
    ]
    entity_rows = [{"customer_id": 1, "ts": at(5)}, {"customer_id": 2, "ts": at(5)}]
    known = make_view(created_time="created_time")
    anyway = make_view(created_time="created_time", known_at_only=False)
    assert ids(join(known, [batch(at(-60), rows)], entity_rows, plan=plan)) == [1, 3]
    assert ids(join(anyway, [batch(at(-60), rows)], entity_rows, plan=plan)) == [2, 3]


@pytest.mark.parametrize("plan", PLANS)
def test_without_created_time_batches_break_ties(plan: Plan) -> None:
    """Without a created-time column there is no known-at rule, and the newer batch wins a tie."""
    view = make_view()
    old = batch(at(100), [row(1, at(0), 1)])
    new = batch(at(200), [row(1, at(0), 2)])
    # Entity time 5 is before both batches were ingested: still visible (no known-at rule).
    out = join(view, [new, old], [{"customer_id": 1, "ts": at(5)}], plan=plan)
    assert ids(out) == [2]


@pytest.mark.parametrize("plan", PLANS)
def test_duplicate_entity_rows_each_come_back(plan: Plan) -> None:
    """Identical entity rows each get their own result row, in order."""
    entity_rows = [{"customer_id": 1, "ts": at(5)}] * 3 + [{"customer_id": 1, "ts": at(-1)}]
    out = join(make_view(), [batch(at(-60), [row(1, at(0), 7)])], entity_rows, plan=plan)
    assert out.column("__row").to_pylist() == [0, 1, 2, 3]
    assert ids(out) == [7, 7, 7, None]


@pytest.mark.parametrize("plan", PLANS)
def test_null_keys_match_nothing(plan: Plan) -> None:
    """A NULL key on either side matches nothing, not even another NULL."""
    rows = [row(None, at(0), 1), row(1, at(0), 2)]
    entity_rows = [{"customer_id": None, "ts": at(5)}, {"customer_id": 1, "ts": at(5)}]
    assert ids(join(make_view(), [batch(at(-60), rows)], entity_rows, plan=plan)) == [None, 2]


@pytest.mark.parametrize("plan", PLANS)
def test_null_event_time_is_never_a_candidate(plan: Plan) -> None:
    """A source row without an event time is never served."""
    rows = [row(1, None, 1), row(1, at(0), 2), row(2, None, 3)]
    entity_rows = [{"customer_id": 1, "ts": at(5)}, {"customer_id": 2, "ts": at(5)}]
    assert ids(join(make_view(), [batch(at(-60), rows)], entity_rows, plan=plan)) == [2, None]


@pytest.mark.parametrize("plan", PLANS)
def test_entities_without_data(plan: Plan) -> None:
    """An entity with no rows, or only later rows, gets NULL features and a NULL event time."""
    entity_rows = [{"customer_id": 9, "ts": at(5)}, {"customer_id": 1, "ts": at(-5)}]
    out = join(make_view(), [batch(at(-60), [row(1, at(0), 1)])], entity_rows, plan=plan)
    assert out.to_pylist() == [
        {"__row": 0, "amount": None, "id": None, "__event_time": None},
        {"__row": 1, "amount": None, "id": None, "__event_time": None},
    ]


@pytest.mark.parametrize("plan", PLANS)
def test_empty_entity_frame(plan: Plan) -> None:
    """No entity rows give an empty, typed result."""
    out = join(make_view(), [batch(at(-60), [row(1, at(0), 1)])], [], plan=plan)
    assert out.num_rows == 0
    assert out.column_names == ["__row", "amount", "id", "__event_time"]


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("created", [None, "created_time"])
def test_empty_source(plan: Plan, created: str | None) -> None:
    """A source without batches, or with only empty batches, gives NULL for every row."""
    view = make_view(created_time=created)
    for batches in ([], [batch(at(-60), [])]):
        out = join(view, batches, [{"customer_id": 1, "ts": at(5)}], plan=plan)
        assert out.to_pylist() == [{"__row": 0, "amount": None, "id": None, "__event_time": None}]


@pytest.mark.parametrize("plan", PLANS)
def test_composite_keys(plan: Plan) -> None:
    """Every join key must match: an int key and a string key together."""
    entity = Entity("customer_region", keys={"customer_id": "int", "region": "string"})
    rows = [
        row(1, at(0), 1, region="eu"),
        row(1, at(1), 2, region="us"),
        row(2, at(2), 3, region="eu"),
        row(1, at(3), 4, region=None),
    ]
    entity_rows = [
        {"customer_id": 1, "region": "eu", "ts": at(5)},
        {"customer_id": 1, "region": "us", "ts": at(5)},
        {"customer_id": 2, "region": "us", "ts": at(5)},
        {"customer_id": 1, "region": None, "ts": at(5)},
    ]
    out = join(make_view(entity), [batch(at(-60), rows)], entity_rows, plan=plan)
    assert ids(out) == [1, 2, None, None]


@pytest.mark.parametrize("plan", PLANS)
def test_offsets_compare_as_instants(plan: Plan) -> None:
    """Times with a +02:00 offset compare as instants with UTC times, whatever the session zone."""
    plus2 = timezone(timedelta(hours=2))
    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("event_time", pa.timestamp("us", tz="+02:00")),
            ("id", pa.int64()),
        ]
    )
    source = pa.table(
        {
            "customer_id": [1, 1],
            # 11:30+02:00 is 09:30 UTC; 12:30+02:00 is 10:30 UTC
            "event_time": pa.array(
                [
                    datetime(2024, 1, 1, 11, 30, tzinfo=plus2),
                    datetime(2024, 1, 1, 12, 30, tzinfo=plus2),
                ],
                schema.field(1).type,
            ),
            "id": [1, 2],
        },
        schema=schema,
    )
    view = make_view(features=[Feature("id", "int")], ttl="1h")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    data = ViewData(view, "event_time", [SourceBatch("v1", at(-600), table=source)], schema)
    src = register_view_source(con, data, "src", ["id"])
    entity = pa.table(
        {
            "__row": pa.array([0, 1, 2], pa.int64()),
            "customer_id": pa.array([1, 1, 1], pa.int64()),
            "__ts": pa.array(
                [
                    datetime(2024, 1, 1, 10, 0, tzinfo=UTC),  # after the first only
                    datetime(2024, 1, 1, 12, 30, tzinfo=plus2),  # exactly the second
                    datetime(2024, 1, 1, 11, 30, tzinfo=UTC),  # the second is 1h old: expired
                ],
                pa.timestamp("us", tz="+02:00"),
            ),
        }
    )
    con.register("entity_rows", entity)
    if plan == "asof":
        out = latest_values(con, quote("entity_rows"), src, view, ["id"])
    else:
        out = _latest_values(con, quote("entity_rows"), src, view, ["id"], plan=plan)
    assert out.column("id").to_pylist() == [1, 2, None]
    assert out.schema.field("__event_time").type == TS
    assert out.column("__event_time")[0].as_py() == datetime(2024, 1, 1, 9, 30, tzinfo=UTC)


def test_ttl_is_an_exact_duration_across_dst() -> None:
    """A 1-day TTL is 24 hours even when the session's zone changes clocks within that day."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Europe/Berlin'")  # clocks go forward on 2024-03-31
    t = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    rows = [row(1, t - timedelta(hours=24), 1), row(2, t - timedelta(hours=24) + tick, 2)]
    entity_rows = [{"customer_id": 1, "ts": t}, {"customer_id": 2, "ts": t}]
    out = join(make_view(ttl="1d"), [batch(at(-60), rows)], entity_rows, con=con)
    assert ids(out) == [None, 2]


@pytest.mark.parametrize("plan", PLANS)
def test_feature_expressions(plan: Plan) -> None:
    """A feature defined by a DuckDB expression is evaluated on the matched row."""
    features = [
        Feature("double_amount", "float", expr="amount * 2"),
        Feature("big", "bool", expr="amount > 5"),
        Feature("label", "string", expr="'id-' || id"),
    ]
    rows = [row(1, at(0), 3), row(1, at(1), 4)]
    out = join(
        make_view(features=features),
        [batch(at(-60), rows)],
        [{"customer_id": 1, "ts": at(2)}],
        plan=plan,
    )
    assert out.select(["double_amount", "big", "label"]).to_pylist() == [
        {"double_amount": 8.0, "big": False, "label": "id-4"}
    ]


def test_timestamp_features_come_back_in_utc() -> None:
    """A timestamp-typed feature is returned as a UTC timestamp."""
    features = [Feature("seen", "timestamp", expr="event_time")]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    out = join(
        make_view(features=features),
        [batch(at(-60), [row(1, at(0), 1)])],
        [{"customer_id": 1, "ts": at(2)}],
        con=con,
    )
    assert out.schema.field("seen").type == TS
    assert out.column("seen").to_pylist() == [at(0)]


@pytest.mark.parametrize("plan", PLANS)
def test_far_apart_times(plan: Plan) -> None:
    """Event and created times centuries apart still rank exactly (the widest key encoding)."""
    early, late = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    rows = [
        row(1, early, 1, created_time=early),
        row(1, late, 2, created_time=early),
        row(1, late, 3, created_time=late - timedelta(microseconds=1)),
        row(2, early, 4, created_time=late),
    ]
    view = make_view(created_time="created_time")
    entity_rows = [
        {"customer_id": 1, "ts": late},
        {"customer_id": 1, "ts": late - timedelta(microseconds=1)},
        {"customer_id": 2, "ts": late},
        {"customer_id": 2, "ts": early},
    ]
    out = join(view, [batch(at(0), rows[:2]), batch(at(1), rows[2:])], entity_rows, plan=plan)
    assert ids(out) == [3, 1, 4, None]


def test_parquet_batches(tmp_path: Path) -> None:
    """Batches stored as local Parquet files are joined like in-memory ones."""
    batches = []
    for i, rows in enumerate([[row(1, at(0), 1)], [row(1, at(0), 2), row(2, at(3), 3)]]):
        path = tmp_path / f"b{i}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
        batches.append(SourceBatch(f"v{i}", at(i), path=str(path)))
    entity_rows = [{"customer_id": 1, "ts": at(5)}, {"customer_id": 2, "ts": at(5)}]
    assert ids(join(make_view(), batches, entity_rows)) == [2, 3]


def test_rows_are_put_in_row_order() -> None:
    """Every column type, with nulls, sliced and in several chunks, is reordered by __row."""
    from decimal import Decimal

    rows = [3, 0, 4, 1, 2]
    columns = {
        "__row": rows,
        "f": [3.5, None, 4.5, 1.5, None],
        "i": [3, 0, None, 1, 2],
        "t": [at(3), at(0), at(4), None, at(2)],
        "b": [True, None, False, True, False],
        "s": ["c", "a", None, "b", "bb"],
        "d": [Decimal("3.1"), None, Decimal("4.1"), Decimal("1.1"), Decimal("2.1")],
    }
    types = [pa.int64(), pa.float64(), pa.int64(), TS, pa.bool_(), pa.string(), pa.decimal128(5, 1)]
    schema = pa.schema(list(zip(columns, types, strict=True)))
    whole = pa.Table.from_pydict(columns, schema=schema)
    padded = pa.concat_tables([whole.slice(0, 2), whole]).combine_chunks().slice(2)
    assert padded.column("f").chunk(0).offset == 2
    chunked = pa.Table.from_batches(whole.to_batches(max_chunksize=2), schema=schema)
    expected = whole.sort_by("__row")
    for table in (whole, padded, chunked):
        assert _by_row(table).equals(expected)
    with pytest.raises(ValueError, match="exactly once"):
        _by_row(pa.table({"__row": pa.array([0, 0], pa.int64())}))


# --- Property tests against a brute-force reference -------------------------------------


@dataclass(frozen=True)
class SourceRow:
    key: int | None
    event: int | None  # units after BASE
    created: int | None
    batch: int  # index into BATCH_TIMES
    id: int


BATCH_TIMES = [at(-30), at(7), at(15)]  # a row's batch is an index: later is newer
NEG_INF = float("-inf")


def reference(
    rows: Sequence[SourceRow],
    entity_rows: Sequence[tuple[int | None, int]],
    ttl: int | None,
    created: bool,
    known_at_only: bool,
) -> list[tuple[int, set[int]] | None]:
    """Brute force: per entity row, the best event time and the ids of the rows tied best."""
    out: list[tuple[int, set[int]] | None] = []
    for key, t in entity_rows:
        candidates = [
            r
            for r in rows
            if key is not None
            and r.key == key
            and r.event is not None
            and r.event <= t
            and (ttl is None or r.event > t - ttl)
            and (not (created and known_at_only) or (r.created is not None and r.created <= t))
        ]

        def rank(r: SourceRow) -> tuple[float, float, float]:
            if not created:  # the created time is the batch's
                return (float(r.event or 0), r.batch, r.batch)
            c = NEG_INF if r.created is None else float(r.created)
            return (float(r.event or 0), c, r.batch)

        if not candidates:
            out.append(None)
            continue
        best = max(rank(r) for r in candidates)
        out.append((int(best[0]), {r.id for r in candidates if rank(r) == best}))
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Few entities, small times (in minutes or microseconds), many exact ties (a copy of an
    earlier row's key and times, usually in another batch), created times before or after
    events or missing, entity times often at or next to a source time."""
    keys = st.sampled_from([0, 1, 2, None]) if draw(st.booleans()) else st.sampled_from([0, 1, 2])
    deltas = st.sampled_from([-2, -1, 0, 0, 1, 2, 3, None])
    rows: list[SourceRow] = []
    for i in range(draw(st.integers(0, 14))):
        if rows and draw(st.integers(0, 3)) == 0:
            twin = draw(st.sampled_from(rows))
            key, event, created = twin.key, twin.event, twin.created
        else:
            key = draw(keys)
            event = draw(st.integers(0, 10)) if draw(st.integers(0, 9)) else None
            delta = draw(deltas)
            created = None if event is None or delta is None else event + delta
        rows.append(SourceRow(key, event, created, draw(st.integers(0, 2)), i))
    times = st.integers(-2, 14)
    seen = sorted({t for r in rows for t in (r.event, r.created) if t is not None})
    if seen:  # often exactly at an event or created time, or one unit either side
        near = st.builds(lambda t, d: t + d, st.sampled_from(seen), st.sampled_from([-1, 0, 0, 1]))
        times = st.one_of(times, near)
    entity_rows = draw(st.lists(st.tuples(keys, times), max_size=10))
    return {
        "unit": draw(st.sampled_from([timedelta(minutes=1), timedelta(microseconds=1)])),
        "rows": rows,
        "entity_rows": entity_rows,
        "ttl": draw(st.one_of(st.none(), st.integers(1, 6))),
        "created": draw(st.booleans()),
        "known_at_only": draw(st.booleans()),
    }


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_matches_brute_force_reference(scenario: dict[str, Any]) -> None:
    """Every plan returns, for every entity row, a best candidate by the brute-force definition."""
    rows: list[SourceRow] = scenario["rows"]
    unit: timedelta = scenario["unit"]

    def when(n: int | None) -> datetime | None:
        return None if n is None else BASE + n * unit

    view = make_view(
        ttl=scenario["ttl"] * unit if scenario["ttl"] else None,
        created_time="created_time" if scenario["created"] else None,
        known_at_only=scenario["known_at_only"],
    )
    batches = []
    for index, created_at in enumerate(BATCH_TIMES):
        part = [
            row(
                r.key,
                when(r.event),
                r.id,
                created_time=when(r.created),
            )
            for r in rows
            if r.batch == index
        ]
        if part:
            batches.append(batch(created_at, part, version=f"v{index}"))
    entity_rows = [{"customer_id": k, "ts": when(t)} for k, t in scenario["entity_rows"]]
    expected = reference(
        rows,
        scenario["entity_rows"],
        scenario["ttl"],
        scenario["created"],
        scenario["known_at_only"],
    )
    con = duckdb.connect()
    for plan in PLANS:
        out = join(view, batches, entity_rows, plan=plan, con=con)
        assert out.column("__row").to_pylist() == list(range(len(entity_rows)))
        for got, want in zip(out.to_pylist(), expected, strict=True):
            if want is None:
                assert (got["id"], got["__event_time"]) == (None, None), (plan, got)
            else:
                event, acceptable = want
                assert got["id"] in acceptable, (plan, got, want)
                assert got["__event_time"] == when(event), (plan, got, want)
                assert got["amount"] == 1.0 * got["id"]
