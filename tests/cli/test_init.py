"""`driftloop init`: the example project it writes, and that it works as written."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.cli.init import ROWS_PER_BATCH, example_files
from driftloop.core.config import SETTINGS, load_config
from driftloop.data.contract import load_contract

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}
EXPECTED_FILES = [
    ".gitignore",
    "contracts/transactions.yaml",
    "data/transactions-1.csv",
    "data/transactions-2.csv",
    "data/transactions-bad.csv",
    "definitions.py",
    "driftloop.yaml",
]


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("init") / "shop"
    result = cli("init", folder)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def files_under(folder: Path) -> Sequence[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_init_writes_the_example_files_and_names_the_next_steps(tmp_path: Path) -> None:
    """init writes settings, definitions, a contract, three batches and a .gitignore."""
    result = cli("init", tmp_path / "new")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "new") == EXPECTED_FILES
    assert "driftloop apply" in result.stdout
    assert "driftloop data ingest transactions data/transactions-1.csv" in result.stdout
    assert (tmp_path / "new" / ".gitignore").read_text().splitlines()[-1] == ".driftloop/"


def test_init_defaults_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without DIR, init writes into the current folder."""
    monkeypatch.chdir(tmp_path)
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path) == EXPECTED_FILES


def test_init_creates_the_project_given_with_project(tmp_path: Path) -> None:
    """`driftloop -p DIR init` writes the example into DIR, as the next command reads it."""
    target = tmp_path / "shop"
    result = cli("-p", target, "init")
    assert result.exit_code == 0, result.output
    assert (target / "driftloop.yaml").is_file()
    status = cli("-p", target, "status")
    assert status.exit_code == 0, status.output


def test_init_refuses_two_different_folders(tmp_path: Path) -> None:
    result = cli("-p", tmp_path / "a", "init", tmp_path / "b")
    assert result.exit_code == 2
    assert "name two folders" in result.output
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_config_lists_every_setting_and_loads_to_the_defaults(project: Path) -> None:
    """The generated driftloop.yaml mentions every declared setting and reads back as the
    defaults, with the folder's name as the project name."""
    text = (project / "driftloop.yaml").read_text()
    for setting in SETTINGS:
        assert setting.key.rpartition(".")[2] + ":" in text
        assert setting.help.split()[0] in text
    config = load_config(project, env={})
    assert config.name == "shop"
    assert config.definitions == project.resolve() / "definitions.py"
    defaults = {s.key: s.default for s in SETTINGS}
    assert config.artifacts.uri == defaults["artifacts.uri"]
    assert config.ingest.future_tolerance == defaults["ingest.future_tolerance"]
    assert config.ingest.sample_failures == defaults["ingest.sample_failures"]
    assert isinstance(yaml.safe_load(text), dict)


def test_each_section_of_the_config_appears_once_so_edits_take_effect(project: Path) -> None:
    """Every setting is written under its section, each section once: changing a value
    in the file changes the loaded config (a repeated section would silently win)."""
    text = (project / "driftloop.yaml").read_text()
    sections = [line[:-1] for line in text.splitlines() if line.endswith(":") and line[0] != " "]
    assert len(sections) == len(set(sections))
    edited = text.replace("future_tolerance: 5m", "future_tolerance: 2h")
    edited = edited.replace("durability: relaxed", "durability: strict")
    (project / "driftloop.yaml").write_text(edited)
    config = load_config(project, env={})
    assert config.ingest.future_tolerance == timedelta(hours=2)
    assert config.serving.durability == "strict"


def test_contract_declares_the_documented_rules(project: Path) -> None:
    """The example contract has the columns, keys and batch rules the docs describe."""
    contract = load_contract(project / "contracts" / "transactions.yaml")
    assert contract.names == [
        "transaction_id", "customer_id", "event_time", "amount", "currency", "country",
        "channel", "is_fraud", "customer_email",
    ]  # fmt: skip
    assert contract.primary_key == ("transaction_id",)
    assert contract.column("transaction_id").regex == "^tx_[0-9]+$"
    assert contract.column("amount").min == 0
    assert contract.column("amount").max == 100000
    assert contract.column("currency").allowed == ("EUR", "USD", "GBP")
    assert contract.column("customer_email").pii == "email"
    assert contract.batch.max_age == timedelta(days=30)
    assert contract.batch.min_rows == 1


def test_batches_hold_zone_aware_event_times_in_the_14_days_before_init(
    project: Path,
) -> None:
    """Each clean batch has 2,000 rows whose event times end in Z and lie in the 14 days
    before init."""
    now = datetime.now(UTC)
    for name in ("transactions-1.csv", "transactions-2.csv"):
        data = rows(project / "data" / name)
        assert len(data) == ROWS_PER_BATCH
        times = [datetime.fromisoformat(r["event_time"]) for r in data]
        assert all(r["event_time"].endswith("Z") for r in data)
        assert min(times) >= now - timedelta(days=15)
        assert max(times) <= now


def test_example_data_is_deterministic_given_the_init_time() -> None:
    """Two inits at the same time write byte-identical files."""
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert example_files("x", when) == example_files("x", when)
    later = example_files("x", when + timedelta(days=1))
    assert later["data/transactions-1.csv"] != example_files("x", when)["data/transactions-1.csv"]


def test_bad_batch_breaks_four_rules(project: Path) -> None:
    """The bad batch has negative amounts, an unknown currency, a repeated id and a naive
    event time."""
    data = rows(project / "data" / "transactions-bad.csv")
    assert sum(float(r["amount"]) < 0 for r in data) == 3
    assert [r["currency"] for r in data if r["currency"] not in ("EUR", "USD", "GBP")] == ["JPY"]
    ids = [r["transaction_id"] for r in data]
    assert len(ids) - len(set(ids)) == 1
    assert sum(not r["event_time"].endswith("Z") for r in data) == 1


def test_init_refuses_to_overwrite_and_names_the_file(project: Path) -> None:
    """init into a folder that already holds its files exits 5 naming the first such file,
    and changes nothing."""
    (project / "driftloop.yaml").write_text("name: mine\n")
    result = cli("init", project)
    assert result.exit_code == 5
    assert "driftloop.yaml" in result.stderr
    assert "--force" in result.stderr
    assert result.stderr.startswith("error: ")
    assert (project / "driftloop.yaml").read_text() == "name: mine\n"


def test_init_force_overwrites(project: Path) -> None:
    """init --force rewrites the example files."""
    (project / "driftloop.yaml").write_text("name: mine\n")
    result = cli("init", project, "--force")
    assert result.exit_code == 0, result.output
    assert load_config(project, env={}).name == "shop"


def test_first_batch_is_accepted_right_after_init(project: Path) -> None:
    """After init, ingesting data/transactions-1.csv is accepted."""
    result = cli("-p", project, "data", "ingest", "transactions",
                 project / "data" / "transactions-1.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("accepted")
    assert "2,000 rows" in result.stdout
