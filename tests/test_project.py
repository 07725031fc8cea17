"""Versioned data through a Project, on SQLite and on a real PostgreSQL metadata store."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.data.contract import parse_contract
from driftloop.data.profile import merge_profiles
from driftloop.errors import (
    BatchRejected,
    BreakingContractChange,
    ContractError,
    DefinitionError,
    InputNotFound,
    NotFoundError,
    StateError,
)
from driftloop.project import Project

T0 = datetime(2024, 6, 1, tzinfo=UTC)

CONTRACT = """\
event_time: event_time
primary_key: [tx_id]
columns:
  - {name: tx_id, type: string, nullable: false, regex: "^tx_[0-9]+$"}
  - {name: customer, type: string, nullable: false}
  - {name: event_time, type: timestamp, nullable: false}
  - {name: amount, type: float, min: 0}
  - {name: currency, type: category, allowed: [EUR, USD]}
batch:
  max_age: 30d
"""

DEFINITIONS = """\
from driftloop.data.sources import Source

tx = Source("tx", contract="contracts/tx.yaml")
"""


def _csv(rows: list[str]) -> str:
    return "tx_id,customer,event_time,amount,currency\n" + "\n".join(rows) + "\n"


GOOD_1 = _csv(
    [f"tx_{i},c{i % 3},2024-05-{10 + i % 5:02d}T10:00:00Z,{i * 1.5},EUR" for i in range(1, 21)]
)
GOOD_2 = _csv(
    [f"tx_{i},c{i % 3},2024-05-{20 + i % 5:02d}T10:00:00+02:00,{i},USD" for i in range(21, 31)]
)


@pytest.fixture
def project(tmp_path: Path, metadata_url: str) -> Project:
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "driftloop.yaml").write_text(f"name: test\nmetadata:\n  url: {metadata_url}\n")
    (root / "contracts" / "tx.yaml").write_text(CONTRACT)
    (root / "definitions.py").write_text(DEFINITIONS)
    with use_clock(SimulatedClock(T0)), Project(root) as proj:
        yield proj  # type: ignore[misc]


def _write(project: Project, name: str, text: str | bytes) -> Path:
    path = project.root / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _rejected(project: Project, data: object) -> BatchRejected:
    with pytest.raises(BatchRejected) as info:
        project.ingest("tx", data)
    return info.value


def test_an_accepted_batch_becomes_a_content_addressed_version(project: Project) -> None:
    """The version id is the sha256 of its Parquet blob, with rows, range and provenance."""
    path = _write(project, "b1.csv", GOOD_1)
    version = project.ingest("tx", path)
    assert version.rows == 20
    assert project.artifacts.exists(version.id)
    table = pq.read_table(pa.BufferReader(project.artifacts.get_bytes(version.id)))
    assert table.num_rows == 20
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert version.event_min == datetime(2024, 5, 10, 10, tzinfo=UTC)
    assert version.event_max == datetime(2024, 5, 14, 10, tzinfo=UTC)
    prov = version.provenance
    assert prov["input_uri"] == str(path)
    assert prov["input_format"] == "csv"
    assert prov["ingested_by"]
    assert prov["driftloop_version"]
    assert prov["contract"]["version"] == 1
    assert prov["ingested_at"] == T0.isoformat()
    stored = project.version(version.id)
    assert stored.validation is not None
    assert stored.validation.passed
    assert stored.profile is not None
    assert stored.profile.rows == 20


def test_the_same_content_twice_is_one_version_stored_once(project: Project) -> None:
    """Re-ingesting identical data returns the same version and writes no new blob."""
    first = project.ingest_outcome("tx", _write(project, "a.csv", GOOD_1))
    blobs = set(project.artifacts.digests())
    again = project.ingest_outcome("tx", _write(project, "copy.csv", GOOD_1))
    assert again.duplicate
    assert not first.duplicate
    assert again.version.id == first.version.id
    assert set(project.artifacts.digests()) == blobs
    assert len(project.versions("tx")) == 1


def test_csv_parquet_and_dataframe_with_equal_content_are_one_version(project: Project) -> None:
    """The version id depends on the data, not on the format it arrived in."""
    csv_version = project.ingest("tx", _write(project, "a.csv", GOOD_1))
    table = project.read("tx")
    pq.write_table(table, project.root / "a.parquet")
    assert project.ingest("tx", project.root / "a.parquet").id == csv_version.id
    assert project.ingest("tx", table.to_pandas()).id == csv_version.id


def test_provenance_records_the_projects_git_commit(project: Project) -> None:
    """When the project is a git work tree, its HEAD and dirty flag are recorded."""
    git = ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    version = project.ingest("tx", _write(project, "b.csv", GOOD_1))
    assert version.provenance["project_git_sha"] == head
    assert version.provenance["project_git_dirty"] is False


def test_a_rejected_batch_is_kept_byte_identical_with_its_report(project: Project) -> None:
    """Failing rows are counted per rule with their row numbers, and the input is kept."""
    text = _csv(
        [
            "tx_1,c1,2024-05-10T10:00:00Z,-5,EUR",
            "tx_2,c1,2024-05-10T10:00:00Z,3,JPY",
            "tx_3,c1,2024-05-10T10:00:00Z,-1,EUR",
        ]
    )
    path = _write(project, "bad.csv", text)
    error = _rejected(project, path)
    entry = project.quarantine_entry(error.quarantine_id)
    assert entry.status == "held"
    assert project.artifacts.get_bytes(entry.blob) == path.read_bytes()
    validation = entry.validation
    assert validation is not None
    by_rule = {(r.rule, r.column): r for r in validation.failures}
    assert by_rule[("min", "amount")].failing == 2
    assert by_rule[("min", "amount")].rows == (0, 2)
    assert by_rule[("min", "amount")].values == (-5.0, -1.0)
    assert by_rule[("allowed", "currency")].rows == (1,)
    assert project.versions("tx") == []
    assert [e.id for e in project.quarantined("tx")] == [entry.id]


BAD_INPUTS = {
    "empty file": (b"", "file is empty"),
    "malformed csv": (_csv(["tx_1,c1,2024-05-10T10:00:00Z,1,EUR,extra"]).encode(), "line 2"),
    "non utf-8": (
        b"tx_id,customer,event_time,amount,currency\ntx_1,\xff\xfe,2024-05-10T10:00:00Z,1,EUR\n",
        "not UTF-8",
    ),
    "wrong type": (_csv(["tx_1,c1,2024-05-10T10:00:00Z,lots,EUR"]).encode(), "amount: type"),
    "missing column": (
        b"tx_id,customer,event_time,amount\ntx_1,c1,2024-05-10T10:00:00Z,1\n",
        "currency: missing_column",
    ),
    "extra column": (
        b"tx_id,customer,event_time,amount,currency,x\ntx_1,c1,2024-05-10T10:00:00Z,1,EUR,9\n",
        "x: extra_column",
    ),
    "null key": (_csv([",c1,2024-05-10T10:00:00Z,1,EUR"]).encode(), "not_null"),
    "duplicate key": (
        _csv(["tx_1,c1,2024-05-10T10:00:00Z,1,EUR", "tx_1,c2,2024-05-11T10:00:00Z,2,EUR"]).encode(),
        "primary_key_duplicate",
    ),
    "timestamp without zone": (_csv(["tx_1,c1,2024-05-10 10:00:00,1,EUR"]).encode(), "timezone"),
    "timestamp in the future": (_csv(["tx_1,c1,2024-07-01T00:00:00Z,1,EUR"]).encode(), "future"),
    "stale batch": (_csv(["tx_1,c1,2024-01-01T00:00:00Z,1,EUR"]).encode(), "freshness"),
    "header only": (b"tx_id,customer,event_time,amount,currency\n", "no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_each_bad_input_is_quarantined_with_a_clear_reason(project: Project, case: str) -> None:
    """Every kind of bad input is rejected with a message that names it, and kept."""
    data, expected = BAD_INPUTS[case]
    path = _write(project, "input.csv", data)
    error = _rejected(project, path)
    assert expected in str(error)
    entry = project.quarantine_entry(error.quarantine_id)
    assert project.artifacts.get_bytes(entry.blob) == data
    assert entry.source == "tx"


def test_a_missing_file_is_an_error_and_nothing_is_recorded(project: Project) -> None:
    """There is nothing to keep from a file that does not exist."""
    with pytest.raises(InputNotFound, match=r"nope\.csv"):
        project.ingest("tx", project.root / "nope.csv")
    assert project.quarantined() == []


def test_an_unknown_source_is_named_with_the_known_ones(project: Project) -> None:
    """Ingesting into an undeclared source lists the sources that exist."""
    with pytest.raises(NotFoundError, match=r"unknown source 'nope' \(known: tx\)"):
        project.ingest("nope", _write(project, "a.csv", GOOD_1))


def test_a_dataframe_with_naive_timestamps_is_rejected(project: Project) -> None:
    """pandas datetimes without a zone are refused, not assumed to be UTC."""
    frame = pd.DataFrame(
        {
            "tx_id": ["tx_1"],
            "customer": ["c"],
            "event_time": [pd.Timestamp("2024-05-10")],
            "amount": [1.0],
            "currency": ["EUR"],
        }
    )
    error = _rejected(project, frame)
    assert "timezone" in str(error)
    entry = project.quarantine_entry(error.quarantine_id)
    assert entry.input_format == "dataframe"


def test_time_travel_returns_the_batches_known_at_a_time(
    project: Project, tmp_path: Path, metadata_url: str
) -> None:
    """read(as_of=t) is the union of the batches accepted at or before t."""
    sim = SimulatedClock(T0)
    with use_clock(sim):
        first = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
        sim.advance(timedelta(hours=1))
        second = project.ingest("tx", _write(project, "b2.csv", GOOD_2))
    assert first.created_at == T0
    assert second.created_at == T0 + timedelta(hours=1)
    assert project.read("tx", as_of=T0 + timedelta(minutes=30)).num_rows == 20
    assert project.read("tx").num_rows == 30
    assert project.read("tx", as_of=T0 - timedelta(seconds=1)).num_rows == 0
    assert [v.id for v in project.versions("tx", as_of=T0)] == [first.id]
    assert project.read("tx", columns=["amount"]).column_names == ["amount"]


def test_a_batch_whose_bytes_changed_on_disk_is_refused_even_after_a_good_read(
    project: Project,
) -> None:
    """Reads hash each batch once per process; a batch rewritten since is hashed again
    and refused."""
    from driftloop.errors import ArtifactCorrupted

    version = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    assert project.read("tx").num_rows == project.read("tx").num_rows == 20
    blob = Path(project.artifacts.blob_path(version.id))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactCorrupted, match=version.id):
        project.read("tx")


def test_reading_from_an_event_time_skips_the_batches_all_older(project: Project) -> None:
    """read_source(event_since=t) leaves out the batches whose every event is before t
    and returns every row of the others."""
    from driftloop.data.datasets import read_source

    first = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    second = project.ingest("tx", _write(project, "b2.csv", GOOD_2))
    assert first.event_max is not None
    assert second.event_max is not None
    older, newer = sorted([first, second], key=lambda v: v.event_max or T0)
    between = older.event_max + timedelta(microseconds=1)
    table = read_source(project.store, project.artifacts, "tx", event_since=between)
    assert table.num_rows == newer.rows
    everything = read_source(
        project.store, project.artifacts, "tx", event_since=T0.replace(year=1990)
    )
    assert everything.num_rows == older.rows + newer.rows


def test_a_source_profile_merges_the_batch_profiles(project: Project) -> None:
    """The source's profile is the merge of its batches' profiles, without rescanning."""
    sim = SimulatedClock(T0)
    with use_clock(sim):
        a = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
        sim.advance(timedelta(minutes=1))
        b = project.ingest("tx", _write(project, "b2.csv", GOOD_2))
    merged = project.profile("tx")
    expected = merge_profiles([project.version(a.id).profile, project.version(b.id).profile])
    assert merged == expected
    assert merged.rows == 30
    assert merged.columns["amount"].count == 30
    assert project.profile("tx", as_of=T0).rows == 20


def test_an_additive_contract_change_is_a_new_version_and_old_data_reads_as_null(
    project: Project,
) -> None:
    """Adding a nullable column makes contract version 2; older batches show nulls there."""
    project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    path = project.root / "contracts" / "tx.yaml"
    path.write_text(CONTRACT.replace("batch:", "  - {name: channel, type: category}\nbatch:"))
    project.__dict__.pop("definitions", None)
    [applied] = project.apply().sources
    assert applied.version == 2
    assert applied.changes == ["nullable column 'channel' added"]
    table = project.read("tx")
    assert table.column("channel").null_count == 20
    history = project.contract_history("tx")
    assert [h.version for h in history] == [1, 2]


def test_a_breaking_contract_change_is_refused_with_every_change_listed(
    project: Project,
) -> None:
    """Removing a column and narrowing allowed values are both listed; nothing is written."""
    project.apply()
    broken = CONTRACT.replace("allowed: [EUR, USD]", "allowed: [EUR]").replace(
        "  - {name: amount, type: float, min: 0}\n", ""
    )
    (project.root / "contracts" / "tx.yaml").write_text(broken)
    project.__dict__.pop("definitions", None)
    with pytest.raises(BreakingContractChange) as info:
        project.apply()
    assert "column 'amount' removed" in info.value.changes
    assert any("no longer allowed: USD" in c for c in info.value.changes)
    assert [h.version for h in project.contract_history("tx")] == [1]


def test_a_contract_that_does_not_parse_names_file_line_and_field(project: Project) -> None:
    """A typo in a contract YAML is a ContractError with file:line and the field."""
    path = project.root / "contracts" / "tx.yaml"
    path.write_text(CONTRACT.replace("type: float", "type: flaot"))
    with pytest.raises(ContractError) as info:
        project.apply()
    assert info.value.file == str(path)
    assert info.value.line == 7
    assert info.value.field == "columns[3:amount].type"


def test_a_definitions_module_that_fails_to_import_names_its_line(project: Project) -> None:
    """An exception in definitions.py is a DefinitionError naming the file and line."""
    (project.root / "definitions.py").write_text("x = 1\nraise ValueError('nope')\n")
    project.__dict__.pop("definitions", None)
    with pytest.raises(DefinitionError, match=r"definitions.py: failed to load \(line 2\)"):
        project.apply()


def test_release_revalidates_against_the_current_contract(project: Project) -> None:
    """A batch rejected by an old contract is accepted on release once the contract allows it."""
    text = _csv(["tx_1,c1,2024-05-10T10:00:00Z,1,GBP"])
    error = _rejected(project, _write(project, "gbp.csv", text))
    with pytest.raises(BatchRejected) as again:
        project.release(error.quarantine_id)
    assert again.value.quarantine_id == error.quarantine_id
    assert project.quarantine_entry(error.quarantine_id).status == "held"
    (project.root / "contracts" / "tx.yaml").write_text(
        CONTRACT.replace("[EUR, USD]", "[EUR, USD, GBP]")
    )
    project.__dict__.pop("definitions", None)
    version = project.release(error.quarantine_id)
    entry = project.quarantine_entry(error.quarantine_id)
    assert entry.status == "released"
    assert entry.dataset_version == version.id
    assert version.provenance["released_from"] == entry.id
    assert version.provenance["contract"]["version"] == 2
    with pytest.raises(StateError, match="released, not held"):
        project.release(entry.id)


def test_drop_keeps_the_record_and_purge_deletes_the_bytes(project: Project) -> None:
    """Dropping marks the entry; only purge removes its bytes from the artifact store."""
    one = _rejected(project, _write(project, "a.csv", _csv(["bad,c,2024-05-10T10:00:00Z,1,EUR"])))
    two = _rejected(project, _write(project, "b.csv", _csv(["x,c,2024-05-10T10:00:00Z,1,EUR"])))
    kept = project.drop(one.quarantine_id)
    assert kept.status == "dropped"
    assert project.artifacts.exists(kept.blob)
    purged = project.drop(two.quarantine_id, purge=True)
    assert not project.artifacts.exists(purged.blob)
    assert project.quarantined() == []
    assert len(project.quarantined(status=None)) == 2
    with pytest.raises(StateError):
        project.drop(one.quarantine_id)


def test_diff_reports_schema_and_profile_changes(project: Project) -> None:
    """Two versions differ in rows and in the amount column's mean."""
    a = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    b = project.ingest("tx", _write(project, "b2.csv", GOOD_2))
    diff = project.diff(a.id[:10], b.id)
    assert diff["rows"] == {"old": 20, "new": 10}
    assert diff["schema"] == {"added": [], "removed": [], "type_changed": []}
    assert "amount" in diff["profile"]["columns"]


