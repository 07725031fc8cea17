"""A monitoring window renders as one self-contained, escaped, well-formed HTML page."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from driftloop.monitoring.html import window_report, write_window_report
from driftloop.monitoring.series import MetricValue, Window, WindowMetrics

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source"}
TO = " \N{EN DASH} "
START = datetime(2026, 11, 25, tzinfo=UTC)
AMOUNT_BINS = ["< 0", *(f"[{10 * i}, {10 * i + 10})" for i in range(10)), ">= 100"]


def _histogram(bins: list[str], reference: list[float], current: list[float]) -> dict[str, Any]:
    return {"bins": bins, "reference": reference, "current": current}


def _drift(
    column: str,
    statistic: str,
    value: float,
    *,
    kind: str = "numeric",
    drifted: bool,
    threshold: float = 0.1,
    p_value: float | None = None,
    adjusted: float | None = None,
    effect: float | None = None,
    test: dict[str, Any] | None = None,
    histogram: dict[str, Any] | None = None,
    changes: list[dict[str, Any]] | None = None,
) -> list[MetricValue]:
    details = {
        "statistic": statistic,
        "kind": kind,
        "value": value,
        "threshold": threshold,
        "p_value": p_value,
        "adjusted_p_value": adjusted,
        "effect_size": effect,
        "drifted": drifted,
        "test": test,
        "changes": changes or [],
        **({"histogram": histogram} if histogram else {}),
    }
    return [
        MetricValue("drift.value", value, column, None, details),
        MetricValue("drift.detected", 1.0 if drifted else 0.0, column),
    ]


def window_metrics(
    metrics: list[MetricValue], *, model: str = "fraud", reference: dict[str, Any] | None = None
) -> WindowMetrics:
    window = Window(
        id=7,
        model=model,
        against="reference",
        start=START,
        end=START + timedelta(days=1),
        rows=1200,
        version=3,
        reference={"version": 3, "rows": 5000} if reference is None else reference,
        computed_at=START + timedelta(days=1, minutes=5),
    )
    return WindowMetrics(window, metrics)


def drift_metrics() -> list[MetricValue]:
    amount_reference = [0.0, 0.1, 0.2, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.03, 0.02, 0.0]
    amount_current = [0.01, 0.02, 0.05, 0.1, 0.1, 0.12, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05]
    ks = {"statistic": "ks", "value": 0.31, "p_value": 1e-9, "adjusted_p_value": 4e-9}
    amount = _drift(
        "amount",
        "wasserstein",
        0.4213,
        drifted=True,
        test={**ks, "drifted": True},
        histogram=_histogram(AMOUNT_BINS, amount_reference, amount_current),
        changes=[{"bin": "[60, 70)", "reference": 0.1, "current": 0.15}],
    )
    channel = _drift(
        "channel",
        "chisquare",
        2.5,
        kind="categorical",
        drifted=False,
        threshold=0.05,
        p_value=0.2865,
        adjusted=0.382,
        effect=0.0123,
        histogram=_histogram(["app", "web", "kiosk"], [0.6, 0.4, 0.0], [0.55, 0.42, 0.03]),
    )
    age = _drift("age", "ks", 0.08, drifted=True, threshold=0.05, p_value=0.001, adjusted=0.002)
    zeta = _drift("zeta", "psi", 0.02, drifted=False)
    share = MetricValue("drift.share", 0.5, details={"drifted": ["age", "amount"], "columns": 4})
    return [*zeta, *channel, *amount, *age, share, MetricValue("rows", 1200.0)]


def quality_metrics() -> list[MetricValue]:
    return [
        MetricValue("quality.null_rate", 0.02, "amount", None, {"reference": 0.01}),
        MetricValue(
            "quality.out_of_range",
            0.05,
            "amount",
            None,
            {"below": 12, "above": 48, "min": 0.5, "max": 980.0},
        ),
        MetricValue("quality.type_errors", 3.0, "amount"),
        MetricValue("quality.missing_rate", 0.01, "amount"),
        MetricValue(
            "quality.unseen",
            0.03,
            "channel",
            None,
            {"categories": [{"value": "kiosk", "count": 30}, {"value": "fax", "count": 6}]},
        ),
        MetricValue("quality.missing_rate", 0.015),
    ]


def performance_metrics() -> list[MetricValue]:
    return [
        MetricValue("performance.roc_auc", 0.9134, "", None, {"labelled": 800}),
        MetricValue("performance.roc_auc", 0.8812, "feature.channel = web", 3, {"labelled": 300}),
        MetricValue("performance.labelled", 800.0),
        MetricValue("performance.awaiting", 400.0),
    ]


def operational_metrics() -> list[MetricValue]:
    figures = []
    for version, requests, p50, errors in ((3, 1000.0, 12.5, 0.002), (4, 200.0, 15.25, 0.01)):
        figures += [
            MetricValue("requests", requests, version=version),
            MetricValue("latency.p50", p50, version=version),
            MetricValue("latency.p95", p50 * 3, version=version),
            MetricValue("latency.p99", p50 * 6, version=version),
            MetricValue("error_rate", errors, version=version),
        ]
    return figures


@pytest.fixture
def window() -> WindowMetrics:
    figures = drift_metrics() + quality_metrics() + performance_metrics() + operational_metrics()
    return window_metrics(figures)


class _Balance(HTMLParser):
    """Records every end tag that does not close the innermost open element."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """``<rect ... />`` opens nothing."""

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _main(page: str) -> ET.Element:
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
    main = root.find("./body/main")
    assert main is not None
    return main


def _section(page: str, title: str) -> list[ET.Element]:
    """The elements after the ``<h2>`` called ``title`` up to the next ``<h2>``."""
    found: list[ET.Element] | None = None
    for element in _main(page):
        if element.tag == "h2":
            if found is not None:
                break
            if element.text == title:
                found = []
        elif found is not None:
            found.append(element)
    assert found is not None, f"no section {title!r}"
    return found


def _text(element: ET.Element | None) -> str:
    assert element is not None
    return "".join(element.itertext())


def _rows(page: str, title: str) -> list[list[str]]:
    """The body rows of the section's table, as the text of each cell."""
    [table] = [e for e in _section(page, title) if e.tag == "table"]
    return [[_text(td) for td in tr] for tr in table.iterfind("./tbody/tr")]


