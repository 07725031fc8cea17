"""`driftloop data`: sources, contracts, ingest, versions, profiles, export and quarantine."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}
FAILED_RULES = {
    ("timezone", "event_time"), ("min", "amount"), ("allowed", "currency"),
    ("primary_key_duplicate", "transaction_id"),
}  # fmt: skip


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def batch(project: Path, name: str) -> Path:
    return project / "data" / f"transactions-{name}.csv"


@pytest.fixture(scope="module")
def fresh_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as `init` leaves it."""
    folder = tmp_path_factory.mktemp("fresh") / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    return folder


@pytest.fixture(scope="module")
def loaded_template(fresh_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with both clean batches accepted and the bad one in quarantine."""
    folder = Path(shutil.copytree(fresh_template, tmp_path_factory.mktemp("loaded") / "shop"))
    assert cli(folder, "apply").exit_code == 0
    assert cli(folder, "data", "ingest", "transactions", batch(folder, "1")).exit_code == 0
    assert cli(folder, "data", "ingest", "transactions", batch(folder, "2")).exit_code == 0
    assert cli(folder, "data", "ingest", "transactions", batch(folder, "bad")).exit_code == 3
    return folder


@pytest.fixture
def fresh(fresh_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fresh_template, tmp_path / "shop"))


@pytest.fixture
def loaded(loaded_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(loaded_template, tmp_path / "shop"))


def versions(project: Path) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = cli_json(project, "data", "list")["versions"]
    return listed


def held_id(project: Path) -> str:
    entry_id: str = cli_json(project, "data", "quarantine", "list")["entries"][0]["id"]
    return entry_id


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return path


def yen_batch(project: Path) -> Path:
    """50 clean rows of batch 2, one of them paid in JPY (not allowed by the contract)."""
    rows = list(csv.DictReader(io.StringIO(batch(project, "2").read_text())))[:50]
    rows[3]["currency"] = "JPY"
    return write_rows(project / "data" / "yen.csv", rows)


# -- sources and contracts -------------------------------------------------------------------


def test_sources_lists_declared_sources_before_apply(fresh: Path) -> None:
    """A declared source shows as not applied, with its event time and column count."""
    result = cli(fresh, "data", "sources")
    assert result.exit_code == 0, result.output
    row = result.stdout.splitlines()[1].split()
    assert row == ["transactions", "not", "applied", "event_time", "9", "0", "0", "0"]


def test_sources_json_counts_versions_rows_and_quarantine(loaded: Path) -> None:
    """sources --json gives each source's contract version, columns, versions, rows and
    quarantined batches."""
    (source,) = cli_json(loaded, "data", "sources")["sources"]
    assert source["name"] == "transactions"
    assert source["contract_version"] == 1
    assert source["event_time"] == "event_time"
    assert source["primary_key"] == ["transaction_id"]
    assert len(source["columns"]) == 9
    assert (source["versions"], source["rows"], source["quarantined"]) == (2, 4000, 1)


def test_contract_prints_the_current_contract_as_yaml(loaded: Path) -> None:
    """contract prints a header with the version, then YAML that parses back."""
    result = cli(loaded, "data", "contract", "transactions")
    assert result.exit_code == 0, result.output
    header, _, body = result.stdout.partition("\n")
    assert header.startswith("# source transactions, contract version 1, sha256 ")
    assert "regex: ^tx_[0-9]+$" in body
    assert "max_age: 30d" in body


def test_contract_json_and_history_list_the_versions(loaded: Path) -> None:
    """contract --history --json lists every version with its changes, oldest first."""
    path = loaded / "contracts" / "transactions.yaml"
    path.write_text(path.read_text().replace("[EUR, USD, GBP]", "[EUR, USD, GBP, JPY]"))
    assert cli(loaded, "apply").exit_code == 0
    current = cli_json(loaded, "data", "contract", "transactions")
    assert current["version"] == 2
    assert current["contract"]["columns"][4]["allowed"] == ["EUR", "USD", "GBP", "JPY"]
    history = cli_json(loaded, "data", "contract", "transactions", "--history")["versions"]
    assert [v["version"] for v in history] == [1, 2]
    assert history[1]["changes"] == ["column 'currency' allowed values added: JPY"]
    datetime.fromisoformat(history[0]["created_at"])
    text = cli(loaded, "data", "contract", "transactions", "--history").stdout
    assert "  column 'currency' allowed values added: JPY" in text.splitlines()


def test_contract_of_an_unknown_source_exits_4_naming_the_known_ones(fresh: Path) -> None:
    """An unknown source exits 4 and lists the known sources."""
    result = cli(fresh, "data", "contract", "payments")
    assert result.exit_code == 4
    assert result.stderr.strip() == "error: unknown source 'payments' (known: transactions)"


# -- ingest ------------------------------------------------------------------------------------


def test_ingest_prints_one_line_per_file(fresh: Path) -> None:
    """Each accepted file gets a line with the short version id, rows and event-time range;
    the same content again is a duplicate of the same version."""
    result = cli(fresh, "data", "ingest", "transactions", batch(fresh, "1"), batch(fresh, "1"))
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first.startswith(f"accepted   {batch(fresh, '1')}  version ")
    assert "2,000 rows  events " in first
    assert second.startswith("duplicate")
    assert first.split()[3] == second.split()[3]  # the same version id


def test_ingest_json_reports_each_outcome(fresh: Path) -> None:
    """ingest --json lists each path with its outcome and the version's metadata."""
    body = cli_json(fresh, "data", "ingest", "transactions", batch(fresh, "1"),
                    batch(fresh, "1"))  # fmt: skip
    assert body["source"] == "transactions"
    first, second = body["results"]
    assert (first["outcome"], second["outcome"]) == ("accepted", "duplicate")
    assert first["version"]["id"] == second["version"]["id"]
    assert first["version"]["rows"] == 2000
    assert datetime.fromisoformat(first["version"]["event_min"]).tzinfo is not None


def test_a_rejected_batch_exits_3_with_its_quarantine_id_and_failed_rules(fresh: Path) -> None:
    """A batch that fails its contract prints the quarantine id and a table of the failed
    rules, then exits 3."""
    result = cli(fresh, "data", "ingest", "transactions", batch(fresh, "bad"))
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"rejected   {batch(fresh, 'bad')}  quarantined as q-")
    assert lines[1].split()[:5] == ["rule", "column", "failing", "rows", "first"]
    table = {tuple(line.split()[:2]): line for line in lines[2:]}
    assert set(table) == FAILED_RULES
    assert "5, 17, 42" in table["min", "amount"]
    assert "JPY" in table["allowed", "currency"]
    assert result.stderr.startswith("error: source 'transactions': batch rejected")


