"""The root command: global options, `apply`, `status`, and how errors become exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from driftloop import __version__
from driftloop.cli import app, main
from driftloop.cli.app import run

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}


def cli(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={**ENV, **(env or {})})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("app") / "shop"
    assert cli("init", folder).exit_code == 0
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# -- global options --------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    """--version prints `driftloop <version>` and exits 0."""
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"driftloop {__version__}"


def test_help_lists_every_command() -> None:
    """--help lists init, apply, status and data, and `data --help` the data commands."""
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("init", "apply", "status", "data"):
        assert f"  {name} " in result.stdout
    data = cli("data", "--help").stdout
    for name in ("sources", "contract", "ingest", "list", "show", "diff", "profile", "export",
                 "quarantine"):  # fmt: skip
        assert f"  {name} " in data


def test_an_unknown_command_is_a_usage_error() -> None:
    """An unknown command exits 2 with click's message and a usage hint on stderr."""
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr
    assert "Usage: driftloop" in result.stderr
    assert result.stdout == ""


def test_a_missing_argument_is_a_usage_error() -> None:
    """A command called without its required argument exits 2 naming the argument."""
    result = cli("data", "show")
    assert result.exit_code == 2
    assert "VERSION" in result.stderr


def test_project_is_found_from_a_subfolder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --project, the nearest folder above the cwd holding driftloop.yaml is used."""
    monkeypatch.chdir(project / "data")
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["root"] == str(project.resolve())


def test_project_comes_from_the_environment(project: Path) -> None:
    """DRIFTLOOP_PROJECT selects the project like --project does."""
    result = cli("status", "--json", env={"DRIFTLOOP_PROJECT": str(project)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["project"] == "shop"


def test_outside_a_project_exits_5_naming_driftloop_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no driftloop.yaml at or above the cwd, a command exits 5 and says to run init."""
    monkeypatch.chdir(tmp_path)
    result = cli("status")
    assert result.exit_code == 5
    assert result.stderr.startswith("error: ")
    assert "driftloop.yaml" in result.stderr
    assert "driftloop init" in result.stderr


def test_a_project_option_without_driftloop_yaml_exits_5(tmp_path: Path) -> None:
    """--project naming a folder that is not a project exits 5 naming the missing file."""
    result = cli("-p", tmp_path, "status")
    assert result.exit_code == 5
    assert str(tmp_path / "driftloop.yaml") in result.stderr


# -- errors ----------------------------------------------------------------------------------


def test_a_broken_setting_exits_5_naming_the_key_and_the_file(project: Path) -> None:
    """A setting of the wrong type exits 5 with one line naming driftloop.yaml and the key."""
    edit(project / "driftloop.yaml", "sample_failures: 10", "sample_failures: lots")
    result = cli("-p", project, "status")
    assert result.exit_code == 5
    line = result.stderr.strip()
    assert "\n" not in line
    assert f"{project.resolve() / 'driftloop.yaml'}: ingest.sample_failures:" in line
    assert "expected an integer" in line


def test_an_unknown_setting_exits_5_naming_it(project: Path) -> None:
    """An unknown key in driftloop.yaml exits 5 naming the key."""
    with (project / "driftloop.yaml").open("a") as f:
        f.write("colour: blue\n")
    result = cli("-p", project, "status")
    assert result.exit_code == 5
    assert "colour: unknown setting" in result.stderr


def test_a_contract_error_exits_5_naming_file_and_line(project: Path) -> None:
    """A contract YAML with a wrong type exits 5 naming file:line and the field."""
    contract = project / "contracts" / "transactions.yaml"
    edit(contract, "type: float", "type: flaot")
    line = contract.read_text().splitlines().index("    type: flaot") + 1
    result = cli("-p", project, "apply")
    assert result.exit_code == 5
    assert f"transactions.yaml:{line}: columns[3:amount].type:" in result.stderr
    assert "'flaot' is not one of" in result.stderr


def test_a_broken_definitions_module_exits_5(project: Path) -> None:
    """A definitions module that raises on import exits 5 naming the file and line."""
    (project / "definitions.py").write_text("import driftloop\n\nraise RuntimeError('oops')\n")
    result = cli("-p", project, "apply")
    assert result.exit_code == 5
    assert "definitions.py: failed to load (line 3): RuntimeError: oops" in result.stderr