def _header(page: str, title: str) -> list[str]:
    [table] = [e for e in _section(page, title) if e.tag == "table"]
    return [_text(th) for th in table.iterfind("./thead/tr/th")]


def _figure(page: str, anchor: str) -> ET.Element:
    [figure] = [f for f in _main(page).iter("figure") if f.get("id") == anchor]
    return figure


def test_the_page_is_self_contained(window: WindowMetrics) -> None:
    """The page names no URL and loads no script, stylesheet, font or image."""
    page = window_report(window)
    for needle in ("http://", "https://", "<script", "<link", "src=", "@import", "url(", "//"):
        assert needle not in page
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page


def test_the_page_is_well_formed_and_its_tags_balance(window: WindowMetrics) -> None:
    """The page parses with html.parser with every element closed in order, and as XML."""
    page = window_report(window)
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    headings = [h.text for h in _main(page).iter("h2")]
    expected = ["Summary", "Drift", "Distributions", "Data quality", "Performance", "Operations"]
    assert headings == expected


def test_the_header_names_model_window_version_and_comparison(window: WindowMetrics) -> None:
    """The heading shows the model, the window in UTC, rows, version and reference."""
    page = window_report(window)
    header = _text(_main(page).find("header"))
    assert "Monitoring of fraud" in header
    assert f"2026-11-25 00:00{TO}2026-11-26 00:00 UTC" in header
    assert "1,200 rows" in header
    assert "served by v3" in header
    assert "compared against reference (version 3, rows 5000)" in header
    assert f"<title>fraud: 2026-11-25 00:00{TO}2026-11-26 00:00 UTC</title>" in page
    assert "<h1>Weekly check</h1>" in window_report(window, title="Weekly check")


