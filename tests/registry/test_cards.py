"""A model card tells what a version is, what it was trained on, how it scored and its limits."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from driftloop.evaluation.metrics import calibration
from driftloop.registry.cards import card_html, card_markdown

SECTIONS = [
    "Intended use",
    "Training data",
    "Features",
    "Label",
    "Training",
    "Evaluation",
    "Limitations",
    "Lineage",
]
TRAINING_SET = "1" * 64
DATASET = "2" * 64
ARTIFACT = "3" * 64


def _curves(y: np.ndarray, p: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    cal = calibration(y, p, bins=10)
    bins = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in cal.rows()
    ]
    fpr, tpr, _ = roc_curve(y, p)
    auc = float(roc_auc_score(y, p))
    return {"ece": cal.ece, "bins": bins}, {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc}


def evaluation_report() -> dict[str, Any]:
    """An evaluation of v3 against v2 with real calibration and ROC curves."""
    rng = np.random.default_rng(5)
    y = (rng.random(1000) < 0.3).astype(float)
    old = 1 / (1 + np.exp(-(y * 1.2 + rng.normal(0, 1.0, 1000) - 0.6)))
    new = 1 / (1 + np.exp(-(y * 2.0 + rng.normal(0, 0.8, 1000) - 1.0)))
    (cal_new, roc_new), (cal_old, roc_old) = _curves(y, new), _curves(y, old)
    return {
        "model": "fraud",
        "task": "binary",
        "created_at": "2026-11-25T10:00:00+00:00",
        "rows": 1000,
        "threshold": 0.5,
        "confidence": 0.95,
        "resamples": 1000,
        "challenger": {"label": "fraud v3", "version": 3, "run_id": "run-3"},
        "champion": {"label": "fraud v2", "version": 2},
        "metrics": [
            {
                "name": "roc_auc",
                "greater_is_better": True,
                "challenger": roc_new["auc"],
                "champion": roc_old["auc"],
                "difference": {"observed": 0.15, "low": 0.13, "high": 0.17, "std_error": 0.01},
            },
            {
                "name": "log_loss",
                "greater_is_better": False,
                "challenger": 0.3744,
                "champion": None,
                "difference": {"observed": 0.01, "low": -0.02, "high": 0.04, "std_error": 0.01},
            },
        ],
        "slices": [
            {
                "column": "country",
                "label": "country = DE",
                "count": 700,
                "too_small": False,
                "challenger": {"roc_auc": 0.95, "log_loss": 0.38},
                "champion": {"roc_auc": 0.8, "log_loss": 0.54},
            },
            {
                "column": "country",
                "label": "country = IT",
                "count": 12,
                "too_small": True,
                "challenger": None,
                "champion": None,
            },
        ],
        "calibration": {"challenger": cal_new, "champion": cal_old},
        "roc": {"challenger": roc_new, "champion": roc_old},
        "verdict": {
            "passed": False,
            "results": [
                {"gate": "roc_auc >= 0.75", "passed": True, "reason": "roc_auc = 0.95"},
                {"gate": "log_loss vs champion", "passed": False, "reason": "not computed"},
                {"gate": "roc_auc in every slice", "passed": None, "reason": "no slice to compare"},
            ],
        },
    }


def model_card() -> dict[str, Any]:
    return {
        "model": "fraud",
        "version": 3,
        "created_at": "2026-11-25T11:00:00+00:00",
        "created_by": "alice",
        "description": "Scores card transactions.",
        "intended_use": "Rank transactions for manual review.",
        "limitations": "Not calibrated for merchants outside the EU.",
        "flavor": "sklearn",
        "trust_pickle": False,
        "artifact_digest": ARTIFACT,
        "task": "binary",
        "trainer": "hist_gradient_boosting",
        "params": {"max_iter": 100, "learning_rate": 0.1},
        "seed": 7,
        "features": [
            {"name": "amount", "type": "numeric", "ref": "last_transaction@ab12cd34:amount"},
            {"name": "country", "type": "categorical", "ref": "customer@ab12cd34:country"},
        ],
        "label": {
            "source": "transactions",
            "column": "is_fraud",
            "entity": "customer",
            "timestamp": "event_time",
            "known_after": "7d",
            "known_at_column": None,
        },
        "training_data": {
            "training_set": TRAINING_SET,
            "rows": 4000,
            "train": {"rows": 3200, "start": "2026-01-01", "end": "2026-09-30"},
            "validation": {"rows": 800, "start": "2026-10-01", "end": "2026-10-31"},
            "views": [{"name": "customer_spend", "version": "ab12cd34ef"}],
            "dataset_versions": {"transactions": [DATASET]},
        },
        "run": {
            "id": "run-3",
            "duration_s": 1.234567,
            "peak_memory_mb": 150.0,
            "code_version": {"driftloop": "0.1.0", "git_sha": "abc1234", "git_dirty": False},
            "library_versions": {"python": "3.11.7", "scikit-learn": "1.5"},
        },
        "evaluation": evaluation_report(),
        "aliases": {"champion": 3},
    }


def _md_section(markdown: str, title: str) -> str:
    """The Markdown from ``## title`` to the next ``## `` heading."""
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every table line, split on pipes that are not escaped."""
    return [
        [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in text.splitlines()
        if line.startswith("|")
    ]


@pytest.fixture
def card() -> dict[str, Any]:
    return model_card()


def test_the_markdown_card_has_its_title_and_every_section_in_order(card: dict[str, Any]) -> None:
    """The card opens with its title and lists the sections in the declared order."""
    markdown = card_markdown(card)
    assert markdown.startswith("# Model card: fraud v3\n")
    assert re.findall(r"^## (.+)$", markdown, flags=re.M) == SECTIONS


def test_the_summary_says_what_who_when_and_which_aliases(card: dict[str, Any]) -> None:
    """The paragraph under the title names task, trainer, flavor, author, date and aliases."""
    summary = card_markdown(card).split("\n\n")[1]
    for said in ("binary", "hist_gradient_boosting", "sklearn", "alice", "2026-11-25T11:00"):
        assert said in summary
    assert "Aliases pointing at it: champion." in summary


def test_training_data_gives_the_set_its_time_ranges_views_and_dataset_versions(
    card: dict[str, Any],
) -> None:
    """Train and validation ranges come with their rows; views and datasets with versions."""
    data = _md_section(card_markdown(card), "Training data")
    assert f"`{TRAINING_SET}`" in data
    assert "3,200 rows from 2026-01-01 to 2026-09-30" in data
    assert "800 rows from 2026-10-01 to 2026-10-31" in data
    assert ["customer_spend", "`ab12cd34ef`"] in _table_rows(data)
    assert ["transactions", f"`{DATASET[:12]}`"] in _table_rows(data)


def test_features_and_label_are_listed(card: dict[str, Any]) -> None:
    """Each feature has its type and reference; the label its source and delay."""
    markdown = card_markdown(card)
    rows = _table_rows(_md_section(markdown, "Features"))
    assert rows[0] == ["Name", "Type", "Reference"]
    assert ["amount", "numeric", "`last_transaction@ab12cd34:amount`"] in rows
    label = _md_section(markdown, "Label")
    assert "- **Source:** `transactions`" in label
    assert "- **Known after:** `7d`" in label
    assert "- **Known at column:** —" in label


def test_training_gives_parameters_seed_resources_and_versions(card: dict[str, Any]) -> None:
    """Parameters, seed, duration, peak memory, code and library versions are shown."""
    training = _md_section(card_markdown(card), "Training")
    for said in ("**Seed:** 7", "**Duration:** 1.235 s", "**Peak memory:** 150 MB", "abc1234"):
        assert said in training
    rows = _table_rows(training)
    assert ["max_iter", "`100`"] in rows
    assert ["scikit-learn", "1.5"] in rows


def test_the_evaluation_compares_with_the_champion_and_lists_every_gate(
    card: dict[str, Any],
) -> None:
    """Metrics show champion, difference, interval and assessment; gates PASS, FAIL or SKIP."""
    evaluation = _md_section(card_markdown(card), "Evaluation")
    assert "Verdict: **FAIL** (1 PASS, 1 FAIL, 1 SKIP)." in evaluation
    rows = _table_rows(evaluation)
    assert ["roc_auc >= 0.75", "PASS", "roc_auc = 0.95"] in rows
    assert ["log_loss vs champion", "FAIL", "not computed"] in rows
    assert ["roc_auc in every slice", "SKIP", "no slice to compare"] in rows
    assert ["Metric", "Challenger", "Champion", "Difference", "Interval", "Assessment"] in rows
    roc_auc = next(r for r in rows if r[0] == "roc_auc")
    assert roc_auc[3:] == ["+0.15", "[+0.13, +0.17]", "better"]
    assert ["log_loss", "0.3744", "—", "+0.01", "[-0.02, +0.04]", "inconclusive"] in rows


def test_the_slice_table_leaves_out_too_small_slices_and_counts_them(
    card: dict[str, Any],
) -> None:
    """Only slices large enough appear; the others are counted and listed as not evaluated."""
    markdown = card_markdown(card)
    evaluation = _md_section(markdown, "Evaluation")
    assert ["country", "country = DE", "700", "0.95 (0.8)", "0.38 (0.54)"] in _table_rows(
        evaluation
    )
    assert "country = IT" not in evaluation
    assert "1 slice(s) too small to evaluate" in evaluation
    limitations = _md_section(markdown, "Limitations")
    assert "not evaluated: country = IT (12 rows)" in limitations


def test_limitations_keep_the_specs_text_and_add_derived_notes(card: dict[str, Any]) -> None:
    """Pickle, no champion and a dirty working tree each add a note to the spec's text."""
    card["flavor"], card["trust_pickle"] = "pickle", True
    card["run"]["code_version"]["git_dirty"] = True
    card["evaluation"]["champion"] = None
    limitations = _md_section(card_markdown(card), "Limitations")
    assert limitations.startswith("Not calibrated for merchants outside the EU.")
    assert "pickle flavor: loading the model runs code" in limitations
    assert "No champion to compare with" in limitations
    assert "working tree was dirty at training time" in limitations


