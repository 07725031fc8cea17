"""The figures of one window: drift, data quality, performance and operations.

:func:`analyse` turns a window's :class:`~driftloop.monitoring.profiles.Profile` and a
reference into :class:`~driftloop.monitoring.series.MetricValue` s (names in
:mod:`driftloop.monitoring.series`); :func:`performance` computes the performance
figures from the window's labelled predictions, separately, because labels arrive
later and the figures are recomputed as they do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import InputError
from driftloop.evaluation.metrics import compute_metrics
from driftloop.evaluation.slices import slice_metrics
from driftloop.monitoring.contracts import ContractCheck
from driftloop.monitoring.definitions import Monitor
from driftloop.monitoring.drift import ColumnDrift, TableReference, detect_drift
from driftloop.monitoring.profiles import CategoricalColumn, NumericColumn, Profile, as_kind
from driftloop.monitoring.references import encode_labels
from driftloop.monitoring.series import MetricValue
from driftloop.monitoring.statistics import CategoricalReference, NumericReference

__all__ = ["analyse", "histogram", "performance", "reference_from_profile"]

_FEATURE = "feature."
_MAX_BARS = 15
_TOP_CHANGES = 5


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def histogram(
    reference: NumericReference | CategoricalReference,
    current: npt.NDArray[np.float64] | Mapping[str, int],
) -> dict[str, Any]:
    """Reference and current shares over the reference's bins (numeric: with the outer
    bins below and above its range) or over the categories (the largest ones)."""
    if isinstance(reference, NumericReference):
        values = np.asarray(current, dtype=np.float64)
        edges = reference.edges
        labels = [f"< {_fmt(edges[0])}"]
        labels += [
            f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}" + ("]" if i == len(edges) - 2 else ")")
            for i in range(len(edges) - 1)
        ]
        labels.append(f"> {_fmt(edges[-1])}")
        ref_shares = reference.shares.tolist()
        cur_shares = reference.shares_of(values).tolist() if values.size else [0.0] * len(labels)
        return {"bins": labels, "reference": ref_shares, "current": cur_shares}
    counts = dict(current) if isinstance(current, Mapping) else {}
    ref_total = max(reference.size, 1)
    cur_total = max(sum(counts.values()), 1)
    categories = set(reference.counts) | set(counts)
    shares = {
        c: (reference.counts.get(c, 0) / ref_total, counts.get(c, 0) / cur_total)
        for c in categories
    }
    ordered = sorted(categories, key=lambda c: (-max(shares[c]), c))
    kept, rest = ordered[: _MAX_BARS - 1], ordered[_MAX_BARS - 1 :]
    bins = list(kept)
    ref = [shares[c][0] for c in kept]
    cur = [shares[c][1] for c in kept]
    if rest:
        bins.append("(other)")
        ref.append(sum(shares[c][0] for c in rest))
        cur.append(sum(shares[c][1] for c in rest))
    return {"bins": bins, "reference": ref, "current": cur}


def _changes(hist: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {"bin": b, "reference": r, "current": c}
        for b, r, c in zip(hist["bins"], hist["reference"], hist["current"], strict=True)
    ]
    rows.sort(key=lambda r: -abs(r["current"] - r["reference"]))
    return [r for r in rows[:_TOP_CHANGES] if r["current"] != r["reference"]]


def reference_from_profile(profile: Profile) -> TableReference:
    """A reference fitted on a window's profile (to compare a window with the previous)."""
    columns: dict[str, NumericReference | CategoricalReference] = {}
    unique: dict[str, int] = {}
    nulls: dict[str, float] = {}
    for name, column in profile.columns.items():
        if isinstance(column, NumericColumn):
            if column.values.size == 0:
                continue
            columns[name] = NumericReference.fit(column.values)
            unique[name] = int(np.unique(column.values).size)
            nulls[name] = (column.nulls + column.nonfinite) / column.count if column.count else 0
        else:
            columns[name] = CategoricalReference(dict(column.counts))
            unique[name] = len(column.counts)
            nulls[name] = column.nulls / column.count if column.count else 0.0
    main = profile.main_version
    if main is not None and profile.versions[main].predictions.size:
        predictions = profile.versions[main].predictions
        columns["prediction"] = NumericReference.fit(predictions)
        unique["prediction"] = int(np.unique(predictions).size)
    return TableReference(columns, unique, nulls)


def _current(profile: Profile, reference: TableReference) -> dict[str, Any]:
    """Each referenced column's values from the profile, read as the reference's kind."""
    out: dict[str, Any] = {}
    for name, ref in reference.columns.items():
        kind = "numeric" if isinstance(ref, NumericReference) else "categorical"
        if name == "prediction":
            main = profile.main_version
            if main is not None:
                out[name] = profile.versions[main].predictions
            continue
        column = profile.columns.get(name)
        if column is None:
            continue
        column = as_kind(column, kind)
        profile.columns[name] = column
        out[name] = column.values if isinstance(column, NumericColumn) else column.counts
    return out


