"""Reading a batch from files and in-memory frames, keeping its exact bytes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

from driftloop.data.readers import FORMATS, RawBatch, UnreadableInput, read_batch
from driftloop.errors import InputError, InputNotFound

SAMPLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["a", None, "c"],
        "score": [0.5, 1.5, None],
        "ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
    }
)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def unreadable(path: Path, **kwargs: object) -> UnreadableInput:
    """The UnreadableInput raised when reading ``path``."""
    with pytest.raises(UnreadableInput) as caught:
        read_batch(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- missing and unreadable paths ------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist raises InputNotFound naming it."""
    path = tmp_path / "absent.csv"
    with pytest.raises(InputNotFound) as caught:
        read_batch(path)
    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path}: no such file"
    assert isinstance(caught.value, InputError)
    assert caught.value.to_dict()["error"] == "input_not_found"


def test_directory_without_suffix(tmp_path: Path) -> None:
    """A directory is an InputError, not a crash."""
    with pytest.raises(InputError):
        read_batch(tmp_path)


def test_directory_with_a_data_suffix(tmp_path: Path) -> None:
    """A directory named like a data file is an InputError saying it is a directory."""
    folder = tmp_path / "part.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory") as caught:
        read_batch(folder)
    assert caught.value.path == str(folder)
    assert not isinstance(caught.value, UnreadableInput)


def test_directory_with_a_format(tmp_path: Path) -> None:
    """A directory with an explicit format is still an InputError."""
    with pytest.raises(InputError, match="is a directory"):
        read_batch(tmp_path, format="parquet")


def test_unknown_suffix_needs_a_format(tmp_path: Path) -> None:
    """A file whose suffix names no format is refused with the formats to choose from."""
    path = write(tmp_path, "batch.txt", b"a\n1\n")
    with pytest.raises(InputError, match=r"cannot tell the format from the suffix '\.txt'") as e:
        read_batch(path)
    for fmt in FORMATS:
        assert fmt in str(e.value)
    assert read_batch(path, format="csv").table.column("a").to_pylist() == [1]


def test_no_suffix_needs_a_format(tmp_path: Path) -> None:
    """A file without a suffix is refused until a format is given."""
    path = write(tmp_path, "batch", b'{"a": 1}\n')
    with pytest.raises(InputError, match=r"\(none\)"):
        read_batch(path)
    assert read_batch(path, format="jsonl").format == "jsonl"


def test_unknown_format_name(tmp_path: Path) -> None:
    """A format name that is not known is refused with the known ones."""
    path = write(tmp_path, "batch.csv", b"a\n1\n")
    with pytest.raises(InputError, match="unknown format 'xml'"):
        read_batch(path, format="xml")


def test_format_overrides_suffix(tmp_path: Path) -> None:
    """An explicit format wins over the file's suffix."""
    path = write(tmp_path, "batch.csv", b'{"a": 1}\n')
    assert read_batch(path, format="jsonl").table.to_pylist() == [{"a": 1}]


def test_suffix_case_is_ignored(tmp_path: Path) -> None:
    """An upper-case suffix selects the same format."""
    assert read_batch(write(tmp_path, "BATCH.CSV", b"a\n1\n")).format == "csv"


def test_unsupported_object() -> None:
    """An object that is neither a path, a table nor a DataFrame is an InputError."""
    with pytest.raises(InputError, match="cannot ingest a dict"):
        read_batch({"a": [1]})


# --- empty inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\n  \t\n"])
def test_empty_csv(tmp_path: Path, data: bytes) -> None:
    """A CSV of zero bytes or only whitespace is unreadable and keeps its bytes."""
    error = unreadable(write(tmp_path, "batch.csv", data))
    assert error.problem == "file is empty"
    assert error.data == data
    assert error.format == "csv"


@pytest.mark.parametrize("suffix", ["jsonl", "parquet", "arrow"])
def test_empty_binary_and_jsonl_files(tmp_path: Path, suffix: str) -> None:
    """A zero-byte Parquet, Arrow or JSONL file is unreadable as empty."""
    error = unreadable(write(tmp_path, f"batch.{suffix}", b""))
    assert error.problem == "file is empty"
    assert error.format == suffix


def test_whitespace_only_jsonl(tmp_path: Path) -> None:
    """A JSON-lines file of blank lines is unreadable as empty, like a blank CSV."""
    error = unreadable(write(tmp_path, "batch.jsonl", b"\n  \n"))
    assert error.problem == "file is empty"