def test_a_version_prefix_must_be_long_and_unambiguous(project: Project) -> None:
    """Short or unknown prefixes are NotFoundError."""
    version = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    assert project.version(version.id[:8]).id == version.id
    with pytest.raises(NotFoundError):
        project.version(version.id[:3])
    with pytest.raises(NotFoundError):
        project.version("0" * 64)


def test_status_summarises_sources(project: Project) -> None:
    """status() lists each source with its versions, rows and quarantined batches."""
    project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    _rejected(project, _write(project, "bad.csv", _csv(["bad,c,2024-05-10T10:00:00Z,1,EUR"])))
    [source] = project.status()["sources"]
    assert source["name"] == "tx"
    assert source["versions"] == 1
    assert source["rows"] == 20
    assert source["quarantined"] == 1
    assert source["contract_version"] == 1


def test_stored_contract_bodies_parse_back(project: Project) -> None:
    """What the store keeps of a contract is enough to rebuild it exactly."""
    [version] = project.apply().sources
    assert parse_contract(version.contract.to_dict()) == version.contract


def test_pii_values_appear_neither_in_profiles_nor_in_reports(project: Project) -> None:
    """A column tagged pii keeps its counts in the profile, and its values nowhere."""
    (project.root / "contracts" / "tx.yaml").write_text(
        CONTRACT.replace(
            "{name: customer, type: string, nullable: false}",
            '{name: customer, type: string, nullable: false, pii: name, regex: "^c[0-9]+$"}',
        )
    )
    project.__dict__.pop("definitions", None)
    version = project.ingest("tx", _write(project, "b1.csv", GOOD_1))
    customer = project.version(version.id).profile.columns["customer"]
    assert customer.count == 20
    assert customer.distinct == 3
    assert customer.top == []
    assert "c1" not in str(project.profile("tx").to_dict()["columns"]["customer"])
    error = _rejected(
        project, _write(project, "bad.csv", _csv(["tx_99,secret name,2024-05-10T10:00:00Z,1,EUR"]))
    )
    entry = project.quarantine_entry(error.quarantine_id)
    assert "secret name" not in str(entry.report)
    assert entry.validation.failures[0].values == ("<redacted pii:name>",)