def _drift(profile: Profile, reference: TableReference, monitor: Monitor) -> list[MetricValue]:
    current = _current(profile, reference)
    report = detect_drift(
        reference,
        current,
        by_type=monitor.by_type,  # type: ignore[arg-type]
        by_column=monitor.by_column,  # type: ignore[arg-type]
        thresholds=monitor.thresholds,
        correction=monitor.correction,
        decide_by_test=monitor.statistics == "driftloop",
    )
    out: list[MetricValue] = []
    features: list[ColumnDrift] = []
    for column in report.columns:
        hist = histogram(reference.columns[column.column], current[column.column])
        details = column.to_dict()
        details.pop("column")
        details.update(histogram=hist, changes=_changes(hist))
        out.append(MetricValue("drift.value", column.statistic.value, column.column, None, details))
        out.append(MetricValue("drift.detected", float(column.drifted), column.column))
        if column.column.startswith(_FEATURE):
            features.append(column)
    drifted = [c.column for c in features if c.drifted]
    out.append(
        MetricValue(
            "drift.share",
            len(drifted) / len(features) if features else 0.0,
            details={"drifted": drifted, "columns": len(features)},
        )
    )
    return out


def _contract(
    column: NumericColumn | CategoricalColumn, check: ContractCheck
) -> MetricValue | None:
    """Values the source's contract does not allow: outside its range, or not among its
    allowed values."""
    details = check.to_dict()
    count = max(column.count, 1)
    if isinstance(column, NumericColumn) and (check.min is not None or check.max is not None):
        values = column.values
        below = int(np.searchsorted(values, check.min, "left")) if check.min is not None else 0
        above = (
            int(values.size - np.searchsorted(values, check.max, "right"))
            if check.max is not None
            else 0
        )
        details.update(below=below, above=above)
        return MetricValue("quality.contract", (below + above) / count, "", None, details)
    if isinstance(column, CategoricalColumn) and check.allowed is not None:
        allowed = set(check.allowed)
        bad = {k: n for k, n in column.counts.items() if k not in allowed and k != "null"}
        top = sorted(bad.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_CHANGES]
        details["values"] = [{"value": k, "count": n} for k, n in top]
        return MetricValue("quality.contract", sum(bad.values()) / count, "", None, details)
    return None


def _quality(
    profile: Profile,
    reference: TableReference | None,
    contracts: Mapping[str, ContractCheck] | None = None,
) -> list[MetricValue]:
    out: list[MetricValue] = []
    for name, logged in sorted(profile.columns.items()):
        ref = reference.columns.get(name) if reference is not None else None
        column = logged
        if ref is not None:
            column = as_kind(
                column, "numeric" if isinstance(ref, NumericReference) else "categorical"
            )
        count = max(column.count, 1)
        bad = column.nulls + (column.nonfinite if isinstance(column, NumericColumn) else 0)
        ref_null = reference.null_shares.get(name) if reference is not None else None
        out.append(
            MetricValue("quality.null_rate", bad / count, name, None, {"reference": ref_null})
        )
        out.append(MetricValue("quality.type_errors", float(column.type_errors), name))
        check = (contracts or {}).get(name)
        found = _contract(column, check) if check is not None else None
        if found is not None:
            out.append(MetricValue(found.metric, found.value, name, None, found.details))
        if isinstance(column, NumericColumn) and isinstance(ref, NumericReference):
            low, high = float(ref.sorted_values[0]), float(ref.sorted_values[-1])
            below = int(np.searchsorted(column.values, low, side="left"))
            above = int(column.values.size - np.searchsorted(column.values, high, side="right"))
            out.append(
                MetricValue(
                    "quality.out_of_range",
                    (below + above) / count,
                    name,
                    None,
                    {"below": below, "above": above, "min": low, "max": high},
                )
            )
        if isinstance(column, CategoricalColumn) and isinstance(ref, CategoricalReference):
            unseen = {k: n for k, n in column.counts.items() if k not in ref.counts and k != "null"}
            top = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_CHANGES]
            out.append(
                MetricValue(
                    "quality.unseen",
                    sum(unseen.values()) / count,
                    name,
                    None,
                    {"categories": [{"value": k, "count": n} for k, n in top]},
                )
            )
    rows = max(profile.rows, 1)
    for name, n in sorted(profile.missing.items()):
        out.append(MetricValue("quality.missing_rate", n / rows, f"{_FEATURE}{name}"))
    out.append(MetricValue("quality.missing_rate", profile.missing_any / rows))
    return out


def _operations(profile: Profile) -> list[MetricValue]:
    out: list[MetricValue] = []
    for version, stats in sorted(profile.versions.items()):
        out.append(MetricValue("requests", float(stats.latencies.size), version=version))
        out.append(
            MetricValue(
                "predictions", float(stats.rows), version=version, details={"roles": stats.roles}
            )
        )
        out.append(
            MetricValue(
                "error_rate",
                stats.errors / stats.rows if stats.rows else 0.0,
                version=version,
                details={"errors": stats.errors},
            )
        )
        if stats.latencies.size:
            p50, p95, p99 = np.percentile(stats.latencies, [50, 95, 99])
            for name, value in (("p50", p50), ("p95", p95), ("p99", p99)):
                out.append(MetricValue(f"latency.{name}", float(value), version=version))
    return out


