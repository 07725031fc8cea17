"""Small inline SVG charts for the dashboard: a value over time (monitoring windows),
drawn on the server like the reports' charts, so a page needs no charting library."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime

__all__ = ["time_chart"]

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
