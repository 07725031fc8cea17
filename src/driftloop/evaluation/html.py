"""An evaluation report as one self-contained HTML page: verdict, tables, inline SVG charts.

::

    page = report_html(report.to_dict())
    Path("fraud-v3.html").write_text(page, encoding="utf-8")

The page loads nothing: the stylesheet sits in a ``<style>`` element, the charts are
inline SVG and there is no script, so it opens the same from a mail attachment, an
artifact store or an air-gapped machine. Every string taken from the report is
escaped; a number shows with four significant digits and a missing one (``None``,
NaN) as "—". The page is also well-formed XML, so tools and tests can parse it.

The model card and the monitoring report reuse the pieces: :func:`html_page` (the
document and its stylesheet), :func:`report_fragment` (everything below the header),
:func:`format_number`, :func:`html_table`, :func:`number_cell`, :func:`shorten`,
:func:`finite`, and :func:`svg_line_chart` with its :class:`Series`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

__all__ = [
    "DASH",
    "Series",
    "assessment",
    "finite",
    "format_number",
    "html_page",
    "html_table",
    "number_cell",
    "report_fragment",
    "report_html",
    "shorten",
    "slice_metric_names",
    "svg_line_chart",
]

DASH = "—"
_CHALLENGER = "#2563eb"
_CHAMPION = "#ea580c"
_GOOD, _BAD, _GREY = "#15803d", "#b91c1c", "#64748b"
_OUTCOMES: dict[bool | None, tuple[str, str]] = {
    True: ("PASS", "pass"),
    False: ("FAIL", "fail"),
    None: ("SKIP", "skip"),
}
_COUNTED = ((True, "passed"), (False, "failed"), (None, "skipped"))

_CSS = """
body { margin: 0; background: #f8fafc; color: #0f172a; font: 14px/1.5 system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; } h3 { font-size: 15px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e2e8f0; }
p { margin: 4px 0 8px; overflow-wrap: anywhere; } .meta, .note { color: #64748b; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; } th { background: #f1f5f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.too-small td { color: #94a3b8; background: #f8fafc; } summary { color: #475569; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
  font-weight: 700; font-size: 12px; }
.pass { background: #15803d; } .fail { background: #b91c1c; } .skip { background: #64748b; }
.verdict { display: flex; align-items: center; gap: 14px; padding: 12px 16px; margin: 8px 0;
  background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; }
.verdict .badge { font-size: 22px; padding: 4px 18px; border-radius: 8px; }
.better { color: #15803d; font-weight: 600; } .worse { color: #b91c1c; font-weight: 600; }
.inconclusive { color: #64748b; } .charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; padding: 8px; background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; }
svg text { font: 11px system-ui, sans-serif; fill: #334155; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_number(value: Any, *, signed: bool = False) -> str:
    """``value`` with about four significant digits; "—" for None and NaN.

    >>> format_number(0.912345), format_number(None), format_number(float("nan"))
    ('0.9123', '—', '—')
    >>> format_number(1234), format_number(-0.0123, signed=True), format_number(123456.7)
    ('1,234', '-0.0123', '123,457')
    """
    sign = "+" if signed else ""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral):
        return f"{int(value):{sign},}"
    number = float(value)
    if math.isnan(number):
        return DASH
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if 1e4 <= abs(number) < 1e15:
        return f"{number:{sign},.0f}"
    return f"{number:{sign}.4g}"


def html_page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` (already HTML) with the shared stylesheet."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def shorten(text: str, limit: int = 48) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_table(header: Sequence[str], rows: Sequence[str]) -> str:
    """A table; ``header`` and ``rows`` are HTML already."""
    head = "".join(f"<th>{h}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def number_cell(value: Any, *, signed: bool = False) -> str:
    """A right-aligned ``<td>`` holding :func:`format_number` of ``value``."""
    return f'<td class="num">{_e(format_number(value, signed=signed))}</td>'


# ---------------------------------------------------------------- charts


@dataclass(frozen=True)
class Series:
    """One line of a chart: its legend label, its points and its colour.

    Points where ``x`` or ``y`` is None or not finite are left out; ``markers``
    draws a dot at every point (for a few binned points rather than a curve).
    """

    label: str
    xs: Sequence[float | None]
    ys: Sequence[float | None]
    colour: str
    markers: bool = False


def _points(series: Series, scale: float) -> list[tuple[float, float]]:
    """The finite points clamped to the unit square, without those closer than 0.5 px
    to the previous one (a ROC curve of 10,000 thresholds needs a few hundred)."""
    raw = [
        (min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0))
        for x, y in ((finite(a), finite(b)) for a, b in zip(series.xs, series.ys, strict=False))
        if x is not None and y is not None
    ]
    kept: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(raw):
        last = i == len(raw) - 1
        if kept and not last and max(abs(x - kept[-1][0]), abs(y - kept[-1][1])) * scale < 0.5:
            continue
        kept.append((x, y))
    return kept


def svg_line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    bars: Sequence[tuple[float, float, float]] = (),
    diagonal: bool = True,
    size: int = 340,
) -> str:
    """A square chart over ``[0, 1] x [0, 1]`` as an inline ``<svg>`` element.

    Draws a grid, the diagonal ``y = x`` when asked, ``bars`` (``(low, high, weight)``
    along x, heights relative to the heaviest and at most a third of the plot) in light
    grey, then every series with its colour, and a legend with one line per series.
    """
    left, top, plot = 44, 26, size - 60
    height = top + plot + 44 + 16 * max(len(series), 1)

    def px(x: float) -> float:
        return left + x * plot

    def py(y: float) -> float:
        return top + (1.0 - y) * plot

    parts = [
        f'<svg width="{size}" height="{height}" viewBox="0 0 {size} {height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>'
        f'<text x="{size / 2:.0f}" y="16" text-anchor="middle" font-weight="600">{_e(title)}</text>'
    ]
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(
            f'<line x1="{px(t):.1f}" y1="{py(0):.1f}" x2="{px(t):.1f}" y2="{py(1):.1f}" '
            f'stroke="#eef2f7" /><line x1="{px(0):.1f}" y1="{py(t):.1f}" x2="{px(1):.1f}" '
            f'y2="{py(t):.1f}" stroke="#eef2f7" />'
            f'<text x="{px(t):.1f}" y="{py(0) + 14:.1f}" text-anchor="middle">{t:g}</text>'
            f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>'
        )
    heaviest = max((finite(w) or 0.0 for _, _, w in bars), default=0.0)
    for low, high, weight in bars:
        lo, hi, w = finite(low), finite(high), finite(weight)
        if lo is not None and hi is not None and w and heaviest > 0:
            bar, wide = w / heaviest * plot / 3, max(px(hi) - px(lo) - 2, 1)
            parts.append(
                f'<rect x="{px(lo) + 1:.1f}" y="{py(0) - bar:.1f}" width="{wide:.1f}" '
                f'height="{bar:.1f}" fill="#cbd5e1" opacity="0.6">'
                f"<title>{format_number(weight)} rows</title></rect>"
            )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot}" height="{plot}" fill="none" stroke="#94a3b8" />'
    )
    if diagonal:
        parts.append(
            f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#94a3b8" '
            'stroke-dasharray="4 3" />'
        )
    for s in series:
        points, colour = _points(s, plot), _e(s.colour)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" />')
        if s.markers:
            parts.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}" />'
                for x, y in points
            )
    parts.append(
        f'<text x="{px(0.5):.1f}" y="{py(0) + 30:.1f}" text-anchor="middle">{_e(x_label)}</text>'
        f'<text x="12" y="{py(0.5):.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {py(0.5):.1f})">{_e(y_label)}</text>'
    )
    for i, s in enumerate(series):
        y = top + plot + 54 + 16 * i
        parts.append(
            f'<g><title>{_e(s.label)}</title><rect x="{left}" y="{y - 8}" width="14" height="4" '
            f'fill="{_e(s.colour)}" /><text x="{left + 20}" y="{y}">{_e(shorten(s.label))}</text>'
            "</g>"
        )
    return "".join(parts) + "</svg>"


def _interval_glyph(difference: Mapping[str, Any], colour: str) -> str:
    """One row of the forest plot: the interval as a bar, the observed difference as a
    dot, zero as a dashed line in the middle; each row has its own scale."""
    low, high = finite(difference.get("low")), finite(difference.get("high"))
    observed = finite(difference.get("observed"))
    if low is None or high is None or observed is None:
        return ""
    span = 1.2 * max(abs(low), abs(high), abs(observed)) or 1.0

    def x(value: float) -> float:
        return 75 + value / span * 69

    interval = f"[{format_number(low, signed=True)}, {format_number(high, signed=True)}]"
    return (
        f'<svg width="150" height="16" viewBox="0 0 150 16" role="img" aria-label="{interval}">'
        f'<title>{interval}</title><line x1="75" y1="1" x2="75" y2="15" stroke="#94a3b8" '
        f'stroke-dasharray="2 2" /><line x1="{x(low):.1f}" y1="8" x2="{x(high):.1f}" y2="8" '
        f'stroke="{colour}" stroke-width="3" stroke-linecap="round" /><circle '
        f'cx="{x(observed):.1f}" cy="8" r="3.5" fill="#fff" stroke="{colour}" stroke-width="2" />'
        "</svg>"
    )


# ---------------------------------------------------------------- sections


def _label(side: Mapping[str, Any] | None, fallback: str) -> str:
    return str((side or {}).get("label") or fallback)


def assessment(metric: Mapping[str, Any]) -> str:
    """``better``, ``worse`` or ``inconclusive`` for the challenger on one metric row of
    a report: better or worse when the interval of the difference excludes zero, on the
    side the metric prefers or the other; ``""`` without a champion to compare with."""
    difference = metric.get("difference")
    if not difference:
        return ""
    low, high = finite(difference.get("low")), finite(difference.get("high"))
    if low is None or high is None or low <= 0 <= high:
        return "inconclusive"
    return "better" if (low > 0) == bool(metric.get("greater_is_better", True)) else "worse"


def _badge(passed: Any) -> str:
    text, css = _OUTCOMES[passed if passed is True or passed is False else None]
    return f'<span class="badge {css}">{text}</span>'


def _verdict(verdict: Mapping[str, Any] | None, h: int) -> str:
    if not verdict:
        return f'<h{h}>Verdict</h{h}><p class="note">No gates were evaluated.</p>'
    results = list(verdict.get("results") or [])
    outcomes = [r.get("passed") for r in results]
    counts = [(sum(o is v for o in outcomes), w) for v, w in _COUNTED]
    said = ", ".join(f"{n} {word}" for n, word in counts if n) or "no gates declared"
    rows = [
        f"<tr><td>{_e(r.get('gate', ''))}</td><td>{_badge(r.get('passed'))}</td>"
        f"<td>{_e(r.get('reason', ''))}</td></tr>"
        for r in results
    ]
    passed = verdict.get("passed", all(o is not False for o in outcomes))
    return (
        f'<h{h}>Verdict</h{h}><div class="verdict">{_badge(bool(passed))}<span>{said}</span>'
        f"</div>{html_table(['Gate', 'Result', 'Reason'], rows) if rows else ''}"
    )


def _metrics(report: Mapping[str, Any], h: int) -> str:
    has_champion = report.get("champion") is not None
    confidence = finite(report.get("confidence"))
    level = f" ({confidence * 100:g}%)" if confidence is not None else ""
    header = ["Metric", f"Challenger<br />{_e(_label(report.get('challenger'), ''))}"]
    if has_champion:
        champion = _e(_label(report.get("champion"), ""))
        header += [
            f"Champion<br />{champion}",
            "Difference",
            f"Interval{level}",
            "Interval vs 0",
            "",
        ]
    rows = []
    for m in report.get("metrics") or []:
        up = m.get("greater_is_better", True)
        hint = f'<span class="note" title="{"higher" if up else "lower"} is better">'
        cells = f"<td>{_e(m.get('name', ''))} {hint}{'↑' if up else '↓'}</span></td>"
        cells += number_cell(m.get("challenger"))
        if has_champion:
            diff, verdict = m.get("difference") or {}, assessment(m)
            colour = {"better": _GOOD, "worse": _BAD}.get(verdict, _GREY)
            low, high = (format_number(diff.get(k), signed=True) for k in ("low", "high"))
            cells += number_cell(m.get("champion")) + number_cell(diff.get("observed"), signed=True)
            cells += f'<td class="num">{_e(f"[{low}, {high}]") if diff else DASH}</td>'
            cells += f"<td>{_interval_glyph(diff, colour)}</td>"
            cells += f'<td class="{verdict}">{verdict or DASH}</td>'
        rows.append(f"<tr>{cells}</tr>")
    note = "" if has_champion else '<p class="note">No champion yet: the challenger is alone.</p>'
    body = html_table(header, rows) if rows else '<p class="note">No metrics were computed.</p>'
    return f"<h{h}>Metrics</h{h}>{note}{body}"


def slice_metric_names(report: Mapping[str, Any]) -> list[str]:
    """The metrics the slices of ``report`` carry, in the order of its metric table;
    the first is the one slice tables show up front."""
    seen: dict[str, None] = {}
    for s in report.get("slices") or []:
        for side in ("challenger", "champion"):
            seen.update(dict.fromkeys(s.get(side) or {}))
    ordered = [str(m.get("name")) for m in report.get("metrics") or [] if m.get("name") in seen]
    return ordered + [n for n in seen if n not in ordered]


def _slices(report: Mapping[str, Any], h: int) -> str:
    slices = list(report.get("slices") or [])
    if not slices:
        return f'<h{h}>Slices</h{h}><p class="note">No slices were evaluated.</p>'
    names = slice_metric_names(report)
    main = names[0] if names else ""
    has_champion = report.get("champion") is not None
    sides = ["Challenger", "Champion"] if has_champion else ["Challenger"]
    header = ["Column", "Slice", "Rows", *(f"{side} {_e(main)}" for side in sides)]
    header += ["Difference", "All metrics"] if has_champion else ["All metrics"]
    rows = []
    for s in slices:
        cells = f"<td>{_e(s.get('column', ''))}</td><td>{_e(s.get('label', ''))}</td>"
        cells += number_cell(s.get("count"))
        if s.get("too_small"):
            span = len(header) - 3
            rows.append(f'<tr class="too-small">{cells}<td colspan="{span}">too small</td></tr>')
            continue
        values = [s.get("challenger") or {}, s.get("champion") or {}][: len(sides)]
        cells += "".join(number_cell(v.get(main)) for v in values)
        if has_champion:
            b, a = (finite(v.get(main)) for v in values)
            cells += number_cell(None if a is None or b is None else b - a, signed=True)
        detail = [
            f"<tr><td>{_e(n)}</td>{''.join(number_cell(v.get(n)) for v in values)}</tr>"
            for n in names
        ]
        table = html_table(["Metric", *sides], detail)
        cells += f"<td><details><summary>{len(names)} metrics</summary>{table}</details></td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<h{h}>Slices</h{h}>{html_table(header, rows)}"


def _charts(report: Mapping[str, Any], h: int) -> str:
    sides = [
        (_label(report.get(side), side), colour, side)
        for side, colour in (("challenger", _CHALLENGER), ("champion", _CHAMPION))
    ]
    figures = []
    calibration = report.get("calibration") or {}
    if calibration.get("challenger"):
        series = [
            Series(
                f"{label} (ECE {format_number(cal.get('ece'))})",
                [b.get("mean_predicted") for b in cal.get("bins") or []],
                [b.get("observed_rate") for b in cal.get("bins") or []],
                colour,
                markers=True,
            )
            for label, colour, side in sides
            if (cal := calibration.get(side))
        ]
        bins = calibration["challenger"].get("bins") or []
        bars = [(b.get("low"), b.get("high"), b.get("count")) for b in bins]
        x, y = "mean predicted probability", "observed rate"
        figures.append(svg_line_chart(series, title="Reliability", x_label=x, y_label=y, bars=bars))
    roc = report.get("roc") or {}
    if roc.get("challenger"):
        curves = [
            Series(
                f"{label} (AUC {format_number(curve.get('auc'))})",
                curve.get("fpr") or [],
                curve.get("tpr") or [],
                colour,
            )
            for label, colour, side in sides
            if (curve := roc.get(side))
        ]
        x, y = "false positive rate", "true positive rate"
        figures.append(svg_line_chart(curves, title="ROC curve", x_label=x, y_label=y))
    if not figures:
        return ""
    note = '<p class="note">Grey bars: challenger rows per bin.</p>' if calibration else ""
    charts = "".join(f"<figure>{f}</figure>" for f in figures)
    return f'<h{h}>Charts</h{h}><div class="charts">{charts}</div>{note}'


def report_fragment(report: Mapping[str, Any], *, heading_level: int = 2) -> str:
    """The verdict, metric and slice tables and the charts of ``report`` as HTML to
    place inside :func:`html_page`; its headings are ``<h{heading_level}>``."""
    h = heading_level
    parts = (_verdict(report.get("verdict"), h), _metrics(report, h), _slices(report, h))
    return "\n".join((*parts, _charts(report, h)))


def report_html(report: Mapping[str, Any]) -> str:
    """``report`` (an ``EvaluationReport.to_dict()``) as one self-contained HTML page."""
    model = str(report.get("model") or "model")
    challenger = _label(report.get("challenger"), "challenger")
    champion = report.get("champion")
    against = f"vs {_e(_label(champion, 'champion'))}" if champion else "(no champion yet)"
    confidence = finite(report.get("confidence"))
    facts = [
        ("task", _e(report.get("task") or DASH)),
        ("created", _e(report.get("created_at") or DASH)),
        ("rows", _e(format_number(report.get("rows")))),
        ("confidence", f"{confidence * 100:g}%" if confidence is not None else DASH),
        ("resamples", _e(format_number(report.get("resamples")))),
    ]
    if report.get("task") == "binary":
        facts.append(("threshold", _e(format_number(report.get("threshold")))))
    if run_id := (report.get("challenger") or {}).get("run_id"):
        facts.append(("run", f"<code>{_e(run_id)}</code>"))
    shown = " · ".join(f"{k} <strong>{v}</strong>" for k, v in facts)
    header = (
        f"<header><h1>Evaluation of {_e(model)}</h1><p>{_e(challenger)} {against}</p>"
        f'<p class="meta">{shown}</p></header>'
    )
    return html_page(f"Evaluation of {model}: {challenger}", f"{header}\n{report_fragment(report)}")
