"""What an alert says: its ``evidence`` (a JSON-safe dict) and its one-paragraph text,
built from the figures of the window it fired in.

:func:`evidence_for` gives both when an alert fires or is updated,
:func:`resolution_for` what is added when it resolves. They read the window's figures
only; the rules, the alerts' states and their storage are
:mod:`driftloop.monitoring.alerts`'s.

The evidence always names the rule, the figure against its threshold, the model, the
target and the window (with its report, if one was written). Beyond that:

- a drifted column (``drift.value`` / ``drift.detected``): the statistic, its
  threshold, p-values and effect size, the extra KS test and the most changed bins or
  categories, and a **diagnosis** — ``"data quality"`` when a quality figure of the
  same column and window explains the drift (a null rate more than
  :data:`NULL_RATE_CHANGE` off the reference, more than :data:`OUT_OF_RANGE_SHARE`
  out-of-range values, more than :data:`UNSEEN_SHARE` unseen categories, any type
  error), naming which, else ``"distribution shift"``;
- a share of drifted columns (``drift.share``): the drifted columns, the furthest past
  its threshold first, each with its statistic and diagnosis;
- any other figure: its details (how many labelled predictions a performance figure
  rests on...), and for a quality figure what it means.

Shares (:data:`SHARE_METRICS`) are written as percentages, other numbers in three
significant figures, a window as its start and end joined by an en dash
(``2026-03-01T00:00Z`` to ``2026-03-02T00:00Z``, seconds only when there are some).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from driftloop.monitoring.definitions import AlertRule
from driftloop.monitoring.series import MetricValue, Window, WindowMetrics
from driftloop.monitoring.statistics import DEFAULT_THRESHOLDS

__all__ = [
    "NULL_RATE_CHANGE",
    "OUT_OF_RANGE_SHARE",
    "SHARE_METRICS",
    "UNSEEN_SHARE",
    "Target",
    "evidence_for",
    "resolution_for",
]

SHARE_METRICS = frozenset(
    {
        "drift.share",
        "error_rate",
        "quality.missing_rate",
        "quality.null_rate",
        "quality.contract",
        "quality.out_of_range",
        "quality.unseen",
    }
)
"""Figures that are shares, written as percentages in alert texts."""

NULL_RATE_CHANGE = 0.05
OUT_OF_RANGE_SHARE = 0.01
UNSEEN_SHARE = 0.01
"""The diagnosis calls a drifted column a data quality problem past these figures."""

_LABELS = {
    "ks": "KS",
    "wasserstein": "wasserstein",
    "chisquare": "chi-square",
    "psi": "PSI",
    "jensenshannon": "Jensen-Shannon",
}
_SHIFT = (
    "Looks like a distribution shift (no nulls, out-of-range values or unseen "
    "categories beyond the reference)."
)
_SHOWN_CHANGES = 3
_SHOWN_COLUMNS = 5


@dataclass(frozen=True)
class Target:
    """What an alert watches in a window: a column (``""`` for a window-wide figure),
    of one version or, with ``version=None``, of all versions together."""

    column: str
    version: int | None


def evidence_for(
    rule: AlertRule, target: Target, window: WindowMetrics, value: float, held: int
) -> tuple[dict[str, Any], str]:
    """The evidence of an alert on ``target`` whose figure is ``value`` in ``window``,
    the condition having held ``held`` windows in a row, and its one-paragraph text."""
    w = window.window
    evidence: dict[str, Any] = {
        "rule": rule.rule_name,
        "metric": rule.metric,
        "op": rule.op,
        "threshold": float(rule.threshold),
        "value": value,
        "severity": rule.severity,
        "for_windows": rule.for_windows,
        "windows_held": held,
        "model": w.model,
        "column": target.column,
        "version": target.version,
        "window": {
            **_window_ref(w),
            "against": w.against,
            "rows": w.rows,
            "version": w.version,
            "report": w.report,
        },
    }
    head = f"{rule.rule_name} on {w.model}: "
    if rule.metric in ("drift.value", "drift.detected"):
        more, text = _column_drift(rule, target, window, value, head)
    elif rule.metric == "drift.share":
        more, text = _share_drift(rule, window, value, head)
    else:
        figure = window.get(rule.metric, target.column, target.version)
        d = _details(figure)
        more = {"details": d} if d else {}
        extra = f" on {d['labelled']} labelled predictions" if "labelled" in d else ""
        text = (
            f"{head}{_subject(rule, target)} is {_figure(rule.metric, value)}{extra} "
            f"({rule.op} {_figure(rule.metric, rule.threshold)}) in window {_span(w)}."
        )
        if rule.metric in _QUALITY:
            said = _QUALITY[rule.metric](value, d)[1]
            text += f" {said[:1].upper()}{said[1:]}."
    if held > 1:
        text += f" Held for {held} windows in a row."
    if w.report:
        text += f" Report: {w.report}."
    cleaned: dict[str, Any] = _clean({**evidence, **more})
    return cleaned, text


def resolution_for(
    rule: AlertRule, target: Target, window: WindowMetrics, value: float
) -> dict[str, Any]:
    """What is added to an alert's evidence when ``window`` resolves it (the figure is
    ``value``, the condition no longer holds), with the sentence to append to its text
    under ``"text"``."""
    w = window.window
    resolution: dict[str, Any] = {"window": _window_ref(w), "value": value}
    if rule.metric in ("drift.value", "drift.detected"):
        details = _drift_details(window, target)
        stats = f" ({_describe(details)})" if details else ""
        who = target.column or "the window"
        text = f"Resolved in window {_span(w)}: {who} no longer drifts{stats}."
        resolution["drift"] = _drift_summary(details)
    else:
        threshold = _figure(rule.metric, rule.threshold)
        text = (
            f"Resolved in window {_span(w)}: {_subject(rule, target)} is "
            f"{_figure(rule.metric, value)}, no longer {rule.op} {threshold}."
        )
    resolution["text"] = text
    cleaned: dict[str, Any] = _clean(resolution)
    return cleaned


# --- the texts of drift alerts -------------------------------------------------------


def _column_drift(
    rule: AlertRule, target: Target, window: WindowMetrics, value: float, head: str
) -> tuple[dict[str, Any], str]:
    details = _drift_details(window, target)
    diagnosis = _diagnose(window, target.column, target.version)
    who = (target.column or "the window") + (
        f" (version {target.version})" if target.version is not None else ""
    )
    span = _span(window.window)
    if rule.metric == "drift.detected":
        what = f"{who} drifted in window {span}"
    else:
        what = f"{who}'s drift is {_g(value)} ({rule.op} {_g(rule.threshold)}) in window {span}"
    stats = _describe(details) if details else "no statistic details recorded"
    parts = [f"{head}{what} ({stats}).", _changes_text(details), diagnosis["text"]]
    text = " ".join(p for p in parts if p)
    return {"drift": _drift_summary(details), "diagnosis": diagnosis}, text


def _share_drift(
    rule: AlertRule, window: WindowMetrics, value: float, head: str
) -> tuple[dict[str, Any], str]:
    columns = _drifted_columns(window)
    total = _details(window.get("drift.share")).get("columns")
    quality = [c for c in columns if c["diagnosis"]["kind"] == "data quality"]
    count = f", {len(columns)} of {total}" if isinstance(total, int) else ""
    listed = ", ".join(f"{c['column']} ({c['text']})" for c in columns[:_SHOWN_COLUMNS])
    if len(columns) > _SHOWN_COLUMNS:
        listed += f" and {len(columns) - _SHOWN_COLUMNS} more"
    text = (
        f"{head}{_pct(value)} of the columns drifted in window {_span(window.window)} "
        f"({rule.op} {_pct(rule.threshold)}{count})" + (f": {listed}." if listed else ".")
    )
    changes = _changes_text(columns[0]["drift"]) if columns else ""
    if changes:
        text += f" In {columns[0]['column']}: {changes}"
    if quality:
        problems = "; ".join(
            f"{c['column']} ({', '.join(f['text'] for f in c['diagnosis']['findings'])})"
            for c in quality
        )
        shifted = [c["column"] for c in columns if c not in quality]
        text += f" Looks like a data quality problem in {problems}" + (
            f"; a distribution shift in {', '.join(shifted)}." if shifted else "."
        )
    elif columns:
        text += f" {_SHIFT}"
    diagnosis = {
        "kind": "data quality" if quality else "distribution shift",
        "columns": {c["column"]: c["diagnosis"]["kind"] for c in columns},
    }
    return {"drifted_columns": columns, "columns": total, "diagnosis": diagnosis}, text


def _subject(rule: AlertRule, target: Target) -> str:
    subject = rule.metric + (f" of {target.column}" if target.column else "")
    return subject + (f" for version {target.version}" if target.version is not None else "")


# --- a drift statistic, described ----------------------------------------------------


_DRIFT_KEYS = (
    "statistic",
    "kind",
    "value",
    "threshold",
    "p_value",
    "adjusted_p_value",
    "effect_size",
    "drifted",
    "test",
    "changes",
    "histogram",
)


def _drift_details(window: WindowMetrics, target: Target) -> dict[str, Any]:
    """The details of the target's ``drift.value`` figure (empty if none)."""
    return _details(_get(window, "drift.value", target.column, target.version))