def test_a_clean_card_states_no_derived_limitation(card: dict[str, Any]) -> None:
    """Without too-small slices, pickle or a dirty tree, only the spec's text remains."""
    card["evaluation"]["slices"] = card["evaluation"]["slices"][:1]
    card["evaluation"]["verdict"]["results"] = card["evaluation"]["verdict"]["results"][:2]
    limitations = _md_section(card_markdown(card), "Limitations")
    assert limitations == "Not calibrated for merchants outside the EU."
    card["limitations"] = ""
    assert _md_section(card_markdown(card), "Limitations") == "None stated."


def test_without_a_champion_the_evaluation_shows_the_challenger_alone(
    card: dict[str, Any],
) -> None:
    """The metric table has no champion column, and the slices show the challenger only."""
    report = card["evaluation"]
    report["champion"] = None
    for m in report["metrics"]:
        m["champion"] = m["difference"] = None
    evaluation = _md_section(card_markdown(card), "Evaluation")
    assert "- **Compared with:** no champion" in evaluation
    assert ["Metric", "Challenger"] in _table_rows(evaluation)
    assert ["country", "country = DE", "700", "0.95", "0.38"] in _table_rows(evaluation)


def test_lineage_gives_the_full_identifiers(card: dict[str, Any]) -> None:
    """Run, training set, artifact digest, views and full dataset versions."""
    lineage = _md_section(card_markdown(card), "Lineage")
    for identifier in ("run-3", TRAINING_SET, ARTIFACT, DATASET, "ab12cd34ef"):
        assert f"`{identifier}`" in lineage


