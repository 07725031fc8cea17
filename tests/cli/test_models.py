"""`driftloop models` on a project made by `driftloop init`, with versions registered
through `Project.register_model` (no training command exists yet)."""

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

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with two versions of the model 'fraud' registered."""
    folder = tmp_path_factory.mktemp("models") / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    with Project(folder) as project:
        project.register_model(
            "fraud",
            artifact_digest=digest("m1"),
            flavor="sklearn",
            metrics={"auc": 0.81, "logloss": 0.42},
            tags={"team": "risk"},
            lineage={"training_set": "ts1"},
            description="first",
        )
        project.register_model(
            "fraud",
            artifact_digest=digest("m2"),
            flavor="sklearn",
            metrics={"auc": 0.84, "logloss": 0.42},
            tags={"team": "risk", "owner": "ana"},
            lineage={"training_set": "ts2"},
            run_id="run-2",
        )
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def test_list_shows_each_model_with_its_latest_version_and_aliases(project: Path) -> None:
    """models list --json gives every model's name, latest version and aliases."""
    cli_json(project, "models", "alias", "fraud", "champion", "1")
    models = cli_json(project, "models", "list")["models"]
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in models] == [
        ("fraud", 2, {"champion": 1})
    ]
    assert set(models[0]) >= {"created_at", "created_by", "description"}
    table = cli(project, "models", "list")
    assert table.exit_code == 0
    assert "champion=v1" in table.stdout


def test_show_gives_a_version_by_number_latest_or_alias(project: Path) -> None:
    """models show resolves latest by default, a number or an alias, and lists its aliases."""
    latest = cli_json(project, "models", "show", "fraud")
    assert latest["version"] == 2
    assert latest["artifact_digest"] == digest("m2")
    assert latest["metrics"] == {"auc": 0.84, "logloss": 0.42}
    assert latest["run_id"] == "run-2"
    assert latest["aliases"] == []
    cli_json(project, "models", "alias", "fraud", "champion", "1")
    first = cli_json(project, "models", "show", "fraud", "champion")
    assert (first["version"], first["aliases"], first["description"]) == (1, ["champion"], "first")
    assert cli_json(project, "models", "show", "fraud", "1") == first
    human = cli(project, "models", "show", "fraud", "1")
    assert human.exit_code == 0
    assert "fraud/1" in human.stdout
    assert "auc" in human.stdout


def test_moving_an_alias_is_recorded_in_its_history(project: Path) -> None:
    """Setting then moving an alias writes one history row each, with who, from, to and why."""
    first = cli_json(project, "models", "alias", "fraud", "champion", "1", "--reason", "first")
    assert (first["from_version"], first["to_version"]) == (None, 1)
    moved = cli_json(project, "models", "alias", "fraud", "champion", "latest", "--expected", "1")
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    cli_json(project, "models", "alias", "fraud", "challenger", "champion")
    only = cli_json(project, "models", "history", "fraud", "--alias", "champion")["history"]
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in only] == [
        (None, 1, "first"),
        (1, 2, ""),
    ]
    every = cli_json(project, "models", "history", "fraud")["history"]
    assert [m["alias"] for m in every] == ["champion", "champion", "challenger"]
    human = cli(project, "models", "history", "fraud")
    assert human.exit_code == 0
    assert "first" in human.stdout


def test_a_stale_expected_version_is_refused_with_exit_6(project: Path) -> None:
    """--expected that no longer matches exits 6 naming both versions, and moves nothing."""
    cli_json(project, "models", "alias", "fraud", "champion", "2")
    conflict = cli(project, "models", "alias", "fraud", "champion", "1", "--expected", "1")
    assert conflict.exit_code == 6
    assert "is at version 2, not at the expected version 1" in conflict.stderr
    unset = cli(project, "models", "alias", "fraud", "champion", "1", "--expected", "none")
    assert unset.exit_code == 6
    assert cli_json(project, "models", "show", "fraud", "champion")["version"] == 2
    assert len(cli_json(project, "models", "history", "fraud")["history"]) == 1