def _drift_summary(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _clean(d.get(k)) for k in _DRIFT_KEYS}


def _p_text(d: Mapping[str, Any], threshold: float | None) -> str:
    p, q = _number(d, "p_value"), _number(d, "adjusted_p_value")
    text = f"p {_g(p, 2)}" + (f" adjusted {_g(q, 2)}" if q is not None else "")
    decisive = q if q is not None else p
    if threshold is not None and decisive is not None:
        text += f" {'<' if decisive < threshold else '>='} {_g(threshold)}"
    return text


def _describe(d: Mapping[str, Any]) -> str:
    """``wasserstein 0.31 > 0.1; KS p 1.2e-9 adjusted 3.1e-8, D 0.18`` from the details
    of a ``drift.value`` figure."""
    name = str(d.get("statistic") or "statistic")
    label = _LABELS.get(name, name)
    value, threshold, effect = (_number(d, k) for k in ("value", "threshold", "effect_size"))
    if d.get("p_value") is not None:  # a test: drift is its p-value below the threshold
        text = (
            f"{label} {'D' if name == 'ks' else 'statistic'} {_g(value)}, {_p_text(d, threshold)}"
        )
        if effect is not None and name != "ks":
            effect_name = "Cramér's V" if name == "chisquare" else "effect size"
            text += f", {effect_name} {_g(effect, 2)}"
    else:
        above = value is not None and threshold is not None and value > threshold
        text = f"{label} {_g(value)} {'>' if above else '<='} {_g(threshold)}"
    test = d.get("test")
    if isinstance(test, Mapping):
        test_label = _LABELS.get(str(test.get("statistic")), str(test.get("statistic")))
        value_label = "D" if test.get("statistic") == "ks" else "statistic"
        text += (
            f"; {test_label} {_p_text(test, None)}, {value_label} {_g(_number(test, 'value'), 2)}"
        )
    return text


