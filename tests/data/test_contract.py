"""Data contracts: declaring, parsing, loading from YAML, hashing and comparing versions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from driftloop.data.contract import (
    COLUMN_TYPES,
    BatchRules,
    Column,
    Contract,
    ContractChanges,
    compare_contracts,
    format_duration,
    load_contract,
    parse_contract,
)
from driftloop.errors import ContractError, DriftloopError

TS = {"name": "ts", "type": "timestamp"}


def body(*columns: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A contract body with the event-time column ``ts`` first, then ``columns``."""
    return {"event_time": "ts", "columns": [dict(TS), *columns], **top}


def contract(*columns: Column, **kwargs: Any) -> Contract:
    """A contract whose event time is a ``ts`` column declared first."""
    return Contract(columns=(Column("ts", "timestamp"), *columns), event_time="ts", **kwargs)


def rich_contract() -> Contract:
    """A contract that sets every optional attribute at least once."""
    return Contract(
        event_time="ts",
        primary_key=("id", "region"),
        columns=(
            Column("id", "string", nullable=False, regex="^tx_[0-9]+$", description="tx id"),
            Column("region", "category", nullable=False, allowed=("eu", "us")),
            Column("ts", "timestamp", nullable=False, min="2020-01-01T00:00:00Z"),
            Column("day", "date", min="2020-01-01", max="2030-12-31"),
            Column("amount", "float", min=0, max=1e6),
            Column("qty", "int16", min=-5, max=500, allowed=(1, 2, 3)),
            Column("flag", "bool", allowed=(True,)),
            Column("email", "string", unique=True, pii="email"),
        ),
        batch=BatchRules(min_rows=0, max_rows=1000, max_age=timedelta(days=7)),
        extra_columns="drop",
        description="card transactions",
    )


def write(tmp_path: Path, text: str, name: str = "contract.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- columns and types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "arrow_type", "kind", "profile_kind"),
    [
        ("int8", pa.int8(), "int", "numeric"),
        ("int16", pa.int16(), "int", "numeric"),
        ("int32", pa.int32(), "int", "numeric"),
        ("int64", pa.int64(), "int", "numeric"),
        ("int", pa.int64(), "int", "numeric"),
        ("float32", pa.float32(), "float", "numeric"),
        ("float64", pa.float64(), "float", "numeric"),
        ("float", pa.float64(), "float", "numeric"),
        ("bool", pa.bool_(), "bool", "boolean"),
        ("string", pa.string(), "string", "categorical"),
        ("category", pa.string(), "category", "categorical"),
        ("timestamp", pa.timestamp("us", tz="UTC"), "timestamp", "timestamp"),
        ("date", pa.date32(), "date", "timestamp"),
    ],
)
def test_column_type_maps_to_arrow(
    type_: str, arrow_type: pa.DataType, kind: str, profile_kind: str
) -> None:
    """Each declared column type has a fixed Arrow type, kind and profile kind."""
    col = Column("x", type_)  # type: ignore[arg-type]
    assert col.arrow_type == arrow_type
    assert col.kind == kind
    assert col.profile_kind == profile_kind


def test_column_types_lists_every_type() -> None:
    """COLUMN_TYPES lists the thirteen declarable types in declaration order."""
    assert COLUMN_TYPES == (
        "int8", "int16", "int32", "int64", "int", "float32", "float64", "float",
        "bool", "string", "category", "timestamp", "date",
    )  # fmt: skip


def test_time_bounds_parse_to_utc_values() -> None:
    """Timestamp bounds in any zone come back as UTC datetimes, date bounds as dates."""
    ts = Column("t", "timestamp", min="2024-01-01T02:00:00+02:00", max="2024-01-02T00:00:00Z")
    assert ts.min_value() == datetime(2024, 1, 1, tzinfo=UTC)
    assert ts.max_value() == datetime(2024, 1, 2, tzinfo=UTC)
    day = Column("d", "date", min="2024-01-01")
    assert day.min_value() == date(2024, 1, 1)
    assert day.max_value() is None


def test_contract_schema_follows_declaration() -> None:
    """The Arrow schema lists the columns in declared order with their nullability."""
    c = contract(Column("id", "int32", nullable=False), Column("name", "string"))
    assert c.names == ["ts", "id", "name"]
    assert c.arrow_schema == pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("id", pa.int32(), nullable=False),
            pa.field("name", pa.string()),
        ]
    )
    assert c.column("id").type == "int32"


