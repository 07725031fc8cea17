"""Drift of a whole table against a reference: one statistic per column, chosen
automatically or by override, with the false-alarm rate controlled across columns.

:class:`TableReference` fits a reference per column of an Arrow table (numeric types:
:class:`~driftloop.monitoring.statistics.NumericReference`; strings, booleans and
dictionaries: :class:`~driftloop.monitoring.statistics.CategoricalReference`).
:func:`detect_drift` compares a current table with it:

- each column gets the statistic :func:`~driftloop.monitoring.statistics.auto_statistic`
  picks for its type and the reference's size, unless ``by_type`` or ``by_column``
  names another;
- p-values of the tests are adjusted across the columns tested — Benjamini-Hochberg
  (``"bh"``, the default: controls the expected share of false alarms among the
  alarms) or Bonferroni (controls the chance of any false alarm) — so 25 columns do
  not give 25 chances to cry wolf; a test drifts when its *adjusted* p-value is below
  its threshold;
- an effect size is reported next to each p-value: D for Kolmogorov-Smirnov,
  Cramér's V for chi-square.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.errors import InputError
from driftloop.monitoring.statistics import (
    DEFAULT_THRESHOLDS,
    CategoricalReference,
    NumericReference,
    Statistic,
    StatisticName,
    auto_statistic,
    chisquare,
    jensenshannon,
    ks,
    psi,
    wasserstein,
    wasserstein_and_ks,
)

__all__ = ["ColumnDrift", "DriftReport", "TableReference", "adjust_p_values", "detect_drift"]

Correction = Literal["bh", "bonferroni"] | None
_FUNCTIONS = {
    "ks": ks,
    "wasserstein": wasserstein,
    "chisquare": chisquare,
    "psi": psi,
    "jensenshannon": jensenshannon,
}
_NUMERIC_ONLY = {"ks", "wasserstein"}


def float_list(column: pa.ChunkedArray, row: int) -> npt.NDArray[np.float64]:
    """Row ``row`` of a ``list<double>`` column as a numpy array, without Python floats."""
    scalar = column[row]
    if not scalar.is_valid:
        return np.empty(0)
    values: npt.NDArray[np.float64] = scalar.values.to_numpy(zero_copy_only=False).astype(
        np.float64, copy=False
    )
    return values


def _numeric(type_: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)
    )


@dataclass(frozen=True)
class TableReference:
    """A reference per column, fitted once (e.g. on a model's training data)."""

    columns: dict[str, NumericReference | CategoricalReference]
    unique_values: dict[str, int]
    null_shares: dict[str, float] = field(default_factory=dict)
    """Share of each column's values that were null (or, for numbers, not finite)."""

    @classmethod
    def fit(cls, table: pa.Table, bins: int = 10) -> TableReference:
        columns: dict[str, NumericReference | CategoricalReference] = {}
        unique: dict[str, int] = {}
        nulls: dict[str, float] = {}
        for name in table.column_names:
            column = table.column(name)
            if _numeric(column.type):
                values = column.to_numpy(zero_copy_only=False).astype(np.float64)
                if not np.isfinite(values).any():
                    continue
                nulls[name] = float((~np.isfinite(values)).mean())
                numeric = NumericReference.fit(values, bins=bins)
                columns[name] = numeric
                unique[name] = int(np.unique(numeric.sorted_values).size)
            elif (
                pa.types.is_string(column.type)
                or pa.types.is_large_string(column.type)
                or pa.types.is_boolean(column.type)
                or pa.types.is_dictionary(column.type)
            ):
                reference = CategoricalReference.fit(column.combine_chunks())
                columns[name] = reference
                unique[name] = len(reference.counts)
                nulls[name] = column.null_count / len(column) if len(column) else 0.0
        return cls(columns, unique, nulls)

    def to_bytes(self) -> bytes:
        """The reference as one Parquet file (one row per column), for the artifact store."""
        rows: dict[str, list[Any]] = {
            k: []
            for k in ("column", "kind", "values", "std", "edges", "shares", "labels", "counts")
        }
        for name, ref in self.columns.items():
            rows["column"].append(name)
            if isinstance(ref, NumericReference):
                rows["kind"].append("numeric")
                numeric_parts = [ref.sorted_values, ref.std, ref.edges, ref.shares, None, None]
                for key, value in zip(
                    ("values", "std", "edges", "shares", "labels", "counts"),
                    numeric_parts,
                    strict=True,
                ):
                    rows[key].append(value)
            else:
                rows["kind"].append("categorical")
                for key in ("values", "std", "edges", "shares"):
                    rows[key].append(None)
                rows["labels"].append(list(ref.counts))
                rows["counts"].append(list(ref.counts.values()))
        floats = pa.list_(pa.float64())
        table = pa.table(
            {
                "column": pa.array(rows["column"], pa.string()),
                "kind": pa.array(rows["kind"], pa.string()),
                "values": pa.array(rows["values"], floats),
                "std": pa.array(rows["std"], pa.float64()),
                "edges": pa.array(rows["edges"], floats),
                "shares": pa.array(rows["shares"], floats),
                "labels": pa.array(rows["labels"], pa.list_(pa.string())),
                "counts": pa.array(rows["counts"], pa.list_(pa.int64())),
                "unique": pa.array([self.unique_values.get(n, 0) for n in rows["column"]]),
                "null_share": pa.array(
                    [self.null_shares.get(n, 0.0) for n in rows["column"]], pa.float64()
                ),
            }
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return bytes(sink.getvalue().to_pybytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> TableReference:
        """The reference :meth:`to_bytes` wrote."""
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"not a drift reference: {exc}") from None
        columns: dict[str, NumericReference | CategoricalReference] = {}
        unique: dict[str, int] = {}
        nulls: dict[str, float] = {}
        small = table.drop_columns(["values"]).to_pylist()  # the values stay in Arrow
        values = table.column("values")
        for i, row in enumerate(small):
            name = row["column"]
            if row["kind"] == "numeric":
                columns[name] = NumericReference(
                    float_list(values, i),
                    float(row["std"]),
                    np.asarray(row["edges"], dtype=np.float64),
                    np.asarray(row["shares"], dtype=np.float64),
                )
            else:
                columns[name] = CategoricalReference(
                    dict(zip(row["labels"], row["counts"], strict=True))
                )
            unique[name] = int(row["unique"])
            nulls[name] = float(row.get("null_share") or 0.0)
        return cls(columns, unique, nulls)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict."""

    column: str
    kind: Literal["numeric", "categorical"]
    statistic: Statistic
    adjusted_p_value: float | None = None
    effect_size: float | None = None
    test: Statistic | None = None
    """The test that decides when the automatic choice is a distance and
    ``decide_by_test`` is set (Kolmogorov-Smirnov or chi-square), or None."""
    test_adjusted_p_value: float | None = None

    @staticmethod
    def _significant(statistic: Statistic, adjusted: float | None) -> bool:
        if statistic.p_value is None:
            return statistic.drifted
        p = adjusted if adjusted is not None else statistic.p_value
        return p < statistic.threshold

    @property
    def drifted(self) -> bool:
        """The deciding test signals drift (after correction) when there is one, else the
        statistic does."""
        if self.test is not None:
            return self._significant(self.test, self.test_adjusted_p_value)
        return self._significant(self.statistic, self.adjusted_p_value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "statistic": self.statistic.name,
            "value": self.statistic.value,
            "p_value": self.statistic.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "threshold": self.statistic.threshold,
            "effect_size": self.effect_size,
            "drifted": self.drifted,
            "test": None
            if self.test is None
            else {
                "statistic": self.test.name,
                "value": self.test.value,
                "p_value": self.test.p_value,
                "adjusted_p_value": self.test_adjusted_p_value,
                "threshold": self.test.threshold,
                "drifted": self._significant(self.test, self.test_adjusted_p_value),
            },
        }


@dataclass(frozen=True)
class DriftReport:
    columns: list[ColumnDrift] = field(default_factory=list)
    correction: Correction = "bh"

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "correction": self.correction,
            "share_drifted": self.share_drifted,
            "columns": [c.to_dict() for c in self.columns],
        }


def adjust_p_values(p_values: list[float], method: Correction) -> list[float]:
    """Benjamini-Hochberg (step-up, monotone) or Bonferroni adjusted p-values."""
    if method is None or not p_values:
        return list(p_values)
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if method == "bonferroni":
        bonferroni: list[float] = np.minimum(p * m, 1.0).tolist()
        return bonferroni
    if method != "bh":
        raise InputError(f"correction must be 'bh', 'bonferroni' or None, not {method!r}")
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    result: list[float] = out.tolist()
    return result


def _effect_size(statistic: Statistic, reference: Any, current_size: int) -> float | None:
    if statistic.name == "ks":
        return statistic.value
    if statistic.name == "chisquare":
        k = (
            len(reference.counts)
            if isinstance(reference, CategoricalReference)
            else len(reference.shares)
        )
        total = reference.size + current_size
        return float(np.sqrt(statistic.value / (total * max(k - 1, 1))))
    return None


def detect_drift(
    reference: TableReference,
    current: pa.Table | Mapping[str, Any],
    *,
    by_type: Mapping[str, StatisticName] | None = None,
    by_column: Mapping[str, StatisticName] | None = None,
    thresholds: Mapping[str, float] | None = None,
    correction: Correction = "bh",
    decide_by_test: bool = False,
) -> DriftReport:
    """The drift of each of ``current``'s columns that has a reference.

    ``current`` is a table, or the values of each column: numbers for a numeric
    column, the count of each category for a categorical one (as a window's profile
    keeps them).

    ``decide_by_test``: where the automatic choice is a distance (Wasserstein,
    Jensen-Shannon), the distance is still computed and reported, but a test decides —
    Kolmogorov-Smirnov for a numeric column, chi-square for a categorical one — with its
    p-value corrected with the others. A distance has a fixed threshold whatever the
    sample sizes: a subtle shift in a large window stays under it, and a small window's
    noise crosses it; a test's false-alarm rate is its level at any size.
    """
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    names = current.column_names if isinstance(current, pa.Table) else list(current)
    results: list[tuple[str, str, Statistic, Any, int, Statistic | None]] = []
    for name, ref in reference.columns.items():
        if name not in names:
            continue
        kind: Literal["numeric", "categorical"] = (
            "numeric" if isinstance(ref, NumericReference) else "categorical"
        )
        chosen = (by_column or {}).get(name) or (by_type or {}).get(kind)
        if chosen is None:
            chosen = auto_statistic(kind, ref.size, reference.unique_values.get(name, 0))
        if chosen not in _FUNCTIONS:
            raise InputError(
                f"unknown statistic {chosen!r} for column {name!r} "
                f"(known: {', '.join(sorted(_FUNCTIONS))})",
                field=name,
            )
        if chosen in _NUMERIC_ONLY and kind != "numeric":
            raise InputError(
                f"{chosen} needs a numeric column; {name!r} is categorical", field=name
            )
        values = _values(current, name, kind)
        size = sum(values.values()) if isinstance(values, Mapping) else len(values)
        if size == 0 or (kind == "numeric" and not np.isfinite(values).any()):
            continue
        automatic = name not in (by_column or {}) and kind not in (by_type or {})
        extra = None
        if decide_by_test and automatic and chosen == "wasserstein":
            statistic, extra = wasserstein_and_ks(ref, values, limits)  # type: ignore[arg-type]
        else:
            function: Any = _FUNCTIONS[chosen]
            statistic = function(ref, values, limits[chosen])
            if decide_by_test and automatic and statistic.p_value is None:
                test: Any = ks if kind == "numeric" else chisquare
                extra = test(ref, values, limits["ks" if kind == "numeric" else "chisquare"])
        results.append((name, kind, statistic, ref, size, extra))
    p_values: list[float] = []
    slots: list[tuple[int, int]] = []  # (result index, 0 = statistic / 1 = extra test)
    for i, (_, _, statistic, _, _, extra) in enumerate(results):
        if statistic.p_value is not None:
            p_values.append(statistic.p_value)
            slots.append((i, 0))
        if extra is not None and extra.p_value is not None:
            p_values.append(extra.p_value)
            slots.append((i, 1))
    adjusted = dict(zip(slots, adjust_p_values(p_values, correction), strict=True))
    if correction is None:
        adjusted = {}
    columns = [
        ColumnDrift(
            name,
            kind,  # type: ignore[arg-type]
            statistic,
            adjusted.get((i, 0)),
            _effect_size(statistic, ref, size),
            extra,
            adjusted.get((i, 1)),
        )
        for i, (name, kind, statistic, ref, size, extra) in enumerate(results)
    ]
    return DriftReport(columns, correction)


def _values(current: pa.Table | Mapping[str, Any], name: str, kind: str) -> Any:
    if not isinstance(current, pa.Table):
        given = current[name]
        if kind == "numeric" and not isinstance(given, Mapping):
            return np.asarray(given, dtype=np.float64)
        if kind == "categorical" and not isinstance(given, Mapping):
            return pa.array(given) if not isinstance(given, pa.Array | pa.ChunkedArray) else given
        return given
    column = current.column(name)
    if kind == "numeric":
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    return column.combine_chunks()