def test_header_only_csv(tmp_path: Path) -> None:
    """A CSV with a header and no rows reads as a table with 0 rows and those columns."""
    batch = read_batch(write(tmp_path, "batch.csv", b"id,name\n"))
    assert batch.table.num_rows == 0
    assert batch.table.column_names == ["id", "name"]


def test_header_only_csv_without_newline(tmp_path: Path) -> None:
    """A header line without a final newline is still a header-only CSV."""
    batch = read_batch(write(tmp_path, "batch.csv", b"id,name"))
    assert batch.table.num_rows == 0
    assert batch.table.column_names == ["id", "name"]
    assert batch.data == b"id,name"


def test_header_only_csv_uses_column_types(tmp_path: Path) -> None:
    """A header-only CSV reads its columns with the given types."""
    batch = read_batch(
        write(tmp_path, "batch.csv", b"id,name\n"),
        column_types={"id": pa.int64(), "name": pa.string()},
    )
    assert batch.table.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])


# --- malformed CSV ---------------------------------------------------------------------


def test_csv_row_with_too_many_fields(tmp_path: Path) -> None:
    """A CSV row with too many fields is unreadable, naming its 1-based line in the file."""
    data = b"a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n"
    path = write(tmp_path, "batch.csv", data)
    error = unreadable(path)
    assert error.line == 3
    assert "Expected 3 columns, got 4" in error.problem
    assert str(error).startswith(f"{path}: line 3: malformed CSV")
    assert error.data == data
    assert error.fields["line"] == 3


def test_csv_row_with_too_few_fields(tmp_path: Path) -> None:
    """A CSV row with too few fields names its line too."""
    error = unreadable(write(tmp_path, "batch.csv", b"a,b,c\n1,2,3\n4,5\n"))
    assert error.line == 3
    assert "Expected 3 columns, got 2" in error.problem


def test_csv_bad_row_repeated_inside_a_quoted_field(tmp_path: Path) -> None:
    """The line named is the bad row's own, even when its text appears earlier in a field."""
    error = unreadable(write(tmp_path, "batch.csv", b'a,b,c\n"4,5,6,7",1,2\n4,5,6,7\n'))
    assert error.line == 3


def test_csv_bad_row_with_crlf(tmp_path: Path) -> None:
    """Lines are counted the same in a CSV with Windows line endings."""
    error = unreadable(write(tmp_path, "batch.csv", b"a,b\r\n1,2\r\n3,4\r\n5,6,7\r\n"))
    assert error.line == 4


def test_unreadable_input_is_an_input_error(tmp_path: Path) -> None:
    """UnreadableInput is an InputError with its own code and the path in its fields."""
    path = write(tmp_path, "batch.csv", b"a,b\n1,2,3\n")
    error = unreadable(path)
    assert isinstance(error, InputError)
    assert error.to_dict()["error"] == "unreadable_input"
    assert error.to_dict()["path"] == str(path)
    assert error.to_dict()["format"] == "csv"
    assert error.http_status == 400


# --- non-UTF-8 input ---------------------------------------------------------------------


def test_non_utf8_csv(tmp_path: Path) -> None:
    """A CSV with bytes that are not UTF-8 is unreadable, naming the line and byte offset."""
    data = b"a,b\n1,x\n2,caf\xe9\n"
    error = unreadable(write(tmp_path, "batch.csv", data))
    assert error.line == 3
    assert error.problem == "not UTF-8: byte 0xe9 at offset 13"
    assert error.data == data


def test_non_utf8_csv_with_string_types(tmp_path: Path) -> None:
    """A non-UTF-8 value in a column typed as string names its line and offset."""
    error = unreadable(
        write(tmp_path, "batch.csv", b"a,b\n1,x\n2,y\n3,\xff\xfe\n"),
        column_types={"a": pa.int64(), "b": pa.string()},
    )
    assert (error.line, error.problem) == (4, "not UTF-8: byte 0xff at offset 14")


def test_non_utf8_csv_after_a_type_fallback(tmp_path: Path) -> None:
    """A non-UTF-8 value is still reported when another column fell back to text."""
    error = unreadable(
        write(tmp_path, "batch.csv", b"a,b\n1,x\nq,\xff\n"), column_types={"a": pa.int64()}
    )
    assert error.line == 3


