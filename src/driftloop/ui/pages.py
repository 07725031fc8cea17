"""The dashboard's HTML: a layout, tables with their export links, and the pages.

Pages are rendered on the server from :mod:`driftloop.ui.tables` and load one small
script of the package's own (:data:`SCRIPT`): it refreshes the page's ``<main>`` every
few seconds without reloading, and asks for confirmation before a lever (a form with
``data-confirm``) is pulled. Charts are inline SVG drawn on the server — the same
renderer as the evaluation and monitoring reports — so nothing is fetched from a CDN
and a page's first render needs no script at all.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from driftloop.ui.tables import UiTable

__all__ = [
    "SCRIPT",
    "STYLE",
    "Link",
    "evidence",
    "heatmap",
    "layout",
    "lever",
    "lineage_graph",
    "render_table",
]

STYLE = """
:root { color-scheme: light; --line: #e2e8f0; --muted: #64748b; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #0f172a; background: #f8fafc; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem;
         background: #0f172a; color: #fff; }
header a { color: #cbd5e1; text-decoration: none; }
header a.here, header a:hover { color: #fff; }
header strong { font-size: 15px; margin-right: 1rem; }
main { padding: 1rem 1.2rem 3rem; }
h1 { font-size: 20px; margin: .2rem 0 1rem; }
h2 { font-size: 16px; margin: 1.6rem 0 .5rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: .2rem 1rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
         white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.exports { float: right; font-size: 12px; margin-top: 1.7rem; }
.exports a { color: var(--accent); margin-left: .6rem; }
.state-promoted, .state-successful, .state-ok, .state-fresh, .state-ready,
.state-running, .state-fired { color: #15803d; }
.state-rejected, .state-rolled_back, .state-failed, .state-firing, .state-critical,
.state-stale, .state-unreachable, .state-not { color: #b91c1c; }
.state-paused, .state-inconclusive, .state-warning, .state-stopped,
.state-never, .state-suppressed { color: #b45309; }
.muted { color: var(--muted); }
form.lever { display: inline; }
button { font: inherit; padding: .2rem .7rem; border: 1px solid #b91c1c; color: #b91c1c;
         background: #fff; border-radius: 4px; cursor: pointer; }
td.heat { text-align: center; font-size: 11px; min-width: 2.6rem; }
td.heat a { color: inherit; text-decoration: none; display: block; }
.heat-0 { background: #f1f5f9; } .heat-1 { background: #fde68a; }
.heat-2 { background: #fca5a5; } .heat-3 { background: #ef4444; color: #fff; }
figure.chart { display: inline-block; margin: .4rem 1rem .4rem 0; }
figure.chart figcaption { font-size: 12px; color: var(--muted); }
section.lineage { display: flex; gap: .8rem; align-items: flex-start; padding: 1rem; }
.lineage-column { min-width: 11rem; max-width: 16rem; }
.lineage-column h3 { font-size: 12px; color: var(--muted); margin: 0 0 .4rem; }
.node { border: 1px solid var(--line); border-left: 3px solid var(--accent);
        border-radius: 4px; padding: .3rem .5rem; margin-bottom: .4rem; font-size: 12px;
        overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12px; padding: 0 1.2rem 1rem; }
nav.pager { font-size: 12px; color: var(--muted); margin-top: .5rem; }
nav.pager a { color: var(--accent); }
.report { background: #fff; border: 1px solid var(--line); border-radius: 6px;
          padding: .2rem 1rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
.report table { width: auto; margin: .4rem 0 .8rem; }
.report th, .report td { white-space: normal; border: 1px solid var(--line); }
.report .meta, .report .note { color: var(--muted); }
.report .charts { display: flex; flex-wrap: wrap; gap: 1rem; }
.report figure { margin: 0; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; }
.report svg text { font: 11px system-ui, sans-serif; fill: #334155; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-weight: 700; font-size: 12px; }
.pass { background: #15803d; } .fail { background: #b91c1c; } .skip { background: #64748b; }
.verdict { display: flex; align-items: center; gap: 14px; padding: .6rem 1rem; margin: .5rem 0;
           border: 1px solid var(--line); border-radius: 6px; }
.better { color: #15803d; font-weight: 600; } .worse { color: #b91c1c; font-weight: 600; }
tr.too-small td { color: #94a3b8; }
"""

SCRIPT = """
(function () {
  "use strict";
  var every = Number(document.body.dataset.refresh || 0);
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { headers: { "x-driftloop-fragment": "main" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var main = document.querySelector("main");
        main.innerHTML = text;
        var stamp = document.getElementById("refreshed");
        if (stamp) stamp.textContent = new Date().toISOString().slice(0, 19) + "Z";
      })
      .catch(function () {});
  }
  if (every > 0) window.setInterval(refresh, every * 1000);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var field = form.querySelector("input[name=confirm]");
    if (field && question) field.value = form.getAttribute("data-expect") || "";
  });
})();
"""

_NAV = (("Overview", "/ui/"), ("Runs", "/ui/runs"), ("Data", "/ui/data"))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def cell(value: Any) -> str:
    """One ``<td>``: numbers right-aligned, times in UTC, None as a dash."""
    if value is None or value == "":
        return '<td class="muted">-</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.3g}"
        return f'<td class="num">{_e(text)}</td>'
    if isinstance(value, datetime):
        return f"<td>{_e(value.strftime('%Y-%m-%d %H:%M:%SZ'))}</td>"
    return f"<td>{_e(value)}</td>"


Link = str | Callable[[dict[str, Any]], str | None]


def _href(link: Link, value: Any, row: dict[str, Any]) -> str | None:
    if callable(link):
        return link(row)
    return link.replace("{value}", quote(str(value), safe=""))


def render_table(
    table: UiTable,
    export: str,
    *,
    links: dict[str, Link] | None = None,
    states: Sequence[str] = ("state", "last_run_state", "status", "health", "freshness"),
    pager: Callable[[int], str] | None = None,
) -> str:
    """A section with the table and its JSON and CSV export links; ``links`` maps a
    column to the URL its cells link to: a template (``{value}`` replaced by the cell)
    or a function of the row. A paged table gets links to the newer and older pages
    (``pager(offset)`` gives a page's URL) and exports the page it shows."""
    links = links or {}
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        record = dict(zip(table.columns, row, strict=True))
        for column, value in zip(table.columns, row, strict=True):
            rendered = cell(value)
            url = _href(links[column], value, record) if column in links else None
            if url is not None and value is not None:
                rendered = f'<td><a href="{_e(url)}">{_e(value)}</a></td>'
            elif column in states and value is not None:
                rendered = f'<td class="state-{_e(value)}">{_e(value)}</td>'
            cells.append(rendered)
        body.append(f"<tr>{''.join(cells)}</tr>")
    empty = "" if table.rows else '<p class="muted">nothing yet</p>'
    paged = table.limit and (table.offset or table.more)
    query = f"?offset={table.offset}&limit={table.limit}" if paged else ""
    return (
        f'<section data-table="{_e(table.name)}">'
        f'<span class="exports"><a href="{_e(export)}.json{_e(query)}">JSON</a>'
        f'<a href="{_e(export)}.csv{_e(query)}">CSV</a></span>'
        f"<h2>{_e(table.title or table.name)}</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{empty}{_pages(table, pager) if paged and pager else ''}</section>"
    )


def _pages(table: UiTable, pager: Callable[[int], str]) -> str:
    """Where a page of a table is (rows N to M, newest first) and links to its
    neighbours."""
    first, last = table.offset + 1, table.offset + len(table.rows)
    links = []
    if table.offset:
        links.append(
            f'<a rel="prev" href="{_e(pager(max(0, table.offset - table.limit)))}">newer</a>'
        )
    if table.more:
        links.append(f'<a rel="next" href="{_e(pager(table.offset + table.limit))}">older</a>')
    return (
        f'<nav class="pager">rows {first:,} to {last:,}, newest first · {" · ".join(links)}</nav>'
    )


def layout(title: str, here: str, main: str, *, project: str, refresh: int = 5) -> str:
    """A whole page: the header with navigation, ``main`` (HTML), the script."""
    nav = "".join(
        f'<a href="{url}"{" class=here" if url == here else ""}>{_e(name)}</a>'
        for name, url in _NAV
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        f"<title>{_e(title)} · driftloop</title>"
        '<link rel="stylesheet" href="/ui/static/ui.css" /></head>'
        f'<body data-refresh="{refresh}"><header><strong>driftloop · {_e(project)}</strong>'
        f"{nav}</header><main>{main}</main>"
        '<footer>refreshed <span id="refreshed">at load</span>; every table exports as '
        "JSON or CSV</footer>"
        '<script src="/ui/static/ui.js"></script></body></html>\n'
    )


def lever(action: str, label: str, question: str, expect: str) -> str:
    """A form posting to ``action`` once the user confirms ``question``; the server
    refuses it unless ``confirm`` equals ``expect``."""
    return (
        f'<form class="lever" method="post" action="{_e(action)}" '
        f'data-confirm="{_e(question)}" data-expect="{_e(expect)}">'
        '<input type="hidden" name="confirm" value="" />'
        f"<button type=submit>{_e(label)}</button></form>"
    )


def _heat_class(ratio: Any, drifted: bool | None) -> str:
    if ratio is None:
        return ""
    if not drifted:
        return "heat-0"
    return "heat-3" if ratio >= 3 else "heat-2" if ratio >= 1.5 else "heat-1"


def heatmap(found: Any, model: str, export: str) -> str:
    """The drift heatmap: a row per column, a cell per window coloured by whether the
    column drifted and how far beyond its threshold; each cell links to the window's
    histogram of that column."""
    from driftloop.monitoring.html import histogram_anchors

    table = found.table
    anchors = histogram_anchors([row[0] for row in table.rows])
    head = "".join(f"<th>{_e(c[5:10] if i else c)}</th>" for i, c in enumerate(table.columns))
    body = []
    for row, flags in zip(table.rows, found.drifted, strict=True):
        column = row[0]
        cells = [f"<td>{_e(column)}</td>"]
        for ratio, flag, window in zip(row[1:], flags, found.window_ids, strict=True):
            text = "-" if ratio is None else f"{ratio:.2g}"
            href = f"/ui/models/{quote(model, safe='')}/windows/{window}#{anchors[column]}"
            cells.append(
                f'<td class="heat {_heat_class(ratio, flag)}" title="{_e(column)}: '
                f'{_e(text)} x threshold{", drifted" if flag else ""}">'
                f'<a href="{_e(href)}">{_e(text)}</a></td>'
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    empty = "" if table.rows else '<p class="muted">no monitoring window yet</p>'
    return (
        f'<section data-table="{_e(table.name)}">'
        f'<span class="exports"><a href="{_e(export)}.json">JSON</a>'
        f'<a href="{_e(export)}.csv">CSV</a></span>'
        "<h2>Drift by window (statistic / threshold)</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{empty}</section>"
    )


def evidence(check: Any) -> str:
    """A trigger's verdict as a nested list: each trigger, fired or not, its summary
    and the figures it read."""
    if not isinstance(check, dict):
        return '<p class="muted">no evidence recorded</p>'
    fired = bool(check.get("fired"))
    figures = {k: v for k, v in check.items() if k not in ("trigger", "fired", "summary", "checks")}
    shown = ", ".join(f"{k}={v}" for k, v in figures.items())
    if len(shown) > 400:  # a window list can be long: the export has it all
        shown = shown[:399] + "…"
    inner = "".join(evidence(c) for c in check.get("checks") or [])
    mark = "fired" if fired else "quiet"
    return (
        f'<ul class="evidence"><li><strong>{_e(check.get("trigger"))}</strong> '
        f'<span class="state-{"promoted" if fired else "paused"}">{mark}</span>: '
        f"{_e(check.get('summary', ''))}"
        + (f' <span class="muted">({_e(shown)})</span>' if shown else "")
        + inner
        + "</li></ul>"
    )


_KIND_TITLES = {
    "prediction": "prediction",
    "model_version": "model version",
    "training_run": "training run",
    "training_set": "training set",
    "feature_view": "feature views",
    "dataset_version": "dataset versions",
    "input": "ingested from",
}
_SHOWN_PER_KIND = 40


def lineage_graph(graph: Any, link: Callable[[Any], str | None]) -> str:
    """A lineage as columns, from what was served back to the files ingested: each
    column a kind of node, each node a box (linked where ``link`` gives a URL); the
    edges run from each column to the next."""
    columns = []
    for kind, title in _KIND_TITLES.items():
        nodes = [n for n in graph.nodes if n.kind == kind]
        if not nodes:
            continue
        boxes = []
        for node in nodes[:_SHOWN_PER_KIND]:
            url = link(node)
            label = f'<a href="{_e(url)}">{_e(node.label)}</a>' if url else _e(node.label)
            facts = ", ".join(
                f"{k} {v}"
                for k, v in node.facts.items()
                if v not in (None, "", {}) and k != "input"
            )
            boxes.append(
                f'<div class="node" data-kind="{_e(kind)}" data-id="{_e(node.id)}">{label}'
                + (f'<div class="muted">{_e(facts[:160])}</div>' if facts else "")
                + "</div>"
            )
        if len(nodes) > _SHOWN_PER_KIND:
            boxes.append(f'<div class="muted">+{len(nodes) - _SHOWN_PER_KIND} more (JSON)</div>')
        columns.append(
            f'<div class="lineage-column"><h3>{_e(title)} ({len(nodes)})</h3>{"".join(boxes)}</div>'
        )
    return f'<section class="lineage">{"".join(columns)}</section>'
