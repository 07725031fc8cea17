"""Vectorised validation of a batch against its contract.

:func:`validate` conforms each column to its declared type and checks every
rule with Arrow compute kernels (DuckDB for the few casts Arrow cannot do row
by row). Nothing loops over rows in Python. The result is a
:class:`ValidationReport`: per rule, how many rows fail and the first failing
row numbers (0-based, the first data row is row 0) with their values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.data.contract import Column, Contract, format_duration

__all__ = ["RuleResult", "ValidationReport", "validate"]

_INT = r"^\s*[+-]?[0-9]+\s*$"
_FLOAT = r"^\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\s*$"
_BOOL = ("true", "false", "t", "f", "1", "0", "yes", "no", "y", "n")
_TRUE = ("true", "t", "1", "yes", "y")
_ZONE = (
    r"[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?\s*"
    r"(?:[zZ]|[+-][0-9]{2}(?::?[0-9]{2})?|\s*UTC)\s*$"
)
_INT_RANGE = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one column (or on the whole batch)."""

    rule: str
    column: str | None
    passed: bool
    failing: int = 0
    rows: tuple[int, ...] = ()
    values: tuple[Any, ...] = ()
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "passed": self.passed,
            "failing": self.failing,
            "rows": list(self.rows),
            "values": [_json_value(v) for v in self.values],
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=data["rule"],
            column=data.get("column"),
            passed=bool(data["passed"]),
            failing=int(data.get("failing", 0)),
            rows=tuple(data.get("rows", ())),
            values=tuple(data.get("values", ())),
            message=data.get("message", ""),
        )

    def describe(self) -> str:
        """A one-line summary: ``amount: min: 3 rows below 0 (rows 4, 9, 17)``."""
        where = f"{self.column}: " if self.column else ""
        rows = ""
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            rows = f" (row{'s' if len(self.rows) > 1 else ''} {shown}"
            rows += ", ...)" if self.failing > 5 else ")"
        return f"{where}{self.rule}: {self.message}{rows}"