def test_unknown_column_lookup_raises_key_error() -> None:
    """Looking up a column the contract does not declare raises KeyError with its name."""
    with pytest.raises(KeyError, match="nope"):
        contract().column("nope")


def test_equal_bounds_are_accepted() -> None:
    """A column whose min equals its max (a constant) is a valid contract."""
    col = Column("x", "int", min=3, max=3)
    assert col.min_value() == col.max_value() == 3


def test_whole_float_bound_is_accepted_on_an_int_column() -> None:
    """A float bound without a fraction (as YAML may give it) is valid on an int column."""
    assert Column("x", "int", min=0.0, max=10.0).max_value() == 10.0


def test_bad_contract_declared_in_python_raises_contract_error() -> None:
    """A contract declared in Python with a contradictory rule raises ContractError."""
    with pytest.raises(ContractError, match=r"Column\('x'\).*greater than max"):
        Column("x", "int", min=5, max=1)
    with pytest.raises(ContractError, match=r"Column\('y'\).type: 'flaot' is not one of"):
        Column("y", "flaot")  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="event_time 'nope' is not a declared column"):
        Contract(columns=(Column("ts", "timestamp"),), event_time="nope")


# --- bad contracts ------------------------------------------------------------------


BAD_CONTRACTS = [
    pytest.param(
        body({"name": "a", "type": "int"}, {"name": "a", "type": "float"}),
        "columns[2:a]",
        "column 'a' is declared more than once",
        id="duplicate-column",
    ),
    pytest.param(
        {"event_time": "x", "columns": [{"name": "x", "type": "int"}]},
        "event_time",
        "event_time column 'x' must have type timestamp, not int",
        id="event-time-not-timestamp",
    ),
    pytest.param(
        {"event_time": "when", "columns": [TS]},
        "event_time",
        "event_time 'when' is not a declared column",
        id="event-time-undeclared",
    ),
    pytest.param(
        {"columns": [TS]},
        "event_time",
        "this field is required",
        id="event-time-missing",
    ),
    pytest.param(
        {"event_time": "ts"},
        "columns",
        "this field is required",
        id="columns-missing",
    ),
    pytest.param(
        {"event_time": "ts", "columns": []},
        "columns",
        "at least one column",
        id="no-columns",
    ),
    pytest.param(
        body({"name": "a", "type": "money"}),
        "columns[1:a].type",
        "'money' is not one of",
        id="unknown-type",
    ),
    pytest.param(
        body({"name": "a b", "type": "int"}),
        "columns[1:a b].name",
        "not a valid column name",
        id="bad-column-name",
    ),
    pytest.param(
        body({"name": "a", "type": "string", "regex": "(unclosed"}),
        "columns[1:a].regex",
        "does not compile",
        id="bad-regex",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "regex": "^[0-9]+$"}),
        "columns[1:a].regex",
        "regex applies to string columns, not to int",
        id="regex-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "min": 5, "max": 1}),
        "columns[1:a].min",
        "min 5 is greater than max 1",
        id="min-above-max",
    ),
    pytest.param(
        body({"name": "a", "type": "date", "min": "2024-02-01", "max": "2024-01-01"}),
        "columns[1:a].min",
        "min '2024-02-01' is greater than max '2024-01-01'",
        id="date-min-above-max",
    ),
    pytest.param(
        body(
            {
                "name": "a",
                "type": "timestamp",
                "min": "2024-02-01T00:00:00Z",
                "max": "2024-01-01T00:00:00Z",
            }
        ),
        "columns[1:a].min",
        "is greater than max",
        id="timestamp-min-above-max",
    ),
    pytest.param(
        body({"name": "a", "type": "string", "min": 5}),
        "columns[1:a].min",
        "min applies to numbers, timestamps and dates, not to a string column",
        id="min-on-string",
    ),
    pytest.param(
        body({"name": "a", "type": "bool", "max": 1}),
        "columns[1:a].max",
        "not to a bool column",
        id="max-on-bool",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "min": "5"}),
        "columns[1:a].min",
        "must be a number",
        id="string-min-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "min": True}),
        "columns[1:a].min",
        "not True",
        id="bool-min-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "min": 0.5}),
        "columns[1:a].min",
        "whole number",
        id="fractional-min-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "float", "max": float("nan")}),
        "columns[1:a].max",
        "max must not be NaN",
        id="nan-max",
    ),
    pytest.param(
        body({"name": "a", "type": "timestamp", "min": "2024-01-01T00:00:00"}),
        "columns[1:a].min",
        "has no timezone",
        id="naive-timestamp-min",
    ),
    pytest.param(
        body({"name": "a", "type": "timestamp", "min": "yesterday"}),
        "columns[1:a].min",
        "'yesterday' is not an ISO timestamp",
        id="non-iso-timestamp-min",
    ),
    pytest.param(
        body({"name": "a", "type": "timestamp", "max": 1700000000}),
        "columns[1:a].max",
        "must be an ISO timestamp string",
        id="number-max-on-timestamp",
    ),
    pytest.param(
        body({"name": "a", "type": "date", "min": "31/01/2024"}),
        "columns[1:a].min",
        "is not an ISO date",
        id="non-iso-date-min",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "allowed": ["x", "y"]}),
        "columns[1:a].allowed",
        "allowed values ['x', 'y'] are not all of type int",
        id="string-allowed-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "string", "allowed": ["x", 1]}),
        "columns[1:a].allowed",
        "are not all of type string",
        id="int-allowed-on-string",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "allowed": [1, 1.5]}),
        "columns[1:a].allowed",
        "are not all of type int",
        id="fractional-allowed-on-int",
    ),
    pytest.param(
        body({"name": "a", "type": "float", "allowed": [True, 2.5]}),
        "columns[1:a].allowed",
        "are not all of type float",
        id="bool-allowed-on-float",
    ),
    pytest.param(
        body({"name": "a", "type": "bool", "allowed": [True, 1]}),
        "columns[1:a].allowed",
        "are not all of type bool",
        id="int-allowed-on-bool",
    ),
    pytest.param(
        body({"name": "a", "type": "string", "allowed": []}),
        "columns[1:a].allowed",
        "at least one value",
        id="empty-allowed",
    ),
    pytest.param(
        body({"name": "a", "type": "int", "colour": "red"}),
        "columns[1:a].colour",
        "unknown field",
        id="unknown-column-field",
    ),
    pytest.param(
        body(owner="me"),
        "owner",
        "unknown field",
        id="unknown-top-level-field",
    ),
    pytest.param(
        body(primary_key=["nope"]),
        "primary_key[0]",
        "primary_key column 'nope' is not a declared column",
        id="unknown-key-column",
    ),
    pytest.param(
        body({"name": "id", "type": "int"}, primary_key=["id", "id"]),
        "primary_key[1]",
        "primary_key lists a column twice",
        id="repeated-key-column",
    ),
    pytest.param(
        body(extra_columns="keep"),
        "extra_columns",
        "'keep' is not one of: 'reject' or 'drop'",
        id="bad-extra-columns",
    ),
    pytest.param(
        body(batch={"min_rows": 5, "max_rows": 1}),
        "batch.min_rows",
        "min_rows 5 is greater than max_rows 1",
        id="min-rows-above-max-rows",
    ),
    pytest.param(
        body(batch={"max_rows": -1}),
        "batch.max_rows",
        "max_rows must not be negative",
        id="negative-max-rows",
    ),
    pytest.param(
        body(batch={"max_age": "0s"}),
        "batch.max_age",
        "max_age must be positive",
        id="zero-max-age",
    ),
    pytest.param(
        body(batch={"max_age": "soon"}),
        "batch.max_age",
        "valid timedelta",
        id="bad-max-age",
    ),
    pytest.param(
        body(batch={"max_days": 3}),
        "batch.max_days",
        "unknown field",
        id="unknown-batch-field",
    ),
]