def _changes_text(d: Mapping[str, Any]) -> str:
    changes = [c for c in d.get("changes") or [] if isinstance(c, Mapping)][:_SHOWN_CHANGES]
    if not changes:
        return ""
    shown = "; ".join(
        f"{c.get('bin')} {_pct(c.get('reference'))} -> {_pct(c.get('current'))}" for c in changes
    )
    return f"Most changed {'categories' if d.get('kind') == 'categorical' else 'bins'}: {shown}."


def _excess(d: Mapping[str, Any]) -> float:
    """How far past its threshold a column's drift is: value / threshold for a distance,
    log p / log threshold for a test (both above 1 when it drifted)."""

    def test_score(t: Mapping[str, Any], threshold: float | None) -> float:
        q = _number(t, "adjusted_p_value")
        p = q if q is not None else _number(t, "p_value")
        if p is None or threshold is None or not 0 < threshold < 1:
            return 0.0
        return math.log(max(p, 1e-300)) / math.log(threshold)

    value, threshold = _number(d, "value"), _number(d, "threshold")
    if d.get("p_value") is not None:
        score = test_score(d, threshold)
    else:
        score = value / threshold if value is not None and threshold else 0.0
    test = d.get("test")
    if isinstance(test, Mapping):
        score = max(score, test_score(test, DEFAULT_THRESHOLDS["ks"]))
    return score


# --- the diagnosis -------------------------------------------------------------------


def _null_rate(value: float, d: Mapping[str, Any]) -> tuple[bool, str]:
    reference = _number(d, "reference")
    changed = reference is not None and abs(value - reference) > NULL_RATE_CHANGE
    return changed, f"null rate {_pct(reference)} -> {_pct(value)}"


def _out_of_range(value: float, d: Mapping[str, Any]) -> tuple[bool, str]:
    text = f"{_pct(value)} of values outside the reference's range"
    if "min" in d and "max" in d:
        text += f" [{_g(_number(d, 'min'))}, {_g(_number(d, 'max'))}]"
    if "below" in d or "above" in d:
        text += f" ({d.get('below', 0)} below, {d.get('above', 0)} above)"
    return value > OUT_OF_RANGE_SHARE, text


def _unseen(value: float, d: Mapping[str, Any]) -> tuple[bool, str]:
    categories = [c for c in d.get("categories") or [] if isinstance(c, Mapping)][:3]
    text = f"{_pct(value)} of values in categories the reference never had"
    if categories:
        text += ": " + ", ".join(f"{c.get('value')} ({c.get('count')})" for c in categories)
    return value > UNSEEN_SHARE, text


