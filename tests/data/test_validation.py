"""Validating a batch against its contract: every rule, type conformance and the report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from driftloop.data.contract import BatchRules, Column, Contract
from driftloop.data.validation import RuleResult, ValidationReport, validate

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EARLIER = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
TS_TYPE = pa.timestamp("us", tz="UTC")


def contract(*columns: Column, **kwargs: Any) -> Contract:
    """A contract whose event time is a ``ts`` column declared first."""
    return Contract(columns=(Column("ts", "timestamp"), *columns), event_time="ts", **kwargs)


def table(**columns: Any) -> pa.Table:
    """A table of ``columns`` with a ``ts`` column of one recent instant prepended."""
    rows = len(next(iter(columns.values()))) if columns else 1
    return pa.table({"ts": pa.array([EARLIER] * rows, TS_TYPE), **columns})


def check(data: pa.Table, c: Contract, **kwargs: Any) -> tuple[ValidationReport, pa.Table | None]:
    """Validate at the fixed instant NOW."""
    return validate(data, c, now=NOW, **kwargs)


def only_failure(report: ValidationReport) -> RuleResult:
    """The single failing rule of ``report``."""
    assert len(report.failures) == 1, [r.describe() for r in report.failures]
    return report.failures[0]


def result(report: ValidationReport, rule: str, column: str | None) -> RuleResult:
    """The result of ``rule`` on ``column``."""
    found = [r for r in report if r.rule == rule and r.column == column]
    assert len(found) == 1, (rule, column, [r.describe() for r in report])
    return found[0]


def conformed(data: pa.Table, c: Contract) -> pa.Table:
    """The conformed table of a batch expected to pass."""
    report, out = check(data, c)
    assert report.passed, [r.describe() for r in report.failures]
    assert out is not None
    return out


# --- the conformed table ------------------------------------------------------------------


def test_conformed_table_follows_the_contract() -> None:
    """A passing batch comes back in the contract's column order with its Arrow types."""
    c = contract(
        Column("id", "int32", nullable=False),
        Column("name", "string"),
        Column("score", "float32"),
        Column("day", "date"),
        Column("ok", "bool"),
    )
    data = pa.table(
        {
            "ok": [True, False],
            "score": [0.5, 1.5],
            "day": [date(2024, 1, 1), date(2024, 1, 2)],
            "name": ["a", "b"],
            "id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([EARLIER, EARLIER], TS_TYPE),
        }
    )
    report, out = check(data, c)
    assert report.passed
    assert report.rows == 2
    assert out is not None
    assert out.schema == c.arrow_schema
    assert out.column_names == ["ts", "id", "name", "score", "day", "ok"]
    assert out.column("id").to_pylist() == [1, 2]
    assert out.column("score").to_pylist() == [0.5, 1.5]


def test_failing_batch_has_no_conformed_table() -> None:
    """A batch with any failing rule returns the report and None."""
    report, out = check(table(a=[None]), contract(Column("a", "int", nullable=False)))
    assert not report.passed
    assert out is None


def test_every_rule_is_reported_when_passing() -> None:
    """A passing report lists each rule it checked, all passed."""
    c = contract(
        Column("a", "int", nullable=False, min=0, max=9, allowed=(1, 2), unique=True),
        primary_key=("a",),
    )
    report, _ = check(table(a=[1, 2]), c)
    assert [(r.rule, r.column) for r in report] == [
        ("not_null", "a"), ("min", "a"), ("max", "a"), ("allowed", "a"), ("unique", "a"),
        ("primary_key_null", "a"), ("primary_key_duplicate", "a"), ("future", "ts"),
        ("row_count", None),
    ]  # fmt: skip
    assert all(r.passed and r.failing == 0 and r.rows == () for r in report)


# --- column rules ------------------------------------------------------------------------


def test_not_null_lists_null_rows() -> None:
    """A non-nullable column with nulls fails not_null with the 0-based rows."""
    report, _ = check(table(a=[1, None, 3, None]), contract(Column("a", "int", nullable=False)))
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.failing) == ("not_null", "a", 2)
    assert failure.rows == (1, 3)
    assert failure.values == (None, None)
    assert failure.message == "2 null rows"


def test_nullable_column_accepts_nulls() -> None:
    """A nullable column passes with nulls, and they stay null in the conformed table."""
    out = conformed(table(a=[1, None]), contract(Column("a", "int")))
    assert out.column("a").to_pylist() == [1, None]