@pytest.mark.parametrize(("data", "field", "message"), BAD_CONTRACTS)
def test_bad_contract_names_its_field(data: dict[str, Any], field: str, message: str) -> None:
    """Every inconsistent contract body raises ContractError naming the field at fault."""
    with pytest.raises(ContractError) as caught:
        parse_contract(data)
    assert caught.value.field == field
    assert message in caught.value.message
    assert caught.value.message.startswith(f"{field}: ")
    assert caught.value.to_dict()["field"] == field


def test_unknown_type_lists_every_choice() -> None:
    """An unknown column type is rejected with every valid type listed."""
    with pytest.raises(ContractError) as caught:
        parse_contract(body({"name": "a", "type": "money"}))
    for type_ in COLUMN_TYPES:
        assert f"'{type_}'" in caught.value.message


@pytest.mark.parametrize("data", [None, [1, 2], "columns: []", 42])
def test_non_mapping_contract_is_rejected(data: Any) -> None:
    """A contract body that is not a mapping is rejected and says what a contract is."""
    with pytest.raises(ContractError, match="must be a mapping"):
        parse_contract(data, file="c.yaml")


def test_contract_error_is_a_driftloop_error() -> None:
    """ContractError sits in driftloop's tree with the contract_error code and status 422."""
    with pytest.raises(DriftloopError) as caught:
        parse_contract(body({"name": "a", "type": "money"}))
    assert isinstance(caught.value, ContractError)
    assert caught.value.to_dict()["error"] == "contract_error"
    assert caught.value.http_status == 422