@dataclass(frozen=True)
class ValidationReport:
    """Every rule's result for one batch."""

    rows: int
    results: tuple[RuleResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def __iter__(self) -> Iterator[RuleResult]:
        return iter(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        return cls(
            rows=int(data["rows"]),
            results=tuple(RuleResult.from_dict(r) for r in data.get("results", ())),
        )


class _Checker:
    """Collects rule results; samples failing rows from a boolean mask."""

    def __init__(self, sample: int) -> None:
        self.sample = sample
        self.results: list[RuleResult] = []

    def ok(self, rule: str, column: str | None, message: str = "") -> None:
        self.results.append(RuleResult(rule, column, True, message=message))

    def fail(self, rule: str, column: str | None, message: str, failing: int = 0) -> None:
        self.results.append(RuleResult(rule, column, False, failing, message=message))

    def mask(
        self,
        rule: str,
        column: str | None,
        mask: pa.ChunkedArray | pa.Array,
        values: pa.ChunkedArray | pa.Array | None,
        message: str,
    ) -> bool:
        """Record ``rule`` as failing on the rows where ``mask`` is true; True if none fail."""
        mask = pc.fill_null(mask, False)
        failing = int(pc.sum(mask).as_py() or 0)
        if failing == 0:
            self.ok(rule, column)
            return True
        rows = (
            pc.indices_nonzero(mask).slice(0, self.sample)
            if isinstance(mask, pa.Array)
            else pc.indices_nonzero(mask.combine_chunks()).slice(0, self.sample)
        )
        sampled = values.take(rows).to_pylist() if values is not None else []
        self.results.append(
            RuleResult(
                rule,
                column,
                False,
                failing,
                tuple(rows.to_pylist()),
                tuple(sampled),
                message.format(n=failing, rows="row" if failing == 1 else "rows"),
            )
        )
        return False


def _duck_cast(values: pa.ChunkedArray, duck_type: str) -> pa.ChunkedArray:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("v", pa.table({"v": values}))
        result = con.sql(f"SELECT TRY_CAST(v AS {duck_type}) AS v FROM v").to_arrow_table()
    finally:
        con.close()
    return result.column("v")


def _strip_dictionary(values: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(values.type):
        # pandas categoricals are dictionaries of large_string: decode, then narrow below.
        values = pc.cast(values, values.type.value_type)
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        values = pc.cast(values, pa.string())
    return values


def _conform(col: Column, values: pa.ChunkedArray, check: _Checker) -> pa.ChunkedArray | None:
    """Cast ``values`` to the column's type; record failing rows and return None on failure."""
    target = col.arrow_type
    values = _strip_dictionary(values)
    source = values.type
    if source.equals(target):
        return values
    name = col.name
    expected = f"expected {col.type}"
    if pa.types.is_null(source):
        return pa.chunked_array([pa.nulls(len(values), target)])
    if pa.types.is_string(source):
        valid = pc.is_valid(values)
        kind = col.kind
        if kind in ("string", "category"):
            return values
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        if kind == "int":
            good = pc.match_substring_regex(values, _INT)
        elif kind == "float":
            good = pc.match_substring_regex(lowered, _FLOAT)
        elif kind == "bool":
            good = pc.is_in(lowered, pa.array(_BOOL))
        elif kind == "timestamp":
            zoned = pc.match_substring_regex(values, _ZONE)
            if not check.mask(
                "timezone",
                name,
                pc.and_(valid, pc.invert(zoned)),
                values,
                "{n} {rows} without a timezone (write e.g. 2024-01-31T12:00:00Z)",
            ):
                return None
            parsed = _duck_cast(values, "TIMESTAMPTZ")
            good = pc.is_valid(parsed)
            if check.mask(
                "type", name, pc.and_(valid, pc.invert(good)), values, "{n} {rows} not a timestamp"
            ):
                return pc.cast(parsed, target)
            return None
        else:  # date
            parsed = _duck_cast(values, "DATE")
            if check.mask(
                "type",
                name,
                pc.and_(valid, pc.invert(pc.is_valid(parsed))),
                values,
                "{n} {rows} not a date (YYYY-MM-DD)",
            ):
                return pc.cast(parsed, target)
            return None
        if not check.mask(
            "type",
            name,
            pc.and_(valid, pc.invert(good)),
            values,
            f"{{n}} {{rows}} not {'an' if kind == 'int' else 'a'} {kind}",
        ):
            return None
        if kind == "bool":
            return pc.if_else(
                valid, pc.is_in(lowered, pa.array(_TRUE)), pa.scalar(None, pa.bool_())
            )
        if kind == "int":
            # Arrow's cast refuses "+4" and stops at the first overflow; DuckDB parses
            # both row by row, leaving null where a value is beyond int64.
            as_int = _duck_cast(pc.utf8_trim_whitespace(values), "BIGINT")
            if not check.mask(
                "type",
                name,
                pc.and_(valid, pc.is_null(as_int)),
                values,
                "{n} {rows} out of the int64 range",
            ):
                return None
            return _narrow_int(col, as_int, values, check)
        return pc.cast(pc.utf8_trim_whitespace(values), target)
    if col.kind == "timestamp":
        if pa.types.is_timestamp(source):
            if source.tz is None:
                if check.mask(
                    "timezone",
                    name,
                    pc.is_valid(values),
                    values,
                    "{n} {rows} without a timezone (the column's type has no zone; "
                    "localise it to UTC before ingesting)",
                ):
                    return pc.cast(values, target)  # only nulls: nothing to localise
                return None
            return pc.cast(values, target, safe=False)
        check.fail("type", name, f"{expected}, got {source}", len(values))
        return None
    if col.kind == "date":
        if pa.types.is_date(source):
            return pc.cast(values, target)
        check.fail("type", name, f"{expected}, got {source}", len(values))
        return None
    if col.kind == "int" and (pa.types.is_integer(source) or pa.types.is_floating(source)):
        if pa.types.is_floating(source):
            finite = pc.is_finite(values)
            fractional = pc.or_(pc.invert(finite), pc.not_equal(pc.trunc(values), values))
            if not check.mask(
                "type",
                name,
                pc.and_(pc.is_valid(values), fractional),
                values,
                "{n} {rows} not a whole number",
            ):
                return None
            # An unsafe cast would wrap these around silently.
            outside = pc.or_(pc.less(values, -(2.0**63)), pc.greater_equal(values, 2.0**63))
        elif pa.types.is_uint64(source):
            outside = pc.greater(values, pa.scalar(2**63 - 1, pa.uint64()))
        else:
            outside = None
        if outside is not None and not check.mask(
            "type", name, outside, values, "{n} {rows} out of the int64 range"
        ):
            return None
        as_int = pc.cast(values, pa.int64(), safe=False)
        return _narrow_int(col, as_int, values, check)
    if col.kind == "float" and (
        pa.types.is_integer(source) or pa.types.is_floating(source) or pa.types.is_decimal(source)
    ):
        return pc.cast(values, target, safe=False)
    if col.kind in ("string", "category") and (
        pa.types.is_integer(source) or pa.types.is_boolean(source)
    ):
        return pc.cast(values, target)
    check.fail("type", name, f"{expected}, got {source}", len(values))
    return None


def _narrow_int(
    col: Column, as_int: pa.ChunkedArray, original: pa.ChunkedArray, check: _Checker
) -> pa.ChunkedArray | None:
    bounds = _INT_RANGE.get(col.type)
    if bounds is not None:
        lo, hi = bounds
        out = pc.or_(pc.less(as_int, lo), pc.greater(as_int, hi))
        if not check.mask(
            "type", col.name, out, original, f"{{n}} {{rows}} out of the {col.type} range"
        ):
            return None
    return pc.cast(as_int, col.arrow_type)


def _scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    return pa.scalar(value, type=type_)


def _check_column(col: Column, values: pa.ChunkedArray, check: _Checker) -> None:
    name = col.name
    if not col.nullable:
        check.mask("not_null", name, pc.is_null(values), values, "{n} null {rows}")
    lo, hi = col.min_value(), col.max_value()
    if lo is not None:
        check.mask(
            "min",
            name,
            pc.less(values, _scalar(lo, values.type)),
            values,
            f"{{n}} {{rows}} below the minimum {col.min}",
        )
    if hi is not None:
        check.mask(
            "max",
            name,
            pc.greater(values, _scalar(hi, values.type)),
            values,
            f"{{n}} {{rows}} above the maximum {col.max}",
        )
    if (lo is not None or hi is not None) and pa.types.is_floating(values.type):
        # NaN compares false with every bound: a bounded column refuses it outright
        bounds = (
            f"[{'-inf' if col.min is None else col.min}, {'inf' if col.max is None else col.max}]"
        )
        check.mask(
            "nan",
            name,
            pc.is_nan(values),
            values,
            f"{{n}} {{rows}} with NaN, outside the bounds {bounds}",
        )
    if col.allowed is not None:
        allowed = pa.array(list(col.allowed), type=values.type)
        outside = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed)))
        shown = ", ".join(map(str, col.allowed[:10])) + (", ..." if len(col.allowed) > 10 else "")
        check.mask("allowed", name, outside, values, f"{{n}} {{rows}} not in [{shown}]")
    if col.regex is not None:
        matched = pc.match_substring_regex(values, col.regex)
        check.mask(
            "regex",
            name,
            pc.and_(pc.is_valid(values), pc.invert(matched)),
            values,
            f"{{n}} {{rows}} not matching {col.regex}",
        )
    if col.unique:
        _check_unique(
            check,
            "unique",
            name,
            pa.table({name: values}),
            keys=[name],
            message="{n} {rows} repeat a value",
        )


