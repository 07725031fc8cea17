"""Windowed aggregates: point-in-time rules, types, edge cases, and a brute-force reference."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.errors import DefinitionError
from driftloop.features import aggregates
from driftloop.features.aggregates import Plan, window_aggregates
from driftloop.features.definitions import Aggregate, Entity, FeatureView
from driftloop.features.sourcedata import SourceBatch, ViewData, register_view_source

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
CUSTOMER = Entity("customer", keys={"id": "int"})
PLANS: tuple[Plan, ...] = ("auto", "window", "join")
TOTALS_PLANS: tuple[Plan, ...] = (*PLANS, "prefix")
"""The plans of views with counts, sums and means only: the running totals too."""
KNOWN_SCHEMA = pa.schema(
    [("id", pa.int64()), ("event_time", TS), ("created", TS), ("amount", pa.float64())]
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 2})
    yield connection
    connection.close()


def view_of(
    *aggregates: Aggregate,
    entity: Entity = CUSTOMER,
    created_time: str | None = None,
    known_at_only: bool = True,
) -> FeatureView:
    return FeatureView(
        "spend",
        entity=entity,
        source="tx",
        aggregates=aggregates,
        created_time=created_time,
        known_at_only=known_at_only,
    )


def source_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    schema = schema or pa.schema([("id", pa.int64()), ("event_time", TS), ("amount", pa.float64())])
    return pa.Table.from_pylist(list(rows), schema=schema)


def compute(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    batches: Sequence[pa.Table],
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    plan: Plan = "auto",
    features: Sequence[str] | None = None,
    entity_schema: pa.Schema | None = None,
    batch_times: Sequence[datetime] | None = None,
) -> pa.Table:
    """Register the batches and the entity rows (``__row`` = position) and aggregate."""
    if batches:
        schema = batches[0].schema
    else:
        schema = KNOWN_SCHEMA if view.created_time else source_table([]).schema
    times = batch_times or [T0 + timedelta(days=365 + i) for i in range(len(batches))]
    data = ViewData(
        view,
        "event_time",
        [
            SourceBatch(f"v{i}", t, table=b)
            for i, (b, t) in enumerate(zip(batches, times, strict=True))
        ],
        schema,
    )
    features = list(features if features is not None else view.feature_names)
    source = register_view_source(con, data, "tx", features)
    key_fields = [
        pa.field(k, pa.int64() if t == "int" else pa.string()) for k, t in view.entity.keys.items()
    ]
    entity_schema = entity_schema or pa.schema(
        [pa.field("__row", pa.int64()), *key_fields, pa.field("__ts", TS)]
    )
    rows = [{"__row": i, **r} for i, r in enumerate(entity_rows)]
    con.register("entity_rows", pa.Table.from_pylist(rows, schema=entity_schema))
    return window_aggregates(con, "entity_rows", source, view, features, plan=plan)


# -- each function -------------------------------------------------------------------

FUNCTIONS = view_of(
    *(Aggregate("amount", f, "1h") for f in ("count", "sum", "mean", "min", "max", "last"))
)
TX = source_table(
    [
        {"id": 1, "event_time": at(0), "amount": 5.0},
        {"id": 1, "event_time": at(10), "amount": -2.0},
        {"id": 1, "event_time": at(20), "amount": 3.5},
        {"id": 2, "event_time": at(10), "amount": 100.0},
    ]
)


@pytest.mark.parametrize("plan", PLANS)
def test_each_function_aggregates_the_entitys_rows_in_the_window(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """count, sum, mean, min, max and last are computed over the entity's rows in the window."""
    result = compute(con, FUNCTIONS, [TX], [{"id": 1, "__ts": at(30)}], plan=plan)
    assert result.to_pylist() == [
        {
            "__row": 0,
            "amount_count_1h": 3,
            "amount_sum_1h": 6.5,
            "amount_mean_1h": pytest.approx(6.5 / 3),
            "amount_min_1h": -2.0,
            "amount_max_1h": 5.0,
            "amount_last_1h": 3.5,
        }
    ]