@pytest.mark.parametrize(
    ("col", "values", "rule", "rows", "message"),
    [
        pytest.param(
            Column("a", "int", min=0),
            [3, -1, 0, -7],
            "min",
            (1, 3),
            "2 rows below the minimum 0",
            id="int-min",
        ),
        pytest.param(
            Column("a", "int", max=10),
            [10, 11],
            "max",
            (1,),
            "1 row above the maximum 10",
            id="int-max",
        ),
        pytest.param(
            Column("a", "float", min=0.5),
            [0.5, 0.49, None],
            "min",
            (1,),
            "1 row below the minimum 0.5",
            id="float-min",
        ),
        pytest.param(
            Column("a", "float", max=1),
            [1.0, 1.0001, float("inf")],
            "max",
            (1, 2),
            "2 rows above the maximum 1",
            id="float-max",
        ),
        pytest.param(
            Column("a", "int8", min=-3),
            pa.array([-3, -4], pa.int8()),
            "min",
            (1,),
            "1 row below the minimum -3",
            id="int8-min",
        ),
        pytest.param(
            Column("a", "timestamp", min="2024-01-01T00:00:00Z"),
            pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, 23, tzinfo=UTC)], TS_TYPE
            ),
            "min",
            (1,),
            "1 row below the minimum 2024-01-01T00:00:00Z",
            id="timestamp-min",
        ),
        pytest.param(
            Column("a", "timestamp", max="2024-01-01T00:00:00+02:00"),
            pa.array(
                [
                    datetime(2023, 12, 31, 22, tzinfo=UTC),
                    datetime(2023, 12, 31, 22, 0, 1, tzinfo=UTC),
                ],
                TS_TYPE,
            ),
            "max",
            (1,),
            "1 row above the maximum 2024-01-01T00:00:00+02:00",
            id="timestamp-max-in-another-zone",
        ),
        pytest.param(
            Column("a", "date", min="2024-01-01"),
            [date(2024, 1, 1), date(2023, 12, 31)],
            "min",
            (1,),
            "1 row below the minimum 2024-01-01",
            id="date-min",
        ),
        pytest.param(
            Column("a", "date", max="2024-01-31"),
            [date(2024, 2, 1), date(2024, 1, 31)],
            "max",
            (0,),
            "1 row above the maximum 2024-01-31",
            id="date-max",
        ),
    ],
)
def test_bounds(col: Column, values: Any, rule: str, rows: tuple[int, ...], message: str) -> None:
    """Values beyond a min or max fail that rule; values equal to the bound pass."""
    report, _ = check(table(a=values), contract(col))
    failure = only_failure(report)
    assert (failure.rule, failure.column) == (rule, "a")
    assert failure.rows == rows
    assert failure.failing == len(rows)
    assert failure.message == message


def test_nulls_pass_bounds() -> None:
    """Null values are not compared with min or max."""
    conformed(table(a=[None, 5]), contract(Column("a", "int", min=1, max=9)))


def test_nan_fails_a_bounded_float_column() -> None:
    """NaN compares false with any bound, so a column with a min or max refuses it as
    its own rule, naming the rows; infinities fail the bound they cross."""
    c = contract(Column("a", "float", min=0))
    report, _ = check(table(a=[1.0, float("nan"), None, float("-inf")]), c)
    assert (result(report, "nan", "a").rows, result(report, "min", "a").rows) == ((1,), (3,))
    assert result(report, "nan", "a").message == "1 row with NaN, outside the bounds [0, inf]"


def test_nan_passes_an_unbounded_float_column() -> None:
    conformed(table(a=[1.0, float("nan")]), contract(Column("a", "float")))


def test_allowed_values() -> None:
    """A value outside ``allowed`` fails with its row; nulls are allowed."""
    c = contract(Column("a", "string", allowed=("eu", "us")))
    report, _ = check(table(a=["eu", "uk", None, "US"]), c)
    failure = only_failure(report)
    assert failure.rule == "allowed"
    assert failure.rows == (1, 3)
    assert failure.values == ("uk", "US")
    assert failure.message == "2 rows not in [eu, us]"


def test_allowed_ints() -> None:
    """Allowed values work on integer columns."""
    report, _ = check(table(a=[1, 2, 5]), contract(Column("a", "int16", allowed=(1, 2))))
    assert only_failure(report).rows == (2,)


def test_allowed_message_shows_ten_values() -> None:
    """A long allowed list is shown up to ten values, then an ellipsis."""
    allowed = tuple(f"v{i}" for i in range(12))
    report, _ = check(table(a=["zz"]), contract(Column("a", "category", allowed=allowed)))
    assert only_failure(report).message == (
        "1 row not in [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, ...]"
    )


def test_regex_must_match() -> None:
    """A string not matching the column's regex fails with its row; nulls pass."""
    c = contract(Column("id", "string", regex="^tx_[0-9]+$"))
    report, _ = check(table(id=["tx_1", "tx_", None, "xtx_2"]), c)
    failure = only_failure(report)
    assert (failure.rule, failure.rows, failure.values) == ("regex", (1, 3), ("tx_", "xtx_2"))
    assert failure.message == "2 rows not matching ^tx_[0-9]+$"


def test_regex_searches_unless_anchored() -> None:
    """An unanchored regex matches anywhere in the string, as RE2 search does."""
    conformed(table(a=["xx42yy"]), contract(Column("a", "string", regex="[0-9]+")))


def test_unique_lists_every_repeated_row() -> None:
    """A unique column fails on every row whose value repeats, nulls ignored."""
    c = contract(Column("a", "string", unique=True))
    report, _ = check(table(a=["x", "y", "x", None, None, "z", "y"]), c)
    failure = only_failure(report)
    assert failure.rule == "unique"
    assert failure.failing == 4
    assert failure.rows == (0, 1, 2, 6)
    assert failure.values == ("x", "y", "x", "y")
    assert failure.message == "4 rows repeat a value"


def test_unique_ignores_nulls() -> None:
    """Several nulls in a unique column are not duplicates."""
    conformed(table(a=[1, None, None, 2]), contract(Column("a", "int", unique=True)))