def test_markdown_table_cells_escape_pipes_and_newlines(card: dict[str, Any]) -> None:
    """A pipe or line break in a value stays inside its cell."""
    card["features"][0]["name"] = "a|b"
    card["evaluation"]["verdict"]["results"][0]["reason"] = "first line\nsecond | line"
    markdown = card_markdown(card)
    assert ["a\\|b", "numeric", "`last_transaction@ab12cd34:amount`"] in _table_rows(markdown)
    assert ["roc_auc >= 0.75", "PASS", "first line<br>second \\| line"] in _table_rows(markdown)
    for line in markdown.splitlines():
        if line.startswith("|"):
            assert line.endswith(" |")


def test_an_unevaluated_version_says_so(card: dict[str, Any]) -> None:
    """No evaluation: both renderings say so and the limitations note it."""
    card["evaluation"] = None
    markdown = card_markdown(card)
    assert "This version was not evaluated." in _md_section(markdown, "Evaluation")
    assert "Not evaluated" in _md_section(markdown, "Limitations")
    page = card_html(card)
    assert "This version was not evaluated." in page
    assert "<svg" not in page


def test_a_card_with_only_a_name_renders_with_dashes() -> None:
    """Missing optional keys do not crash either renderer."""
    markdown = card_markdown({"model": "fraud"})
    assert markdown.startswith("# Model card: fraud\n")
    assert re.findall(r"^## (.+)$", markdown, flags=re.M) == SECTIONS
    assert "- **Training set:** —" in markdown
    page = card_html({"model": "fraud", "version": 1})
    ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def test_the_html_card_is_self_contained_well_formed_and_has_the_same_sections(
    card: dict[str, Any],
) -> None:
    """The page loads nothing, parses as XML and carries the Markdown card's sections."""
    page = card_html(card)
    for needle in ("http://", "https://", "<script", "<link", "src="):
        assert needle not in page
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
    h2 = [h.text for h in root.iter("h2")]
    assert h2 == SECTIONS
    assert root.findtext(".//h1") == "Model card: fraud v3"


def test_the_html_card_embeds_the_evaluation_with_its_verdict_and_charts(
    card: dict[str, Any],
) -> None:
    """The evaluation section holds the verdict badge, the metric table and both charts."""
    page = card_html(card)
    assert '<span class="badge fail">FAIL</span>' in page
    assert [h for h in ("Verdict", "Metrics", "Slices", "Charts") if f"<h3>{h}</h3>" in page] == [
        "Verdict",
        "Metrics",
        "Slices",
        "Charts",
    ]
    titles = [svg.findtext("title") for svg in ET.fromstring(page[15:]).iter("svg")]
    assert "Reliability" in titles
    assert "ROC curve" in titles
    assert "too small" in page


def test_the_html_card_escapes_every_string_from_the_card(card: dict[str, Any]) -> None:
    """Names, free text and evaluation labels cannot inject markup."""
    evil = copy.deepcopy(card)
    evil["model"] = "<script>alert(1)</script>"
    evil["description"] = "<img src=x onerror=alert(1)>"
    evil["features"][0]["ref"] = "</code><b>"
    evil["evaluation"]["challenger"]["label"] = "<i>v3</i>"
    page = card_html(evil)
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
