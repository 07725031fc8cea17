"""One analysed monitoring window as a self-contained HTML page.

::

    [found] = metrics_of(store, [window])
    write_window_report(found, Path("reports/fraud/2026-11-25.html"))

The page shows, in order: a header (model, window, rows, the version that served it
and what it was compared against), a summary (share of drifted columns, predictions,
missing inputs, labels), the drift table (drifted columns first), a histogram per
column of the reference's and the window's shares per bin, data quality, performance
on labelled rows (only when the window has performance figures) and the operational
figures per version.

Like the evaluation report, whose stylesheet, number formatting and table helpers it
reuses (:mod:`driftloop.evaluation.html`), the page loads nothing: the style is inline,
the charts are inline SVG and there is no script. Every string taken from the window
is escaped, and the page is well-formed XML.
"""

from __future__ import annotations

import html
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.evaluation.html import (
    DASH,
    finite,
    format_number,
    html_page,
    html_table,
    number_cell,
    shorten,
)
from driftloop.monitoring.series import MetricValue, WindowMetrics

__all__ = ["histogram_anchors", "window_fragment", "window_report", "write_window_report"]

_TO = " \N{EN DASH} "
_REFERENCE, _CURRENT = "#94a3b8", "#2563eb"
_MAX_BINS = 15
"""Bins per histogram (two bars each); the smallest of the rest are folded into one."""
_SHOWN = 6
"""Reference facts, unseen categories and most changed bins listed before "+N more"."""
_OPERATIONAL = ("requests", "latency.p50", "latency.p95", "latency.p99", "error_rate")
_QUALITY = (
    "quality.null_rate",
    "quality.out_of_range",
    "quality.unseen",
    "quality.type_errors",
    "quality.contract",
    "quality.missing_rate",
)
_COUNTS = ("performance.labelled", "performance.awaiting")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _percent(value: Any) -> str:
    """A share as a percentage: ``0.0123`` is "1.23%"."""
    share = finite(value)
    return DASH if share is None else f"{format_number(share * 100)}%"


def _count(value: Any) -> str:
    """A count stored as a float shows without decimals: ``1234.0`` is "1,234"."""
    number = finite(value)
    return format_number(int(number) if number is not None and number.is_integer() else value)


def _cell(text: str) -> str:
    return f'<td class="num">{_e(text)}</td>'