def test_non_utf8_jsonl(tmp_path: Path) -> None:
    """A JSON-lines file with bytes that are not UTF-8 names the line and byte offset."""
    error = unreadable(write(tmp_path, "batch.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n'))
    assert (error.line, error.problem) == (2, "not UTF-8: byte 0xe9 at offset 19")


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    """A record that does not parse, or whose value changes a column's type, is
    reported at its line (blank lines counted) and the batch is kept for quarantine."""
    broken = b'{"a": 1}\n\n{"a": 2}\n{"a": 3,,}\n{"a": 4}\n'
    error = unreadable(write(tmp_path, "broken.jsonl", broken))
    assert (error.line, error.data) == (4, broken)
    assert error.problem.startswith("malformed JSON lines: ")
    mixed = unreadable(write(tmp_path, "mixed.jsonl", b'{"a": 1}\n{"a": "x"}\n'))
    assert mixed.line == 2
    assert "changed from number to string" in mixed.problem


def test_a_bad_jsonl_line_far_into_a_large_file_is_found(tmp_path: Path) -> None:
    """Past Arrow's first parse block its row numbers restart; the line is the file's."""
    lines = [b'{"a": %d, "b": "row %d"}' % (i, i) for i in range(120_000)]
    lines[97_654] = b'{"a": 97654, "b": }'
    error = unreadable(write(tmp_path, "large.jsonl", b"\n".join(lines) + b"\n"))
    assert error.line == 97_655


def test_csv_with_utf8_bom(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark does not become part of the first column's name."""
    batch = read_batch(write(tmp_path, "batch.csv", b"\xef\xbb\xbfa,b\n1,2\n"))
    assert batch.table.column_names == ["a", "b"]


# --- CSV types ---------------------------------------------------------------------------


def test_csv_column_types_are_applied(tmp_path: Path) -> None:
    """Columns named in column_types are parsed as those types."""
    batch = read_batch(
        write(tmp_path, "batch.csv", b"a,b\n1,2\n3,4\n"),
        column_types={"a": pa.int16(), "b": pa.string()},
    )
    assert batch.table.schema == pa.schema([("a", pa.int16()), ("b", pa.string())])


def test_csv_value_not_converting_reads_as_text(tmp_path: Path) -> None:
    """When a value does not convert to its column type, typed columns come back as text."""
    batch = read_batch(
        write(tmp_path, "batch.csv", b"a,b\n1,2\nx,3\n"),
        column_types={"a": pa.int64(), "b": pa.int64()},
    )
    assert batch.table.schema == pa.schema([("a", pa.string()), ("b", pa.string())])
    assert batch.table.column("a").to_pylist() == ["1", "x"]


def test_csv_column_types_for_absent_columns_are_ignored(tmp_path: Path) -> None:
    """A type for a column the CSV does not have is ignored."""
    batch = read_batch(
        write(tmp_path, "batch.csv", b"a\n1\n"), column_types={"a": pa.int8(), "zz": pa.int64()}
    )
    assert batch.table.schema == pa.schema([("a", pa.int8())])


def test_csv_empty_values_are_null(tmp_path: Path) -> None:
    """An empty CSV field is null in numeric and text columns alike."""
    batch = read_batch(write(tmp_path, "batch.csv", b"a,b\n,x\n1,\n"))
    assert batch.table.to_pylist() == [{"a": None, "b": "x"}, {"a": 1, "b": None}]


def test_tsv_uses_tabs(tmp_path: Path) -> None:
    """A .tsv file is read as CSV with tab delimiters."""
    batch = read_batch(write(tmp_path, "batch.tsv", b"a\tb\n1\tx,y\n"))
    assert batch.format == "csv"
    assert batch.table.to_pylist() == [{"a": 1, "b": "x,y"}]


# --- round trips of each format -----------------------------------------------------------


def test_csv_round_trip(tmp_path: Path) -> None:
    """A CSV file reads into its table and keeps its exact bytes, hash and resolved path."""
    data = b"id,name\n1,a\n2,b\n"
    path = write(tmp_path, "batch.csv", data)
    batch = read_batch(path)
    assert isinstance(batch, RawBatch)
    assert batch.format == "csv"
    assert batch.data == data
    assert batch.sha256 == hashlib.sha256(data).hexdigest()
    assert batch.uri == str(path.resolve())
    assert batch.table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.mark.parametrize("suffix", ["parquet", "pq"])
def test_parquet_round_trip(tmp_path: Path, suffix: str) -> None:
    """A Parquet file reads back to the table written, with its bytes kept."""
    path = tmp_path / f"batch.{suffix}"
    pq.write_table(SAMPLE, path)
    batch = read_batch(path)
    assert batch.format == "parquet"
    assert batch.table.equals(SAMPLE)
    assert batch.data == path.read_bytes()


@pytest.mark.parametrize("suffix", ["arrow", "feather", "ipc"])
def test_arrow_ipc_file_round_trip(tmp_path: Path, suffix: str) -> None:
    """An Arrow IPC file (random-access format) reads back to the table written."""
    path = tmp_path / f"batch.{suffix}"
    with ipc.new_file(str(path), SAMPLE.schema) as writer:
        writer.write_table(SAMPLE)
    batch = read_batch(path)
    assert batch.format == "arrow"
    assert batch.table.equals(SAMPLE)


def test_arrow_ipc_stream_round_trip(tmp_path: Path) -> None:
    """An Arrow IPC stream reads back to the table written."""
    path = tmp_path / "batch.arrow"
    with ipc.new_stream(str(path), SAMPLE.schema) as writer:
        writer.write_table(SAMPLE)
    assert read_batch(path).table.equals(SAMPLE)


@pytest.mark.parametrize("suffix", ["jsonl", "ndjson"])
def test_jsonl_round_trip(tmp_path: Path, suffix: str) -> None:
    """A JSON-lines file reads back to its records."""
    records = [{"id": 1, "name": "a", "score": 0.5}, {"id": 2, "name": None, "score": 1.5}]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    batch = read_batch(write(tmp_path, f"batch.{suffix}", data))
    assert batch.format == "jsonl"
    assert batch.table.to_pylist() == records
    assert batch.data == data


def test_file_uri(tmp_path: Path) -> None:
    """A file:// URI reads the local file."""
    path = write(tmp_path, "batch.csv", b"a\n1\n")
    batch = read_batch(f"file://{path}")
    assert batch.table.column("a").to_pylist() == [1]
    assert batch.uri == str(path.resolve())


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("batch.parquet", b"not parquet at all", "not a readable parquet file"),
        ("batch.arrow", b"not arrow at all", "not a readable arrow file"),
        ("batch.jsonl", b'{"a": 1}\n{"a": \n', "malformed JSON lines: Invalid value"),
    ],
)
def test_corrupt_file_is_unreadable(tmp_path: Path, name: str, data: bytes, said: str) -> None:
    """A file that does not parse as its format is unreadable and keeps its bytes."""
    error = unreadable(write(tmp_path, name, data))
    assert error.problem.startswith(said)
    assert error.data == data


def test_truncated_parquet_is_unreadable(tmp_path: Path) -> None:
    """A Parquet file cut short is unreadable."""
    path = tmp_path / "batch.parquet"
    pq.write_table(SAMPLE, path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert unreadable(path).format == "parquet"


# --- in-memory inputs ----------------------------------------------------------------


def test_table_input_keeps_readable_bytes(tmp_path: Path) -> None:
    """An Arrow table is kept as IPC-stream bytes that read back to the same table."""
    batch = read_batch(SAMPLE)
    assert batch.format == "table"
    assert batch.table is SAMPLE
    assert batch.sha256 == hashlib.sha256(batch.data).hexdigest()
    assert batch.uri == f"arrow-table:{batch.sha256[:16]}"
    back = read_batch(write(tmp_path, "kept.arrow", batch.data))
    assert back.table.equals(SAMPLE)


def test_equal_tables_have_equal_bytes() -> None:
    """Two equal tables give the same bytes and hash."""
    assert (
        read_batch(SAMPLE).sha256
        == read_batch(pa.table(SAMPLE.to_pydict(), schema=SAMPLE.schema)).sha256
    )


def test_record_batch_input() -> None:
    """A single Arrow record batch is read as a table."""
    batch = read_batch(SAMPLE.to_batches()[0])
    assert batch.format == "table"
    assert batch.table.equals(SAMPLE)


def test_dataframe_input_keeps_readable_bytes(tmp_path: Path) -> None:
    """A pandas DataFrame is converted without its index and kept as readable bytes."""
    frame = pd.DataFrame({"id": [1, 2], "name": ["a", None]}, index=[10, 20])
    batch = read_batch(frame)
    assert batch.format == "dataframe"
    assert batch.uri == f"dataframe:{batch.sha256[:16]}"
    assert batch.table.column_names == ["id", "name"]
    assert batch.table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": None}]
    back = read_batch(write(tmp_path, "kept.arrow", batch.data))
    assert back.table.equals(batch.table)


def test_dataframe_that_does_not_convert() -> None:
    """A DataFrame with a column Arrow cannot convert is an InputError naming the column."""
    with pytest.raises(InputError, match="column a") as caught:
        read_batch(pd.DataFrame({"a": [1, "x"]}))
    assert caught.value.path == "<DataFrame>"