def analyse(
    profile: Profile,
    reference: TableReference | None,
    monitor: Monitor,
    contracts: Mapping[str, ContractCheck] | None = None,
) -> list[MetricValue]:
    """Drift (when there is a reference and at least ``monitor.min_rows`` predictions),
    data quality (against the reference and the sources' ``contracts``) and operational
    figures of a window."""
    out = [MetricValue("rows", float(profile.rows))]
    if reference is not None and profile.rows >= monitor.min_rows:
        out += _drift(profile, reference, monitor)
    out += _quality(profile, reference, contracts)
    out += _operations(profile)
    return out


def _scores(table: pa.Table, task: str) -> npt.NDArray[np.float64]:
    if task == "multiclass" and "probabilities" in table.column_names:
        lists = table.column("probabilities").combine_chunks()
        width = len(lists[0].as_py() or []) if len(lists) else 0
        flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
        matrix: npt.NDArray[np.float64] = (
            flat.reshape(len(lists), width) if width else np.empty((0, 0))
        )
        return matrix
    scores: npt.NDArray[np.float64] = (
        table.column("prediction").to_numpy(zero_copy_only=False).astype(np.float64)
    )
    return scores


def performance(
    labelled: pa.Table,
    output_of: Callable[[int], Mapping[str, Any] | None],
    monitor: Monitor,
    main_version: int | None,
) -> list[MetricValue]:
    """Performance figures of a window from its predictions joined with their labels
    (``label`` / ``label_text`` null while awaiting): per version the metrics on the
    labelled rows with how many there are, per slice for the main version, and how
    many served predictions are labelled or still awaiting their label."""
    if labelled.num_rows == 0 or "version" not in labelled.column_names:
        return []
    if "error" in labelled.column_names:
        labelled = labelled.filter(pc.is_null(labelled.column("error")))
    label = labelled.column("label") if "label" in labelled.column_names else None
    text = labelled.column("label_text") if "label_text" in labelled.column_names else None
    has_label = np.zeros(labelled.num_rows, dtype=bool)
    for column in (label, text):
        if column is not None:
            has_label |= pc.is_valid(column).to_numpy(zero_copy_only=False)
    served = pc.not_equal(labelled.column("role"), "shadow").to_numpy(zero_copy_only=False)
    out = [
        MetricValue("performance.labelled", float((has_label & served).sum())),
        MetricValue("performance.awaiting", float((~has_label & served).sum())),
    ]
    versions = labelled.column("version").to_numpy(zero_copy_only=False)
    for version in sorted({int(v) for v in np.unique(versions)}):
        output = output_of(version)
        if not output or not output.get("task"):
            continue
        task = str(output["task"])
        rows = np.flatnonzero((versions == version) & has_label)
        if rows.size == 0:
            continue
        part = labelled.take(pa.array(rows))
        y = encode_labels(
            part.column("label") if label is not None else None,
            part.column("label_text") if text is not None else None,
            dict(output),
        )
        known = np.isfinite(y)
        if not known.any():
            continue
        part = part.filter(pa.array(known))
        y = y[known]
        pred = _scores(part, task)
        threshold = float(output.get("threshold") or 0.5)
        try:
            values = compute_metrics(task, y, pred, threshold=threshold, metrics=monitor.metrics)
        except InputError:
            continue
        for name, value in values.items():
            out.append(
                MetricValue(
                    f"performance.{name}",
                    value if np.isfinite(value) else None,
                    version=version,
                    details={"labelled": int(y.size)},
                )
            )
        if version == main_version and monitor.slices:
            columns = {
                s: part.column(s).to_numpy(zero_copy_only=False)
                for s in monitor.slices
                if s in part.column_names
            }
            if columns:
                out += _slices(
                    task,
                    y,
                    pred,
                    columns,
                    threshold=threshold,
                    metrics=monitor.metrics,
                    version=version,
                )
    return out


def _slices(
    task: str,
    y: npt.NDArray[np.float64],
    pred: npt.NDArray[np.float64],
    columns: Mapping[str, Any],
    *,
    threshold: float,
    metrics: Sequence[str] | None,
    version: int,
) -> list[MetricValue]:
    out: list[MetricValue] = []
    try:
        results = slice_metrics(task, y, pred, columns, threshold=threshold, min_size=1)
    except InputError:
        return out
    for result in results:
        for name, value in (result.metrics or {}).items():
            if metrics is not None and name not in metrics:
                continue
            out.append(
                MetricValue(
                    f"performance.{name}",
                    value if np.isfinite(value) else None,
                    result.label,
                    version,
                    {"labelled": result.count},
                )
            )
    return out
