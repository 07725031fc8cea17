"""`driftloop train` and the commands that read what training recorded: `models runs`,
`models run`, `models report`, `models card` and `models diff`.

The example project is made by `driftloop init` at a fixed time ``T0`` and both clean
batches are ingested (the first a week before ``T0``), so trainings see the same rows
on every run of the suite.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.cli.train import GATES_FAILED
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.project import Project

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}
T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(hours=1)


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def assert_self_contained_page(path: Path) -> ET.Element:
    """The page parses as XML, has inline CSS and SVG, and loads nothing from elsewhere."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(text.removeprefix("<!DOCTYPE html>\n"))
    tags = {element.tag.rpartition("}")[2] for element in root.iter()}
    assert "style" in tags
    assert "script" not in tags
    assert "link" not in tags
    for element in root.iter():
        assert "src" not in element.attrib
        assert not element.attrib.get("href", "#").startswith(("http:", "https:", "//"))
    return root


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`driftloop init` at T0, views applied, both clean batches ingested."""
    folder = tmp_path_factory.mktemp("train") / "shop"
    with use_clock(SimulatedClock(T0)):
        assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    clock = SimulatedClock(T0 - timedelta(days=7) + timedelta(minutes=1))
    with use_clock(clock):
        assert cli(folder, "apply").exit_code == 0
        data = folder / "data"
        assert (
            cli(folder, "data", "ingest", "transactions", data / "transactions-1.csv").exit_code
            == 0
        )
        clock.set(T0)
        assert (
            cli(folder, "data", "ingest", "transactions", data / "transactions-2.csv").exit_code
            == 0
        )
    return folder


@pytest.fixture(scope="module")
def trained(example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with v1 (champion) and v2, trained with other params."""
    folder = Path(shutil.copytree(example, tmp_path_factory.mktemp("trained") / "shop"))
    with Project(folder) as project:
        project.train("fraud", as_of=AS_OF, promote=True)
        spec = replace(project.model_spec("fraud"), params={"max_iter": 30, "learning_rate": 0.1})
        project.train(spec, as_of=AS_OF)
    return folder


@pytest.fixture
def project(example: Path, tmp_path: Path) -> Path:
    """A copy of the example, with data and no model version yet."""
    return Path(shutil.copytree(example, tmp_path / "shop"))


# -- driftloop train ----------------------------------------------------------------


def test_train_prints_the_version_verdict_and_reasons_and_writes_the_report(
    project: Path, tmp_path: Path
) -> None:
    """`train fraud --report F` registers v1, prints PASS with each gate's reason and the
    alias it moved, exits 0 and writes the report as a self-contained HTML page."""
    page = tmp_path / "out" / "report.html"
    result = cli(project, "train", "fraud", "--report", page)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fraud v1  registered  gates: PASS" in out
    assert "no champion yet" in out
    assert "PASS: roc_auc >= 0.6: roc_auc = " in out
    assert "SKIP: roc_auc vs champion improves by >= -0.02: no champion yet" in out
    assert "PASS: ece <= 0.05" in out
    assert "challenger -> v1" in out
    assert "champion -> v1" not in out
    assert f"report: {page}" in out
    root = assert_self_contained_page(page)
    assert "svg" in {element.tag.rpartition("}")[2] for element in root.iter()}
    assert "Evaluation of fraud" in page.read_text(encoding="utf-8")
    assert cli_json(project, "models", "show", "fraud", "challenger")["version"] == 1
    assert cli(project, "models", "show", "fraud", "champion").exit_code == 4


def test_train_json_gives_the_outcome_and_promote_moves_the_champion(project: Path) -> None:
    """`train fraud --promote --json` prints the outcome dict; champion points at v1."""
    body = cli_json(project, "train", "fraud", "--promote")
    assert (body["model"], body["version"], body["passed"], body["champion"]) == (
        "fraud",
        1,
        True,
        None,
    )
    assert [(m["alias"], m["to_version"]) for m in body["aliases"]] == [
        ("challenger", 1),
        ("champion", 1),
    ]
    assert body["run"].startswith("run-")
    assert body["reasons"][1].startswith("SKIP: ")
    assert body["split"]["train"]["rows"] > 0
    assert body["split"]["validation"]["rows"] > 0
    assert {"roc_auc", "ece"} <= body["metrics"].keys()
    shown = cli_json(project, "models", "show", "fraud", "champion")
    assert (shown["version"], shown["run_id"]) == (1, body["run"])
    assert shown["lineage"]["evaluation_report"] == body["report"]