def _utc(moment: datetime) -> str:
    """A naive time is taken to be UTC already, as the metadata store keeps it."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _version(version: int | None) -> str:
    return "all" if version is None else f"v{version}"


def _details(metric: MetricValue) -> Mapping[str, Any]:
    return metric.details if isinstance(metric.details, Mapping) else {}


def _first(metrics: Iterable[MetricValue], name: str) -> MetricValue | None:
    return next((m for m in metrics if m.metric == name), None)


def _more(items: Sequence[str], total: int) -> str:
    """``items`` (HTML) joined, with "+N more" when only some of ``total`` are shown."""
    extra = f" +{total - len(items)} more" if total > len(items) else ""
    return ", ".join(items) + extra


# ---------------------------------------------------------------- header and summary


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return shorten(text, 40)


def _header(found: WindowMetrics, title: str) -> str:
    w = found.window
    facts = [
        f"<strong>{_e(_utc(w.start))}</strong>{_TO}<strong>{_e(_utc(w.end))}</strong> UTC",
        f"<strong>{_e(_count(w.rows))}</strong> rows",
        f"served by <strong>{_e(_version(w.version) if w.version is not None else DASH)}</strong>",
    ]
    reference = list((w.reference or {}).items())
    shown = [f"{_e(k)} <code>{_e(_brief(v))}</code>" for k, v in reference[:_SHOWN]]
    against = f"compared against <strong>{_e(w.against)}</strong>"
    if shown:
        against += f" ({_more(shown, len(reference))})"
    meta = f"{against} · analysed {_e(_utc(w.computed_at))} UTC · window #{_e(w.id)}"
    return (
        f'<header><h1>{_e(title)}</h1><p>{" · ".join(facts)}</p><p class="meta">{meta}</p></header>'
    )


def _summary(found: WindowMetrics) -> str:
    metrics = found.metrics
    share = found.get("drift.share")
    if share is None:
        badge, said = '<span class="badge skip">NOT ANALYSED</span>', "Drift was not analysed."
    else:
        details = _details(share)
        drifted = [str(c) for c in details.get("drifted") or []]
        columns = details.get("columns")
        of = f" of {_e(_count(columns))}" if columns is not None else ""
        total = finite(columns) if columns is not None else len(drifted)
        noun = "column" if total == 1 else "columns"
        said = f"{len(drifted)}{of} {noun} drifted ({_e(_percent(share.value))})"
        if drifted:
            names = [f"<code>{_e(shorten(c, 40))}</code>" for c in drifted[: 2 * _SHOWN]]
            said += f": {_more(names, len(drifted))}"
        alarm = bool(drifted) or (finite(share.value) or 0.0) > 0
        badge = (
            '<span class="badge fail">DRIFT</span>'
            if alarm
            else '<span class="badge pass">NO DRIFT</span>'
        )
    rows = found.get("rows")
    facts = [("predictions", _count(rows.value if rows is not None else found.window.rows))]
    missing = found.get("quality.missing_rate")
    facts.append(("missing inputs", _percent(missing.value) if missing is not None else DASH))
    for name in _COUNTS:
        if (count := _first(metrics, name)) is not None:
            facts.append((name.removeprefix("performance."), _count(count.value)))
    listed = " · ".join(f"{_e(k)} <strong>{_e(v)}</strong>" for k, v in facts)
    return (
        f'<h2>Summary</h2><div class="verdict">{badge}<span>{said}</span></div>'
        f'<p class="meta">{listed}</p>'
    )


# ---------------------------------------------------------------- drift and histograms


def _is_drifted(metric: MetricValue, detected: Mapping[str, bool]) -> bool:
    flag = _details(metric).get("drifted")
    return bool(flag) if flag is not None else detected.get(metric.column, False)


def _anchors(columns: Iterable[str]) -> dict[str, str]:
    """``hist-<column>`` with anything but letters, digits, ``_`` and ``-`` replaced,
    made unique by a suffix when two columns sanitise alike."""
    anchors: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        base = "hist-" + (re.sub(r"[^\w-]+", "-", column).strip("-") or "column")
        anchor, n = base, 2
        while anchor in taken:
            anchor, n = f"{base}-{n}", n + 1
        taken.add(anchor)
        anchors[column] = anchor
    return anchors


def histogram_anchors(columns: Iterable[str]) -> dict[str, str]:
    """The ids of the columns' histograms in a window's report (links to one)."""
    return _anchors(columns)


def _drift(found: WindowMetrics) -> tuple[list[MetricValue], dict[str, bool]]:
    """The ``drift.value`` rows, drifted first then by column, and whether each drifted."""
    detected = {m.column: m.value == 1 for m in found.metrics if m.metric == "drift.detected"}
    rows = [m for m in found.metrics if m.metric == "drift.value"]
    drifted = {m.column: _is_drifted(m, detected) for m in rows}
    return sorted(rows, key=lambda m: (not drifted[m.column], m.column)), drifted


def _drift_table(
    rows: Sequence[MetricValue], drifted: Mapping[str, bool], anchors: Mapping[str, str]
) -> str:
    if not rows:
        return '<h2>Drift</h2><p class="note">No column was compared.</p>'
    tested = any(isinstance(_details(m).get("test"), Mapping) for m in rows)
    header = ["Column", "Kind", "Statistic", "Value", "Threshold", "p-value"]
    header += ["Adjusted p-value", "Effect size"]
    if tested:
        header += ["KS D", "KS p-value", "KS adjusted p-value"]
    header.append("Drifted")
    body = []
    for m in rows:
        d = _details(m)
        name = _e(m.column)
        if m.column in anchors:
            name = f'<a href="#{_e(anchors[m.column])}">{name}</a>'
        cells = f"<td>{name}</td><td>{_e(d.get('kind') or DASH)}</td>"
        cells += f"<td>{_e(d.get('statistic') or DASH)}</td>"
        cells += number_cell(d.get("value", m.value)) + number_cell(d.get("threshold"))
        cells += "".join(
            number_cell(d.get(k)) for k in ("p_value", "adjusted_p_value", "effect_size")
        )
        test = d.get("test")
        test = test if isinstance(test, Mapping) else {}
        if tested:
            cells += "".join(
                number_cell(test.get(k)) for k in ("value", "p_value", "adjusted_p_value")
            )
        badge = (
            '<span class="badge fail">DRIFTED</span>'
            if drifted[m.column]
            else '<span class="badge pass">stable</span>'
        )
        if test.get("drifted"):
            badge += ' <span class="worse" title="the KS test drifted">KS</span>'
        body.append(f"<tr>{cells}<td>{badge}</td></tr>")
    note = (
        '<p class="note">Drifted columns first. A test drifts when its adjusted p-value is '
        "below its threshold, a distance when its value is above. A column name links to "
        "its histogram.</p>"
    )
    return f"<h2>Drift</h2>{note}{html_table(header, body)}"


def _label(value: Any) -> str:
    return value if isinstance(value, str) else format_number(value)


def _share(value: Any) -> float:
    return max(finite(value) or 0.0, 0.0)


def _bins(histogram: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """``(label, reference share, current share)`` per bin; beyond :data:`_MAX_BINS` the
    bins with the largest share on either side are kept in their order and the rest
    summed into a last "other (N)" bin."""
    bins = [
        (_label(b), _share(r), _share(c))
        for b, r, c in zip(
            histogram.get("bins") or [],
            histogram.get("reference") or [],
            histogram.get("current") or [],
            strict=False,
        )
    ]
    if len(bins) <= _MAX_BINS:
        return bins
    ranked = sorted(range(len(bins)), key=lambda i: -max(bins[i][1], bins[i][2]))
    kept = set(ranked[: _MAX_BINS - 1])
    rest = [b for i, b in enumerate(bins) if i not in kept]
    other = (f"other ({len(rest)})", sum(b[1] for b in rest), sum(b[2] for b in rest))
    return [b for i, b in enumerate(bins) if i in kept] + [other]


def _scale(highest: float) -> float:
    """The top of the y axis: the first round share at or above ``highest``."""
    for top in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0):
        if highest <= top:
            return top
    return highest


def _bar_chart(column: str, bins: Sequence[tuple[str, float, float]]) -> str:
    """Reference and current shares side by side per bin, as an inline ``<svg>``."""
    left, top, plot, bar, group = 60, 44, 120, 9, 27
    labels = [shorten(label, 14) for label, _, _ in bins]
    below = 24 + 5 * max((len(label) for label in labels), default=0)
    width = max(left + group * len(bins) + 12, 200)
    height = top + plot + below
    peak = _scale(max((max(r, c) for _, r, c in bins), default=0.0) or 1.0)
    base = top + plot
    title = f"{column}: share of rows per bin, reference vs current"
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
        f'<text x="8" y="16" font-weight="600">{_e(shorten(column, 40))}</text>'
    ]
    for i, (name, colour) in enumerate((("reference", _REFERENCE), ("current", _CURRENT))):
        x = 8 + 90 * i
        parts.append(
            f'<rect x="{x}" y="24" width="10" height="10" fill="{colour}" />'
            f'<text x="{x + 14}" y="33">{name}</text>'
        )
    for tick in (0.0, peak / 2, peak):
        y = base - tick / peak * plot
        parts.append(
            f'<line x1="{left - 4}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" stroke="#e2e8f0" />'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(_percent(tick))}</text>'
        )
    for i, ((label, reference, current), short) in enumerate(zip(bins, labels, strict=True)):
        x = left + group * i + 4
        for j, (side, share, colour) in enumerate(
            (("reference", reference, _REFERENCE), ("current", current, _CURRENT))
        ):
            tall = min(share / peak, 1.0) * plot
            parts.append(
                f'<rect class="{side}" x="{x + j * (bar + 1)}" y="{base - tall:.1f}" '
                f'width="{bar}" height="{tall:.1f}" fill="{colour}">'
                f"<title>{_e(label)}: {side} {_e(_percent(share))}</title></rect>"
            )
        cx, cy = x + bar, base + 12
        parts.append(
            f'<text x="{cx}" y="{cy}" text-anchor="end" transform="rotate(-45 {cx} {cy})">'
            f"<title>{_e(label)}</title>{_e(short)}</text>"
        )
    parts.append(
        f'<line x1="{left - 4}" y1="{base}" x2="{width - 8}" y2="{base}" stroke="#94a3b8" />'
    )
    return "".join(parts) + "</svg>"


def _changes(details: Mapping[str, Any]) -> str:
    changes = [c for c in details.get("changes") or [] if isinstance(c, Mapping)]
    items = [
        f"{_e(shorten(_label(c.get('bin')), 24))} {_e(_percent(c.get('reference')))} → "
        f"{_e(_percent(c.get('current')))}"
        for c in changes[: _SHOWN // 2]
    ]
    return f"<br />most changed: {_more(items, len(changes))}" if items else ""


def _histograms(rows: Sequence[MetricValue], anchors: Mapping[str, str]) -> str:
    figures = []
    for m in rows:
        d = _details(m)
        if m.column not in anchors:
            continue
        statistic = f"{d.get('statistic') or 'value'} {format_number(d.get('value', m.value))}"
        caption = f'<figcaption class="note">{_e(statistic)}{_changes(d)}</figcaption>'
        chart = _bar_chart(m.column, _bins(d["histogram"]))
        figures.append(f'<figure id="{_e(anchors[m.column])}">{chart}{caption}</figure>')
    if not figures:
        return ""
    return f'<h2>Distributions</h2><div class="charts">{"".join(figures)}</div>'


# ---------------------------------------------------------------- quality, performance, operations


def _unseen(metric: MetricValue | None) -> str:
    if metric is None:
        return f"<td>{DASH}</td>"
    categories = [c for c in _details(metric).get("categories") or [] if isinstance(c, Mapping)]
    shown = [
        f"<code>{_e(shorten(str(c.get('value')), 32))}</code> ({_e(_count(c.get('count')))})"
        for c in categories[:_SHOWN]
    ]
    return f"<td>{_more(shown, len(categories)) or DASH}</td>"


def _contract(metric: MetricValue | None) -> str:
    """The share the source's contract forbids, and what it says."""
    if metric is None:
        return f'<td class="num">{DASH}</td><td>{DASH}</td>'
    d = _details(metric)
    where = f"{d.get('source')} v{d.get('contract_version')}"
    if d.get("allowed") is not None:
        values = [c for c in d.get("values") or [] if isinstance(c, Mapping)]
        shown = [
            f"<code>{_e(shorten(str(c.get('value')), 32))}</code> ({_e(_count(c.get('count')))})"
            for c in values[:_SHOWN]
        ]
        said = f"{_e(where)}: not allowed " + (_more(shown, len(values)) or DASH)
    else:
        said = (
            f"{_e(where)}: [{_e(format_number(d.get('min')))}, "
            f"{_e(format_number(d.get('max')))}], {_e(_count(d.get('below')))} below, "
            f"{_e(_count(d.get('above')))} above"
        )
    return _cell(_percent(metric.value)) + f"<td>{said}</td>"