def _duplicate_mask(table: pa.Table, keys: list[str]) -> pa.ChunkedArray | None:
    """True on every row whose key values occur more than once (nulls ignored)."""
    present = table.select(keys)
    distinct = present.group_by(keys).aggregate([]).num_rows
    if distinct == present.num_rows:
        return None
    con = duckdb.connect()
    try:
        con.register("t", present)
        cols = ", ".join(f'"{k}"' for k in keys)
        not_null = " AND ".join(f'"{k}" IS NOT NULL' for k in keys)
        result = con.sql(
            f"SELECT coalesce(count(*) OVER (PARTITION BY {cols}) > 1 AND {not_null}, false) "
            f"AS dup FROM (SELECT *, row_number() OVER () AS rn FROM t) ORDER BY rn"
        ).to_arrow_table()
    finally:
        con.close()
    return result.column("dup")


def _check_unique(
    check: _Checker, rule: str, label: str, table: pa.Table, *, keys: list[str], message: str
) -> None:
    mask = _duplicate_mask(table, keys)
    if mask is None:
        check.ok(rule, label)
        return
    if len(keys) == 1:
        values: pa.ChunkedArray = table.column(keys[0])
    else:
        values = pc.binary_join_element_wise(
            *[pc.cast(table.column(k), pa.string()) for k in keys], "|"
        )
    check.mask(rule, label, mask, values, message)


