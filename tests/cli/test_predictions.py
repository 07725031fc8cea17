"""`driftloop predictions`: the prediction log summarised per model, version and role,
with labels joined, or exported to Parquet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.project import Project
from driftloop.serving.predictionlog import RecordLog, feedback_table, prediction_table

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project whose logs hold 3 champion and 1 canary predictions of 'fraud', one
    'churn' prediction, and a label for the first fraud request."""
    folder = tmp_path / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    config = Project(folder).config.serving
    with RecordLog(config.predictions) as log:
        log.submit(
            "fraud",
            prediction_table(
                request_id=["a", "b", "c"],
                at=[T0, T0 + timedelta(minutes=1), T0 + timedelta(days=1)],
                version=1,
                role="champion",
                prediction=[0.1, 0.9, 0.4],
                latency_ms=[1.0, 2.0, 3.0],
                keys={"customer_id": ["cu_1", "cu_2", "cu_3"]},
                features={"amount": [10.0, 2500.0, 40.0]},
            ),
        )
        log.submit(
            "fraud",
            prediction_table(
                request_id="d", at=T0, version=2, role="canary", prediction=[0.5], latency_ms=4.0
            ),
        )
        log.submit(
            "churn",
            prediction_table(
                request_id="e", at=T0, version=1, role="champion", prediction=[0.2], latency_ms=1.0
            ),
        )
    with RecordLog(config.feedback) as feedback:
        feedback.submit("fraud", feedback_table(request_id="a", label=1.0, at=T0))
    return folder


def test_the_summary_counts_predictions_per_version_and_role(shop: Path) -> None:
    result = cli(shop, "predictions", "fraud", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["rows"] == 4
    counts = {(s["version"], s["role"]): s["predictions"] for s in body["summary"]}
    assert counts == {(1, "champion"): 3, (2, "canary"): 1}
    champion = next(s for s in body["summary"] if s["role"] == "champion")
    assert champion["latency_ms_mean"] == pytest.approx(2.0)
    assert champion["latency_ms_max"] == pytest.approx(3.0)


def test_failed_predictions_are_counted_per_version(shop: Path) -> None:
    with RecordLog(Project(shop).config.serving.predictions) as log:
        log.submit(
            "fraud",
            prediction_table(
                request_id="f",
                at=T0,
                version=2,
                role="canary",
                prediction=[float("nan")] * 2,
                latency_ms=1.0,
                error="ValueError: boom",
            ),
        )
    body = json.loads(cli(shop, "predictions", "fraud", "--json").stdout)
    errors = {(s["version"], s["role"]): s["errors"] for s in body["summary"]}
    assert errors == {(1, "champion"): 0, (2, "canary"): 2}
    assert "errors" in cli(shop, "predictions", "fraud").stdout


def test_labels_joined_and_predictions_still_waiting_are_counted(shop: Path) -> None:
    result = cli(shop, "predictions", "fraud", "--labelled")
    assert result.exit_code == 0, result.output
    assert "3 predictions still await a label" in result.output
    body = json.loads(cli(shop, "predictions", "fraud", "--labelled", "--json").stdout)
    labelled = {(s["version"], s["role"]): s["labelled"] for s in body["summary"]}
    assert labelled == {(1, "champion"): 1, (2, "canary"): 0}


def test_a_time_window_and_an_export_to_parquet(shop: Path, tmp_path: Path) -> None:
    """--since/--until select by prediction time; --output writes the records with the
    inputs as served."""
    out = tmp_path / "out" / "fraud.parquet"
    result = cli(
        shop,
        "predictions",
        "fraud",
        "--since",
        "2024-05-01T00:00:00Z",
        "--until",
        "2024-05-02T00:00:00Z",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 records" in result.output
    table = pq.read_table(out)
    assert sorted(table.column("request_id").to_pylist()) == ["a", "b", "d"]
    assert "feature.amount" in table.column_names


def test_every_model_by_default_and_an_empty_log_says_so(shop: Path, tmp_path: Path) -> None:
    body = json.loads(cli(shop, "predictions", "--json").stdout)
    assert {s["model"] for s in body["summary"]} == {"fraud", "churn"}
    empty = tmp_path / "empty"
    assert CliRunner().invoke(app, ["init", str(empty)], env=ENV).exit_code == 0
    result = cli(empty, "predictions", "fraud", "--labelled")
    assert result.exit_code == 0
    assert "no predictions logged for fraud" in result.output


def test_bad_options_are_usage_errors(shop: Path) -> None:
    assert cli(shop, "predictions", "--output", "x.csv").exit_code == 2
    result = cli(shop, "predictions", "--since", "yesterday")
    assert result.exit_code == 2
    assert "ISO 8601" in result.output