def test_several_rules_fail_together() -> None:
    """Every failing rule of every column is reported, not only the first."""
    c = contract(
        Column("a", "int", nullable=False, max=5),
        Column("b", "string", allowed=("x",)),
    )
    report, _ = check(table(a=[None, 9], b=["x", "q"]), c)
    assert [(r.rule, r.column) for r in report.failures] == [
        ("not_null", "a"), ("max", "a"), ("allowed", "b"),
    ]  # fmt: skip


# --- primary keys -------------------------------------------------------------------


def test_single_primary_key_nulls() -> None:
    """A null in a single-column primary key fails primary_key_null with its row."""
    report, _ = check(
        table(id=["a", None, "c"]), contract(Column("id", "string"), primary_key=("id",))
    )
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.rows) == ("primary_key_null", "id", (1,))
    assert failure.message == "1 row with a null key"


def test_single_primary_key_duplicates() -> None:
    """Rows sharing a single-column key all fail primary_key_duplicate."""
    c = contract(Column("id", "int"), primary_key=("id",))
    report, _ = check(table(id=[1, 2, 1, 3, 1]), c)
    failure = only_failure(report)
    assert failure.rule == "primary_key_duplicate"
    assert failure.rows == (0, 2, 4)
    assert failure.values == (1, 1, 1)
    assert failure.message == "3 rows share a key with another row"


def test_composite_primary_key_nulls() -> None:
    """A null in any part of a composite key fails primary_key_null."""
    c = contract(Column("a", "int"), Column("b", "string"), primary_key=("a", "b"))
    report, _ = check(table(a=[1, None, 3, 4], b=["x", "y", None, "z"]), c)
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.rows) == ("primary_key_null", "a,b", (1, 2))


def test_composite_primary_key_duplicates() -> None:
    """Rows repeating the whole composite key fail, shown as the key parts joined by |."""
    c = contract(Column("a", "int"), Column("b", "string"), primary_key=("a", "b"))
    report, _ = check(table(a=[1, 1, 2, 1], b=["x", "y", "x", "x"]), c)
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("primary_key_duplicate", "a,b")
    assert failure.rows == (0, 3)
    assert failure.values == ("1|x", "1|x")


def test_composite_key_parts_may_repeat_alone() -> None:
    """Each part of a composite key may repeat as long as the combination is unique."""
    c = contract(Column("a", "int"), Column("b", "string"), primary_key=("a", "b"))
    conformed(table(a=[1, 1, 2, 2], b=["x", "y", "x", "y"]), c)


def test_rows_with_null_keys_are_not_duplicates() -> None:
    """Two rows whose key is null fail primary_key_null but not primary_key_duplicate."""
    c = contract(Column("a", "int"), Column("b", "int"), primary_key=("a", "b"))
    report, _ = check(table(a=[1, 1, 2], b=[None, None, 3]), c)
    assert result(report, "primary_key_null", "a,b").rows == (0, 1)
    assert result(report, "primary_key_duplicate", "a,b").passed


def test_timestamp_in_composite_key() -> None:
    """A composite key may include the event time."""
    c = contract(Column("id", "int"), primary_key=("id", "ts"))
    report, _ = check(table(id=[1, 1]), c)
    assert only_failure(report).rule == "primary_key_duplicate"


def test_duplicates_found_across_chunks() -> None:
    """Duplicates spread over several record batches are found at their 0-based rows."""
    batches = [
        pa.record_batch(
            {"ts": pa.array([EARLIER] * 1000, TS_TYPE), "id": list(range(start, start + 1000))}
        )
        for start in range(0, 10_000, 1000)
    ]
    data = pa.Table.from_batches(batches)
    ids = data.column("id").to_pylist()
    ids[4321] = 17
    ids[9999] = 17
    data = data.set_column(
        1, "id", pa.chunked_array([ids[i : i + 1000] for i in range(0, 10_000, 1000)], pa.int64())
    )
    report, _ = check(data, contract(Column("id", "int"), primary_key=("id",)))
    failure = only_failure(report)
    assert failure.rows == (17, 4321, 9999)


# --- missing, extra and repeated columns ----------------------------------------------------


def test_missing_column() -> None:
    """A declared column absent from the batch fails missing_column."""
    report, out = check(table(a=[1]), contract(Column("a", "int"), Column("b", "string")))
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("missing_column", "b")
    assert failure.message == "column is missing"
    assert out is None


def test_missing_event_time_column() -> None:
    """A batch without its event-time column fails missing_column and skips freshness."""
    c = contract(Column("a", "int"), batch=BatchRules(max_age=timedelta(days=1)))
    report, _ = check(pa.table({"a": [1]}), c)
    assert only_failure(report).rule == "missing_column"
    assert all(r.rule != "freshness" for r in report)


def test_extra_column_rejected_by_default() -> None:
    """A column the contract does not declare is rejected, with a hint on how to allow it."""
    report, out = check(table(a=[1], b=["x"]), contract(Column("a", "int")))
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("extra_column", "b")
    assert "extra_columns: drop" in failure.message
    assert out is None


def test_extra_column_dropped_when_allowed() -> None:
    """With extra_columns drop, an undeclared column passes and is left out."""
    report, out = check(table(a=[1], b=["x"]), contract(Column("a", "int"), extra_columns="drop"))
    assert report.passed
    assert result(report, "extra_column", "b").message == "not in the contract: dropped"
    assert out is not None
    assert out.column_names == ["ts", "a"]