def test_ingest_processes_every_path_before_exiting_3(fresh: Path) -> None:
    """A rejected file does not stop the files after it from being ingested."""
    result = cli(fresh, "data", "ingest", "transactions", "--json", batch(fresh, "bad"),
                 batch(fresh, "1"))  # fmt: skip
    assert result.exit_code == 3
    rejected, accepted = json.loads(result.stdout)["results"]
    assert rejected["outcome"] == "rejected"
    assert {(f["rule"], f["column"]) for f in rejected["failures"]} == FAILED_RULES
    assert accepted["outcome"] == "accepted"
    assert json.loads(result.stderr)["quarantine_id"] == rejected["quarantine_id"]


def test_a_missing_file_exits_3_with_one_line_naming_it(fresh: Path) -> None:
    """A path that does not exist exits 3 with a one-line error naming the path."""
    result = cli(fresh, "data", "ingest", "transactions", "data/nope.csv")
    assert result.exit_code == 3
    assert result.stderr == "error: data/nope.csv: no such file\n"


def test_an_unparsable_file_is_quarantined_with_its_read_error(fresh: Path) -> None:
    """A CSV that cannot be parsed is rejected (exit 3) and kept with the line that broke."""
    broken = fresh / "data" / "broken.csv"
    broken.write_text("transaction_id,amount\ntx_1,2,3\n")
    result = cli(fresh, "data", "ingest", "transactions", broken)
    assert result.exit_code == 3
    assert "line 2: malformed CSV" in result.stdout
    entry_id = held_id(fresh)
    shown = cli(fresh, "data", "quarantine", "show", entry_id)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[-1].startswith("unreadable: ")
    assert cli_json(fresh, "data", "quarantine", "show", entry_id)["report"]["line"] == 2


