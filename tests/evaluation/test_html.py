"""The evaluation report renders as one self-contained, escaped, well-formed HTML page."""

from __future__ import annotations

import copy
import doctest
import html
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_curve

import driftloop.evaluation.html as report_module
from driftloop.evaluation.bootstrap import paired_bootstrap
from driftloop.evaluation.gates import Change, Threshold, evaluate_gates
from driftloop.evaluation.html import (
    Series,
    assessment,
    format_number,
    report_html,
    svg_line_chart,
)
from driftloop.evaluation.metrics import METRICS, calibration, compute_metrics
from driftloop.evaluation.slices import slice_metrics

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source"}


def _plain(value: Any) -> Any:
    """NaN becomes None, as in ``EvaluationReport.to_dict()``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    cal = calibration(y, p, bins=10)
    return {"ece": cal.ece, "bins": [_plain(row) for row in cal.rows()]}


def _roc(y: np.ndarray, p: np.ndarray, auc: float) -> dict[str, Any]:
    fpr, tpr, _ = roc_curve(y, p)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc}


def binary_report(n: int = 3000, seed: int = 3) -> dict[str, Any]:
    """A real binary evaluation: metrics, bootstrap intervals, slices, gates, charts."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    champion = 1 / (1 + np.exp(-(y * 1.2 + rng.normal(0, 1.0, n) - 0.6)))
    challenger = 1 / (1 + np.exp(-(y * 2.0 + rng.normal(0, 0.8, n) - 1.0)))
    country = rng.choice(["DE", "FR", "IT"], size=n, p=[0.6, 0.39, 0.01])
    names = ["roc_auc", "log_loss", "brier", "accuracy"]
    mine = compute_metrics("binary", y, challenger, metrics=names)
    theirs = compute_metrics("binary", y, champion, metrics=names)
    diffs = paired_bootstrap("binary", y, champion, challenger, metrics=names, resamples=200)
    my_slices = slice_metrics("binary", y, challenger, {"country": country})
    their_slices = slice_metrics("binary", y, champion, {"country": country})
    verdict = evaluate_gates(
        [
            Threshold("roc_auc", min=0.75),
            Change("log_loss", min_delta=0.0),
            Threshold("brier", max=0.01),
        ],
        challenger=mine,
        champion=theirs,
        differences=diffs,
        challenger_slices=my_slices,
        champion_slices=their_slices,
    )
    return {
        "model": "fraud",
        "task": "binary",
        "created_at": "2026-11-25T10:00:00+00:00",
        "rows": n,
        "threshold": 0.5,
        "confidence": 0.95,
        "resamples": 200,
        "challenger": {"label": "fraud v3", "version": 3, "run_id": "ab12cd34"},
        "champion": {"label": "fraud v2", "version": 2},
        "metrics": [
            {
                "name": name,
                "greater_is_better": METRICS.get(name).greater_is_better,
                "challenger": _plain(mine[name]),
                "champion": _plain(theirs[name]),
                "difference": {
                    "observed": diffs[name].observed,
                    "low": diffs[name].low,
                    "high": diffs[name].high,
                    "std_error": diffs[name].std_error,
                    "resamples": diffs[name].resamples,
                },
            }
            for name in names
        ],
        "slices": [
            {
                "column": a.column,
                "label": a.label,
                "count": a.count,
                "too_small": a.too_small,
                "challenger": _plain(a.metrics),
                "champion": _plain(b.metrics),
            }
            for a, b in zip(my_slices, their_slices, strict=True)
        ],
        "calibration": {
            "challenger": _calibration(y, challenger),
            "champion": _calibration(y, champion),
        },
        "roc": {
            "challenger": _roc(y, challenger, mine["roc_auc"]),
            "champion": _roc(y, champion, theirs["roc_auc"]),
        },
        "verdict": verdict.to_dict(),
    }