def test_a_time_in_another_zone_is_shown_in_utc(window: WindowMetrics) -> None:
    """A window bound with a UTC offset is converted, not shown as local time."""
    start = datetime(2026, 11, 25, 4, 30, 15, tzinfo=timezone(timedelta(hours=1)))
    moved = dataclasses.replace(window, window=dataclasses.replace(window.window, start=start))
    assert f"2026-11-25 03:30:15{TO}2026-11-26 00:00 UTC" in window_report(moved)


def test_the_summary_gives_the_drifted_share_predictions_missing_inputs_and_labels(
    window: WindowMetrics,
) -> None:
    """Two of four columns drifted, 1,200 predictions, 1.5% missing, labels counted."""
    summary = " ".join(_text(e) for e in _section(window_report(window), "Summary"))
    assert "DRIFT" in summary
    assert "2 of 4 columns drifted (50%): age, amount" in summary
    assert "predictions 1,200" in summary
    assert "missing inputs 1.5%" in summary
    assert "labelled 800" in summary
    assert "awaiting 400" in summary


def test_a_window_without_drift_says_so() -> None:
    """No drifted column is a green badge; no drift figures at all is a grey one."""
    calm = window_metrics([MetricValue("drift.share", 0.0, details={"drifted": [], "columns": 3})])
    assert "NO DRIFT" in _text(_section(window_report(calm), "Summary")[0])
    bare = window_report(window_metrics([]))
    assert "NOT ANALYSED" in _text(_section(bare, "Summary")[0])
    assert "No column was compared." in _text(_section(bare, "Drift")[0])


def test_the_drift_table_lists_every_column_drifted_first_with_its_statistic(
    window: WindowMetrics,
) -> None:
    """Drifted columns come first, each group by name, with statistic, values and badge."""
    page = window_report(window)
    header = _header(page, "Drift")
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in _rows(page, "Drift")}
    assert list(rows) == ["age", "amount", "channel", "zeta"]
    assert [rows[c]["Drifted"].split()[0] for c in rows] == ["DRIFTED"] * 2 + ["stable"] * 2
    channel = rows["channel"]
    assert (channel["Kind"], channel["Statistic"], channel["Value"]) == (
        "categorical",
        "chisquare",
        "2.5",
    )
    assert (channel["Threshold"], channel["p-value"]) == ("0.05", "0.2865")
    assert (channel["Adjusted p-value"], channel["Effect size"]) == ("0.382", "0.0123")
    assert rows["zeta"]["p-value"] == "—"


def test_an_extra_ks_test_shows_its_value_and_p_values(window: WindowMetrics) -> None:
    """The KS test run beside a distance shows D, p and adjusted p, and that it drifted."""
    page = window_report(window)
    header = _header(page, "Drift")
    amount = dict(zip(header, _rows(page, "Drift")[1], strict=True))
    assert (amount["Statistic"], amount["Value"]) == ("wasserstein", "0.4213")
    assert (amount["KS D"], amount["KS p-value"], amount["KS adjusted p-value"]) == (
        "0.31",
        "1e-09",
        "4e-09",
    )
    assert amount["Drifted"] == "DRIFTED KS"


def test_without_any_ks_test_the_table_has_no_ks_columns() -> None:
    """The KS columns appear only when some column carries an extra test."""
    page = window_report(window_metrics(_drift("x", "psi", 0.3, drifted=True)))
    assert not any(h.startswith("KS") for h in _header(page, "Drift"))


