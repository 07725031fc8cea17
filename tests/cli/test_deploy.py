"""`driftloop deploy` on a project made by `driftloop init`, with three versions of
'fraud' registered and version 1 champion."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.project import Project

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None, "DRIFTLOOP_USER": "ann"}


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deploy") / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    with Project(folder) as project:
        for n in range(1, 4):
            project.register_model(
                "fraud", artifact_digest=hashlib.sha256(bytes([n])).hexdigest(), flavor="sklearn"
            )
        project.set_alias("fraud", "champion", 1, reason="first")
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def test_without_an_action_it_shows_the_deployment(project: Path) -> None:
    """`deploy MODEL` shows the champion and revision 0 of a model never deployed."""
    body = cli_json(project, "deploy", "fraud")
    assert (body["model"], body["champion"], body["canary"], body["revision"]) == (
        "fraud",
        1,
        None,
        0,
    )
    shown = cli(project, "deploy", "fraud")
    assert shown.exit_code == 0, shown.output
    assert "champion" in shown.stdout
    assert "never changed" in shown.stdout


def test_a_canary_takes_a_ref_and_a_weight(project: Path) -> None:
    """--canary latest --weight 10 sends 10 percent to v3 and records who did it."""
    body = cli_json(project, "deploy", "fraud", "--canary", "latest", "--weight", "10")
    assert (body["canary"], body["canary_weight"], body["revision"], body["updated_by"]) == (
        3,
        10.0,
        1,
        "ann",
    )
    shown = cli(project, "deploy", "fraud")
    assert "v3 at 10%" in shown.stdout
    changed = cli(project, "deploy", "fraud", "--canary", "3", "--weight", "30")
    assert changed.exit_code == 0, changed.output
    assert "canary: revision 2" in changed.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--canary", "2"],
        ["--weight", "10"],
        ["--promote", "--abort"],
        ["--shadow", "2", "--no-shadow"],
        ["--expected-revision", "0"],
        ["--split", "a=1:50,b"],
        ["--split", "a=1:50,b=2"],
        ["--split", "a=1:x,b=2:50"],
    ],
)
def test_usage_mistakes_exit_2(project: Path, args: list[str]) -> None:
    """A canary without weight, two actions at once or a malformed --split exit 2."""
    result = cli(project, "deploy", "fraud", *args)
    assert result.exit_code == 2, result.output


def test_rejected_values_exit_3_naming_the_field(project: Path) -> None:
    """A weight over 100 or split percents not summing to 100 are rejected input."""
    result = cli(project, "deploy", "fraud", "--canary", "2", "--weight", "150", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stderr)["field"] == "weight"
    result = cli(project, "deploy", "fraud", "--split", "a=1:50,b=2:40")
    assert result.exit_code == 3
    assert "sum to 90, not 100" in result.stderr


def test_unknown_models_and_versions_exit_4(project: Path) -> None:
    """An unknown model or version exits 4 and lists the known ones."""
    result = cli(project, "deploy", "churn")
    assert result.exit_code == 4
    assert "known: fraud" in result.stderr
    result = cli(project, "deploy", "fraud", "--shadow", "9")
    assert result.exit_code == 4
    assert "known: 1, 2, 3" in result.stderr


def test_a_stale_expected_revision_exits_6_and_changes_nothing(project: Path) -> None:
    """--expected-revision turns the change into a compare-and-set."""
    cli_json(project, "deploy", "fraud", "--shadow", "2", "--expected-revision", "0")
    result = cli(project, "deploy", "fraud", "--shadow", "3", "--expected-revision", "0")
    assert result.exit_code == 6
    assert "at revision 1, not at the expected revision 0" in result.stderr
    assert cli_json(project, "deploy", "fraud")["shadow"] == 2


def test_promote_moves_the_champion_and_both_histories_show_it(project: Path) -> None:
    """--promote makes the canary champion (the alias moves) and clears the canary."""
    cli_json(project, "deploy", "fraud", "--canary", "2", "--weight", "5")
    body = cli_json(project, "deploy", "fraud", "--promote", "--reason", "healthy")
    assert (body["champion"], body["canary"]) == (2, None)
    assert cli_json(project, "models", "list")["models"][0]["aliases"] == {"champion": 2}
    moves = cli_json(project, "models", "history", "fraud")["history"]
    assert (moves[-1]["from_version"], moves[-1]["to_version"], moves[-1]["reason"]) == (
        1,
        2,
        "healthy",
    )
    changes = cli_json(project, "deploy", "fraud", "--history")["history"]
    assert [c["action"] for c in changes] == ["canary", "promote"]
    assert changes[-1]["state"]["champion"] == 2
    result = cli(project, "deploy", "fraud", "--promote")
    assert result.exit_code == 6
    assert "no canary to promote" in result.stderr


def test_stage_and_switch_swap_the_champion(project: Path) -> None:
    """--stage loads a version for a blue-green switch, --switch makes it champion."""
    assert cli_json(project, "deploy", "fraud", "--stage", "3")["staged"] == 3
    body = cli_json(project, "deploy", "fraud", "--switch")
    assert (body["champion"], body["staged"]) == (3, None)
    assert cli(project, "deploy", "fraud", "--switch").exit_code == 6


def test_split_shadow_routing_key_and_abort(project: Path) -> None:
    """A split, a shadow and a routing key are set; --abort clears all but the key."""
    body = cli_json(project, "deploy", "fraud", "--split", "a=champion:70,b=2:30")
    assert (body["split"], body["split_weights"]) == ({"a": 1, "b": 2}, {"a": 70, "b": 30})
    assert cli_json(project, "deploy", "fraud", "--split", "a=1,b=3")["split_weights"] == {
        "a": 50,
        "b": 50,
    }
    assert cli_json(project, "deploy", "fraud", "--shadow", "2")["shadow"] == 2
    body = cli_json(project, "deploy", "fraud", "--routing-key", "customer_id")
    assert body["routing_key"] == "customer_id"
    shown = cli(project, "deploy", "fraud")
    assert "a=v1 (50%), b=v3 (50%)" in shown.stdout
    body = cli_json(project, "deploy", "fraud", "--abort", "--reason", "done")
    assert (body["split"], body["shadow"], body["routing_key"]) == (None, None, "customer_id")
    assert cli_json(project, "deploy", "fraud", "--no-shadow")["revision"] == body["revision"]
    assert cli_json(project, "deploy", "fraud", "--routing-key", "")["routing_key"] is None


def test_history_lists_every_change(project: Path) -> None:
    """--history shows revision, action, roles, who and why, oldest first."""
    assert "never changed" in cli(project, "deploy", "fraud", "--history").stdout
    cli_json(project, "deploy", "fraud", "--canary", "2", "--weight", "10", "--reason", "try")
    cli_json(project, "deploy", "fraud", "--abort")
    result = cli(project, "deploy", "fraud", "--history")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("canary" in line and "v2 10%" in line and "try" in line for line in lines)
    assert any("abort" in line and "ann" in line for line in lines)
