"""Small inline SVG charts for the dashboard, drawn on the server like the reports'
charts, so a page needs no charting library: a value over time (monitoring windows),
which version each alias pointed at over time, and a column's histogram."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

__all__ = ["alias_timeline", "histogram_chart", "time_chart"]

_W, _H, _PAD = 520, 150, 34


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def time_chart(title: str, times: Sequence[datetime], values: Sequence[object]) -> str:
    """A line of ``values`` over ``times`` (points without a value are skipped), with
    its title, its range and the first and last times."""
    points = [
        (t.timestamp(), v)
        for t, raw in zip(times, values, strict=True)
        if (v := _finite(raw)) is not None
    ]
    head = f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>'
    if len(points) < 2:
        return head + '<p class="muted">not enough windows yet</p></figure>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 1.0, y1 + 1.0
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD

    def at(x: float, y: float) -> str:
        px = _PAD + (x - x0) / (x1 - x0 or 1.0) * inner_w
        py = _H - _PAD - (y - y0) / (y1 - y0) * inner_h
        return f"{px:.1f},{py:.1f}"

    line = " ".join(at(x, y) for x, y in points)
    first = datetime.fromtimestamp(x0, tz=times[0].tzinfo).strftime("%Y-%m-%d")
    last = datetime.fromtimestamp(x1, tz=times[0].tzinfo).strftime("%Y-%m-%d")
    return (
        head + f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}">'
        f'<rect x="{_PAD}" y="{_PAD}" width="{inner_w}" height="{inner_h}" fill="#fff" '
        'stroke="#e2e8f0"/>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.6" points="{line}"/>'
        f'<text x="{_PAD}" y="{_PAD - 8}" font-size="11" fill="#64748b">{y1:.4g}</text>'
        f'<text x="{_PAD}" y="{_H - _PAD + 14}" font-size="11" fill="#64748b">'
        f"{y0:.4g} · {first}</text>"
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 14}" font-size="11" fill="#64748b" '
        f'text-anchor="end">{last}</text></svg></figure>'
    )


_PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777")
_ALIAS_ORDER = ("champion", "canary", "shadow", "challenger", "staged")


def alias_timeline(moves: Sequence[Any], until: datetime) -> str:
    """Which version each alias pointed at, over time: a lane per alias, a bar per
    version from the move that set it to the next move (or ``until``), in the version's
    colour. ``moves`` have ``at``, ``alias`` and ``to_version`` (None: unset), oldest
    first."""
    title = "versions served over time"
    head = f'<figure class="chart timeline"><figcaption>{html.escape(title)}</figcaption>'
    if not moves:
        return head + '<p class="muted">no alias has been set yet</p></figure>'
    start: datetime = min(m.at for m in moves)
    end: datetime = max(until, *(m.at for m in moves))
    aliases = sorted(
        {m.alias for m in moves},
        key=lambda a: (_ALIAS_ORDER.index(a) if a in _ALIAS_ORDER else len(_ALIAS_ORDER), a),
    )
    spans: list[tuple[str, int, datetime, datetime]] = []
    for alias in aliases:
        own = [m for m in moves if m.alias == alias]
        for move, after in zip(own, [*own[1:], None], strict=True):
            if move.to_version is not None:
                spans.append((alias, move.to_version, move.at, after.at if after else end))
    left, lane, width = 80, 22, 760
    inner = width - left - 10
    height = 20 + lane * len(aliases) + 24
    total = max((end - start).total_seconds(), 1.0)

    def x(t: datetime) -> float:
        return float(left + (t - start).total_seconds() / total * inner)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">'
    ]
    for i, alias in enumerate(aliases):
        y = 10 + i * lane
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" font-size="11" fill="#334155" '
            f'text-anchor="end">{html.escape(alias)}</text>'
            f'<line x1="{left}" y1="{y + lane - 2}" x2="{width - 10}" y2="{y + lane - 2}" '
            'stroke="#e2e8f0"/>'
        )
    for alias, version, since, to in spans:
        y = 10 + aliases.index(alias) * lane
        x0, x1 = x(since), x(to)
        colour = _PALETTE[version % len(_PALETTE)]
        tip = f"{alias} v{version}: {since:%Y-%m-%d %H:%M} to {to:%Y-%m-%d %H:%M} UTC"
        parts.append(
            f'<rect data-alias="{html.escape(alias)}" data-version="{version}" '
            f'x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.5):.1f}" height="{lane - 8}" '
            f'fill="{colour}" fill-opacity="0.85"><title>{html.escape(tip)}</title></rect>'
        )
        if x1 - x0 > 22:
            parts.append(
                f'<text x="{x0 + 3:.1f}" y="{y + 15}" font-size="10" fill="#fff">v{version}</text>'
            )
    base = 10 + lane * len(aliases) + 14
    parts.append(
        f'<text x="{left}" y="{base}" font-size="11" fill="#64748b">{start:%Y-%m-%d}</text>'
        f'<text x="{width - 10}" y="{base}" font-size="11" fill="#64748b" '
        f'text-anchor="end">{end:%Y-%m-%d}</text></svg></figure>'
    )
    return head + "".join(parts)


def histogram_chart(
    title: str,
    labels: Sequence[str],
    counts: Sequence[int],
    *,
    ends: tuple[str, str] | None = None,
) -> str:
    """Bars of ``counts``, one per bin named in ``labels`` (in each bar's tooltip); the
    axis shows ``ends`` (the range's low and high), else the first and last labels."""
    head = f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>'
    if not counts or max(counts) <= 0:
        return head + '<p class="muted">no values</p></figure>'
    width, height, pad = 260, 110, 16
    peak = max(counts)
    bar = (width - 2 * pad) / len(counts)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" '
        f'viewBox="0 0 {width} {height + 16}" role="img" aria-label="{html.escape(title)}">'
    ]
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        tall = count / peak * (height - pad)
        parts.append(
            f'<rect x="{pad + i * bar:.1f}" y="{height - tall:.1f}" '
            f'width="{max(bar - 1, 1):.1f}" height="{tall:.1f}" fill="#2563eb">'
            f"<title>{html.escape(label)}: {count:,}</title></rect>"
        )
    low, high = ends or (labels[0], labels[-1])
    parts.append(
        f'<text x="{pad}" y="{height + 13}" font-size="10" fill="#64748b">'
        f"{html.escape(low)}</text>"
        f'<text x="{width - pad}" y="{height + 13}" font-size="10" fill="#64748b" '
        f'text-anchor="end">{html.escape(high)}</text></svg></figure>'
    )
    return head + "".join(parts)