def test_repeated_input_column_is_rejected() -> None:
    """A batch with two columns of the same name is rejected outright."""
    data = pa.Table.from_arrays(
        [pa.array([EARLIER], TS_TYPE), pa.array([1]), pa.array([2])], names=["ts", "a", "a"]
    )
    report, out = check(data, contract(Column("a", "int")))
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("duplicate_column", None)
    assert out is None


# --- conformance from text ---------------------------------------------------------------


def test_ints_from_text() -> None:
    """Integer text with signs, leading zeros and surrounding blanks converts to int64."""
    out = conformed(table(a=["1", " -3 ", "+4", "007", None]), contract(Column("a", "int")))
    assert out.column("a").type == pa.int64()
    assert out.column("a").to_pylist() == [1, -3, 4, 7, None]


def test_int64_limits_from_text() -> None:
    """The extreme int64 values convert from text exactly."""
    out = conformed(
        table(a=["9223372036854775807", "-9223372036854775808"]), contract(Column("a", "int64"))
    )
    assert out.column("a").to_pylist() == [2**63 - 1, -(2**63)]


def test_int64_overflow_from_text_names_the_row() -> None:
    """Integer text beyond the int64 range fails the type rule at its row."""
    report, _ = check(
        table(a=["1", "9223372036854775808", "-99999999999999999999"]), contract(Column("a", "int"))
    )
    failure = only_failure(report)
    assert (failure.rule, failure.rows, failure.failing) == ("type", (1, 2), 2)
    assert "out of the int64 range" in failure.message


def test_non_integers_from_text() -> None:
    """Text that is not a whole number fails the type rule with each row and value."""
    report, _ = check(table(a=["1", "1.5", "x", "", "1e3", None]), contract(Column("a", "int")))
    failure = only_failure(report)
    assert failure.rule == "type"
    assert failure.rows == (1, 2, 3, 4)
    assert failure.values == ("1.5", "x", "", "1e3")
    assert failure.message == "4 rows not an int"


def test_floats_from_text() -> None:
    """Float text in any common spelling, including inf and nan, converts to float64."""
    out = conformed(
        table(a=["1.5", " .5 ", "1.", "+2", "-1e3", "inf", "-Infinity", "NaN", None]),
        contract(Column("a", "float")),
    )
    values = out.column("a").to_pylist()
    assert values[:7] == [1.5, 0.5, 1.0, 2.0, -1000.0, float("inf"), float("-inf")]
    assert values[7] != values[7]  # NaN
    assert values[8] is None


def test_non_floats_from_text() -> None:
    """Text that is not a number fails the type rule."""
    report, _ = check(table(a=["1.5", "1,5", "abc", "1.2.3"]), contract(Column("a", "float")))
    failure = only_failure(report)
    assert (failure.rows, failure.message) == ((1, 2, 3), "3 rows not a float")


def test_bools_from_text() -> None:
    """true/false, t/f, yes/no, y/n and 1/0 in any case convert to bool."""
    out = conformed(
        table(a=["true", "FALSE", "t", "F", "yes", "No", " y ", "n", "1", "0", None]),
        contract(Column("a", "bool")),
    )
    assert out.column("a").to_pylist() == [
        True, False, True, False, True, False, True, False, True, False, None,
    ]  # fmt: skip


def test_non_bools_from_text() -> None:
    """Text that is not a boolean spelling fails the type rule."""
    report, _ = check(table(a=["true", "maybe", "2"]), contract(Column("a", "bool")))
    failure = only_failure(report)
    assert (failure.rows, failure.message) == ((1, 2), "2 rows not a bool")


def test_timestamps_with_zone_from_text() -> None:
    """Timestamp text with a zone (Z, offsets, UTC) converts to the same instant in UTC."""
    out = conformed(
        table(
            a=[
                "2024-01-31T12:00:00Z",
                "2024-01-31 12:00:00+02:00",
                "2024-01-31T12:00:00.123456-05:30",
                "2024-01-31 12:00 UTC",
                None,
            ]
        ),
        contract(Column("a", "timestamp")),
    )
    assert out.column("a").type == TS_TYPE
    assert out.column("a").to_pylist() == [
        datetime(2024, 1, 31, 12, tzinfo=UTC),
        datetime(2024, 1, 31, 10, tzinfo=UTC),
        datetime(2024, 1, 31, 17, 30, 0, 123456, tzinfo=UTC),
        datetime(2024, 1, 31, 12, tzinfo=UTC),
        None,
    ]


def test_timestamps_without_zone_from_text() -> None:
    """Timestamp text without a zone fails the timezone rule, naming rows and values."""
    report, _ = check(
        table(a=["2024-01-31T12:00:00Z", "2024-01-31T12:00:00", "2024-01-31"]),
        contract(Column("a", "timestamp")),
    )
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("timezone", "a")
    assert failure.rows == (1, 2)
    assert failure.values == ("2024-01-31T12:00:00", "2024-01-31")
    assert "without a timezone" in failure.message


def test_invalid_timestamps_from_text() -> None:
    """Zoned text that is not a real instant fails the type rule."""
    report, _ = check(
        table(a=["2024-13-01T00:00:00Z", "2024-01-31T12:00:00Z"]),
        contract(Column("a", "timestamp")),
    )
    failure = only_failure(report)
    assert (failure.rule, failure.rows, failure.message) == ("type", (0,), "1 row not a timestamp")