def test_result_types_follow_the_aggregates_declared_types(con: duckdb.DuckDBPyConnection) -> None:
    """count is int64 and the other functions float64 by default."""
    result = compute(con, FUNCTIONS, [TX], [{"id": 1, "__ts": at(30)}])
    assert result.schema == pa.schema(
        [("__row", pa.int64()), ("amount_count_1h", pa.int64())]
        + [(f"amount_{f}_1h", pa.float64()) for f in ("sum", "mean", "min", "max", "last")]
    )


# -- windows ---------------------------------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
def test_window_includes_its_start_and_excludes_the_entity_rows_own_time(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """An event at exactly t - w counts; one at t, or a microsecond before t - w, does not."""
    t = at(60)
    rows = [
        {"id": 1, "event_time": t - timedelta(hours=1), "amount": 1.0},
        {"id": 1, "event_time": t - timedelta(hours=1, microseconds=1), "amount": 10.0},
        {"id": 1, "event_time": t, "amount": 100.0},
        {"id": 1, "event_time": t - timedelta(microseconds=1), "amount": 1000.0},
    ]
    view = view_of(Aggregate("amount", "sum", "1h"))
    result = compute(con, view, [source_table(rows)], [{"id": 1, "__ts": t}], plan=plan)
    assert result.column("amount_sum_1h").to_pylist() == [1001.0]


@pytest.mark.parametrize("plan", PLANS)
def test_several_windows_and_functions_are_computed_together(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """Aggregates over different windows of one view each see only their own window."""
    view = view_of(
        Aggregate("amount", "sum", "10m"),
        Aggregate("amount", "count", "30m"),
        Aggregate("amount", "max", "1h"),
        Aggregate("amount", "mean", "30m"),
    )
    rows = [{"id": 1, "event_time": at(m), "amount": float(m)} for m in (0, 15, 25, 35, 45, 55)]
    result = compute(con, view, [source_table(rows)], [{"id": 1, "__ts": at(60)}], plan=plan)
    assert result.to_pylist() == [
        {
            "__row": 0,
            "amount_sum_10m": 55.0,
            "amount_count_30m": 3,
            "amount_max_1h": 55.0,
            "amount_mean_30m": 45.0,
        }
    ]


@pytest.mark.parametrize("plan", PLANS)
def test_only_the_requested_features_are_returned_in_the_requested_order(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """The result holds __row and the requested aggregates, in the order asked."""
    result = compute(
        con,
        FUNCTIONS,
        [TX],
        [{"id": 1, "__ts": at(30)}],
        plan=plan,
        features=["amount_max_1h", "amount_count_1h"],
    )
    assert result.column_names == ["__row", "amount_max_1h", "amount_count_1h"]
    assert result.to_pylist() == [{"__row": 0, "amount_max_1h": 5.0, "amount_count_1h": 3}]


# -- known at ----------------------------------------------------------------------------


@pytest.mark.parametrize("plan", ["auto", "join"])
def test_a_late_row_is_invisible_before_its_created_time(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """A row known only after t (or never: NULL created) is not aggregated at t."""
    view = view_of(Aggregate("amount", "sum", "1h"), created_time="created")
    rows = [
        {"id": 1, "event_time": at(0), "created": at(1), "amount": 1.0},
        {"id": 1, "event_time": at(10), "created": at(50), "amount": 10.0},
        {"id": 1, "event_time": at(20), "created": at(20), "amount": 100.0},
        {"id": 1, "event_time": at(25), "created": None, "amount": 1000.0},
    ]
    entity = [{"id": 1, "__ts": at(t)} for t in (30, 50, 55)]
    result = compute(con, view, [source_table(rows, KNOWN_SCHEMA)], entity, plan=plan)
    assert result.column("amount_sum_1h").to_pylist() == [101.0, 111.0, 111.0]


@pytest.mark.parametrize("plan", PLANS)
def test_late_rows_count_from_their_event_time_when_known_at_is_off(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """With known_at_only=False the created time is ignored by the window."""
    view = view_of(Aggregate("amount", "sum", "1h"), created_time="created", known_at_only=False)
    rows = [{"id": 1, "event_time": at(10), "created": at(50), "amount": 10.0}]
    result = compute(
        con, view, [source_table(rows, KNOWN_SCHEMA)], [{"id": 1, "__ts": at(30)}], plan=plan
    )
    assert result.column("amount_sum_1h").to_pylist() == [10.0]


def test_the_prefix_plan_refuses_min_max_and_last(con: duckdb.DuckDBPyConnection) -> None:
    """Running totals give counts, sums and means only."""
    with pytest.raises(DefinitionError, match="count, sum and mean"):
        compute(con, FUNCTIONS, [TX], [{"id": 1, "__ts": at(30)}], plan="prefix")


def test_the_window_plan_refuses_a_known_at_view(con: duckdb.DuckDBPyConnection) -> None:
    """Asking for the markers plan on a view with the known-at rule is a DefinitionError."""
    view = view_of(Aggregate("amount", "sum", "1h"), created_time="created")
    with pytest.raises(DefinitionError, match="known-at"):
        compute(con, view, [source_table([], KNOWN_SCHEMA)], [], plan="window")


# -- nulls and empties -------------------------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
def test_null_values_are_ignored_by_every_function(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """NULL values of the column are skipped: count counts values, last is the last value."""
    rows = [
        {"id": 1, "event_time": at(0), "amount": 2.0},
        {"id": 1, "event_time": at(10), "amount": None},
        {"id": 1, "event_time": at(20), "amount": 4.0},
        {"id": 1, "event_time": at(25), "amount": None},
    ]
    result = compute(con, FUNCTIONS, [source_table(rows)], [{"id": 1, "__ts": at(30)}], plan=plan)
    assert result.to_pylist()[0] == {
        "__row": 0,
        "amount_count_1h": 2,
        "amount_sum_1h": 6.0,
        "amount_mean_1h": 3.0,
        "amount_min_1h": 2.0,
        "amount_max_1h": 4.0,
        "amount_last_1h": 4.0,
    }


@pytest.mark.parametrize("plan", PLANS)
def test_an_empty_window_gives_null_for_every_function_count_included(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """With no value in the window every aggregate is NULL, so the caller can fill its default."""
    rows = [
        {"id": 1, "event_time": at(0), "amount": 2.0},
        {"id": 1, "event_time": at(100), "amount": None},
    ]
    entity = [{"id": 1, "__ts": at(120)}, {"id": 1, "__ts": at(0)}, {"id": 9, "__ts": at(30)}]
    result = compute(con, FUNCTIONS, [source_table(rows)], entity, plan=plan)
    for row in result.to_pylist():
        assert set(row.values()) == {row["__row"], None}


@pytest.mark.parametrize("plan", PLANS)
def test_duplicate_entity_rows_each_get_the_same_values(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """Identical entity rows are not merged: each gets its own, equal, result row."""
    entity = [{"id": 1, "__ts": at(30)}] * 3
    result = compute(con, FUNCTIONS, [TX], entity, plan=plan, features=["amount_sum_1h"])
    assert result.to_pylist() == [{"__row": i, "amount_sum_1h": 6.5} for i in range(3)]


@pytest.mark.parametrize("plan", PLANS)
def test_null_keys_match_nothing(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """Entity rows with a NULL key or time get NULLs; source rows with a NULL key count nowhere."""
    rows: list[dict[str, Any]] = [
        {"id": None, "event_time": at(0), "amount": 7.0},
        {"id": 1, "event_time": at(0), "amount": 1.0},
    ]
    entity: list[dict[str, Any]] = [
        {"id": None, "__ts": at(30)},
        {"id": 1, "__ts": at(30)},
        {"id": 1, "__ts": None},
    ]
    view = view_of(Aggregate("amount", "sum", "1h"), Aggregate("amount", "count", "1h"))
    result = compute(con, view, [source_table(rows)], entity, plan=plan)
    assert result.to_pylist() == [
        {"__row": 0, "amount_sum_1h": None, "amount_count_1h": None},
        {"__row": 1, "amount_sum_1h": 1.0, "amount_count_1h": 1},
        {"__row": 2, "amount_sum_1h": None, "amount_count_1h": None},
    ]


@pytest.mark.parametrize("plan", PLANS)
def test_composite_keys_must_all_match(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """With two join keys a source row counts only for entity rows equal on both."""
    store = Entity("store_item", keys={"region": "string", "item": "int"})
    view = view_of(Aggregate("amount", "sum", "1h"), entity=store)
    schema = pa.schema(
        [
            ("region", pa.string()),
            ("item", pa.int64()),
            ("event_time", TS),
            ("amount", pa.float64()),
        ]
    )
    rows: list[dict[str, Any]] = [
        {"region": "eu", "item": 1, "event_time": at(0), "amount": 1.0},
        {"region": "eu", "item": 2, "event_time": at(0), "amount": 10.0},
        {"region": "us", "item": 1, "event_time": at(0), "amount": 100.0},
        {"region": None, "item": 1, "event_time": at(0), "amount": 1000.0},
    ]
    entity: list[dict[str, Any]] = [
        {"region": "eu", "item": 1, "__ts": at(30)},
        {"region": "us", "item": 1, "__ts": at(30)},
        {"region": "us", "item": 2, "__ts": at(30)},
        {"region": None, "item": 1, "__ts": at(30)},
    ]
    result = compute(con, view, [source_table(rows, schema)], entity, plan=plan)
    assert result.column("amount_sum_1h").to_pylist() == [1.0, 100.0, None, None]


@pytest.mark.parametrize("plan", PLANS)
def test_an_empty_entity_frame_gives_an_empty_typed_table(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """No entity rows: no result rows, with the columns and types of a full result."""
    result = compute(con, FUNCTIONS, [TX], [], plan=plan)
    assert result.num_rows == 0
    assert result.schema == compute(con, FUNCTIONS, [TX], [{"id": 1, "__ts": at(0)}]).schema


@pytest.mark.parametrize("plan", PLANS)
def test_an_empty_source_gives_nulls(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """A view whose source has no batch yet gives NULL for every entity row."""
    result = compute(con, FUNCTIONS, [], [{"id": 1, "__ts": at(30)}], plan=plan)
    assert result.to_pylist() == [{"__row": 0, **dict.fromkeys(FUNCTIONS.feature_names)}]


@pytest.mark.parametrize("plan", PLANS)
def test_rows_come_back_sorted_by_row_number(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """The result is sorted by __row even when the entity relation is not."""
    entity = pa.table(
        {"__row": [2, 0, 3, 1], "id": [1, 2, None, 1], "__ts": pa.array([at(30)] * 4, TS)}
    )
    data = ViewData(FUNCTIONS, "event_time", [SourceBatch("v", at(999), table=TX)], TX.schema)
    source = register_view_source(con, data, "tx", ["amount_sum_1h"])
    con.register("shuffled", entity)
    result = window_aggregates(con, "shuffled", source, FUNCTIONS, ["amount_sum_1h"], plan=plan)
    assert result.to_pylist() == [
        {"__row": 0, "amount_sum_1h": 100.0},
        {"__row": 1, "amount_sum_1h": 6.5},
        {"__row": 2, "amount_sum_1h": 6.5},
        {"__row": 3, "amount_sum_1h": None},
    ]


# -- last ----------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
def test_last_breaks_event_time_ties_by_created_time_then_batch_time(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """Among rows with the same event time, last takes the latest created, then the latest batch."""
    view = view_of(Aggregate("amount", "last", "1h"), created_time="created", known_at_only=False)
    first = source_table(
        [
            {"id": 1, "event_time": at(10), "created": at(12), "amount": 1.0},
            {"id": 1, "event_time": at(10), "created": at(11), "amount": 2.0},
            {"id": 2, "event_time": at(10), "created": at(11), "amount": 3.0},
        ],
        KNOWN_SCHEMA,
    )
    second = source_table(
        [
            {"id": 1, "event_time": at(10), "created": at(11), "amount": 4.0},
            {"id": 2, "event_time": at(10), "created": at(11), "amount": 5.0},
            {"id": 2, "event_time": at(5), "created": at(59), "amount": 6.0},
        ],
        KNOWN_SCHEMA,
    )
    result = compute(
        con,
        view,
        [first, second],
        [{"id": 1, "__ts": at(30)}, {"id": 2, "__ts": at(30)}],
        plan=plan,
        batch_times=[at(100), at(200)],
    )
    assert result.column("amount_last_1h").to_pylist() == [1.0, 5.0]


# -- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
def test_min_max_last_keep_a_declared_non_float_type(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """min, max and last of int, string, bool and timestamp columns keep the declared type."""
    view = view_of(
        Aggregate("qty", "max", "1h", type="int"),
        Aggregate("qty", "min", "1h"),
        Aggregate("tier", "last", "1h", type="string"),
        Aggregate("paid", "last", "1h", type="bool"),
        Aggregate("shipped", "max", "1h", type="timestamp"),
        Aggregate("qty", "sum", "1h", type="int"),
    )
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("event_time", TS),
            ("qty", pa.int32()),
            ("tier", pa.string()),
            ("paid", pa.bool_()),
            ("shipped", pa.timestamp("ms", tz="Europe/Paris")),
        ]
    )
    rows = [
        {"id": 1, "event_time": at(0), "qty": 3, "tier": "gold", "paid": True, "shipped": at(5)},
        {"id": 1, "event_time": at(9), "qty": 2, "tier": "blue", "paid": False, "shipped": at(7)},
    ]
    result = compute(
        con, view, [source_table(rows, schema)], [{"id": 1, "__ts": at(30)}], plan=plan
    )
    assert result.schema.field("qty_max_1h").type == pa.int64()
    assert result.schema.field("qty_min_1h").type == pa.float64()
    assert result.schema.field("shipped_max_1h").type == TS
    assert result.schema.field("qty_sum_1h").type == pa.int64()
    assert result.to_pylist() == [
        {
            "__row": 0,
            "qty_max_1h": 3,
            "qty_min_1h": 2.0,
            "tier_last_1h": "blue",
            "paid_last_1h": False,
            "shipped_max_1h": at(7),
            "qty_sum_1h": 5,
        }
    ]


def test_an_aggregate_its_columns_type_cannot_give_is_a_definition_error(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Summing a string column is refused with an error naming the feature and the column type."""
    view = view_of(Aggregate("tier", "sum", "1h"))
    schema = pa.schema([("id", pa.int64()), ("event_time", TS), ("tier", pa.string())])
    with pytest.raises(DefinitionError, match=r"'tier_sum_1h'.*VARCHAR"):
        compute(con, view, [source_table([], schema)], [{"id": 1, "__ts": at(0)}])


def test_an_unknown_feature_is_a_definition_error(con: duckdb.DuckDBPyConnection) -> None:
    """Asking for a feature the view does not define names it in the error."""
    compute(con, FUNCTIONS, [TX], [])
    with pytest.raises(DefinitionError, match="amount_sum_2h"):
        window_aggregates(con, "entity_rows", '"tx"', FUNCTIONS, ["amount_sum_2h"])


# -- time zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
def test_windows_are_absolute_durations_whatever_the_zones(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """A 1d window is 24 hours across a DST change, whatever the source, entity, session zones."""
    con.execute("SET TimeZone = 'America/New_York'")
    t = datetime(2024, 3, 11, 5, 0, tzinfo=UTC)  # 01:00 EDT, the day after clocks moved on
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("event_time", pa.timestamp("us", tz="America/New_York")),
            ("amount", pa.float64()),
        ]
    )
    rows = [
        # 24h before t: in the window; a calendar day before t (06:00Z) would exclude both
        {"id": 1, "event_time": t - timedelta(hours=24), "amount": 1.0},
        {"id": 1, "event_time": t - timedelta(hours=23, minutes=30), "amount": 10.0},
        {"id": 1, "event_time": t - timedelta(hours=24, microseconds=1), "amount": 100.0},
    ]
    entity_schema = pa.schema(
        [("__row", pa.int64()), ("id", pa.int64()), ("__ts", pa.timestamp("us", tz="Asia/Tokyo"))]
    )
    view = view_of(Aggregate("amount", "sum", "1d"), Aggregate("amount", "last", "1d"))
    result = compute(
        con,
        view,
        [source_table(rows, schema)],
        [{"id": 1, "__ts": t}],
        plan=plan,
        entity_schema=entity_schema,
    )
    assert result.to_pylist() == [{"__row": 0, "amount_sum_1d": 11.0, "amount_last_1d": 10.0}]


# -- plan choice and docs --------------------------------------------------------------------


def _operators(con: duckdb.DuckDBPyConnection, path: Path, run: Callable[[], object]) -> str:
    """The operator names of the last query ``run`` sends, from DuckDB's profiler."""
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{path}'")
    run()
    con.execute("PRAGMA disable_profiling")
    return path.read_text()


def test_auto_uses_the_join_for_sparse_keys_and_the_markers_for_dense_ones(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The automatic plan avoids a join that would pair each row of a dense key with all others."""
    view = view_of(Aggregate("amount", "sum", "1h"))
    sparse = _operators(
        con, tmp_path / "sparse.json", lambda: compute(con, view, [TX], [{"id": 1, "__ts": at(30)}])
    )
    assert "HASH_GROUP_BY" in sparse
    assert "WINDOW" not in sparse
    rows = source_table([{"id": 1, "event_time": at(i / 10), "amount": 1.0} for i in range(400)])
    entity = [{"id": 1, "__ts": at(i / 10)} for i in range(400)]
    dense = _operators(con, tmp_path / "dense.json", lambda: compute(con, view, [rows], entity))
    assert "WINDOW" in dense
    result = compute(con, view, [rows], entity).column("amount_sum_1h").to_pylist()
    assert result == [None] + [float(i) for i in range(1, 400)]


def test_the_docstring_example_runs() -> None:
    """The example in window_aggregates' docstring gives what it shows."""
    result = doctest.testmod(aggregates, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# -- property tests against a brute-force reference -----------------------------------------------


@dataclass(frozen=True)
class Case:
    """Small random data: source batches (ingested a day apart), entity rows and a view."""

    view: FeatureView
    batches: list[list[dict[str, Any]]]
    entity: list[dict[str, Any]]

    @property
    def batch_times(self) -> list[datetime]:
        return [T0 + timedelta(days=i) for i in range(len(self.batches))]

    @property
    def plans(self) -> tuple[Plan, ...]:
        known_at = self.view.created_time is not None and self.view.known_at_only
        if known_at:
            return ("auto", "join")
        totals = all(a.function in ("count", "sum", "mean") for a in self.view.aggregates)
        return (*PLANS, "prefix") if totals else PLANS


_FUNCTIONS: tuple[Literal["count", "sum", "mean", "min", "max", "last"], ...] = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "last",
)
_WINDOWS = (2, 5, 10, 20, 60)  # minutes

# Quarters of integers: sums are exact in binary floating point, whatever their order.
_values = st.one_of(st.none(), st.integers(-40, 40).map(lambda i: i / 4))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    specs = draw(
        st.lists(
            st.tuples(st.sampled_from(_FUNCTIONS), st.sampled_from(_WINDOWS)),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    view = view_of(
        *(Aggregate("amount", f, timedelta(minutes=w)) for f, w in specs),
        created_time=draw(st.sampled_from([None, "created"])),
        known_at_only=draw(st.booleans()),
    )
    keys = st.one_of(st.none(), st.integers(0, 2)) if draw(st.booleans()) else st.integers(0, 1)
    rows = st.fixed_dictionaries(
        {
            "id": keys,
            "event_time": st.integers(0, 30).map(at),
            "created": st.integers(0, 45).map(at),
            "amount": _values,
        }
    )
    batches = draw(st.lists(st.lists(rows, max_size=20), min_size=1, max_size=3))
    entity = st.fixed_dictionaries({"id": keys, "__ts": st.integers(0, 35).map(at)})
    return Case(view, batches, draw(st.lists(entity, min_size=1, max_size=8)))


def reference(case: Case) -> list[dict[str, Any]]:
    """The rules, one entity row and one aggregate at a time; ``last`` gives the set of ties."""
    view = case.view
    rows = [
        {**r, "__batch": t, "__created": r["created"] if view.created_time else t}
        for batch, t in zip(case.batches, case.batch_times, strict=True)
        for r in batch
    ]
    known_at = view.created_time is not None and view.known_at_only
    out = []
    for i, e in enumerate(case.entity):
        result: dict[str, Any] = {"__row": i}
        for agg in view.aggregates:
            t, start = e["__ts"], e["__ts"] - agg.window_delta
            seen = [
                r
                for r in rows
                if e["id"] is not None
                and r["id"] == e["id"]
                and start <= r["event_time"] < t
                and (not known_at or r["__created"] <= t)
                and r["amount"] is not None
            ]
            values = [r["amount"] for r in seen]
            name = agg.feature_name
            if not values:
                result[name] = None
            elif agg.function == "count":
                result[name] = len(values)
            elif agg.function == "sum":
                result[name] = math.fsum(values)
            elif agg.function == "mean":
                result[name] = math.fsum(values) / len(values)
            elif agg.function in ("min", "max"):
                result[name] = min(values) if agg.function == "min" else max(values)
            else:
                order = [(r["event_time"], r["__created"], r["__batch"]) for r in seen]
                result[name] = {
                    r["amount"] for r, o in zip(seen, order, strict=True) if o == max(order)
                }
        out.append(result)
    return out


def assert_matches(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Equal row by row; floats within 1e-9 relative; ``last`` any of its tied values."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for name, expected in w.items():
            value = g[name]
            if isinstance(expected, set):
                assert value in expected, (name, g, w)
            elif isinstance(expected, float):
                assert value is not None, (name, g, w)
                assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12), (name, g, w)
            else:
                assert value == expected, (name, g, w)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_every_plan_equals_the_brute_force_reference(case: Case) -> None:
    """On small random data every applicable plan gives what the rules, row by row, give."""
    batches = [source_table(b, KNOWN_SCHEMA) for b in case.batches]
    want = reference(case)
    for plan in case.plans:
        with duckdb.connect(config={"threads": 2}) as con:
            got = compute(
                con, case.view, batches, case.entity, plan=plan, batch_times=case.batch_times
            )
        assert_matches(got.to_pylist(), want)


# -- exact float sums ------------------------------------------------------------------


@pytest.mark.parametrize("plan", TOTALS_PLANS)
def test_float_sums_are_exact_so_their_order_cannot_change_them(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """The sum is the exact sum rounded once (math.fsum), whatever the order of the
    additions, so parallel aggregation gives the same bits every time."""
    amounts = [3e5, 0.1, -3e5, 0.2, 1 / 3, 7.25e-3]
    rows = [{"id": 1, "event_time": at(m), "amount": a} for m, a in enumerate(amounts)]
    view = view_of(Aggregate("amount", "sum", "1h"), Aggregate("amount", "mean", "1h"))
    result = compute(con, view, [source_table(rows)], [{"id": 1, "__ts": at(30)}], plan=plan)
    assert result.column("amount_sum_1h")[0].as_py() == math.fsum(amounts)
    assert sum(amounts) != math.fsum(amounts)  # the naive double sum differs
    assert result.column("amount_mean_1h")[0].as_py() == math.fsum(amounts) / len(amounts)


@pytest.mark.parametrize("plan", TOTALS_PLANS)
def test_nan_and_infinities_propagate_through_float_sums(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """A NaN in the window makes the sum NaN, an infinity makes it infinite; others are exact."""
    rows = [
        {"id": 1, "event_time": at(1), "amount": 1.5},
        {"id": 1, "event_time": at(2), "amount": math.inf},
        {"id": 2, "event_time": at(1), "amount": 2.5},
        {"id": 2, "event_time": at(2), "amount": math.nan},
        {"id": 3, "event_time": at(1), "amount": 2.5},
    ]
    view = view_of(Aggregate("amount", "sum", "1h"))
    entity = [{"id": i, "__ts": at(30)} for i in (1, 2, 3, 4)]
    sums = compute(con, view, [source_table(rows)], entity, plan=plan)
    values = sums.column("amount_sum_1h").to_pylist()
    assert values[0] == math.inf
    assert math.isnan(values[1])
    assert values[2:] == [2.5, None]


@pytest.mark.parametrize("plan", TOTALS_PLANS)
def test_a_nan_or_infinity_that_left_the_window_no_longer_counts(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """Running totals subtract what left the window: a NaN and an infinity an hour old
    do not touch a 10-minute sum, nor its count."""
    rows = [
        {"id": 1, "event_time": at(1), "amount": math.nan},
        {"id": 1, "event_time": at(2), "amount": -math.inf},
        {"id": 1, "event_time": at(50), "amount": 2.25},
        {"id": 1, "event_time": at(52), "amount": 0.5},
    ]
    view = view_of(
        Aggregate("amount", "sum", "10m"),
        Aggregate("amount", "count", "10m"),
        Aggregate("amount", "mean", "1h"),
    )
    entity = [{"id": 1, "__ts": at(55)}, {"id": 1, "__ts": at(5)}]
    got = compute(con, view, [source_table(rows)], entity, plan=plan).to_pylist()
    assert (got[0]["amount_sum_10m"], got[0]["amount_count_10m"]) == (2.75, 2)
    assert math.isnan(got[0]["amount_mean_1h"])
    assert (got[1]["amount_count_10m"], math.isnan(got[1]["amount_sum_10m"])) == (2, True)


@pytest.mark.parametrize("plan", TOTALS_PLANS)
def test_sums_and_means_of_integer_and_boolean_columns_are_exact(
    con: duckdb.DuckDBPyConnection, plan: Plan
) -> None:
    """An integer or boolean column adds as integers: a mean of flags is the share of
    true ones, a float sum of large integers keeps every unit."""
    schema = pa.schema(
        [("id", pa.int64()), ("event_time", TS), ("late", pa.bool_()), ("n", pa.int64())]
    )
    big = 2**53 + 1  # not representable as a double: only the total is rounded
    rows = [
        {"id": 1, "event_time": at(0), "late": True, "n": big},
        {"id": 1, "event_time": at(10), "late": False, "n": 1},
        {"id": 1, "event_time": at(20), "late": True, "n": None},
    ]
    view = view_of(
        Aggregate("late", "mean", "1h"),
        Aggregate("late", "sum", "1h"),
        Aggregate("n", "sum", "1h"),
        Aggregate("n", "sum", "1h", type="int", name="n_int_sum"),
        Aggregate("n", "mean", "1h"),
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    result = compute(con, view, [table], [{"id": 1, "__ts": at(30)}], plan=plan).to_pylist()
    assert result == [
        {
            "__row": 0,
            "late_mean_1h": pytest.approx(2 / 3),
            "late_sum_1h": 2.0,
            "n_sum_1h": float(big + 1),
            "n_int_sum": big + 1,
            "n_mean_1h": float(big + 1) / 2,
        }
    ]
