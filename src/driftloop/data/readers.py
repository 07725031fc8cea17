"""Reading a batch: Parquet, CSV, Arrow IPC, JSON lines, or an in-memory frame/table.

The reader keeps the input's exact bytes (quarantine stores them byte-identical)
and turns them into an Arrow table. A file that cannot be parsed at all raises
:class:`UnreadableInput` carrying those bytes and a message that says where the
problem is (line, byte offset, column); the caller quarantines it.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pyarrow import ipc

from driftloop.core.filesystems import resolve_uri
from driftloop.core.hashing import sha256_bytes
from driftloop.errors import InputError, InputNotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "Format", "RawBatch", "UnreadableInput", "read_batch", "read_bytes"]

Format = Literal["parquet", "csv", "arrow", "jsonl", "dataframe", "table"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "arrow", "jsonl")

_SUFFIXES: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_CSV_ROW = re.compile(r"Expected \d+ columns, got \d+: (?P<row>.*)$", re.DOTALL)
_CSV_COLUMN = re.compile(r"In CSV column #(?P<col>\d+): (?P<rest>.*)", re.DOTALL)


@dataclass(frozen=True)
class RawBatch:
    """One input as read: its bytes (for quarantine), format, origin and table."""

    data: bytes
    format: Format
    uri: str
    sha256: str
    table: pa.Table


class UnreadableInput(InputError):
    """The input exists but cannot be parsed; ``data`` keeps its bytes for quarantine."""

    code = "unreadable_input"

    def __init__(
        self,
        problem: str,
        *,
        path: str,
        data: bytes,
        format: str,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{problem}", path=path, format=format, line=line, column=column)
        self.data = data
        self.format = format
        self.line = line
        self.column = column
        self.problem = problem


def _format_of(path: str, given: str | None) -> Format:
    if given is not None:
        if given not in FORMATS:
            raise InputError(f"unknown format {given!r} (known: {', '.join(FORMATS)})", path=path)
        return given  # type: ignore[return-value]
    suffix = Path(path.split("?", 1)[0]).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if fmt is None:
        raise InputError(
            f"cannot tell the format from the suffix {suffix or '(none)'!r}; "
            f"pass one of: {', '.join(FORMATS)}",
            path=path,
        )
    return fmt


def _read_bytes(path: str) -> tuple[bytes, str]:
    """The file's bytes and its location for provenance (an absolute path when local)."""
    location = resolve_uri(path, what="input")
    try:
        if location.local:
            return Path(location.path).read_bytes(), location.display
        with location.filesystem.open_input_stream(location.path) as stream:
            return stream.read(), location.display
    except FileNotFoundError:
        raise InputNotFound(path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path=path) from None
    except PermissionError:
        raise InputError("permission denied", path=path) from None
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None


_JSON_ROW = re.compile(r"\.? in row \d+$")