def _out_of_range(metric: MetricValue | None) -> str:
    if metric is None:
        return f'<td class="num">{DASH}</td><td>{DASH}</td>'
    d = _details(metric)
    counts = f"{_count(d.get('below'))} below · {_count(d.get('above'))} above"
    low, high = d.get("min"), d.get("max")
    bounds = DASH if low is None and high is None else f"{_label(low)}{_TO}{_label(high)}"
    return (
        f'<td class="num">{_e(_percent(metric.value))}<br />'
        f'<span class="note">{_e(counts)}</span></td><td>{_e(bounds)}</td>'
    )


def _quality(found: WindowMetrics) -> str:
    by_column: dict[str, dict[str, MetricValue]] = {}
    for m in found.metrics:
        if m.metric in _QUALITY and not (m.metric == "quality.missing_rate" and m.column == ""):
            by_column.setdefault(m.column, {})[m.metric] = m
    missing = found.get("quality.missing_rate")
    overall = (
        f'<p class="meta">Missing inputs overall (fell back to their default): '
        f"<strong>{_e(_percent(missing.value))}</strong></p>"
        if missing is not None
        else ""
    )
    if not by_column:
        return f'<h2>Data quality</h2>{overall}<p class="note">No quality figures.</p>'
    header = ["Column", "Nulls", "Nulls (reference)", "Out of range", "Reference range"]
    header += ["Unseen", "Unseen categories", "Type errors", "Against contract", "Contract"]
    header += ["Missing inputs"]
    rows = []
    for column in sorted(by_column):
        figures = by_column[column]
        nulls, unseen = figures.get("quality.null_rate"), figures.get("quality.unseen")
        errors, absent = figures.get("quality.type_errors"), figures.get("quality.missing_rate")
        cells = f"<td>{_e(column or '(all)')}</td>"
        cells += _cell(_percent(nulls.value) if nulls else DASH)
        cells += _cell(_percent(_details(nulls).get("reference")) if nulls else DASH)
        cells += _out_of_range(figures.get("quality.out_of_range"))
        cells += _cell(_percent(unseen.value) if unseen else DASH) + _unseen(unseen)
        cells += _cell(_count(errors.value) if errors else DASH)
        cells += _contract(figures.get("quality.contract"))
        cells += _cell(_percent(absent.value) if absent else DASH)
        rows.append(f"<tr>{cells}</tr>")
    return f"<h2>Data quality</h2>{overall}{html_table(header, rows)}"