def test_train_exits_8_when_a_gate_fails_and_still_registers_the_version(
    project: Path,
) -> None:
    """With a roc_auc gate the model cannot reach, train prints FAIL, exits 8, registers
    the version with verdict "fail" and moves no alias."""
    edit(
        project / "definitions.py",
        'Threshold("roc_auc", min=0.6)',
        'Threshold("roc_auc", min=0.99)',
    )
    result = cli(project, "train", "fraud", "--promote")
    assert result.exit_code == GATES_FAILED == 8
    assert "fraud v1  registered  gates: FAIL" in result.stdout
    assert "FAIL: roc_auc >= 0.99: roc_auc = " in result.stdout
    assert "challenger ->" not in result.stdout
    assert "champion ->" not in result.stdout
    version = cli_json(project, "models", "show", "fraud", "1")
    assert (version["tags"]["verdict"], version["aliases"]) == ("fail", [])
    as_json = cli(project, "train", "fraud", "--json")
    assert as_json.exit_code == 8
    assert json.loads(as_json.stdout)["passed"] is False


def test_an_unknown_model_spec_exits_4_listing_the_known_ones(project: Path) -> None:
    """`train nope` exits 4 and names the declared model specs; no run is recorded."""
    result = cli(project, "train", "nope")
    assert result.exit_code == 4
    assert "unknown model spec 'nope' (known: fraud)" in result.stderr
    assert cli_json(project, "models", "runs")["runs"] == []


def test_a_broken_model_spec_exits_5_naming_the_model(project: Path) -> None:
    """A spec with an unknown task fails to load: exit 5, naming the model and the task."""
    edit(project / "definitions.py", 'task="binary"', 'task="binery"')
    result = cli(project, "train", "fraud")
    assert result.exit_code == 5
    assert "model 'fraud': unknown task 'binery'" in result.stderr
    assert "definitions.py" in result.stderr


# -- runs, reports, cards, diffs ------------------------------------------------------


def test_models_runs_lists_the_runs_newest_first(trained: Path) -> None:
    """`models runs` gives each run with its model, status and version, newest first."""
    runs = cli_json(trained, "models", "runs")["runs"]
    assert [(r["model"], r["status"], r["model_version"]) for r in runs] == [
        ("fraud", "succeeded", 2),
        ("fraud", "succeeded", 1),
    ]
    assert [r["params"]["max_iter"] for r in runs] == [30, 100]
    assert len(cli_json(trained, "models", "runs", "fraud", "--limit", "1")["runs"]) == 1
    assert cli_json(trained, "models", "runs", "other")["runs"] == []
    human = cli(trained, "models", "runs")
    assert human.exit_code == 0
    assert runs[0]["id"] in human.stdout
    assert "succeeded" in human.stdout
    assert "pass" in human.stdout


def test_models_run_shows_one_run_by_id_or_prefix(trained: Path) -> None:
    """`models run RUN` shows params, data and code versions; a unique prefix works too."""
    first = cli_json(trained, "models", "runs")["runs"][-1]
    body = cli_json(trained, "models", "run", first["id"])
    assert body == first
    assert body["code_version"]["git_sha"] is None
    assert body["split"]["validation"]["rows"] > 0
    human = cli(trained, "models", "run", first["id"][:-2])
    assert human.exit_code == 0, human.output
    out = human.stdout
    assert first["id"] in out
    assert "fraud (v1)" in out
    assert "max_iter" in out
    assert "learning_rate" in out
    assert "scikit-learn" in out
    assert "transactions" in out
    assert cli(trained, "models", "run", "run-nope").exit_code == 4