def test_deleting_an_alias_keeps_it_in_the_history(project: Path) -> None:
    """alias --delete removes the pointer, records a move to null, and then show exits 4."""
    cli_json(project, "models", "alias", "fraud", "challenger", "2")
    gone = cli_json(
        project, "models", "alias", "fraud", "challenger", "--delete", "--expected", "2"
    )
    assert (gone["from_version"], gone["to_version"]) == (2, None)
    assert cli(project, "models", "show", "fraud", "challenger").exit_code == 4
    assert [
        m["to_version"] for m in cli_json(project, "models", "history", "fraud")["history"]
    ] == [
        2,
        None,
    ]


def test_rollback_returns_the_alias_to_its_previous_version(project: Path) -> None:
    """rollback moves champion back one move; rolling back again undoes the rollback."""
    cli_json(project, "models", "alias", "fraud", "champion", "1")
    cli_json(project, "models", "alias", "fraud", "champion", "2")
    back = cli_json(project, "models", "rollback", "fraud", "--reason", "latency")
    assert (back["from_version"], back["to_version"], back["reason"]) == (2, 1, "latency")
    assert cli_json(project, "models", "show", "fraud", "champion")["version"] == 1
    again = cli(project, "models", "rollback", "fraud", "--alias", "champion")
    assert again.exit_code == 0
    assert "v1 -> v2" in again.stdout


def test_rollback_of_an_alias_set_only_once_exits_6(project: Path) -> None:
    """An alias that never moved has nothing to roll back to: exit 6."""
    cli_json(project, "models", "alias", "fraud", "champion", "1")
    result = cli(project, "models", "rollback", "fraud")
    assert result.exit_code == 6
    assert "no earlier version" in result.stderr


def test_diff_lists_the_keys_that_changed(project: Path) -> None:
    """models diff shows each changed metric, tag and lineage key with both values."""
    body = cli_json(project, "models", "diff", "fraud", "1", "2")
    assert (body["a"], body["b"], body["same"]) == ("fraud/1", "fraud/2", False)
    assert body["metrics"] == {"auc": [0.81, 0.84]}
    assert body["tags"] == {"owner": [None, "ana"]}
    assert body["lineage"] == {"training_set": ["ts1", "ts2"]}
    assert cli_json(project, "models", "diff", "fraud", "2", "latest")["same"] is True
    human = cli(project, "models", "diff", "fraud", "1", "latest")
    assert human.exit_code == 0
    assert "training_set" in human.stdout


def test_version_at_answers_which_version_an_alias_served_at_a_time(project: Path) -> None:
    """Project.version_at reads the alias history: the last move at or before the time wins."""
    with Project(project) as p:
        first = p.set_alias("fraud", "champion", 1, expected=None)
        second = p.set_alias("fraud", "champion", "latest", expected=1)
        assert p.version_at("fraud", "champion", first.at) == 1
        assert p.version_at("fraud", "champion", second.at) == 2
        assert p.version_at("fraud", "champion", first.at.replace(year=2000)) is None


def test_unknown_models_and_versions_exit_4(project: Path) -> None:
    """An unknown model, version or alias exits 4 and names what is known."""
    unknown = cli(project, "models", "show", "nope")
    assert unknown.exit_code == 4
    assert "fraud" in unknown.stderr
    assert cli(project, "models", "history", "nope").exit_code == 4
    assert cli(project, "models", "alias", "nope", "champion", "1").exit_code == 4
    assert cli(project, "models", "show", "fraud", "9").exit_code == 4
    assert cli(project, "models", "show", "fraud", "champion").exit_code == 4
    error = json.loads(cli(project, "models", "show", "nope", "--json").stderr)
    assert error["error"] == "not_found"


def test_bad_alias_names_and_arguments_are_refused(project: Path) -> None:
    """A malformed alias name is rejected input (exit 3); bad CLI arguments exit 2."""
    for name in ("Champion", "latest", "9lives"):
        bad = cli(project, "models", "alias", "fraud", name, "1")
        assert bad.exit_code == 3, (name, bad.output)
        assert name in bad.stderr
    assert (
        cli(project, "models", "alias", "fraud", "champion", "1", "--expected", "x").exit_code == 2
    )
    assert cli(project, "models", "alias", "fraud", "champion").exit_code == 2
    assert cli(project, "models", "alias", "fraud", "champion", "1", "--delete").exit_code == 2
    assert cli_json(project, "models", "history", "fraud")["history"] == []
