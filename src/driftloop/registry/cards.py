"""A model card for one model version, as Markdown or as a self-contained HTML page.

::

    Path("fraud-v3.md").write_text(card_markdown(card), encoding="utf-8")
    Path("fraud-v3.html").write_text(card_html(card), encoding="utf-8")

Both render the same sections in the same order: a summary, Intended use, Training
data, Features, Label, Training, Evaluation, Limitations and Lineage. Limitations
adds to the spec's own text what the card itself shows: a pickle flavor, no champion
to compare with, slices too small to evaluate, skipped gates, a dirty working tree.
The HTML page embeds the evaluation report's rendering (verdict, tables, charts) from
:mod:`driftloop.evaluation.html`. A missing optional key shows as "—" or leaves its
line out; free text (description, intended use, limitations) is Markdown in the
Markdown card and escaped text in the HTML one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftloop.evaluation.html import (
    DASH,
    assessment,
    format_number,
    html_page,
    report_fragment,
    slice_metric_names,
)

__all__ = ["card_html", "card_markdown"]


@dataclass(frozen=True)
class _Code:
    """An identifier shown verbatim: a digest, a reference, a name."""

    text: str


_Cell = str | _Code


@dataclass(frozen=True)
class _Text:
    """Paragraphs: Markdown as given in the Markdown card, escaped text in the HTML one."""

    text: str


@dataclass(frozen=True)
class _Facts:
    items: tuple[tuple[str, _Cell], ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[_Cell, ...], ...]


@dataclass(frozen=True)
class _Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Html:
    """Markup for the HTML card only (the evaluation report and its charts)."""

    markup: str


_Block = _Text | _Facts | _Table | _Bullets | _Html


@dataclass(frozen=True)
class _Section:
    title: str
    blocks: tuple[_Block, ...]
    html_blocks: tuple[_Block, ...] | None = None


# ---------------------------------------------------------------- content


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value or [])


def _code(value: Any) -> _Cell:
    return _Code(str(value)) if value not in (None, "") else DASH


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _title(card: Mapping[str, Any]) -> str:
    version = card.get("version")
    return f"{card.get('model') or 'model'}" + (f" v{version}" if version is not None else "")


def _aliases(card: Mapping[str, Any]) -> list[str]:
    aliases = card.get("aliases") or {}
    return sorted(aliases) if isinstance(aliases, Mapping) else [str(a) for a in aliases]


def _summary(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    when = f" on {card['created_at']}" if card.get("created_at") else ""
    who = f" by {card['created_by']}" if card.get("created_by") else ""
    aliases = _aliases(card)
    pointed = (
        f"Aliases pointing at it: {', '.join(aliases)}." if aliases else "No alias points at it."
    )
    summary = (
        f"A {card.get('task') or 'model'} model trained with {card.get('trainer') or DASH} "
        f"and stored with the {card.get('flavor') or DASH} flavor, registered{when}{who}. "
        f"{pointed}"
    )
    verdict = _map(_map(card.get("evaluation")).get("verdict"))
    if verdict:
        summary += f" Its evaluation {'passed' if verdict.get('passed') else 'failed'} its gates."
    description = str(card.get("description") or "")
    return (_Text(summary), _Text(description)) if description else (_Text(summary),)


def _span(part: Mapping[str, Any]) -> str:
    if not part:
        return DASH
    rows = format_number(part.get("rows"))
    return f"{rows} rows from {part.get('start') or DASH} to {part.get('end') or DASH}"


def _datasets(data: Mapping[str, Any], shorten: bool) -> tuple[_Block, ...]:
    """Tables of the feature views and of the dataset versions the training set read."""
    views = [_map(v) for v in data.get("views") or []]
    datasets = _map(data.get("dataset_versions"))
    blocks: list[_Block] = []
    if views:
        rows = tuple((str(v.get("name") or DASH), _code(v.get("version"))) for v in views)
        blocks.append(_Table(("View", "Version"), rows))
    if datasets:
        width = 12 if shorten else None
        rows = tuple(
            (str(name), _Code(str(digest)[:width]))
            for name, digests in datasets.items()
            for digest in _as_list(digests)
        )
        blocks.append(_Table(("Dataset", "Version"), rows))
    return tuple(blocks)


def _training_data(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    data = _map(card.get("training_data"))
    facts = _Facts(
        (
            ("Training set", _code(data.get("training_set"))),
            ("Rows", format_number(data.get("rows"))),
            ("Train", _span(_map(data.get("train")))),
            ("Validation", _span(_map(data.get("validation")))),
        )
    )
    return (facts, *_datasets(data, shorten=True))


def _features(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    features = [_map(f) for f in card.get("features") or []]
    if not features:
        return (_Text("No features recorded."),)
    rows = tuple(
        (str(f.get("name") or DASH), str(f.get("type") or DASH), _code(f.get("ref")))
        for f in features
    )
    return (_Table(("Name", "Type", "Reference"), rows),)


def _label(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    label = _map(card.get("label"))
    keys = ("source", "column", "entity", "timestamp", "known_after", "known_at_column")
    names = ("Source", "Column", "Entity", "Timestamp", "Known after", "Known at column")
    return (_Facts(tuple((n, _code(label.get(k))) for n, k in zip(names, keys, strict=True))),)


def _training(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    run = _map(card.get("run"))
    code = _map(run.get("code_version"))
    git = code.get("git_sha")
    dirty = " (working tree dirty)" if code.get("git_dirty") else ""
    duration, memory = run.get("duration_s"), run.get("peak_memory_mb")
    facts = _Facts(
        (
            ("Trainer", _code(card.get("trainer"))),
            ("Seed", format_number(card.get("seed"))),
            ("Duration", f"{format_number(duration)} s" if duration is not None else DASH),
            ("Peak memory", f"{format_number(memory)} MB" if memory is not None else DASH),
            ("driftloop", _code(code.get("driftloop"))),
            ("Git commit", f"{git}{dirty}" if git else DASH),
        )
    )
    blocks: list[_Block] = [facts]
    params = _map(card.get("params"))
    rows: tuple[tuple[_Cell, ...], ...]
    if params:
        rows = tuple((str(k), _Code(_plain(v))) for k, v in sorted(params.items()))
        blocks.append(_Table(("Parameter", "Value"), rows))
    libraries = _map(run.get("library_versions"))
    if libraries:
        rows = tuple((str(k), str(v)) for k, v in sorted(libraries.items()))
        blocks.append(_Table(("Library", "Version"), rows))
    return tuple(blocks)


def _outcome(passed: Any) -> str:
    return "PASS" if passed is True else "FAIL" if passed is False else "SKIP"


def _evaluation_facts(report: Mapping[str, Any]) -> _Facts:
    champion = _map(report.get("champion"))
    confidence = report.get("confidence")
    percent = f"{confidence * 100:g}%" if isinstance(confidence, int | float) else DASH
    return _Facts(
        (
            ("Compared with", str(champion.get("label") or DASH) if champion else "no champion"),
            ("Evaluated on", f"{format_number(report.get('rows'))} rows"),
            ("Confidence", percent),
            ("Resamples", format_number(report.get("resamples"))),
            ("Evaluated at", str(report.get("created_at") or DASH)),
        )
    )


def _metric_table(metrics: Sequence[Mapping[str, Any]], has_champion: bool) -> _Table:
    if not has_champion:
        rows = tuple(
            (str(m.get("name") or DASH), format_number(m.get("challenger"))) for m in metrics
        )
        return _Table(("Metric", "Challenger"), rows)
    full = []
    for m in metrics:
        diff = _map(m.get("difference"))
        low, high = (format_number(diff.get(k), signed=True) for k in ("low", "high"))
        full.append(
            (
                str(m.get("name") or DASH),
                format_number(m.get("challenger")),
                format_number(m.get("champion")),
                format_number(diff.get("observed"), signed=True),
                f"[{low}, {high}]" if diff else DASH,
                assessment(m) or DASH,
            )
        )
    header = ("Metric", "Challenger", "Champion", "Difference", "Interval", "Assessment")
    return _Table(header, tuple(full))


def _slice_table(report: Mapping[str, Any], has_champion: bool) -> tuple[_Block, ...]:
    """Slices large enough to evaluate, a column per metric; the others only counted."""
    slices = [_map(s) for s in report.get("slices") or []]
    evaluated = [s for s in slices if not s.get("too_small")]
    names = slice_metric_names(report)
    blocks: list[_Block] = []
    if evaluated and names:
        shown = "challenger (champion)" if has_champion else "challenger"
        rows: list[tuple[_Cell, ...]] = []
        for s in evaluated:
            mine, theirs = _map(s.get("challenger")), _map(s.get("champion"))
            values = [
                format_number(mine.get(n))
                + (f" ({format_number(theirs.get(n))})" if has_champion else "")
                for n in names
            ]
            column, label = str(s.get("column") or DASH), str(s.get("label") or DASH)
            rows.append((column, label, format_number(s.get("count")), *values))
        blocks.append(_Text(f"Slices, each metric as {shown}:"))
        blocks.append(_Table(("Column", "Slice", "Rows", *names), tuple(rows)))
    if small := len(slices) - len(evaluated):
        blocks.append(_Text(f"{small} slice(s) too small to evaluate, listed under Limitations."))
    return tuple(blocks)


def _evaluation(card: Mapping[str, Any]) -> _Section:
    report = _map(card.get("evaluation"))
    if not report:
        return _Section("Evaluation", (_Text("This version was not evaluated."),))
    facts = _evaluation_facts(report)
    verdict = _map(report.get("verdict"))
    blocks: list[_Block] = [facts]
    results = [_map(r) for r in verdict.get("results") or []]
    if verdict:
        outcomes = [_outcome(r.get("passed")) for r in results]
        counts = ", ".join(
            f"{outcomes.count(o)} {o}" for o in ("PASS", "FAIL", "SKIP") if o in outcomes
        )
        passed = "PASS" if verdict.get("passed") else "FAIL"
        blocks.append(_Text(f"Verdict: **{passed}** ({counts or 'no gates declared'})."))
    if results:
        rows = tuple(
            (str(r.get("gate", "")), _outcome(r.get("passed")), str(r.get("reason", "")))
            for r in results
        )
        blocks.append(_Table(("Gate", "Result", "Reason"), rows))
    has_champion = report.get("champion") is not None
    metrics = [_map(m) for m in report.get("metrics") or []]
    if metrics:
        blocks.append(_metric_table(metrics, has_champion))
    blocks.extend(_slice_table(report, has_champion))
    fragment = _Html(report_fragment(report, heading_level=3))
    return _Section("Evaluation", tuple(blocks), html_blocks=(facts, fragment))


def _limitations(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    notes = []
    if card.get("trust_pickle") or card.get("flavor") == "pickle":
        notes.append(
            "Trained with the pickle flavor: loading the model runs code from the artifact; "
            "load it only from a store you trust."
        )
    report = _map(card.get("evaluation"))
    if not report:
        notes.append("Not evaluated: no metric, slice or gate result is recorded.")
    elif report.get("champion") is None:
        notes.append("No champion to compare with: change and slice gates were skipped.")
    small = [_map(s) for s in report.get("slices") or [] if _map(s).get("too_small")]
    if small:
        shown = ", ".join(f"{s.get('label')} ({format_number(s.get('count'))} rows)" for s in small)
        notes.append(f"Slices too small to evaluate, not evaluated: {shown}.")
    for r in _map(report.get("verdict")).get("results") or []:
        if _map(r).get("passed") is None and report.get("champion") is not None:
            notes.append(f"Gate skipped: {r.get('gate')}: {r.get('reason')}.")
    code = _map(_map(card.get("run")).get("code_version"))
    if code.get("git_dirty"):
        notes.append(
            "The project working tree was dirty at training time: the code that trained "
            "this model is not exactly the recorded commit."
        )
    elif code and not code.get("git_sha"):
        notes.append("No git commit was recorded for the training code.")
    text = str(card.get("limitations") or "")
    blocks: list[_Block] = [_Text(text)] if text else []
    if notes:
        blocks.append(_Bullets(tuple(notes)))
    return tuple(blocks) or (_Text("None stated."),)


def _lineage(card: Mapping[str, Any]) -> tuple[_Block, ...]:
    data = _map(card.get("training_data"))
    facts = _Facts(
        (
            ("Run", _code(_map(card.get("run")).get("id"))),
            ("Training set", _code(data.get("training_set"))),
            ("Artifact digest", _code(card.get("artifact_digest"))),
        )
    )
    return (facts, *_datasets(data, shorten=False))


def _sections(card: Mapping[str, Any]) -> list[_Section]:
    intended = str(card.get("intended_use") or "")
    return [
        _Section("Summary", _summary(card)),
        _Section("Intended use", (_Text(intended or "Not stated."),)),
        _Section("Training data", _training_data(card)),
        _Section("Features", _features(card)),
        _Section("Label", _label(card)),
        _Section("Training", _training(card)),
        _evaluation(card),
        _Section("Limitations", _limitations(card)),
        _Section("Lineage", _lineage(card)),
    ]


# ---------------------------------------------------------------- Markdown


def _md_cell(cell: _Cell) -> str:
    """One table cell: pipes escaped, line breaks as ``<br>``."""
    text = cell if isinstance(cell, str) else cell.text
    if isinstance(cell, _Code) and "`" not in text:
        text = f"`{text}`"
    return text.replace("\r\n", "\n").replace("\n", "<br>").replace("|", "\\|")


def _md_block(block: _Block) -> str:
    if isinstance(block, _Text):
        return block.text.strip()
    if isinstance(block, _Facts):
        return "\n".join(f"- **{k}:** {_md_cell(v)}" for k, v in block.items)
    if isinstance(block, _Table):
        lines = [block.header, ("---",) * len(block.header), *block.rows]
        return "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in lines)
    if isinstance(block, _Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    return ""


def card_markdown(card: Mapping[str, Any]) -> str:
    """The model card of one version as Markdown; see the module docstring."""
    parts = [f"# Model card: {_title(card)}"]
    for i, section in enumerate(_sections(card)):
        if i:  # the summary sits under the title, without a heading
            parts.append(f"## {section.title}")
        parts.extend(text for text in map(_md_block, section.blocks) if text)
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- HTML


def _html_cell(cell: _Cell) -> str:
    if isinstance(cell, _Code):
        return f"<code>{html.escape(cell.text)}</code>"
    return html.escape(cell).replace("\n", "<br />")


def _html_block(block: _Block) -> str:
    if isinstance(block, _Html):
        return block.markup
    if isinstance(block, _Text):
        paragraphs = [p.strip() for p in block.text.split("\n\n") if p.strip()]
        return "".join(f"<p>{_html_cell(p)}</p>" for p in paragraphs)
    if isinstance(block, _Facts):
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{_html_cell(v)}</td></tr>" for k, v in block.items
        )
        return f"<table><tbody>{rows}</tbody></table>"
    if isinstance(block, _Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"


def card_html(card: Mapping[str, Any]) -> str:
    """The model card of one version as one self-contained HTML page."""
    title = f"Model card: {_title(card)}"
    parts = [f"<header><h1>{html.escape(title)}</h1></header>"]
    for i, section in enumerate(_sections(card)):
        blocks = section.html_blocks if section.html_blocks is not None else section.blocks
        heading = f"<h2>{html.escape(section.title)}</h2>" if i else ""
        parts.append(f"<section>{heading}{''.join(map(_html_block, blocks))}</section>")
    return html_page(title, "\n".join(parts))