# --- parsing --------------------------------------------------------------------------


def test_parsed_contract_equals_python_declaration() -> None:
    """A body parsed from plain data equals the same contract declared in Python."""
    parsed = parse_contract(
        {
            "event_time": "ts",
            "primary_key": ["id"],
            "columns": [
                {"name": "id", "type": "string", "nullable": False},
                {"name": "ts", "type": "timestamp"},
                {"name": "amount", "type": "float", "min": 0},
            ],
            "batch": {"max_age": "6h"},
        }
    )
    assert parsed == Contract(
        event_time="ts",
        primary_key=("id",),
        columns=(
            Column("id", "string", nullable=False),
            Column("ts", "timestamp"),
            Column("amount", "float", min=0),
        ),
        batch=BatchRules(max_age=timedelta(hours=6)),
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("P7D", timedelta(days=7)),
        (3600, timedelta(hours=1)),
    ],
)
def test_max_age_accepts_duration_forms(given: Any, expected: timedelta) -> None:
    """max_age reads short durations, ISO 8601 durations and plain seconds."""
    assert parse_contract(body(batch={"max_age": given})).batch.max_age == expected


def test_source_key_is_ignored_by_parse() -> None:
    """A ``source`` key beside the contract (as in a source's YAML) is not an unknown field."""
    assert parse_contract(body(source="tx")) == contract()


def test_file_is_named_in_parse_errors() -> None:
    """parse_contract puts the file it was given in front of the field."""
    with pytest.raises(ContractError) as caught:
        parse_contract(body(owner="me"), file="contracts/tx.yaml")
    assert caught.value.file == "contracts/tx.yaml"
    assert str(caught.value) == "contracts/tx.yaml: owner: unknown field"


# --- YAML files -----------------------------------------------------------------------


GOOD_YAML = """\
# card transactions
event_time: ts
primary_key: [id]
columns:
  - name: id
    type: string
    nullable: false
    regex: "^tx_[0-9]+$"
  - name: ts
    type: timestamp
    min: "2020-01-01T00:00:00Z"
  - name: amount
    type: float
    min: 0
  - name: region
    type: category
    allowed: [eu, us]
batch:
  max_age: 7d
extra_columns: drop
"""


def test_load_contract_reads_yaml(tmp_path: Path) -> None:
    """A YAML contract file loads into the same contract as its Python declaration."""
    loaded = load_contract(write(tmp_path, GOOD_YAML))
    assert loaded == Contract(
        event_time="ts",
        primary_key=("id",),
        columns=(
            Column("id", "string", nullable=False, regex="^tx_[0-9]+$"),
            Column("ts", "timestamp", min="2020-01-01T00:00:00Z"),
            Column("amount", "float", min=0),
            Column("region", "category", allowed=("eu", "us")),
        ),
        batch=BatchRules(max_age=timedelta(days=7)),
        extra_columns="drop",
    )


def test_load_contract_accepts_a_str_path(tmp_path: Path) -> None:
    """load_contract takes a plain string path as well as a Path."""
    path = write(tmp_path, GOOD_YAML)
    assert load_contract(str(path)) == load_contract(path)


def test_unquoted_yaml_dates_are_bounds(tmp_path: Path) -> None:
    """Unquoted YAML dates and timestamps are read as the ISO bounds they spell."""
    path = write(
        tmp_path,
        "event_time: ts\ncolumns:\n"
        "  - {name: ts, type: timestamp, min: 2024-01-01T00:00:00Z}\n"
        "  - {name: day, type: date, min: 2024-01-01, max: 2024-12-31}\n",
    )
    loaded = load_contract(path)
    assert loaded.column("ts").min_value() == datetime(2024, 1, 1, tzinfo=UTC)
    assert loaded.column("day").min_value() == date(2024, 1, 1)
    assert loaded.column("day").max_value() == date(2024, 12, 31)