def _first_bad_json_line(data: bytes) -> int | None:
    """The 1-based line of the first JSON record Arrow cannot read, found by bisection
    over line boundaries: the shortest prefix of whole lines that fails ends with it.
    Arrow's own "in row N" counts records within a parse block, not lines of the file.
    Each probe is one Arrow parse, so a file of n lines costs about log2(n) parses."""
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if not ends.size or ends[-1] != len(data):
        ends = np.append(ends, len(data))

    def fails(lines: int) -> bool:
        chunk = data[: int(ends[lines - 1])]
        if not chunk.strip():
            return False
        try:
            pajson.read_json(io.BytesIO(chunk))
        except pa.ArrowInvalid:
            return True
        return False

    low, high = 1, int(ends.size)
    if not fails(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if fails(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _utf8_problem(data: bytes) -> tuple[str, int] | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}", exc.start
    return None


def _reject_non_utf8(data: bytes, path: str, fmt: str) -> None:
    found = _utf8_problem(data)
    if found is not None:
        problem, offset = found
        raise UnreadableInput(
            problem, path=path, data=data, format=fmt, line=_line_at(data, offset)
        )


def _parse_csv(data: bytes, path: str, column_types: dict[str, pa.DataType]) -> pa.Table:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    if not data.strip():
        raise UnreadableInput("file is empty", path=path, data=data, format="csv")
    parse = pacsv.ParseOptions(delimiter=delimiter)
    # Arrow takes a lone header line without a final newline for an empty block.
    text = data if data.endswith(b"\n") else data + b"\n"

    def read(types: dict[str, pa.DataType]) -> pa.Table:
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        table = pacsv.read_csv(io.BytesIO(text), parse_options=parse, convert_options=convert)
        # Arrow infers binary, without an error, for a column whose bytes are not UTF-8.
        if any(
            pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
            for f in table.schema
            if f.name not in types
        ):
            _reject_non_utf8(data, path, "csv")
        return table

    try:
        return read(column_types)
    except pa.ArrowInvalid as exc:
        message = str(exc)
    if "invalid UTF8" in message or "UTF8" in message:
        _reject_non_utf8(data, path, "csv")
    row = _CSV_ROW.search(message)
    if row is not None:
        needle = row.group("row").strip().encode("utf-8", "replace")
        # Prefer the row's text at the start of a line: it may also sit inside an
        # earlier quoted field.
        offset = data.find(b"\n" + needle)
        offset = offset + 1 if offset >= 0 else data.find(needle)
        raise UnreadableInput(
            f"malformed CSV: {message.removeprefix('CSV parse error: ')}",
            path=path,
            data=data,
            format="csv",
            line=_line_at(data, offset) if offset >= 0 else None,
        )
    if _CSV_COLUMN.search(message) is None:
        raise UnreadableInput(f"malformed CSV: {message}", path=path, data=data, format="csv")
    # A value does not convert to its declared type: read those columns as text and let
    # validation report every failing row, not just the first.
    try:
        return read({name: pa.string() for name in column_types})
    except pa.ArrowInvalid as exc:
        raise UnreadableInput(f"malformed CSV: {exc}", path=path, data=data, format="csv") from None


def _parse(data: bytes, fmt: Format, path: str, column_types: dict[str, pa.DataType]) -> pa.Table:
    if fmt == "csv":
        return _parse_csv(data, path, column_types)
    if not data or (fmt == "jsonl" and data.isspace()):
        raise UnreadableInput("file is empty", path=path, data=data, format=fmt)
    try:
        if fmt == "parquet":
            return pq.read_table(pa.BufferReader(data))
        if fmt == "arrow":
            try:
                return ipc.open_file(pa.BufferReader(data)).read_all()
            except pa.ArrowInvalid:
                return ipc.open_stream(pa.BufferReader(data)).read_all()
        found = _utf8_problem(data)
        if found is not None:
            problem, offset = found
            raise UnreadableInput(
                problem, path=path, data=data, format=fmt, line=_line_at(data, offset)
            )
        try:
            return pajson.read_json(io.BytesIO(data))
        except pa.ArrowInvalid as exc:
            line = _first_bad_json_line(data)
            problem = _JSON_ROW.sub("", str(exc).removeprefix("JSON parse error: ")).rstrip(".")
            raise UnreadableInput(
                f"malformed JSON lines: {problem}", path=path, data=data, format=fmt, line=line
            ) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise UnreadableInput(
            f"not a readable {fmt} file: {exc}", path=path, data=data, format=fmt
        ) from None


def read_bytes(
    data: bytes, *, format: str, uri: str, column_types: dict[str, pa.DataType] | None = None
) -> RawBatch:
    """Parse bytes already in hand (e.g. a quarantined input) as ``format``."""
    fmt = _format_of(uri, format)
    return RawBatch(data, fmt, uri, sha256_bytes(data), _parse(data, fmt, uri, column_types or {}))


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def read_batch(
    data: str | os.PathLike[str] | pa.Table | pd.DataFrame | Any,
    *,
    format: str | None = None,
    column_types: dict[str, pa.DataType] | None = None,
) -> RawBatch:
    """Read a path/URI, an Arrow table or a pandas DataFrame into a :class:`RawBatch`.

    ``column_types`` are the types a CSV's columns are parsed as (a fast path: when a
    value does not convert, those columns come back as text for validation to report).
    """
    types = column_types or {}
    if isinstance(data, str | os.PathLike):
        path = os.fspath(data)
        fmt = _format_of(path, format)
        raw, uri = _read_bytes(path)
        return RawBatch(raw, fmt, uri, sha256_bytes(raw), _parse(raw, fmt, uri, types))
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        raw = _table_bytes(data)
        digest = sha256_bytes(raw)
        return RawBatch(raw, "table", f"arrow-table:{digest[:16]}", digest, data)
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_parquet"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(
                f"the DataFrame cannot be converted to Arrow: {exc}", path="<DataFrame>"
            ) from None
        raw = _table_bytes(table)
        digest = sha256_bytes(raw)
        return RawBatch(raw, "dataframe", f"dataframe:{digest[:16]}", digest, table)
    raise InputError(
        f"cannot ingest a {type(data).__name__}: give a path, a pyarrow.Table or a "
        "pandas.DataFrame",
    )