def test_each_histogram_has_one_bar_per_bin_per_side_and_a_linked_anchor(
    window: WindowMetrics,
) -> None:
    """Every column with a histogram has a figure ``hist-<column>`` the table links to."""
    page = window_report(window)
    for column, bins in (("amount", AMOUNT_BINS), ("channel", ["app", "web", "kiosk"])):
        [svg] = _figure(page, f"hist-{column}").iter("svg")
        for side in ("reference", "current"):
            bars = [r for r in svg.iter("rect") if r.get("class") == side]
            assert len(bars) == len(bins)
            assert [_text(b.find("title")).split(":")[0] for b in bars] == bins
        assert [t.text for t in svg.iter("text")][1:3] == ["reference", "current"]
        assert f'<a href="#hist-{column}">{column}</a>' in page
    assert not [f for f in _main(page).iter("figure") if f.get("id") == "hist-age"]
    assert "<td>age</td>" in page
    caption = _text(_figure(page, "hist-amount").find("figcaption"))
    assert caption == "wasserstein 0.4213most changed: [60, 70) 10% → 15%"


def test_a_taller_bar_stands_for_a_larger_share(window: WindowMetrics) -> None:
    """Bar heights follow the shares on one scale for both sides."""
    [svg] = _figure(window_report(window), "hist-channel").iter("svg")
    heights = {
        (_text(r.find("title")) if r.find("title") is not None else ""): float(r.get("height", 0))
        for r in svg.iter("rect")
        if r.get("class")
    }
    assert heights["app: reference 60%"] > heights["app: current 55%"] > heights["web: current 42%"]
    assert heights["kiosk: reference 0%"] == 0.0


def test_many_categories_keep_the_largest_and_fold_the_rest_into_other() -> None:
    """40 categories draw at most 30 bars: the 14 largest in their order, then "other"."""
    shares = [0.2, 0.1, *([0.7 / 38] * 38)]
    bins = [f"c{i}" for i in range(40)]
    histogram = _histogram(bins, shares, list(reversed(shares)))
    figures = _drift(
        "city", "jensenshannon", 0.4, kind="categorical", drifted=True, histogram=histogram
    )
    [svg] = _figure(window_report(window_metrics(figures)), "hist-city").iter("svg")
    bars = [r for r in svg.iter("rect") if r.get("class") == "reference"]
    labels = [_text(b.find("title")).split(":")[0] for b in bars]
    assert len(bars) == 15
    assert labels[:2] == ["c0", "c1"]
    assert labels[-2:] == ["c39", "other (26)"]
    other = _text(bars[-1].find("title"))
    assert other == "other (26): reference 47.89%"


def test_strings_from_the_window_are_escaped() -> None:
    """A column, category, model or reference value with markup shows as text."""
    evil = "<script>alert(1)</script>"
    histogram = _histogram([evil, "ok"], [0.5, 0.5], [0.9, 0.1])
    figures = [
        *_drift(evil, "psi", 0.3, kind="categorical", drifted=True, histogram=histogram),
        MetricValue(
            "quality.unseen", 0.1, evil, None, {"categories": [{"value": evil, "count": 2}]}
        ),
        MetricValue("performance.accuracy", 0.8, f"feature.x = {evil}", None, {"labelled": 9}),
    ]
    page = window_report(window_metrics(figures, model=f"m&{evil}", reference={evil: evil}))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="hist-script-alert-1-script"' in page
    assert 'href="#hist-script-alert-1-script"' in page
    _main(page)


def test_columns_that_sanitise_alike_get_distinct_anchors() -> None:
    """``a b`` and ``a-b`` both become ``hist-a-b``; the second gets a suffix."""
    histogram = _histogram(["x"], [1.0], [1.0])
    figures = [
        *_drift("a b", "psi", 0.0, drifted=False, histogram=histogram),
        *_drift("a-b", "psi", 0.0, drifted=False, histogram=histogram),
    ]
    page = window_report(window_metrics(figures))
    assert '<a href="#hist-a-b">a b</a>' in page
    assert '<a href="#hist-a-b-2">a-b</a>' in page
    assert {f.get("id") for f in _main(page).iter("figure")} == {"hist-a-b", "hist-a-b-2"}