def _contract(value: float, d: Mapping[str, Any]) -> tuple[bool, str]:
    where = f"the {d.get('source')} contract (v{d.get('contract_version')})"
    if d.get("allowed") is not None:
        values = [c for c in d.get("values") or [] if isinstance(c, Mapping)][:3]
        text = f"{_pct(value)} of values not allowed by {where}"
        if values:
            text += ": " + ", ".join(f"{c.get('value')} ({c.get('count')})" for c in values)
    else:
        bounds = f"[{_g(_number(d, 'min'))}, {_g(_number(d, 'max'))}]"
        text = f"{_pct(value)} of values outside {where}'s range {bounds}"
        text += f" ({d.get('below', 0)} below, {d.get('above', 0)} above)"
    return value > 0, text


def _type_errors(value: float, d: Mapping[str, Any]) -> tuple[bool, str]:
    values = "value" if value == 1 else "values"
    return value > 0, f"{value:.0f} {values} not readable as the reference's type"


_QUALITY = {
    "quality.null_rate": _null_rate,
    "quality.out_of_range": _out_of_range,
    "quality.unseen": _unseen,
    "quality.type_errors": _type_errors,
    "quality.contract": _contract,
}
"""Each quality figure: whether it makes a drifted column a data quality problem, and
what to say about it."""


def _diagnose(window: WindowMetrics, column: str, version: int | None) -> dict[str, Any]:
    """``"data quality"`` (naming which figures) or ``"distribution shift"``, from the
    column's quality figures in the same window."""
    findings: list[dict[str, Any]] = []
    checked: list[str] = []
    for metric, judge in _QUALITY.items():
        figure = _get(window, metric, column, version)
        if figure is None or figure.value is None or math.isnan(figure.value):
            continue
        checked.append(metric)
        problem, text = judge(float(figure.value), _details(figure))
        if problem:
            findings.append(
                {"metric": metric, "value": figure.value, "details": figure.details, "text": text}
            )
    if findings:
        text = "Looks like a data quality problem: " + "; ".join(f["text"] for f in findings) + "."
    elif checked:
        text = _SHIFT
    else:
        text = "Looks like a distribution shift (no data quality figures for this column)."
    kind = "data quality" if findings else "distribution shift"
    return {"kind": kind, "findings": findings, "checked": checked, "text": text}


def _drifted_columns(window: WindowMetrics) -> list[dict[str, Any]]:
    """The window's drifted columns, the furthest past its threshold first."""
    names = [
        m.column
        for m in window.metrics
        if m.metric == "drift.detected" and m.version is None and (m.value or 0) >= 0.5
    ]
    if not names:
        names = [str(c) for c in _details(window.get("drift.share")).get("drifted") or []]
    found = []
    for column in dict.fromkeys(names):
        d = _details(window.get("drift.value", column))
        found.append(
            {
                "column": column,
                "excess": _excess(d),
                "drift": _drift_summary(d),
                "diagnosis": _diagnose(window, column, None),
                "text": _describe(d) if d else "no statistic recorded",
            }
        )
    return sorted(found, key=lambda c: (-c["excess"], c["column"]))


# --- figures and numbers -------------------------------------------------------------


def _get(
    window: WindowMetrics, metric: str, column: str, version: int | None
) -> MetricValue | None:
    """The figure for this version, else the figure for all versions."""
    found = window.get(metric, column, version)
    return window.get(metric, column, None) if found is None and version is not None else found


def _details(figure: MetricValue | None) -> dict[str, Any]:
    return dict(figure.details or {}) if figure is not None else {}


def _window_ref(w: Window) -> dict[str, Any]:
    return {"id": w.id, "start": w.start.isoformat(), "end": w.end.isoformat()}


def _clean(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None (JSONB and strict JSON refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _is_number(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _number(d: Mapping[str, Any], key: str) -> float | None:
    x = d.get(key)
    return float(x) if _is_number(x) else None


def _g(x: float | None, digits: int = 3) -> str:
    """A number in ``digits`` significant figures: 0.31, 35.2, 1.2e-9."""
    if x is None:
        return "n/a"
    mantissa, _, exponent = f"{x:.{digits}g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _pct(x: Any) -> str:
    if not _is_number(x):
        return "n/a"
    p = 100 * float(x)
    return f"{p:.0f}%" if p == 0 or abs(p) >= 1 else f"{p:.1f}%"


def _figure(metric: str, x: float) -> str:
    return _pct(x) if metric in SHARE_METRICS else _g(x)


def _span(w: Window) -> str:
    def when(dt: datetime) -> str:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ" if dt.second else "%Y-%m-%dT%H:%MZ")

    return f"{when(w.start)}\u2013{when(w.end)}"