def test_ingest_into_an_unknown_source_exits_4(fresh: Path) -> None:
    """Ingesting into a source that is neither declared nor registered exits 4."""
    result = cli(fresh, "data", "ingest", "payments", batch(fresh, "1"))
    assert result.exit_code == 4
    assert "unknown source 'payments'" in result.stderr


def test_an_unknown_format_is_a_usage_error(fresh: Path) -> None:
    """--format accepts only the known formats; anything else exits 2."""
    result = cli(fresh, "data", "ingest", "transactions", batch(fresh, "1"), "--format", "xls")
    assert result.exit_code == 2
    assert "--format" in result.stderr


# -- versions ----------------------------------------------------------------------------------


def test_list_shows_versions_oldest_first(loaded: Path) -> None:
    """list prints one row per version with source, short id, contract, rows and times."""
    result = cli(loaded, "data", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["source", "version", "contract", "rows"]
    ids = [v["id"][:12] for v in versions(loaded)]
    assert [r.split()[:4] for r in rows] == [["transactions", i, "v1", "2,000"] for i in ids]


def test_list_as_of_keeps_the_versions_known_then(loaded: Path) -> None:
    """--as-of the first version's creation time lists only that version."""
    first, _second = versions(loaded)
    body = cli_json(loaded, "data", "list", "--as-of", first["created_at"],
                    "--source", "transactions")  # fmt: skip
    assert [v["id"] for v in body["versions"]] == [first["id"]]
    assert body["as_of"] == first["created_at"]
    assert cli_json(loaded, "data", "list", "--as-of", "2000-01-01T00:00:00Z")["versions"] == []


def test_a_naive_as_of_is_a_usage_error_naming_the_option(loaded: Path) -> None:
    """--as-of without a timezone exits 2 and names the option."""
    result = cli(loaded, "data", "list", "--as-of", "2024-05-01T12:00:00")
    assert result.exit_code == 2
    assert "Invalid value for '--as-of'" in result.stderr
    assert "has no timezone" in result.stderr
    garbled = cli(loaded, "data", "profile", "transactions", "--as-of", "yesterday")
    assert garbled.exit_code == 2
    assert "not an ISO 8601 time" in garbled.stderr


def test_list_of_an_unknown_source_exits_4(loaded: Path) -> None:
    """list --source with an unknown source exits 4."""
    assert cli(loaded, "data", "list", "--source", "payments").exit_code == 4


def test_show_prints_metadata_provenance_and_a_profile(loaded: Path) -> None:
    """show prints the version's metadata, its provenance and one profile row per column."""
    first = versions(loaded)[0]
    result = cli(loaded, "data", "show", first["id"][:8])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["version", first["id"]]
    uri = next(line.split() for line in lines if line.split()[0] == "input_uri")
    assert uri[1].endswith("/data/transactions-1.csv")
    amount = next(line for line in lines if line.startswith("amount "))
    assert amount.split()[:4] == ["amount", "numeric", "2,000", "0"]
    currency = next(line for line in lines if line.startswith("currency "))
    assert "3 distinct: EUR" in currency


def test_show_json_has_metadata_and_profile(loaded: Path) -> None:
    """show --json holds the version's fields and a per-column profile with ISO times."""
    first = versions(loaded)[0]
    body = cli_json(loaded, "data", "show", first["id"])
    assert body["id"] == first["id"]
    assert body["provenance"]["input_format"] == "csv"
    assert body["validation"]["passed"] is True
    columns = body["profile"]["columns"]
    assert body["profile"]["rows"] == 2000
    assert columns["amount"]["kind"] == "numeric"
    assert columns["amount"]["min"] >= 0
    assert set(columns["amount"]["quantiles"]) >= {"0.5", "0.99"}
    assert columns["event_time"]["min"] == body["event_min"]
    assert {t["value"] for t in columns["currency"]["top"]} == {"EUR", "USD", "GBP"}
    assert "sketch" not in columns["amount"]


def test_show_of_an_unknown_version_exits_4(loaded: Path) -> None:
    """An id that matches no version exits 4."""
    result = cli(loaded, "data", "show", "0123456789ab")
    assert result.exit_code == 4
    assert result.stderr.strip() == "error: unknown dataset version '0123456789ab'"


def test_diff_compares_two_versions(loaded: Path) -> None:
    """diff prints rows and per-column changes; --json gives schema and profile changes."""
    first, second = (v["id"] for v in versions(loaded))
    result = cli(loaded, "data", "diff", first[:10], second[:10])
    assert result.exit_code == 0, result.output
    assert "rows             2,000 → 2,000" in result.stdout
    assert any(line.startswith("amount ") and "mean" in line
               for line in result.stdout.splitlines())  # fmt: skip
    body = cli_json(loaded, "data", "diff", first, second)
    assert (body["old"], body["new"]) == (first, second)
    assert body["schema"] == {"added": [], "removed": [], "type_changed": []}
    assert body["profile"]["columns"]["amount"]["mean"]["change"] > 0


def test_profile_merges_every_batch(loaded: Path) -> None:
    """profile covers both accepted batches; --as-of the first version covers only it."""
    result = cli(loaded, "data", "profile", "transactions")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "transactions: 4,000 rows"
    first = versions(loaded)[0]
    body = cli_json(loaded, "data", "profile", "transactions", "--as-of", first["created_at"])
    assert body["profile"]["rows"] == 2000
    assert body["profile"]["columns"]["is_fraud"]["kind"] == "boolean"


def test_profile_of_a_source_without_data_exits_6(fresh: Path) -> None:
    """A registered source with no accepted data has no profile: exit 6."""
    assert cli(fresh, "apply").exit_code == 0
    result = cli(fresh, "data", "profile", "transactions")
    assert result.exit_code == 6
    assert "has no accepted data" in result.stderr


def test_export_as_of_writes_only_what_was_known_then(loaded: Path) -> None:
    """export --as-of between the two ingests writes only the first batch's rows."""
    first = versions(loaded)[0]
    out = loaded / "out" / "tx.parquet"
    result = cli(loaded, "data", "export", "transactions", "--as-of", first["created_at"],
                 "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("wrote 2,000 rows (9 columns) of transactions as of ")
    table = pq.read_table(out)
    assert table.num_rows == 2000
    assert str(table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"


def test_export_csv_with_chosen_columns(loaded: Path) -> None:
    """export --columns writes only those columns, in that order, to a CSV file."""
    out = loaded / "tx.csv"
    body = cli_json(loaded, "data", "export", "transactions", "-o", out, "--columns",
                    "currency,amount")  # fmt: skip
    assert body["rows"] == 4000
    table = pacsv.read_csv(out)
    assert table.column_names == ["currency", "amount"]
    assert table.num_rows == 4000


def test_export_of_an_unknown_column_exits_4(loaded: Path) -> None:
    """export --columns naming a column the contract lacks exits 4 and lists the columns."""
    result = cli(loaded, "data", "export", "transactions", "-o", loaded / "x.parquet",
                 "--columns", "amount,price")  # fmt: skip
    assert result.exit_code == 4
    assert "unknown column 'price' (known: transaction_id," in result.stderr


def test_export_to_an_unknown_suffix_is_a_usage_error(loaded: Path) -> None:
    """--output must end in .parquet or .csv; anything else exits 2."""
    result = cli(loaded, "data", "export", "transactions", "-o", loaded / "x.xlsx")
    assert result.exit_code == 2
    assert "must end in .parquet or .csv" in result.stderr


# -- quarantine --------------------------------------------------------------------------------


def test_quarantine_list_shows_held_batches(loaded: Path) -> None:
    """quarantine list prints the held batch with its source, input file and failed rules."""
    result = cli(loaded, "data", "quarantine", "list")
    assert result.exit_code == 0, result.output
    row = result.stdout.splitlines()[1].split()
    assert row[0] == held_id(loaded)
    assert row[1:3] == ["transactions", "held"]
    assert "transactions-bad.csv" in row
    assert "4" in row


def test_quarantine_show_reports_each_failed_rule(loaded: Path) -> None:
    """quarantine show prints the entry and a row per failed rule; --json the full report."""
    entry_id = held_id(loaded)
    result = cli(loaded, "data", "quarantine", "show", entry_id)
    assert result.exit_code == 0, result.output
    assert "200 rows; 4 of " in result.stdout
    assert "primary_key_duplicate  transaction_id" in result.stdout
    body = cli_json(loaded, "data", "quarantine", "show", entry_id)
    assert body["id"] == entry_id
    assert body["status"] == "held"
    assert len(body["failures"]) == 4
    assert body["report"]["validation"]["passed"] is False


def test_an_unknown_quarantine_entry_exits_4(loaded: Path) -> None:
    """show, release and drop of an unknown entry exit 4."""
    for command in ("show", "release", "drop"):
        result = cli(loaded, "data", "quarantine", command, "q-nope")
        assert result.exit_code == 4
        assert "unknown quarantine entry 'q-nope'" in result.stderr


def test_releasing_a_batch_that_still_fails_exits_3_and_keeps_it_held(loaded: Path) -> None:
    """release re-validates against the current contract; a batch that still fails stays
    held and the command exits 3."""
    entry_id = held_id(loaded)
    result = cli(loaded, "data", "quarantine", "release", entry_id)
    assert result.exit_code == 3
    assert entry_id in result.stderr
    assert cli_json(loaded, "data", "quarantine", "show", entry_id)["status"] == "held"


def test_release_after_relaxing_the_contract_accepts_the_batch(loaded: Path) -> None:
    """A batch rejected for a currency the contract lacked is accepted once the contract
    allows it: edit the YAML, apply, release."""
    rejected = cli(loaded, "data", "ingest", "transactions", yen_batch(loaded), "--json")
    assert rejected.exit_code == 3
    entry_id = json.loads(rejected.stdout)["results"][0]["quarantine_id"]
    contract = loaded / "contracts" / "transactions.yaml"
    contract.write_text(contract.read_text().replace("[EUR, USD, GBP]", "[EUR, USD, GBP, JPY]"))
    assert cli(loaded, "apply").exit_code == 0
    result = cli(loaded, "data", "quarantine", "release", entry_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"released {entry_id} as version ")
    assert "(50 rows)" in result.stdout
    listed = versions(loaded)
    assert listed[-1]["rows"] == 50
    assert listed[-1]["contract_version"] == 2
    entry = cli_json(loaded, "data", "quarantine", "show", entry_id)
    assert entry["status"] == "released"
    assert entry["dataset_version"] == listed[-1]["id"]


def test_releasing_an_already_released_entry_exits_6(loaded: Path) -> None:
    """An entry that is no longer held cannot be released again: exit 6."""
    entry_id = json.loads(
        cli(loaded, "data", "ingest", "transactions", yen_batch(loaded), "--json").stdout
    )["results"][0]["quarantine_id"]
    contract = loaded / "contracts" / "transactions.yaml"
    contract.write_text(contract.read_text().replace("[EUR, USD, GBP]", "[EUR, USD, GBP, JPY]"))
    assert cli(loaded, "apply").exit_code == 0
    assert cli(loaded, "data", "quarantine", "release", entry_id).exit_code == 0
    again = cli(loaded, "data", "quarantine", "release", entry_id)
    assert again.exit_code == 6
    assert again.stderr.strip() == f"error: quarantine entry {entry_id} is released, not held"


def test_drop_marks_the_entry_dropped_and_hides_it_from_the_held_list(loaded: Path) -> None:
    """drop keeps the entry on record as dropped; list shows it only with --all; dropping
    it again exits 6."""
    entry_id = held_id(loaded)
    result = cli(loaded, "data", "quarantine", "drop", entry_id, "--purge")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"dropped {entry_id} and purged its bytes"
    assert cli_json(loaded, "data", "quarantine", "list")["entries"] == []
    everything = cli_json(loaded, "data", "quarantine", "list", "--all", "--source",
                          "transactions")["entries"]  # fmt: skip
    assert [(e["id"], e["status"]) for e in everything] == [(entry_id, "dropped")]
    assert cli(loaded, "data", "quarantine", "drop", entry_id).exit_code == 6