def without_champion(report: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(report)
    out["champion"] = None
    for m in out["metrics"]:
        m["champion"] = m["difference"] = None
    for s in out["slices"]:
        s["champion"] = None
    out["calibration"]["champion"] = out["roc"]["champion"] = None
    return out


def regression_report() -> dict[str, Any]:
    return {
        "model": "demand",
        "task": "regression",
        "created_at": "2026-11-25T10:00:00+00:00",
        "rows": 500,
        "confidence": 0.9,
        "resamples": 1000,
        "challenger": {"label": "demand v2", "version": 2, "run_id": None},
        "champion": {"label": "demand v1", "version": 1},
        "metrics": [
            {
                "name": "rmse",
                "greater_is_better": False,
                "challenger": 12.5,
                "champion": 13.25,
                "difference": {"observed": -0.75, "low": -1.1, "high": -0.4, "std_error": 0.2},
            },
            {"name": "r2", "greater_is_better": True, "challenger": None, "champion": 0.5},
        ],
        "slices": [],
        "calibration": None,
        "roc": None,
        "verdict": {"passed": True, "results": []},
    }


class _Balance(HTMLParser):
    """Records every end tag that does not close the innermost open element."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def _section(page: str, title: str) -> str:
    """The HTML from the ``<h2>`` called ``title`` up to the next ``<h2>``."""
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else len(page)]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return binary_report()


def test_the_page_is_self_contained(report: dict[str, Any]) -> None:
    """The page names no URL and loads no script, stylesheet or image."""
    page = report_html(report)
    for needle in ("http://", "https://", "<script", "<link", "src=", "@import", "url("):
        assert needle not in page
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page


def test_the_page_is_well_formed_and_its_tags_balance(report: dict[str, Any]) -> None:
    """The page parses as XML and every opened element is closed in order."""
    page = report_html(report)
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
    assert root.tag == "html"
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    assert {"header", "main", "table", "svg", "details"} <= parser.seen


def test_a_binary_report_draws_a_reliability_diagram_and_a_roc_curve(
    report: dict[str, Any],
) -> None:
    """Both charts parse on their own and carry both models, with AUC and ECE in the legend."""
    page = report_html(report)
    charts = {svg.findtext("title"): svg for svg in _svgs(page) if svg.get("width") == "340"}
    assert set(charts) == {"Reliability", "ROC curve"}
    roc_legend = " ".join(t.text or "" for t in charts["ROC curve"].iter("text"))
    auc = format_number(report["roc"]["challenger"]["auc"])
    assert f"fraud v3 (AUC {auc})" in roc_legend
    assert "fraud v2 (AUC" in roc_legend
    assert len(charts["ROC curve"].findall("polyline")) == 2
    reliability = charts["Reliability"]
    assert "fraud v3 (ECE" in " ".join(t.text or "" for t in reliability.iter("text"))
    bars = [r for r in reliability.iter("rect") if r.get("fill") == "#cbd5e1"]
    non_empty = sum(b["count"] > 0 for b in report["calibration"]["challenger"]["bins"])
    assert len(bars) == non_empty


def test_a_regression_report_has_no_charts_and_shows_missing_values_as_a_dash() -> None:
    """Without calibration and ROC there is no chart; a None metric reads "—"."""
    page = report_html(regression_report())
    assert "<h2>Charts</h2>" not in page
    assert "Reliability" not in page
    assert "threshold" not in page
    r2_row = re.search(r"<tr><td>r2 .*?</tr>", page)
    assert r2_row is not None
    assert '<td class="num">—</td>' in r2_row.group(0)
    rmse_row = re.search(r"<tr><td>rmse .*?</tr>", page)
    assert rmse_row is not None
    assert 'class="better"' in rmse_row.group(0)


def test_the_verdict_shows_pass_or_fail_and_every_gate_with_its_reason(
    report: dict[str, Any],
) -> None:
    """The verdict badge reads FAIL when a gate fails; each gate has its outcome and reason."""
    verdict = _section(report_html(report), "Verdict")
    assert '<div class="verdict"><span class="badge fail">FAIL</span>' in verdict
    for result in report["verdict"]["results"]:
        outcome = {True: "PASS", False: "FAIL", None: "SKIP"}[result["passed"]]
        gate = html.escape(result["gate"])
        assert f'<td>{gate}</td><td><span class="badge {outcome.lower()}">{outcome}' in verdict
        assert html.escape(result["reason"]) in verdict
    passing = copy.deepcopy(report)
    passing["verdict"] = {
        "passed": True,
        "results": [
            {"gate": "roc_auc >= 0.75", "passed": True, "reason": "roc_auc = 0.91"},
            {"gate": "slices", "passed": None, "reason": "no champion yet"},
        ],
    }
    verdict = _section(report_html(passing), "Verdict")
    assert '<span class="badge pass">PASS</span><span>1 passed, 1 skipped</span>' in verdict
    assert '<span class="badge skip">SKIP</span>' in verdict


def test_a_report_without_a_champion_says_so_and_has_no_champion_column(
    report: dict[str, Any],
) -> None:
    """The header and metric table say there is no champion; no column or series is drawn for it."""
    page = report_html(without_champion(report))
    assert "fraud v3 (no champion yet)" in page
    metrics = _section(page, "Metrics")
    assert "No champion yet" in metrics
    assert "Champion" not in metrics
    assert "Champion" not in _section(page, "Slices")
    assert "fraud v2" not in page
    charts = [svg for svg in _svgs(page) if svg.get("width") == "340"]
    assert [len(svg.findall("polyline")) for svg in charts] == [1, 1]


def test_each_difference_is_judged_by_its_interval_and_the_metric_direction() -> None:
    """An interval above zero is better for AUC but worse for log loss; one across 0 is not sure."""
    above = {"observed": 0.02, "low": 0.01, "high": 0.03}
    across = {"observed": 0.01, "low": -0.01, "high": 0.03}
    assert assessment({"greater_is_better": True, "difference": above}) == "better"
    assert assessment({"greater_is_better": False, "difference": above}) == "worse"
    assert assessment({"greater_is_better": True, "difference": across}) == "inconclusive"
    assert assessment({"greater_is_better": True, "difference": None}) == ""
    unknown = {"observed": 0.01, "low": None, "high": None}
    assert assessment({"greater_is_better": True, "difference": unknown}) == "inconclusive"


def test_the_metric_table_draws_one_interval_glyph_per_compared_metric(
    report: dict[str, Any],
) -> None:
    """Each metric row holds a small forest-plot glyph with zero as a dashed line."""
    metrics = _section(report_html(report), "Metrics")
    glyphs = _svgs(metrics)
    assert len(glyphs) == len(report["metrics"])
    assert all(g.find("line") is not None and g.find("circle") is not None for g in glyphs)


def test_too_small_slices_are_greyed_and_marked(report: dict[str, Any]) -> None:
    """A slice below the minimum size shows its count and "too small", with no metric."""
    slices = _section(report_html(report), "Slices")
    small = [s for s in report["slices"] if s["too_small"]]
    assert small, "the fixture has a rare country"
    for s in small:
        assert re.search(
            rf'<tr class="too-small"><td>country</td><td>{s["label"]}</td>'
            rf'<td class="num">{s["count"]}</td><td colspan="\d">too small</td></tr>',
            slices,
        )
    assert slices.count("<details>") == len(report["slices"]) - len(small)
    assert "<th>Challenger roc_auc</th><th>Champion roc_auc</th>" in slices


def test_an_empty_slice_list_says_no_slices_were_evaluated(report: dict[str, Any]) -> None:
    """No slices: a note instead of an empty table."""
    empty = {**report, "slices": []}
    assert "No slices were evaluated." in _section(report_html(empty), "Slices")


def test_strings_from_the_report_are_escaped(report: dict[str, Any]) -> None:
    """Labels, names, reasons and slice values cannot inject markup."""
    evil = copy.deepcopy(report)
    evil["model"] = "a&b"
    evil["challenger"]["label"] = "<script>alert(1)</script>"
    evil["slices"][0]["label"] = 'country = "<b>"'
    evil["verdict"]["results"][0]["reason"] = "<img onerror=x>"
    page = report_html(evil)
    assert "<script" not in page
    assert "<b>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page
    assert "&lt;img onerror=x&gt;" in page
    ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def test_very_long_labels_are_shortened_in_legends_and_kept_whole_in_tables(
    report: dict[str, Any],
) -> None:
    """A legend holds a shortened label with the full one in its tooltip."""
    long = copy.deepcopy(report)
    long["challenger"]["label"] = "challenger-" + "x" * 300
    page = report_html(long)
    assert long["challenger"]["label"] in _section(page, "Metrics")
    legends = [t.text or "" for svg in _svgs(page) for t in svg.iter("text")]
    assert any(t.startswith("challenger-xxx") and t.endswith("…") for t in legends)
    assert all(len(t) <= 48 for t in legends)


def test_numbers_show_four_significant_digits_and_missing_ones_a_dash() -> None:
    """Floats are rounded to 4 significant digits; ints keep every digit; None and NaN read —."""
    assert format_number(0.91234567) == "0.9123"
    assert format_number(0.000123456) == "0.0001235"
    assert format_number(3200) == "3,200"
    assert format_number(0.01, signed=True) == "+0.01"
    assert format_number(None) == format_number(float("nan")) == "—"
    assert format_number(float("inf")) == "∞"


def test_a_long_curve_is_thinned_but_keeps_its_ends() -> None:
    """Ten thousand points become a few hundred, starting and ending where the curve does."""
    xs = np.linspace(0, 1, 10_000)
    chart = svg_line_chart(
        [Series("model", xs.tolist(), np.sqrt(xs).tolist(), "#000")],
        title="curve",
        x_label="x",
        y_label="y",
    )
    points = ET.fromstring(chart).find("polyline")
    assert points is not None
    pairs = points.get("points", "").split()
    assert 100 < len(pairs) < 1000
    assert pairs[0] == "44.0,306.0"
    assert pairs[-1] == "324.0,26.0"


def test_points_that_are_missing_are_left_out_of_a_chart() -> None:
    """None and NaN coordinates (an empty calibration bin) draw nothing."""
    chart = svg_line_chart(
        [Series("m", [0.1, None, float("nan"), 0.9], [0.1, 0.5, 0.5, 0.8], "#000", markers=True)],
        title="t",
        x_label="x",
        y_label="y",
    )
    assert len(ET.fromstring(chart).findall("circle")) == 2


def test_the_docstring_examples_hold() -> None:
    """The examples in the module's docstrings pass."""
    result = doctest.testmod(report_module)
    assert result.attempted > 0
    assert result.failed == 0
