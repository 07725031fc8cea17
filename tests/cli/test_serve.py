"""`driftloop serve`'s command-line errors (the server itself is tested in
tests/serving, started as a real process)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from driftloop.cli import app

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": "200"}


def test_an_unknown_durability_is_a_usage_error(tmp_path: Path) -> None:
    """--durability must be strict or relaxed: exit 2, naming the option."""
    assert CliRunner().invoke(app, ["init", str(tmp_path / "shop")], env=ENV).exit_code == 0
    result = CliRunner().invoke(
        app, ["-p", str(tmp_path / "shop"), "serve", "--durability", "fast"], env=ENV
    )
    assert result.exit_code == 2
    assert "'fast' is not strict or relaxed" in result.output
    assert "--durability" in result.output


def test_a_folder_that_is_not_a_project_cannot_be_served(tmp_path: Path) -> None:
    """Serving a folder without driftloop.yaml exits 5 and says how to make one."""
    result = CliRunner().invoke(app, ["-p", str(tmp_path), "serve"], env=ENV)
    assert result.exit_code == 5
    assert "not a driftloop project" in result.output


def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["-p", str(tmp_path), "serve", "--port", "70000"], env=ENV)
    assert result.exit_code == 2
    assert "--port" in result.output
