"""Mergeable profiles of the prediction log: what every monitoring figure of a window
needs, built once per step of the log and merged into windows.

A :class:`Profile` of a stretch of the log keeps, for the predictions served (shadow
copies excluded):

- per numeric input (``feature.<name>``): its finite values, sorted, and how many were
  null, not finite, or not numbers at all (type errors); the Kolmogorov-Smirnov and
  Wasserstein statistics need the values themselves, so they stay exact;
- per categorical input: the count of each category (nulls as ``"null"``, as in the
  reference) and of type errors;
- per input, how often it fell back to its default (``missing.<name>``);
- per model version (shadow included): rows, failed predictions, the finite predictions,
  and one latency per request.

Profiles of consecutive stretches merge (:meth:`Profile.merge`): counts add up and sorted
values merge, so a sliding window of 24 one-hour steps is the merge of 24 cached hourly
profiles and moving it by an hour reads one hour of the log, not 24.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.core.duck import cursor
from driftloop.errors import InputError
from driftloop.monitoring.drift import float_list
from driftloop.monitoring.statistics import category_counts

__all__ = [
    "CategoricalColumn",
    "NumericColumn",
    "Profile",
    "VersionStats",
    "as_kind",
    "column_kind",
]

Kind = Literal["numeric", "categorical"]
_FEATURE = "feature."
_MISSING = "missing."


def column_kind(type_: pa.DataType) -> Kind | None:
    """How a column of this Arrow type is profiled (None: not at all)."""
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_dictionary(type_)
    ):
        return "categorical"
    return None


@dataclass
class NumericColumn:
    values: npt.NDArray[np.float64]
    """The finite values, sorted."""
    count: int
    nulls: int = 0
    nonfinite: int = 0
    type_errors: int = 0
    kind: Literal["numeric"] = "numeric"


@dataclass
class CategoricalColumn:
    counts: dict[str, int]
    """Count of each category, nulls as ``"null"``."""
    count: int
    nulls: int = 0
    type_errors: int = 0
    kind: Literal["categorical"] = "categorical"


Column = NumericColumn | CategoricalColumn


@dataclass
class VersionStats:
    rows: int = 0
    errors: int = 0
    predictions: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    """Finite predictions (served and shadow), sorted."""
    latencies: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    """One latency (ms) per request this version answered."""
    roles: dict[str, int] = field(default_factory=dict)


@dataclass
class Profile:
    """A profile of the prediction log over ``[start, end)`` (see the module doc)."""

    start: datetime
    end: datetime
    rows: int = 0
    """Predictions served (shadow copies excluded)."""
    columns: dict[str, Column] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    missing_any: int = 0
    versions: dict[int, VersionStats] = field(default_factory=dict)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        table: pa.Table,
        *,
        start: datetime,
        end: datetime,
        kinds: Mapping[str, Kind] | None = None,
    ) -> Profile:
        """The profile of ``table`` (records of one model's prediction log).

        ``kinds`` says how to read a column whatever its type in the log (the reference's
        kinds); other ``feature.*`` columns are profiled by their type.
        """
        profile = cls(start, end)
        if table.num_rows == 0:
            return profile
        for name in ("version", "role", "prediction"):
            if name not in table.column_names:
                raise InputError(f"prediction log records need a column {name!r}", field=name)
        profile.versions = _version_stats(table)
        served = table.filter(pc.not_equal(table.column("role"), "shadow"))
        if "error" in served.column_names:
            served = served.filter(pc.is_null(served.column("error")))
        profile.rows = served.num_rows
        wanted = dict(kinds or {})
        for name in served.column_names:
            if name.startswith(_FEATURE) and name not in wanted:
                kind = column_kind(served.schema.field(name).type)
                if kind is not None:
                    wanted[name] = kind
        for name, kind in wanted.items():
            if name not in served.column_names:
                continue
            column = served.column(name)
            profile.columns[name] = _numeric(column) if kind == "numeric" else _categorical(column)
        flags = [n for n in served.column_names if n.startswith(_MISSING)]
        if flags:
            any_missing = None
            for name in flags:
                column = pc.fill_null(served.column(name), False)
                profile.missing[name[len(_MISSING) :]] = int(pc.sum(column).as_py() or 0)
                any_missing = column if any_missing is None else pc.or_(any_missing, column)
            profile.missing_any = int(pc.sum(any_missing).as_py() or 0)
        return profile

    # -- merging -------------------------------------------------------------------------

    @classmethod
    def merge(cls, profiles: Sequence[Profile]) -> Profile:
        """One profile of consecutive stretches (in any order)."""
        if not profiles:
            raise InputError("nothing to merge")
        out = cls(min(p.start for p in profiles), max(p.end for p in profiles))
        out.rows = sum(p.rows for p in profiles)
        out.missing_any = sum(p.missing_any for p in profiles)
        for p in profiles:
            for name, n in p.missing.items():
                out.missing[name] = out.missing.get(name, 0) + n
        names = sorted({n for p in profiles for n in p.columns})
        for name in names:
            parts = [p.columns[name] for p in profiles if name in p.columns]
            out.columns[name] = _merge_columns(parts)
        for version in sorted({v for p in profiles for v in p.versions}):
            stats = [p.versions[version] for p in profiles if version in p.versions]
            roles: dict[str, int] = {}
            for s in stats:
                for role, n in s.roles.items():
                    roles[role] = roles.get(role, 0) + n
            out.versions[version] = VersionStats(
                rows=sum(s.rows for s in stats),
                errors=sum(s.errors for s in stats),
                predictions=_merge_sorted([s.predictions for s in stats]),
                latencies=np.concatenate([s.latencies for s in stats]),
                roles=roles,
            )
        return out

    @property
    def main_version(self) -> int | None:
        """The version that served most predictions (shadow excluded)."""
        best, most = None, 0
        for version, stats in sorted(self.versions.items()):
            served = sum(n for role, n in stats.roles.items() if role != "shadow")
            if served > most:
                best, most = version, served
        return best

    # -- persistence ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The profile as one Parquet file (one row per column and per version)."""
        rows: list[dict[str, Any]] = []
        for name, column in self.columns.items():
            row: dict[str, Any] = {
                "section": column.kind,
                "name": name,
                "count": column.count,
                "nulls": column.nulls,
                "type_errors": column.type_errors,
            }
            if isinstance(column, NumericColumn):
                row.update(values=column.values, nonfinite=column.nonfinite)
            else:
                row.update(labels=list(column.counts), counts=list(column.counts.values()))
            rows.append(row)
        for name, n in self.missing.items():
            rows.append({"section": "missing", "name": name, "count": n})
        rows.append({"section": "rows", "count": self.rows, "nulls": self.missing_any})
        for version, s in self.versions.items():
            rows.append(
                {
                    "section": "version",
                    "version": version,
                    "count": s.rows,
                    "nulls": s.errors,
                    "values": s.predictions,
                    "latencies": s.latencies,
                    "labels": list(s.roles),
                    "counts": list(s.roles.values()),
                }
            )
        floats = pa.list_(pa.float64())

        def col(key: str, type_: pa.DataType) -> pa.Array:
            return pa.array([r.get(key) for r in rows], type_)

        table = pa.table(
            {
                "section": col("section", pa.string()),
                "name": col("name", pa.string()),
                "version": col("version", pa.int64()),
                "count": col("count", pa.int64()),
                "nulls": col("nulls", pa.int64()),
                "nonfinite": col("nonfinite", pa.int64()),
                "type_errors": col("type_errors", pa.int64()),
                "values": col("values", floats),
                "latencies": col("latencies", floats),
                "labels": col("labels", pa.list_(pa.string())),
                "counts": col("counts", pa.list_(pa.int64())),
            },
            metadata={"start": self.start.isoformat(), "end": self.end.isoformat()},
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return bytes(sink.getvalue().to_pybytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"not a prediction-log profile: {exc}") from None
        meta = table.schema.metadata or {}
        out = cls(
            datetime.fromisoformat(meta[b"start"].decode()),
            datetime.fromisoformat(meta[b"end"].decode()),
        )
        big = ("values", "latencies")
        lists = {name: table.column(name) for name in big}
        for i, r in enumerate(table.drop_columns(list(big)).to_pylist()):
            section = r["section"]
            if section == "numeric":
                out.columns[r["name"]] = NumericColumn(
                    float_list(lists["values"], i),
                    r["count"],
                    r["nulls"],
                    r["nonfinite"],
                    r["type_errors"],
                )
            elif section == "categorical":
                out.columns[r["name"]] = CategoricalColumn(
                    dict(zip(r["labels"], r["counts"], strict=True)),
                    r["count"],
                    r["nulls"],
                    r["type_errors"],
                )
            elif section == "missing":
                out.missing[r["name"]] = r["count"]
            elif section == "rows":
                out.rows, out.missing_any = r["count"], r["nulls"]
            elif section == "version":
                out.versions[r["version"]] = VersionStats(
                    rows=r["count"],
                    errors=r["nulls"],
                    predictions=float_list(lists["values"], i),
                    latencies=float_list(lists["latencies"], i),
                    roles=dict(zip(r["labels"], r["counts"], strict=True)),
                )
        return out


def _merge_sorted(parts: Sequence[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    if len(parts) == 1:
        return parts[0]
    # sorted runs: the stable sort (timsort) mostly merges them
    return np.sort(np.concatenate(parts), kind="stable")


def _merge_columns(parts: Sequence[Column]) -> Column:
    if all(isinstance(p, NumericColumn) for p in parts):
        numeric = [p for p in parts if isinstance(p, NumericColumn)]
        return NumericColumn(
            _merge_sorted([p.values for p in numeric]),
            sum(p.count for p in numeric),
            sum(p.nulls for p in numeric),
            sum(p.nonfinite for p in numeric),
            sum(p.type_errors for p in numeric),
        )
    counts: dict[str, int] = {}
    for p in parts:
        part_counts = p.counts if isinstance(p, CategoricalColumn) else _as_categories(p)
        for key, n in part_counts.items():
            counts[key] = counts.get(key, 0) + n
    return CategoricalColumn(
        counts,
        sum(p.count for p in parts),
        sum(p.nulls for p in parts),
        sum(p.type_errors for p in parts),
    )


def _as_categories(column: NumericColumn) -> dict[str, int]:
    """A numeric column's values counted as categories (a column whose kind changed)."""
    out = category_counts(pa.array(column.values))
    if column.nulls:
        out["null"] = out.get("null", 0) + column.nulls
    return out


def _numeric(column: pa.ChunkedArray) -> NumericColumn:
    nulls = column.null_count
    type_errors = 0
    if column_kind(column.type) != "numeric":
        # read as numbers: what does not parse is a type error, not a null
        with cursor() as con:
            con.register("t", pa.table({"v": column}))
            parsed = con.sql(
                "SELECT TRY_CAST(CAST(v AS VARCHAR) AS DOUBLE) AS v FROM t"
            ).to_arrow_table()
        values = parsed.column("v")
        type_errors = values.null_count - nulls
    else:
        values = column
    array = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    finite = np.isfinite(array)
    return NumericColumn(
        np.sort(array[finite]),
        len(column),
        nulls,
        int((~finite).sum()) - values.null_count,
        type_errors,
    )


def _categorical(column: pa.ChunkedArray) -> CategoricalColumn:
    return CategoricalColumn(category_counts(column), len(column), column.null_count)


def _split(table: pa.Table, column: str) -> list[tuple[int, npt.NDArray[np.float64]]]:
    """``column``'s values for each version of a table ordered by version."""
    versions = table.column("version").to_numpy(zero_copy_only=False)
    values = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    keys, starts = np.unique(versions, return_index=True)
    ends = [*starts[1:], len(versions)]
    return [(int(k), values[a:b]) for k, a, b in zip(keys, starts, ends, strict=True)]


def _version_stats(table: pa.Table) -> dict[int, VersionStats]:
    """Rows, errors, predictions and per-request latencies of each version, grouped in
    DuckDB."""
    has_error = "error" in table.column_names
    has_latency = "latency_ms" in table.column_names and "request_id" in table.column_names
    error = "error IS NOT NULL" if has_error else "FALSE"
    view = table.select(
        [
            c
            for c in ("version", "role", "prediction", "error", "latency_ms", "request_id")
            if c in table.column_names
        ]
    )
    with cursor() as con:
        return _stats_of(con, view, error, has_latency)


def _stats_of(
    con: duckdb.DuckDBPyConnection, view: pa.Table, error: str, has_latency: bool
) -> dict[int, VersionStats]:
    con.register("log", view)
    counts = con.sql(
        f"""SELECT version, role, count(*) AS n, count(*) FILTER (WHERE {error}) AS errors
            FROM log GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    out: dict[int, VersionStats] = {}
    for version, role, n, errors in counts:
        stats = out.setdefault(int(version), VersionStats())
        stats.rows += int(n)
        stats.errors += int(errors)
        stats.roles[str(role)] = stats.roles.get(str(role), 0) + int(n)
    predictions = con.sql(
        f"""SELECT version, prediction FROM log
            WHERE NOT ({error}) AND isfinite(prediction) ORDER BY version, prediction"""
    ).to_arrow_table()
    for version, values in _split(predictions, "prediction"):
        out[version].predictions = values
    if has_latency:
        latencies = con.sql(
            """SELECT version, max(latency_ms) AS l FROM log
               WHERE role <> 'shadow' OR role IS NULL GROUP BY version, request_id
               ORDER BY version"""
        ).to_arrow_table()
        for version, values in _split(latencies, "l"):
            out[version].latencies = values
    return out


def as_kind(column: Column, kind: str) -> Column:
    """``column`` read as ``kind``: numbers counted as categories, or categories parsed
    as numbers (a category that is not a number is a type error)."""
    if column.kind == kind:
        return column
    if isinstance(column, NumericColumn):
        return CategoricalColumn(
            _as_categories(column), column.count, column.nulls, column.type_errors
        )
    keys = [k for k in column.counts if k != "null"]
    numbers = np.array([_number(k) for k in keys], dtype=np.float64)
    counts = np.array([column.counts[k] for k in keys], dtype=np.int64)
    ok = np.isfinite(numbers)
    values = np.sort(np.repeat(numbers[ok], counts[ok]))
    return NumericColumn(
        values,
        column.count,
        column.nulls,
        0,
        column.type_errors + int(counts[~ok].sum()),
    )


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
