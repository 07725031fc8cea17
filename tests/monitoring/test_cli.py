"""`driftloop monitor run|show|alerts`: the monitoring commands over a project's logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from typer.testing import CliRunner, Result

from driftloop.cli import app

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # the conftest's first prediction day


def cli(monitored: Any, *args: str) -> Result:
    return CliRunner().invoke(app, ["-p", str(monitored.folder), *args], env=ENV)


def test_monitor_run_analyses_the_new_windows_and_show_prints_them(monitored: Any) -> None:
    monitored.serve(T0, 24, 50, seed=1)
    monitored.serve(T0 + timedelta(days=1), 24, 50, seed=2, shift=1.0)
    now = (T0 + timedelta(days=2)).isoformat()
    done = cli(monitored, "monitor", "run", "fraud", "--now", now)
    assert done.exit_code == 0, done.output
    assert "fraud: 2 window(s) analysed" in done.output
    assert "feature.amount" in done.output
    assert "report:" in done.output
    again = cli(monitored, "monitor", "run", "fraud", "--now", now, "--json")
    assert json.loads(again.output) == [
        {"model": "fraud", "windows": [], "alerts": [], "refreshed": 2}  # still awaiting labels
    ]
    shown = cli(monitored, "monitor", "show", "fraud", "--json")
    windows = json.loads(shown.output)["windows"]
    assert [w["rows"] for w in windows] == [1200, 1200]
    series = cli(
        monitored,
        "monitor",
        "show",
        "fraud",
        "--metric",
        "drift.detected",
        "--column",
        "feature.amount",
        "--json",
    )
    assert [p["value"] for p in json.loads(series.output)] == [0.0, 1.0]


def test_monitor_alerts_lists_firing_alerts_with_their_evidence(monitored: Any) -> None:
    monitored.serve(T0, 48, 50, seed=1, nulls=0.5)
    done = cli(monitored, "monitor", "run", "--now", (T0 + timedelta(days=2)).isoformat())
    assert done.exit_code == 0, done.output
    listed = cli(monitored, "monitor", "alerts", "fraud", "--json")
    alerts = json.loads(listed.output)
    assert [a["rule"] for a in alerts] == ["missing inputs"]
    assert "missing" in cli(monitored, "monitor", "alerts").output


def test_bad_monitor_input_exits_with_a_message(monitored: Any) -> None:
    unknown = cli(monitored, "monitor", "run", "nobody")
    assert unknown.exit_code == 4
    assert "nobody" in unknown.output
    steps = cli(monitored, "monitor", "run", "fraud", "--window", "1d", "--step", "7h")
    assert steps.exit_code == 3
    assert "whole number of steps" in steps.output
    against = cli(monitored, "monitor", "run", "fraud", "--against", "yesterday")
    assert against.exit_code == 2
    missing = cli(monitored, "monitor", "show", "fraud", "--metric", "nothing")
    assert missing.exit_code == 1
    assert "no figure" in missing.output