def test_event_time_from_text() -> None:
    """The event-time column itself converts from zoned text."""
    data = pa.table({"ts": ["2024-06-01T09:00:00Z", "2024-06-01T11:00:00+01:00"]})
    out = conformed(data, contract())
    assert out.column("ts").to_pylist() == [
        datetime(2024, 6, 1, 9, tzinfo=UTC), datetime(2024, 6, 1, 10, tzinfo=UTC),
    ]  # fmt: skip


def test_dates_from_text() -> None:
    """ISO date text converts to date32."""
    out = conformed(table(a=["2024-01-31", "2024-02-29", None]), contract(Column("a", "date")))
    assert out.column("a").type == pa.date32()
    assert out.column("a").to_pylist() == [date(2024, 1, 31), date(2024, 2, 29), None]


def test_invalid_dates_from_text() -> None:
    """Text that is not a calendar date fails the type rule."""
    report, _ = check(
        table(a=["2024-01-31", "2023-02-29", "31/01/2024"]), contract(Column("a", "date"))
    )
    failure = only_failure(report)
    assert (failure.rows, failure.message) == ((1, 2), "2 rows not a date (YYYY-MM-DD)")


def test_rules_apply_after_conversion() -> None:
    """Rules judge converted values: numeric text is compared as a number."""
    report, _ = check(table(a=["9", "10"]), contract(Column("a", "int", max=9)))
    failure = only_failure(report)
    assert (failure.rule, failure.rows, failure.values) == ("max", (1,), (10,))


def test_rules_skipped_when_conversion_fails() -> None:
    """A column that does not convert reports only its type failure."""
    report, _ = check(table(a=["x", None]), contract(Column("a", "int", nullable=False)))
    assert only_failure(report).rule == "type"
    assert all(r.column != "a" or r.rule == "type" for r in report)


def test_all_null_column_conforms() -> None:
    """A column of Arrow null type (as from a header-only CSV) becomes typed nulls."""
    out = conformed(table(a=pa.nulls(2)), contract(Column("a", "date")))
    assert out.column("a").type == pa.date32()
    assert out.column("a").null_count == 2


# --- integers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "lo", "hi"),
    [("int8", -128, 127), ("int16", -32768, 32767), ("int32", -(2**31), 2**31 - 1)],
)
def test_int_narrowing_keeps_the_range(type_: str, lo: int, hi: int) -> None:
    """The limits of a narrow int type pass; one beyond either limit fails with its row."""
    c = contract(Column("a", type_))  # type: ignore[arg-type]
    out = conformed(table(a=pa.array([lo, hi], pa.int64())), c)
    assert out.column("a").to_pylist() == [lo, hi]
    report, _ = check(table(a=pa.array([lo, hi + 1, lo - 1, 0], pa.int64())), c)
    failure = only_failure(report)
    assert (failure.rule, failure.rows, failure.values) == ("type", (1, 2), (hi + 1, lo - 1))
    assert failure.message == f"2 rows out of the {type_} range"


def test_int8_overflow_from_text() -> None:
    """Integer text beyond int8 fails the type rule with the original text."""
    report, _ = check(table(a=["127", "128", "-129"]), contract(Column("a", "int8")))
    failure = only_failure(report)
    assert (failure.rows, failure.values) == ((1, 2), ("128", "-129"))
    assert failure.message == "2 rows out of the int8 range"


def test_int8_overflow_from_floats() -> None:
    """Whole floats beyond int8 fail the type rule."""
    report, _ = check(table(a=[1.0, 300.0]), contract(Column("a", "int8")))
    assert only_failure(report).message == "1 row out of the int8 range"


def test_unsigned_ints_convert() -> None:
    """Unsigned integers within range convert to the declared signed type."""
    out = conformed(table(a=pa.array([0, 200], pa.uint8())), contract(Column("a", "int16")))
    assert out.column("a").type == pa.int16()


def test_uint64_beyond_int64_names_the_row() -> None:
    """A uint64 value beyond the int64 range fails the type rule at its row."""
    report, _ = check(table(a=pa.array([1, 2**64 - 1], pa.uint64())), contract(Column("a", "int")))
    failure = only_failure(report)
    assert (failure.rule, failure.rows) == ("type", (1,))


def test_whole_floats_into_int_column() -> None:
    """Floats without a fraction convert to an int column."""
    out = conformed(table(a=[1.0, -2.0, None]), contract(Column("a", "int32")))
    assert out.column("a").to_pylist() == [1, -2, None]
    assert out.column("a").type == pa.int32()


def test_fractional_floats_into_int_column() -> None:
    """Floats with a fraction, NaN or infinity fail the type rule of an int column."""
    report, _ = check(
        table(a=[1.0, 2.5, float("nan"), None, float("-inf")]), contract(Column("a", "int"))
    )
    failure = only_failure(report)
    assert failure.rule == "type"
    assert failure.rows == (1, 2, 4)
    assert failure.message == "3 rows not a whole number"