def test_unquoted_yaml_timestamp_without_zone_is_rejected(tmp_path: Path) -> None:
    """An unquoted YAML timestamp bound without a zone is rejected as having no timezone."""
    path = write(
        tmp_path,
        "event_time: ts\ncolumns:\n  - {name: ts, type: timestamp, max: 2024-01-01 10:00:00}\n",
    )
    with pytest.raises(ContractError, match="has no timezone") as caught:
        load_contract(path)
    assert caught.value.field == "columns[0:ts].max"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        pytest.param(
            "event_time: ts\ncolumns:\n  - name: ts\n    type: timestamp\n"
            "  - name: amount\n    type: money\n",
            6,
            "columns[1:amount].type",
            id="unknown-type",
        ),
        pytest.param(
            "event_time: ts\ncolumns:\n  - name: ts\n    type: timestamp\n"
            "  - name: a\n    type: int\n    min: 9\n    max: 1\n",
            7,
            "columns[1:a].min",
            id="min-above-max",
        ),
        pytest.param(
            "event_time: ts\ncolumns:\n  - name: ts\n    type: timestamp\n"
            "  - name: a\n    type: int\n  - name: a\n    type: int\n",
            7,
            "columns[2:a]",
            id="duplicate-column",
        ),
        pytest.param(
            "columns:\n  - name: ts\n    type: int\nevent_time: ts\n",
            4,
            "event_time",
            id="event-time-not-timestamp",
        ),
        pytest.param(
            "event_time: ts\ncolumns:\n  - name: ts\n    type: timestamp\nbatch:\n"
            "  max_age: 7d\n  colour: red\n",
            7,
            "batch.colour",
            id="unknown-batch-field",
        ),
    ],
)
def test_yaml_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    """An invalid YAML contract names the file, the 1-based line and the field at fault."""
    path = write(tmp_path, text)
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert str(error).startswith(f"{path}:{line}: {field}: ")


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    """A YAML syntax error is a ContractError naming the file and the line of the problem."""
    path = write(tmp_path, "event_time: ts\ncolumns:\n  - name: ts\n  type: timestamp\n")
    with pytest.raises(ContractError, match="invalid YAML") as caught:
        load_contract(path)
    assert caught.value.file == str(path)
    assert caught.value.line == 4


def test_unclosed_flow_sequence_is_a_syntax_error(tmp_path: Path) -> None:
    """An unclosed ``[`` is reported as invalid YAML with a line number."""
    path = write(tmp_path, "event_time: ts\ncolumns: [\n")
    with pytest.raises(ContractError, match="invalid YAML") as caught:
        load_contract(path)
    assert caught.value.line is not None