def test_the_quality_table_shows_nulls_range_unseen_type_errors_and_missing_inputs(
    window: WindowMetrics,
) -> None:
    """Each column's quality figures, with the overall missing-input rate above."""
    page = window_report(window)
    header = _header(page, "Data quality")
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in _rows(page, "Data quality")}
    assert list(rows) == ["amount", "channel"]
    amount = rows["amount"]
    assert (amount["Nulls"], amount["Nulls (reference)"]) == ("2%", "1%")
    assert amount["Out of range"] == "5%12 below · 48 above"
    assert amount["Reference range"] == f"0.5{TO}980"
    assert (amount["Type errors"], amount["Missing inputs"]) == ("3", "1%")
    channel = rows["channel"]
    assert (channel["Unseen"], channel["Unseen categories"]) == ("3%", "kiosk (30), fax (6)")
    assert channel["Nulls"] == channel["Type errors"] == "—"
    overall = _text(_section(page, "Data quality")[0])
    assert overall == "Missing inputs overall (fell back to their default): 1.5%"


def test_the_performance_table_shows_each_metric_slice_and_version(
    window: WindowMetrics,
) -> None:
    """Overall first, then slices, with the labelled rows behind each figure."""
    page = window_report(window)
    assert _header(page, "Performance") == ["Metric", "Slice", "Version", "Value", "Labelled rows"]
    assert _rows(page, "Performance") == [
        ["roc_auc", "all", "all", "0.9134", "800"],
        ["roc_auc", "feature.channel = web", "v3", "0.8812", "300"],
    ]
    assert _text(_section(page, "Performance")[0]) == "labelled 800 · awaiting 400"


def test_a_window_without_performance_metrics_has_no_performance_section(
    window: WindowMetrics,
) -> None:
    """No performance figure at all: no heading, no table."""
    figures = [m for m in window.metrics if not m.metric.startswith("performance.")]
    page = window_report(dataclasses.replace(window, metrics=figures))
    assert "Performance" not in page
    assert "labelled" not in page


def test_labels_without_scores_say_there_is_nothing_to_score_yet() -> None:
    """Only label counts: the section says so instead of drawing an empty table."""
    page = window_report(window_metrics([MetricValue("performance.awaiting", 50.0)]))
    texts = [_text(e) for e in _section(page, "Performance")]
    assert texts == ["awaiting 50", "No performance figures yet: no labelled rows to score."]


def test_the_operational_table_shows_requests_latency_and_errors_per_version(
    window: WindowMetrics,
) -> None:
    """One row per version with requests, latency percentiles in ms and error rate."""
    page = window_report(window)
    assert _rows(page, "Operations") == [
        ["v3", "1,000", "12.5", "37.5", "75", "0.2%"],
        ["v4", "200", "15.25", "45.75", "91.5", "1%"],
    ]
    empty = window_report(window_metrics([]))
    assert _text(_section(empty, "Operations")[0]) == "No requests were recorded."


def test_write_window_report_creates_folders_and_replaces_the_page_whole(
    window: WindowMetrics, tmp_path: Path
) -> None:
    """The page lands at the path, folders are created and no temporary file remains."""
    target = tmp_path / "reports" / "fraud" / "2026-11-25.html"
    assert write_window_report(window, target) == target
    assert target.read_text(encoding="utf-8") == window_report(window)
    calm = window_metrics([])
    write_window_report(calm, target)
    assert target.read_text(encoding="utf-8") == window_report(calm)
    assert [p.name for p in target.parent.iterdir()] == ["2026-11-25.html"]


def test_a_failed_write_leaves_no_temporary_file(window: WindowMetrics, tmp_path: Path) -> None:
    """When the page cannot replace what is at the path, the temporary file is removed."""
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        write_window_report(window, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in target.iterdir()] == ["inside"]