def test_huge_floats_into_int_column() -> None:
    """Whole floats beyond the int64 range fail instead of wrapping around."""
    report, _ = check(table(a=[1.0, 1e30, -1e19]), contract(Column("a", "int")))
    failure = only_failure(report)
    assert (failure.rule, failure.rows) == ("type", (1, 2))
    assert "out of the int64 range" in failure.message


def test_ints_into_float_column() -> None:
    """Integers convert to a float column."""
    out = conformed(table(a=[1, 2]), contract(Column("a", "float32")))
    assert out.column("a").type == pa.float32()
    assert out.column("a").to_pylist() == [1.0, 2.0]


def test_numbers_into_string_column() -> None:
    """Integers and booleans convert to text; floats are refused for a string column."""
    out = conformed(
        table(a=[1, 22], b=[True, False]), contract(Column("a", "string"), Column("b", "category"))
    )
    assert out.column("a").to_pylist() == ["1", "22"]
    assert out.column("b").to_pylist() == ["true", "false"]
    report, _ = check(table(a=[1.5]), contract(Column("a", "string")))
    failure = only_failure(report)
    assert (failure.rule, failure.message, failure.failing) == (
        "type",
        "expected string, got double",
        1,
    )


@pytest.mark.parametrize(
    ("col", "values", "message"),
    [
        (Column("a", "date"), pa.array([EARLIER], TS_TYPE), "expected date, got timestamp"),
        (Column("a", "timestamp"), pa.array([1, 2]), "expected timestamp, got int64"),
        (Column("a", "bool"), pa.array([1, 0]), "expected bool, got int64"),
        (Column("a", "int"), pa.array([True]), "expected int, got bool"),
    ],
)
def test_incompatible_arrow_types(col: Column, values: pa.Array, message: str) -> None:
    """An Arrow type that does not convert fails the type rule on every row."""
    report, _ = check(table(a=values), contract(col))
    failure = only_failure(report)
    assert failure.rule == "type"
    assert failure.message.startswith(message)
    assert failure.failing == len(values)


# --- timestamps and time ---------------------------------------------------------------


def test_naive_arrow_timestamps_are_rejected() -> None:
    """An Arrow timestamp column without a zone fails the timezone rule on its non-null rows."""
    values = pa.array([datetime(2024, 1, 1), None, datetime(2024, 1, 2)], pa.timestamp("ns"))
    report, _ = check(table(a=values), contract(Column("a", "timestamp")))
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.rows) == ("timezone", "a", (0, 2))
    assert "localise it to UTC" in failure.message


def test_naive_pandas_timestamps_are_rejected() -> None:
    """A naive pandas datetime column as the event time fails the timezone rule."""
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-06-01 09:00", "2024-06-01 10:00"])})
    report, _ = check(pa.Table.from_pandas(frame, preserve_index=False), contract())
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.failing) == ("timezone", "ts", 2)


def test_all_null_naive_timestamps_conform() -> None:
    """A naive timestamp column holding only nulls has nothing to localise and conforms."""
    out = conformed(
        table(a=pa.array([None, None], pa.timestamp("ns"))), contract(Column("a", "timestamp"))
    )
    assert out.column("a").type == TS_TYPE
    assert out.column("a").null_count == 2


def test_zoned_timestamps_become_utc_microseconds() -> None:
    """Timestamps in another zone and unit convert to microseconds in UTC."""
    values = pa.array([datetime(2024, 1, 1, 12, tzinfo=UTC)], pa.timestamp("ns", tz="Europe/Paris"))
    out = conformed(table(a=values), contract(Column("a", "timestamp")))
    assert out.column("a").type == TS_TYPE
    assert out.column("a").to_pylist() == [datetime(2024, 1, 1, 12, tzinfo=UTC)]


def test_zoned_pandas_timestamps_conform() -> None:
    """A UTC-aware pandas datetime column converts to the contract's timestamp type."""
    frame = pd.DataFrame({"ts": pd.to_datetime(["2024-06-01 09:00"], utc=True)})
    out = conformed(pa.Table.from_pandas(frame, preserve_index=False), contract())
    assert out.column("ts").to_pylist() == [datetime(2024, 6, 1, 9, tzinfo=UTC)]


def test_date64_conforms_to_date32() -> None:
    """An Arrow date64 column converts to date32."""
    out = conformed(
        table(a=pa.array([date(2024, 1, 1)], pa.date64())), contract(Column("a", "date"))
    )
    assert out.column("a").type == pa.date32()


def test_future_beyond_tolerance() -> None:
    """Event times later than now plus the tolerance fail the future rule."""
    data = pa.table(
        {"ts": pa.array([NOW + timedelta(minutes=5), NOW + timedelta(minutes=6), EARLIER], TS_TYPE)}
    )
    report, _ = check(data, contract())
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.rows) == ("future", "ts", (1,))
    assert failure.message == "1 row in the future (after 2024-06-01T12:05:00+00:00)"


def test_future_within_tolerance() -> None:
    """Event times slightly ahead of now, within the tolerance, pass."""
    data = pa.table({"ts": pa.array([NOW + timedelta(minutes=4, seconds=59)], TS_TYPE)})
    conformed(data, contract())