def test_errors_are_json_on_stderr_with_the_json_flag(tmp_path: Path) -> None:
    """With --json an error is printed as the error's JSON body on stderr, stdout stays empty."""
    result = cli("-p", tmp_path, "status", "--json")
    assert result.exit_code == 5
    assert result.stdout == ""
    body = json.loads(result.stderr)
    assert body["error"] == "config_error"
    assert body["file"] == str(tmp_path / "driftloop.yaml")
    assert "message" in body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "list", "--bogus"], "No such option: --bogus"),
        (["data", "show"], "Missing argument"),
        (["data", "export", "tx", "--as-of", "2024-05-01T12:00", "--output", "x.parquet"],
         "has no timezone"),
    ],
)  # fmt: skip
def test_usage_errors_are_json_on_stderr_with_the_json_flag(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A usage error under --json is a JSON body too (exit 2): its code, the message and
    the command's usage line."""
    result = cli("-p", tmp_path, *args, "--json")
    assert (result.exit_code, result.stdout) == (2, "")
    body = json.loads(result.stderr)
    assert body["error"] == "usage_error"
    assert message in body["message"]
    assert body["usage"].startswith(f"Usage: driftloop {args[0]} {args[1]}")


def test_run_maps_exceptions_to_exit_codes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() turns an unexpected exception into 1 with `internal error:` and a
    KeyboardInterrupt into 130; the traceback shows only with DRIFTLOOP_DEBUG=1."""
    monkeypatch.delenv("DRIFTLOOP_DEBUG", raising=False)

    def boom() -> None:
        raise ZeroDivisionError("division by zero")

    def interrupted() -> None:
        raise KeyboardInterrupt

    assert run(boom, []) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: ZeroDivisionError: division by zero\n")
    assert "Traceback" not in err
    monkeypatch.setenv("DRIFTLOOP_DEBUG", "1")
    assert run(boom, []) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.delenv("DRIFTLOOP_DEBUG")
    assert run(boom, ["--json"]) == 1
    assert json.loads(capsys.readouterr().err) == {
        "error": "internal_error", "message": "ZeroDivisionError: division by zero",
    }  # fmt: skip
    assert run(interrupted, []) == 130


def test_main_returns_the_exit_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main(argv), the console script's entry point, returns the exit code instead of
    raising SystemExit."""
    assert main(["--version"]) == 0
    assert main(["-p", str(project), "data", "show", "abcdef0123"]) == 4
    assert "unknown dataset version 'abcdef0123'" in capsys.readouterr().err


# -- apply -------------------------------------------------------------------------------------


def test_apply_registers_each_source_with_its_contract_version(project: Path) -> None:
    """apply prints each source with contract v1 the first time, unchanged the second."""
    first = cli("-p", project, "apply")
    assert first.exit_code == 0, first.output
    lines = [line.split() for line in first.stdout.splitlines()]
    assert lines[0] == ["transactions", "contract", "v1", "registered"]
    assert {tuple(line[:2]) for line in lines[1:]} == {
        ("customer_spend", "feature"),
        ("last_transaction", "feature"),
    }
    contract = json.loads(cli("-p", project, "data", "contract", "transactions", "--json").stdout)
    again = cli("-p", project, "apply", "--json")
    again_views = json.loads(again.stdout)["feature_views"]
    assert {v["status"] for v in again_views} == {"unchanged"}
    assert json.loads(again.stdout) == {
        "project": "shop",
        "sources": [{
            "name": "transactions", "contract_version": 1, "hash": contract["hash"],
            "status": "unchanged", "changes": [],
        }],
        "feature_views": again_views,
    }  # fmt: skip


def test_apply_lists_additive_changes_of_a_new_version(project: Path) -> None:
    """A compatible contract change becomes v2 and apply lists what was added."""
    assert cli("-p", project, "apply").exit_code == 0
    edit(project / "contracts" / "transactions.yaml", "[EUR, USD, GBP]", "[EUR, USD, GBP, JPY]")
    result = cli("-p", project, "apply")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["transactions", "contract", "v2", "updated"]
    assert lines[1] == "  + column 'currency' allowed values added: JPY"


def test_apply_refuses_a_breaking_change_and_lists_it(project: Path) -> None:
    """A contract change that breaks accepted data exits 5 and names each breaking change."""
    assert cli("-p", project, "apply").exit_code == 0
    edit(project / "contracts" / "transactions.yaml", "max: 100000", "max: 5000")
    edit(project / "contracts" / "transactions.yaml", "[web, app, pos]", "[web, app]")
    result = cli("-p", project, "apply")
    assert result.exit_code == 5
    assert "column 'amount' max tightened from 100000 to 5000" in result.stderr
    assert "column 'channel' allowed values narrowed" in result.stderr
    body = json.loads(cli("-p", project, "apply", "--json").stderr)
    assert body["error"] == "breaking_contract_change"
    assert len(body["changes"]) == 2


def test_apply_with_no_sources_says_so(project: Path) -> None:
    """A definitions module that declares nothing makes apply print that there is nothing."""
    (project / "definitions.py").write_text("")
    result = cli("-p", project, "apply")
    assert result.exit_code == 0
    assert "declares no sources" in result.stdout


# -- status ------------------------------------------------------------------------------------


def test_status_shows_project_stores_and_sources(project: Path) -> None:
    """status prints the project name, its stores and a row per source."""
    assert cli("-p", project, "apply").exit_code == 0
    result = cli("-p", project, "status")
    assert result.exit_code == 0, result.output
    assert "project    shop" in result.stdout
    assert "metadata   sqlite:///" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("transactions"))
    assert row.split() == ["transactions", "v1", "yes", "0", "0", "-", "-", "0"]


def test_status_json_has_stable_keys(project: Path) -> None:
    """status --json prints Project.status(): project, root, stores and per-source counts."""
    result = cli("-p", project, "status", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"project", "root", "driftloop_version", "metadata",
                         "metadata_revision", "artifacts", "sources"}  # fmt: skip
    assert body["sources"] == [{
        "name": "transactions", "declared": True, "registered": False,
        "contract_version": None, "versions": 0, "rows": 0, "latest": None,
        "latest_at": None, "quarantined": 0,
    }]  # fmt: skip