def test_missing_contract_file(tmp_path: Path) -> None:
    """A contract path that does not exist is a ContractError naming the file."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ContractError, match="not found") as caught:
        load_contract(path)
    assert caught.value.file == str(path)


def test_directory_as_contract_file(tmp_path: Path) -> None:
    """A directory given as the contract file is a ContractError, not an OSError."""
    with pytest.raises(ContractError) as caught:
        load_contract(tmp_path)
    assert caught.value.file == str(tmp_path)


def test_non_utf8_contract_file(tmp_path: Path) -> None:
    """A contract file that is not UTF-8 is rejected with the offset of the bad byte."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"event_time: ts\n# caf\xe9\n")
    with pytest.raises(ContractError, match=r"not UTF-8 text \(byte 20\)") as caught:
        load_contract(path)
    assert caught.value.file == str(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    """An empty YAML file, a list or a scalar is rejected as not a contract mapping."""
    with pytest.raises(ContractError, match="must be a mapping"):
        load_contract(write(tmp_path, text))


def test_multi_document_yaml_is_rejected(tmp_path: Path) -> None:
    """A file holding two YAML documents is rejected as invalid YAML."""
    path = write(tmp_path, "event_time: ts\n---\nevent_time: ts\n")
    with pytest.raises(ContractError, match="invalid YAML"):
        load_contract(path)


# --- canonical form and hash --------------------------------------------------------------


def test_to_dict_omits_defaults() -> None:
    """The canonical body lists only what differs from the defaults."""
    assert contract(Column("a", "int")).to_dict() == {
        "event_time": "ts",
        "columns": [{"name": "ts", "type": "timestamp"}, {"name": "a", "type": "int"}],
    }


def test_to_dict_lists_every_set_attribute() -> None:
    """The canonical body carries every non-default attribute, tuples as lists."""
    data = rich_contract().to_dict()
    assert data["primary_key"] == ["id", "region"]
    assert data["columns"][0] == {
        "name": "id", "type": "string", "nullable": False, "regex": "^tx_[0-9]+$",
        "description": "tx id",
    }  # fmt: skip
    assert data["columns"][5]["allowed"] == [1, 2, 3]
    assert data["columns"][7] == {"name": "email", "type": "string", "unique": True, "pii": "email"}
    assert data["batch"] == {"min_rows": 0, "max_rows": 1000, "max_age": "1w"}
    assert data["extra_columns"] == "drop"
    assert data["description"] == "card transactions"


def test_to_dict_round_trips_through_parse() -> None:
    """parse_contract(to_dict()) rebuilds an equal contract with the same hash."""
    original = rich_contract()
    again = parse_contract(original.to_dict())
    assert again == original
    assert again.hash == original.hash


def test_to_dict_is_json_ready() -> None:
    """The canonical body survives strict JSON and parses back to the same contract."""
    text = json.dumps(rich_contract().to_dict(), allow_nan=False)
    assert parse_contract(json.loads(text)) == rich_contract()


def test_to_yaml_round_trips_through_load(tmp_path: Path) -> None:
    """A contract written with to_yaml loads back equal from the file."""
    path = write(tmp_path, rich_contract().to_yaml())
    assert load_contract(path) == rich_contract()
    assert yaml.safe_load(path.read_text())["event_time"] == "ts"


def test_hash_is_sha256_of_canonical_json() -> None:
    """The hash is the sha256 of the sorted, whitespace-free JSON of the canonical body."""
    canonical = (
        '{"columns":[{"name":"ts","type":"timestamp"},'
        '{"min":0,"name":"amount","type":"float"}],"event_time":"ts"}'
    )
    assert (
        contract(Column("amount", "float", min=0)).hash
        == hashlib.sha256(canonical.encode()).hexdigest()
    )


def test_hash_is_equal_for_equal_contracts(tmp_path: Path) -> None:
    """Equal contracts from Python, from plain data and from YAML share one hash."""
    from_python = rich_contract()
    from_data = parse_contract(json.loads(json.dumps(from_python.to_dict())))
    from_yaml = load_contract(write(tmp_path, from_python.to_yaml()))
    assert from_python.hash == from_data.hash == from_yaml.hash
    assert from_python.hash == rich_contract().hash


@pytest.mark.parametrize(
    "changed",
    [
        contract(Column("a", "int", nullable=False)),
        contract(Column("a", "int32")),
        contract(Column("a", "int", min=1)),
        contract(Column("a", "int", description="count")),
        contract(Column("b", "int")),
        contract(Column("a", "int"), batch=BatchRules(max_rows=5)),
        contract(Column("a", "int"), description="changed"),
        contract(Column("a", "int"), extra_columns="drop"),
    ],
)
def test_hash_changes_with_content(changed: Contract) -> None:
    """Any change to the contract's content gives a different hash."""
    assert changed.hash != contract(Column("a", "int")).hash


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=14), "2w"),
        (timedelta(hours=36), "36h"),
        (timedelta(seconds=1.5), "1.5s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    """format_duration writes the largest unit that divides the duration exactly."""
    assert format_duration(value) == text


# --- comparing versions -------------------------------------------------------------------


def test_identical_contracts_have_no_changes() -> None:
    """Comparing a contract with itself finds nothing."""
    changes = compare_contracts(rich_contract(), rich_contract())
    assert changes == ContractChanges()
    assert not changes.changed
    assert list(changes) == []


BASE = contract(
    Column("a", "int32", min=0, max=10, allowed=(1, 2, 3), description="a"),
    Column("s", "string", regex="^x", pii="name"),
    Column("k", "string", nullable=False),
    primary_key=("k",),
)


def _with(column: Column) -> Contract:
    """BASE with one column replaced by ``column`` (same name), order kept."""
    columns = tuple(column if c.name == column.name else c for c in BASE.columns)
    return Contract(columns=columns, event_time="ts", primary_key=BASE.primary_key)


ADDITIVE = [
    pytest.param(
        Contract(
            columns=(*BASE.columns, Column("n", "float")), event_time="ts", primary_key=("k",)
        ),
        "nullable column 'n' added",
        id="nullable-column-added",
    ),
    pytest.param(
        _with(Column("a", "int64", min=0, max=10, allowed=(1, 2, 3), description="a")),
        "column 'a' widened from int32 to int64",
        id="int-widened",
    ),
    pytest.param(
        _with(Column("k", "string")),
        "column 'k' became nullable",
        id="became-nullable",
    ),
    pytest.param(
        _with(Column("a", "int32", min=-5, max=10, allowed=(1, 2, 3), description="a")),
        "column 'a' min relaxed from 0 to -5",
        id="min-relaxed",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=99, allowed=(1, 2, 3), description="a")),
        "column 'a' max relaxed from 10 to 99",
        id="max-relaxed",
    ),
    pytest.param(
        _with(Column("a", "int32", max=10, allowed=(1, 2, 3), description="a")),
        "column 'a' min bound removed",
        id="min-removed",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=10, allowed=(3, 1, 2, 4), description="a")),
        "column 'a' allowed values added: 4",
        id="allowed-added",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=10, description="a")),
        "column 'a' allowed values removed",
        id="allowed-removed",
    ),
    pytest.param(
        _with(Column("s", "string", pii="name")),
        "column 's' regex removed",
        id="regex-removed",
    ),
    pytest.param(
        _with(Column("s", "string", regex="^x", pii="email")),
        "column 's' pii tag changed from 'name' to 'email'",
        id="pii-changed",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=10, allowed=(1, 2, 3))),
        "column 'a' description changed",
        id="column-description",
    ),
    pytest.param(
        Contract(
            columns=BASE.columns,
            event_time="ts",
            primary_key=("k",),
            batch=BatchRules(min_rows=10, max_rows=20, max_age=timedelta(days=1)),
        ),
        "batch max_age changed from None to 1d",
        id="batch-rules",
    ),
    pytest.param(
        Contract(columns=BASE.columns, event_time="ts", primary_key=("k",), extra_columns="drop"),
        "extra_columns changed from 'reject' to 'drop'",
        id="extra-columns",
    ),
    pytest.param(
        Contract(columns=BASE.columns, event_time="ts", primary_key=("k",), description="new"),
        "description changed",
        id="description",
    ),
]


@pytest.mark.parametrize(("new", "change"), ADDITIVE)
def test_additive_change(new: Contract, change: str) -> None:
    """A change that keeps every accepted batch valid is listed as additive only."""
    changes = compare_contracts(BASE, new)
    assert change in changes.additive
    assert changes.breaking == ()
    assert changes.changed


BREAKING = [
    pytest.param(
        Contract(
            columns=tuple(c for c in BASE.columns if c.name != "s"),
            event_time="ts",
            primary_key=("k",),
        ),
        "column 's' removed",
        id="column-removed",
    ),
    pytest.param(
        Contract(
            columns=(*BASE.columns, Column("n", "float", nullable=False)),
            event_time="ts",
            primary_key=("k",),
        ),
        "non-nullable column 'n' added (old batches have no values)",
        id="non-nullable-column-added",
    ),
    pytest.param(
        _with(Column("a", "int8", min=0, max=10, allowed=(1, 2, 3), description="a")),
        "column 'a' type changed from int32 to int8",
        id="int-narrowed",
    ),
    pytest.param(
        _with(Column("s", "int")),
        "column 's' type changed from string to int",
        id="type-changed",
    ),
    pytest.param(
        _with(Column("s", "string", regex="^x", pii="name", nullable=False)),
        "column 's' became non-nullable",
        id="became-non-nullable",
    ),
    pytest.param(
        _with(Column("a", "int32", min=1, max=10, allowed=(1, 2, 3), description="a")),
        "column 'a' min tightened from 0 to 1",
        id="min-tightened",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=5, allowed=(1, 2, 3), description="a")),
        "column 'a' max tightened from 10 to 5",
        id="max-tightened",
    ),
    pytest.param(
        _with(Column("s", "string", regex="^x", pii="name", max=None, allowed=("x",))),
        "column 's' allowed values narrowed",
        id="allowed-introduced",
    ),
    pytest.param(
        _with(Column("a", "int32", min=0, max=10, allowed=(1, 2), description="a")),
        "column 'a' allowed values narrowed (no longer allowed: 3)",
        id="allowed-narrowed",
    ),
    pytest.param(
        _with(Column("s", "string", regex="^xy", pii="name")),
        "column 's' regex changed to '^xy'",
        id="regex-changed",
    ),
    pytest.param(
        _with(Column("k", "string", nullable=False, regex="^k")),
        "column 'k' regex changed to '^k'",
        id="regex-added",
    ),
    pytest.param(
        _with(Column("k", "string", nullable=False, unique=True)),
        "column 'k' became unique",
        id="became-unique",
    ),
    pytest.param(
        Contract(
            columns=(*BASE.columns, Column("ts2", "timestamp")),
            event_time="ts2",
            primary_key=("k",),
        ),
        "event_time changed from 'ts' to 'ts2'",
        id="event-time-changed",
    ),
    pytest.param(
        Contract(columns=BASE.columns, event_time="ts", primary_key=("k", "s")),
        "primary_key changed from ['k'] to ['k', 's']",
        id="primary-key-changed",
    ),
    pytest.param(
        Contract(columns=BASE.columns, event_time="ts"),
        "primary_key changed from ['k'] to []",
        id="primary-key-dropped",
    ),
]


@pytest.mark.parametrize(("new", "change"), BREAKING)
def test_breaking_change(new: Contract, change: str) -> None:
    """A change that could make accepted data invalid is listed as breaking."""
    changes = compare_contracts(BASE, new)
    assert change in changes.breaking
    assert changes.changed


def test_new_bound_is_breaking() -> None:
    """Adding a bound where there was none is a tightening, hence breaking."""
    changes = compare_contracts(
        contract(Column("a", "float")), contract(Column("a", "float", max=1.5))
    )
    assert changes.breaking == ("column 'a' max tightened from None to 1.5",)


def test_unique_dropped_is_additive() -> None:
    """Dropping a uniqueness rule is additive."""
    changes = compare_contracts(
        contract(Column("a", "int", unique=True)), contract(Column("a", "int"))
    )
    assert changes.additive == ("column 'a' no longer unique",)
    assert changes.breaking == ()


def test_time_bounds_compare_by_instant() -> None:
    """Timestamp bounds spelt in different zones but naming one instant are no change."""
    old = contract(Column("t", "timestamp", min="2024-01-01T00:00:00Z"))
    same = contract(Column("t", "timestamp", min="2024-01-01T01:00:00+01:00"))
    later = contract(Column("t", "timestamp", min="2024-01-02T00:00:00Z"))
    assert compare_contracts(old, same).breaking == ()
    assert compare_contracts(old, later).breaking == (
        "column 't' min tightened from '2024-01-01T00:00:00Z' to '2024-01-02T00:00:00Z'",
    )
    assert compare_contracts(later, old).additive == (
        "column 't' min relaxed from '2024-01-02T00:00:00Z' to '2024-01-01T00:00:00Z'",
    )


def test_batch_rule_changes_are_never_breaking() -> None:
    """Tightening batch rules is listed as additive: they only judge new deliveries."""
    old = contract(batch=BatchRules(min_rows=0, max_age=timedelta(days=7)))
    new = contract(batch=BatchRules(min_rows=100, max_rows=200, max_age=timedelta(hours=1)))
    changes = compare_contracts(old, new)
    assert changes.breaking == ()
    assert set(changes.additive) == {
        "batch min_rows changed from 0 to 100",
        "batch max_rows changed from None to 200",
        "batch max_age changed from 1w to 1h",
    }


def test_changes_iterate_breaking_first() -> None:
    """Iterating ContractChanges yields the breaking changes, then the additive ones."""
    old = contract(Column("a", "int"))
    new = contract(Column("b", "int"), description="x")
    assert list(compare_contracts(old, new)) == [
        "column 'a' removed", "nullable column 'b' added", "description changed",
    ]  # fmt: skip


def test_widening_keeps_checking_the_other_rules() -> None:
    """A widened column is still compared rule by rule, so a tightened bound stays breaking."""
    changes = compare_contracts(
        contract(Column("a", "float32", max=10)), contract(Column("a", "float64", max=5))
    )
    assert changes.additive == ("column 'a' widened from float32 to float64",)
    assert changes.breaking == ("column 'a' max tightened from 10 to 5",)
