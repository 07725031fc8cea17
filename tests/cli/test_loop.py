"""`driftloop run` and `driftloop runs list|show|start`: the controller and its pipeline
runs from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.cli.init import write_example
from driftloop.project import Project

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}


def cli(project: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *args], env=ENV)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-loop") / "shop"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
        project.train("fraud", promote=True)
    return folder


@pytest.fixture
def shop(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def test_a_run_queued_by_hand_is_carried_out_by_the_controller(shop: Path) -> None:
    queued = cli(shop, "runs", "start", "fraud", "--reason", "new labels", "--json")
    assert queued.exit_code == 0, queued.output
    run_id = json.loads(queued.stdout)["id"]
    for _ in range(3):
        tick = cli(shop, "run", "--once", "--executor", "inline")
        assert tick.exit_code == 0, tick.output
    listed = json.loads(cli(shop, "runs", "list", "--json").stdout)["runs"]
    assert [(r["id"], r["state"]) for r in listed] == [(run_id, "promoted")]
    shown = cli(shop, "runs", "show", run_id)
    assert shown.exit_code == 0
    assert "new labels" in shown.stdout
    assert "register" in shown.stdout
    timeline = json.loads(cli(shop, "runs", "show", run_id, "--json").stdout)["timeline"]
    assert timeline[0]["kind"] == "created"
    assert timeline[-1]["kind"] == "promoted"


def test_bad_loop_input_exits_with_a_message(shop: Path) -> None:
    unknown_model = cli(shop, "runs", "start", "nobody")
    assert unknown_model.exit_code == 4
    assert "nobody" in unknown_model.output
    unknown_run = cli(shop, "runs", "show", "pr-nothing")
    assert unknown_run.exit_code == 4
    assert cli(shop, "run", "--executor", "threads").exit_code == 2
    assert "no pipeline runs yet" in cli(shop, "runs", "list").stdout


def test_the_loop_executor_setting_chooses_the_executor(shop: Path) -> None:
    """With loop.executor set to inline, `driftloop run` needs no --executor; a value
    that is no executor is a configuration error naming the setting."""
    queued = json.loads(cli(shop, "runs", "start", "fraud", "--json").stdout)["id"]
    inline = {**ENV, "DRIFTLOOP_LOOP_EXECUTOR": "inline"}
    for _ in range(3):
        tick = CliRunner().invoke(app, ["-p", str(shop), "run", "--once"], env=inline)
        assert tick.exit_code == 0, tick.output
    assert Project(shop).pipeline_run(queued)[0].state == "promoted"
    wrong = {**ENV, "DRIFTLOOP_LOOP_EXECUTOR": "threads"}
    refused = CliRunner().invoke(app, ["-p", str(shop), "run", "--once"], env=wrong)
    assert refused.exit_code != 0
    assert "loop.executor" in refused.output