def test_inputs_and_artifacts_can_live_on_any_fsspec_filesystem(tmp_path: Path) -> None:
    """An input read from memory:// is stored in a memory:// artifact store and read back."""
    import uuid

    import fsspec

    name = uuid.uuid4().hex
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "tx.yaml").write_text(CONTRACT)
    (root / "definitions.py").write_text(DEFINITIONS)
    (root / "driftloop.yaml").write_text(f"artifacts:\n  uri: memory://{name}/artifacts\n")
    memory = fsspec.filesystem("memory")
    with memory.open(f"/{name}/in/b1.csv", "wb") as fh:
        fh.write(GOOD_1.encode())
    try:
        with use_clock(SimulatedClock(T0)), Project(root) as project:
            version = project.ingest("tx", f"memory://{name}/in/b1.csv")
            assert version.provenance["input_uri"] == f"memory://{name}/in/b1.csv"
            assert project.artifacts.local_path(version.id) is None
            assert project.read("tx").num_rows == 20
            with pytest.raises(InputNotFound):
                project.ingest("tx", f"memory://{name}/in/missing.csv")
    finally:
        memory.rm(f"/{name}", recursive=True)


def test_concurrent_ingests_of_the_same_content_make_one_version(project: Project) -> None:
    """Writers racing on a new source and identical content all succeed, with one version."""
    import contextvars
    import threading

    path = _write(project, "b1.csv", GOOD_1)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            with Project(project.root) as other:
                outcomes.append(other.ingest_outcome("tx", path).outcome)
        except BaseException as exc:
            errors.append(exc)

    # each thread runs in a copy of this context, so it reads the same simulated clock
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(ingest,)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(outcomes) == ["accepted", "duplicate", "duplicate", "duplicate"]
    assert len(project.versions("tx")) == 1
    assert [h.version for h in project.contract_history("tx")] == [1]