def _performance(found: WindowMetrics) -> str:
    figures = [m for m in found.metrics if m.metric.startswith("performance.")]
    if not figures:
        return ""
    counts = [(name, _first(figures, name)) for name in _COUNTS]
    said = " · ".join(
        f"{_e(name.removeprefix('performance.'))} <strong>{_e(_count(m.value))}</strong>"
        for name, m in counts
        if m is not None
    )
    rows = sorted(
        (m for m in figures if m.metric not in _COUNTS),
        key=lambda m: (m.metric, m.column != "", m.column, m.version is not None, m.version or 0),
    )
    body = [
        f"<tr><td>{_e(m.metric.removeprefix('performance.'))}</td>"
        f"<td>{_e(m.column or 'all')}</td><td>{_e(_version(m.version))}</td>"
        f"{number_cell(m.value)}{_cell(_count(_details(m).get('labelled')))}</tr>"
        for m in rows
    ]
    header = ["Metric", "Slice", "Version", "Value", "Labelled rows"]
    table = (
        html_table(header, body)
        if body
        else '<p class="note">No performance figures yet: no labelled rows to score.</p>'
    )
    return f'<h2>Performance</h2><p class="meta">{said}</p>{table}'


def _operations(found: WindowMetrics) -> str:
    values = {(m.metric, m.version): m.value for m in found.metrics if m.metric in _OPERATIONAL}
    if not values:
        return '<h2>Operations</h2><p class="note">No requests were recorded.</p>'
    versions = sorted({v for _, v in values}, key=lambda v: (v is None, v or 0))
    rows = []
    for version in versions:
        cells = f"<td>{_e(_version(version))}</td>"
        cells += _cell(_count(values.get(("requests", version))))
        cells += "".join(
            number_cell(values.get((f"latency.{p}", version))) for p in ("p50", "p95", "p99")
        )
        cells += _cell(_percent(values.get(("error_rate", version))))
        rows.append(f"<tr>{cells}</tr>")
    header = ["Version", "Requests", "Latency p50 (ms)", "p95 (ms)", "p99 (ms)", "Error rate"]
    return f"<h2>Operations</h2>{html_table(header, rows)}"