def validate(
    table: pa.Table,
    contract: Contract,
    *,
    now: datetime,
    future_tolerance: timedelta = timedelta(minutes=5),
    sample: int = 10,
) -> tuple[ValidationReport, pa.Table | None]:
    """Check ``table`` against ``contract``.

    Returns the report and, when every rule passes, the table conformed to the
    contract's schema (columns in contract order, declared types); else None.
    """
    check = _Checker(sample)
    rows = table.num_rows
    present = set(table.column_names)
    declared = contract.names
    for name in declared:
        if name not in present:
            check.fail("missing_column", name, "column is missing")
    extra = [n for n in table.column_names if n not in declared]
    for name in extra:
        if contract.extra_columns == "reject":
            check.fail(
                "extra_column",
                name,
                "column is not in the contract (declare it, or set extra_columns: drop)",
            )
        else:
            check.ok("extra_column", name, "not in the contract: dropped")
    if len(set(table.column_names)) != len(table.column_names):
        check.fail("duplicate_column", None, "the input has two columns with the same name")
        return ValidationReport(rows, tuple(check.results)), None

    conformed: dict[str, pa.ChunkedArray] = {}
    for col in contract.columns:
        if col.name not in present:
            continue
        values = _conform(col, table.column(col.name), check)
        if values is not None:
            conformed[col.name] = values
            _check_column(col, values, check)

    keys = list(contract.primary_key)
    if keys and all(k in conformed for k in keys):
        key_table = pa.table({k: conformed[k] for k in keys})
        null_key = pc.is_null(key_table.column(0))
        for k in keys[1:]:
            null_key = pc.or_(null_key, pc.is_null(key_table.column(k)))
        label = ",".join(keys)
        check.mask(
            "primary_key_null", label, null_key, key_table.column(0), "{n} {rows} with a null key"
        )
        _check_unique(
            check,
            "primary_key_duplicate",
            label,
            key_table,
            keys=keys,
            message="{n} {rows} share a key with another row",
        )

    ts = conformed.get(contract.event_time)
    if ts is not None:
        limit = now + future_tolerance
        check.mask(
            "future",
            contract.event_time,
            pc.greater(ts, _scalar(limit, ts.type)),
            ts,
            f"{{n}} {{rows}} in the future (after {limit.isoformat()})",
        )

    rules = contract.batch
    min_rows = 1 if rules.min_rows is None else rules.min_rows
    if rows < min_rows:
        check.fail(
            "row_count",
            None,
            "the batch has no rows"
            if rows == 0
            else f"{rows} row{'' if rows == 1 else 's'}, fewer than min_rows {min_rows}",
        )
    elif rules.max_rows is not None and rows > rules.max_rows:
        check.fail("row_count", None, f"{rows} rows, more than max_rows {rules.max_rows}")
    else:
        check.ok("row_count", None)
    if rules.max_age is not None and ts is not None:
        newest = pc.max(ts).as_py()
        oldest_allowed = now - rules.max_age
        age = format_duration(rules.max_age)
        if rows == 0:
            check.ok("freshness", contract.event_time, "an empty batch has no event to judge")
        elif newest is None:
            check.fail(
                "freshness",
                contract.event_time,
                f"no row has an event time, so the batch cannot be within max_age {age}",
            )
        elif newest < oldest_allowed:
            check.fail(
                "freshness",
                contract.event_time,
                f"newest event {newest.isoformat()} is older than max_age {age} "
                f"(before {oldest_allowed.isoformat()})",
            )
        else:
            check.ok("freshness", contract.event_time)

    report = ValidationReport(rows, tuple(check.results))
    if not report.passed:
        return report, None
    schema = contract.arrow_schema
    arrays = [conformed[c.name] for c in contract.columns]
    return report, pa.Table.from_arrays(arrays, schema=schema)