def test_future_tolerance_is_configurable() -> None:
    """A zero tolerance rejects any event after now; a wide one accepts a day ahead."""
    data = pa.table({"ts": pa.array([NOW + timedelta(seconds=1), NOW], TS_TYPE)})
    report, _ = check(data, contract(), future_tolerance=timedelta(0))
    assert only_failure(report).rows == (0,)
    report, _ = check(
        pa.table({"ts": pa.array([NOW + timedelta(days=1)], TS_TYPE)}),
        contract(),
        future_tolerance=timedelta(days=2),
    )
    assert report.passed


def test_future_applies_to_the_event_time_only() -> None:
    """Only the event-time column is checked for the future; other timestamps are not."""
    conformed(
        table(later=pa.array([NOW + timedelta(days=30)], TS_TYPE)),
        contract(Column("later", "timestamp")),
    )


def test_fresh_batch() -> None:
    """A batch whose newest event is within max_age of now passes freshness."""
    c = contract(batch=BatchRules(max_age=timedelta(hours=3)))
    data = pa.table({"ts": pa.array([NOW - timedelta(days=5), NOW - timedelta(hours=2)], TS_TYPE)})
    report, _ = check(data, c)
    assert result(report, "freshness", "ts").passed


def test_freshness_boundary() -> None:
    """A newest event exactly max_age old is still fresh."""
    c = contract(batch=BatchRules(max_age=timedelta(hours=3)))
    data = pa.table({"ts": pa.array([NOW - timedelta(hours=3)], TS_TYPE)})
    assert check(data, c)[0].passed


def test_stale_batch() -> None:
    """A batch whose newest event is older than max_age fails freshness, naming both times."""
    c = contract(batch=BatchRules(max_age=timedelta(days=1)))
    data = pa.table({"ts": pa.array([NOW - timedelta(days=3), NOW - timedelta(days=2)], TS_TYPE)})
    report, _ = check(data, c)
    failure = only_failure(report)
    assert (failure.rule, failure.column) == ("freshness", "ts")
    assert failure.message == (
        "newest event 2024-05-30T12:00:00+00:00 is older than max_age 1d "
        "(before 2024-05-31T12:00:00+00:00)"
    )


def test_freshness_with_only_null_event_times() -> None:
    """A batch whose event times are all null is not fresh."""
    c = contract(batch=BatchRules(max_age=timedelta(days=1)))
    report, _ = check(pa.table({"ts": pa.array([None], TS_TYPE)}), c)
    assert only_failure(report).rule == "freshness"


# --- row count ----------------------------------------------------------------------------


def test_empty_batch_is_rejected_by_default() -> None:
    """A batch with no rows fails row_count unless the contract allows it."""
    report, out = check(table(a=pa.array([], pa.int64())), contract(Column("a", "int")))
    failure = only_failure(report)
    assert (failure.rule, failure.column, failure.message) == (
        "row_count",
        None,
        "the batch has no rows",
    )
    assert report.rows == 0
    assert out is None


def test_empty_batch_allowed_with_min_rows_zero() -> None:
    """min_rows 0 accepts an empty batch and conforms it to the contract's schema."""
    c = contract(Column("a", "int8"), batch=BatchRules(min_rows=0))
    out = conformed(table(a=pa.array([], pa.int64())), c)
    assert out.num_rows == 0
    assert out.schema == c.arrow_schema


def test_empty_naive_timestamp_batch_allowed_with_min_rows_zero() -> None:
    """An empty batch whose timestamp column has no zone conforms: no value needs one."""
    c = contract(batch=BatchRules(min_rows=0))
    out = conformed(pa.table({"ts": pa.array([], pa.timestamp("us"))}), c)
    assert out.num_rows == 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (1, "1 row, fewer than min_rows 2"),
        (2, None),
        (3, None),
        (4, "4 rows, more than max_rows 3"),
    ],
)
def test_row_count_bounds(rows: int, message: str | None) -> None:
    """A batch must have between min_rows and max_rows rows, both inclusive."""
    c = contract(Column("a", "int"), batch=BatchRules(min_rows=2, max_rows=3))
    report, _ = check(table(a=list(range(rows))), c)
    outcome = result(report, "row_count", None)
    assert outcome.passed is (message is None)
    if message is not None:
        assert outcome.message == message


# --- dictionary-encoded and large strings --------------------------------------------------


def test_dictionary_encoded_strings() -> None:
    """A dictionary-encoded string column is checked and conformed as plain strings."""
    values = pa.array(["eu", "us", "eu", None]).dictionary_encode()
    c = contract(Column("region", "category", allowed=("eu", "us")))
    out = conformed(table(region=values), c)
    assert out.column("region").type == pa.string()
    assert out.column("region").to_pylist() == ["eu", "us", "eu", None]
    report, _ = check(table(region=pa.array(["eu", "uk"]).dictionary_encode()), c)
    assert only_failure(report).values == ("uk",)


def test_dictionary_encoded_numbers_as_text() -> None:
    """Dictionary-encoded numeric text converts like plain text."""
    out = conformed(
        table(a=pa.array(["1", "2", "1"]).dictionary_encode()), contract(Column("a", "int"))
    )
    assert out.column("a").to_pylist() == [1, 2, 1]


def test_large_strings() -> None:
    """A large_string column is checked and conformed to string."""
    c = contract(Column("s", "string", regex="^a"), Column("n", "float"))
    out = conformed(
        table(s=pa.array(["ab"], pa.large_string()), n=pa.array(["1.5"], pa.large_string())), c
    )
    assert out.column("s").type == pa.string()
    assert out.column("n").to_pylist() == [1.5]