# ---------------------------------------------------------------- the page


def window_fragment(window: WindowMetrics, *, title: str | None = None) -> str:
    """The report's body (HTML without the page around it, as the dashboard embeds it):
    the heading, summary, drift table, histograms, quality, performance, operations."""
    w = window.window
    heading = title or f"Monitoring of {w.model}"
    rows, drifted = _drift(window)
    anchors = _anchors(m.column for m in rows if isinstance(_details(m).get("histogram"), Mapping))
    return "\n".join(
        part
        for part in (
            _header(window, heading),
            _summary(window),
            _drift_table(rows, drifted, anchors),
            _histograms(rows, anchors),
            _quality(window),
            _performance(window),
            _operations(window),
        )
        if part
    )


def window_report(window: WindowMetrics, *, title: str | None = None) -> str:
    """``window`` and its figures as one self-contained HTML page; ``title`` replaces
    the heading "Monitoring of <model>"."""
    w = window.window
    page_title = title or f"{w.model}: {_utc(w.start)}{_TO}{_utc(w.end)} UTC"
    return html_page(page_title, window_fragment(window, title=title))


def write_window_report(window: WindowMetrics, path: Path) -> Path:
    """Write :func:`window_report` of ``window`` to ``path``, creating its folders.

    The page goes to a temporary file beside ``path`` that then replaces it, so a
    reader never sees half a page and a failed write leaves any earlier page intact.
    """
    page = window_report(window)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as handle:
            handle.write(page)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