def test_models_report_shows_the_evaluation_against_the_champion(
    trained: Path, tmp_path: Path
) -> None:
    """`models report fraud 2` gives the stored report (--json), a table of metrics with
    the champion's and the interval of each difference, and --html writes the page."""
    body = cli_json(trained, "models", "report", "fraud", "2")
    with Project(trained) as project:
        assert body == project.evaluation_report("fraud", 2)
    assert body["challenger"]["version"] == 2
    runs = {r["model_version"]: r["id"] for r in cli_json(trained, "models", "runs")["runs"]}
    assert body["challenger"]["run_id"] == runs[2]
    assert body["champion"] == {"label": "fraud/1 (champion)", "version": 1, "run_id": runs[1]}
    assert all(m["difference"] is not None for m in body["metrics"])
    page = tmp_path / "report.html"
    human = cli(trained, "models", "report", "fraud", "2", "--html", page)
    assert human.exit_code == 0, human.output
    out = human.stdout
    assert "fraud/2 (challenger)  vs  fraud/1 (champion)" in out
    assert f"on {body['rows']} rows" in out
    assert "interval" in out
    assert "PASS: roc_auc vs champion improves by >= -0.02" in out
    assert f"report: {page}" in out
    assert_self_contained_page(page)
    assert runs[2] in page.read_text(encoding="utf-8")
    first = cli(trained, "models", "report", "fraud", "1")
    assert first.exit_code == 0
    assert "vs  no champion" in first.stdout
    assert "SKIP: roc_auc vs champion" in first.stdout


def test_models_report_of_a_version_registered_by_hand_exits_4(project: Path) -> None:
    """A version without a stored evaluation report is not found (exit 4)."""
    with Project(project) as opened:
        opened.register_model("fraud", artifact_digest="0" * 64, flavor="sklearn")
    result = cli(project, "models", "report", "fraud", "1")
    assert result.exit_code == 4
    assert "evaluation report" in result.stderr


def test_models_card_prints_markdown_and_writes_html_and_markdown_files(
    trained: Path, tmp_path: Path
) -> None:
    """`models card fraud 1` prints the Markdown card; -o writes it to a file, --html
    writes a self-contained page, --json gives the data behind it."""
    data = cli_json(trained, "models", "card", "fraud", "1")
    with Project(trained) as project:
        assert data == project.model_card("fraud", 1)
    assert (data["model"], data["version"], data["aliases"]) == ("fraud", 1, {"champion": 1})
    printed = cli(trained, "models", "card", "fraud", "1")
    assert printed.exit_code == 0, printed.output
    markdown = printed.stdout
    assert markdown.startswith("# Model card: fraud v1")
    assert "Rank payments for manual review" in markdown
    assert "last_transaction@" in markdown
    assert data["run"]["id"] in markdown
    target = tmp_path / "cards" / "fraud-1.md"
    written = cli(trained, "models", "card", "fraud", "1", "-o", target)
    assert written.exit_code == 0, written.output
    assert f"card: {target}" in written.stdout
    assert target.read_text(encoding="utf-8").strip() == markdown.strip()
    page = tmp_path / "cards" / "fraud-1.html"
    html = cli(trained, "models", "card", "fraud", "1", "--html", page)
    assert html.exit_code == 0, html.output
    assert f"card: {page}" in html.stdout
    assert_self_contained_page(page)
    assert "fraud" in page.read_text(encoding="utf-8")


def test_models_diff_of_trained_versions_includes_the_params(trained: Path) -> None:
    """`models diff fraud 1 2` lists the hyperparameters that changed between the runs."""
    body = cli_json(trained, "models", "diff", "fraud", "1", "2")
    assert body["params"] == {"learning_rate": [0.05, 0.1], "max_iter": [100, 30]}
    assert "roc_auc" in body["metrics"]
    human = cli(trained, "models", "diff", "fraud", "1", "2")
    assert human.exit_code == 0
    rows = [line.split() for line in human.stdout.splitlines()]
    assert ["params", "max_iter", "100", "30"] in rows
    assert ["params", "learning_rate", "0.05", "0.1"] in rows
    assert cli_json(trained, "models", "diff", "fraud", "2", "2")["params"] == {}