def test_pandas_categorical_and_strings() -> None:
    """A pandas frame's categorical and string columns (dictionary of large_string) conform."""
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-06-01 09:00", "2024-06-01 10:00"], utc=True),
            "region": pd.Categorical(["eu", "us"]),
            "name": ["ann", "bob"],
        }
    )
    c = contract(Column("region", "category", allowed=("eu", "us")), Column("name", "string"))
    out = conformed(pa.Table.from_pandas(frame, preserve_index=False), c)
    assert out.schema == c.arrow_schema
    assert out.column("region").to_pylist() == ["eu", "us"]


def test_string_view() -> None:
    """A string_view column is checked and conformed to string."""
    out = conformed(table(s=pa.array(["x"], pa.string_view())), contract(Column("s", "string")))
    assert out.column("s").type == pa.string()


# --- sampling and the report ----------------------------------------------------------------


def test_row_numbers_are_zero_based() -> None:
    """The first data row is row 0."""
    report, _ = check(table(a=[None, 1]), contract(Column("a", "int", nullable=False)))
    assert only_failure(report).rows == (0,)


def test_sample_caps_rows_and_values() -> None:
    """At most ``sample`` failing rows and values are kept; ``failing`` counts them all."""
    values = [-1 if i % 3 == 0 else 1 for i in range(100)]
    report, _ = check(table(a=values), contract(Column("a", "int", min=0)), sample=4)
    failure = only_failure(report)
    assert failure.failing == 34
    assert failure.rows == (0, 3, 6, 9)
    assert failure.values == (-1, -1, -1, -1)
    assert failure.message == "34 rows below the minimum 0"


def test_default_sample_is_ten() -> None:
    """Without ``sample``, the first ten failing rows are kept."""
    report, _ = check(table(a=[None] * 25), contract(Column("a", "int", nullable=False)))
    failure = only_failure(report)
    assert failure.rows == tuple(range(10))
    assert failure.failing == 25


def test_describe_summarises_a_result() -> None:
    """describe() gives the column, rule, message and the first five rows."""
    report, _ = check(table(a=[-1] * 7), contract(Column("a", "int", min=0)))
    assert only_failure(report).describe() == (
        "a: min: 7 rows below the minimum 0 (rows 0, 1, 2, 3, 4, ...)"
    )
    assert RuleResult("min", "a", False, 1, (4,), (-1,), "1 row below").describe() == (
        "a: min: 1 row below (row 4)"
    )
    assert RuleResult("row_count", None, False, message="the batch has no rows").describe() == (
        "row_count: the batch has no rows"
    )


def test_report_to_dict_is_strict_json() -> None:
    """A report with NaN, infinity, timestamps and dates in its samples is strict JSON."""
    c = contract(
        Column("x", "float", max=1),
        Column("d", "date", max="2024-01-01"),
        Column("t", "timestamp", max="2024-01-01T00:00:00Z"),
        Column("y", "float", max=0),
    )
    data = table(
        x=[float("inf"), 0.0],
        d=[date(2024, 1, 2), None],
        t=pa.array([datetime(2024, 1, 2, tzinfo=UTC), None], TS_TYPE),
        y=[0.0, 5.0],
    )
    report, _ = check(data, c)
    text = json.dumps(report.to_dict(), allow_nan=False)
    body = json.loads(text)
    assert body["rows"] == 2
    assert body["passed"] is False
    values = {(r["rule"], r["column"]): r["values"] for r in body["results"]}
    assert values[("max", "x")] == ["inf"]
    assert values[("max", "d")] == ["2024-01-02"]
    assert values[("max", "t")] == ["2024-01-02T00:00:00+00:00"]
    assert values[("max", "y")] == [5.0]


def test_report_round_trips_through_dict() -> None:
    """from_dict(to_dict()) rebuilds a report equal in every field and in its dict form."""
    c = contract(
        Column("a", "int", nullable=False, min=0),
        Column("s", "string", regex="^x"),
        primary_key=("a",),
    )
    report, _ = check(table(a=[None, -1, 2, 2], s=["x", "y", "x", None]), c)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    again = ValidationReport.from_dict(data)
    assert again == report
    assert again.to_dict() == report.to_dict()
    assert again.passed is False
    assert [r.rule for r in again.failures] == [
        "not_null", "min", "regex", "primary_key_null", "primary_key_duplicate",
    ]  # fmt: skip


def test_report_with_non_json_values_round_trips_as_json() -> None:
    """A report whose samples hold datetimes keeps their ISO form through from_dict."""
    data = pa.table({"ts": pa.array([NOW + timedelta(days=1)], TS_TYPE)})
    report, _ = check(data, contract())
    body = report.to_dict()
    again = ValidationReport.from_dict(body)
    assert again.to_dict() == body
    assert again.failures[0].values == ("2024-06-02T12:00:00+00:00",)


def test_passing_report_serialises() -> None:
    """A passing report's dict says passed and lists each rule."""
    report, _ = check(table(a=[1]), contract(Column("a", "int")))
    body = report.to_dict()
    assert body["passed"] is True
    assert body["rows"] == 1
    assert {r["rule"] for r in body["results"]} == {"future", "row_count"}
    assert ValidationReport.from_dict(body) == report
