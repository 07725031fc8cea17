"""The durable prediction log and the feedback log: records in Parquet, group-committed.

A :class:`RecordLog` takes Arrow tables of records from any number of threads and
writes them from one background thread, grouping everything queued into one Parquet
file per model and day (group commit)::

    <root>/model=<name>/date=<YYYY-MM-DD>/part-<utc time>-<pid>-<seq>.parquet

Each file is written under a hidden temporary name in its directory and renamed into
place, so readers never see a partial file. :meth:`RecordLog.submit` returns a future
that resolves once the records are written; the two durability modes differ in what
"written" means and in how long the writer waits to gather a batch:

- ``strict``: the writer starts a batch as soon as it is idle, and fsyncs the file and
  its directory before resolving the futures. A response sent after its record's
  future resolved survives a crash of the process or the machine. Requests arriving
  while a batch is being written form the next batch, so the number of fsyncs grows
  with the disk's latency, not with the request rate.
- ``relaxed``: the writer gathers records for up to ``flush_interval_s`` (or until
  ``max_batch_rows``) and does not fsync; the caller does not wait. A killed process
  loses at most the records of the last interval, a crashed machine what the OS had
  not yet written back.

A batch that cannot be written (disk full, a directory replaced by a file...) fails
the futures of its records with the ``OSError``, is counted in
:attr:`RecordLog.failed_rows` and logged; later batches are written as usual.

The records of one model may change columns over time (a new feature, a new key):
:func:`read_log` reads all files with ``union_by_name``, a column absent from older
files reading as null. ``model`` and ``date`` are the partition columns and cannot be
record columns.

Prediction records are built by :func:`prediction_table`, feedback records (labels
arriving later) by :func:`feedback_table`; the feedback log is another
:class:`RecordLog` with its own root. :func:`join_feedback` gives each prediction its
label, by request id or by entity and time.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.core import clock
from driftloop.core.duck import cursor
from driftloop.errors import InputError, StateError
from driftloop.serving.compaction import compact_partition, fsync_path, live_files
from driftloop.serving.records import Deferred, probability_lists

__all__ = [
    "Durability",
    "RecordLog",
    "RecordSink",
    "feedback_table",
    "join_feedback",
    "prediction_table",
    "read_log",
]

Durability = Literal["strict", "relaxed"]

_TS = pa.timestamp("us", tz="UTC")
_MODEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")  # as in driftloop.registry
_PARTITION_COLUMNS = ("model", "date")
_JOIN_OUTPUTS = ("label", "label_text", "feedback_at", "feedback_by")
_READ_ATTEMPTS = 5
_SMALL_FILE_ROWS = 10_000
"""Smaller group commits are written uncompressed, without statistics: half the cost
of a small file on the strict path (1.2 -> 0.6 ms); compaction compresses them."""
_file_seq = itertools.count()  # per process: two logs on one root never pick the same name
_log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Where the server sends records: :class:`RecordLog`, or a fake in tests."""

    def submit(self, model: str, table: pa.Table | Deferred) -> Future[None]: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...

    @property
    def backlog(self) -> int: ...


@dataclass
class _Entry:
    seq: int
    model: str
    table: pa.Table | Deferred
    future: Future[None]
    queued_at: float


class RecordLog:
    """Records appended to Parquet files under ``root`` by a background writer.

    Example::

        log = RecordLog(Path("predictions"), durability="strict")
        log.submit("churn", prediction_table(...)).result()  # durable from here on
        log.close()

    ``flush_interval_s`` applies to relaxed mode only: a strict writer never waits to
    gather records (see the module docstring). ``max_batch_rows`` caps the rows of one
    batch in both modes (a single larger submission is written whole).

    One ``RecordLog`` per process and root (each worker of a server has its own);
    several processes may share a root, file names carry the process id. The writer is
    a daemon thread, closed (flushing everything queued) at interpreter exit if
    :meth:`close` was not called. ``submit`` is safe to call from any thread; future
    callbacks run on the writer thread and must be quick.
    """

    def __init__(
        self,
        root: Path,
        *,
        durability: Durability = "relaxed",
        flush_interval_s: float = 0.2,
        max_batch_rows: int = 50_000,
        compact_every_s: float | None = 30.0,
    ) -> None:
        if durability not in ("strict", "relaxed"):
            raise ValueError(f"durability must be 'strict' or 'relaxed', not {durability!r}")
        if not flush_interval_s >= 0:
            raise ValueError(f"flush_interval_s must be >= 0, not {flush_interval_s}")
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, not {max_batch_rows}")
        self._root = Path(root)
        self._strict = durability == "strict"
        self._durability: Durability = durability
        self._interval = float(flush_interval_s)
        self._max_rows = int(max_batch_rows)
        self._root.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._queue: deque[_Entry] = deque()
        self._queued_rows = 0  # waiting for the writer
        self._backlog = 0  # submitted, not yet written (queued or being written)
        self._seq = 0  # last submitted entry
        self._done_seq = 0  # last entry the writer finished (written or failed)
        self._flush_upto = 0  # flush() wants every entry up to this one written now
        self._closing = False
        self._died: BaseException | None = None
        self._written_rows = 0
        self._failed_rows = 0
        self._dirs: set[Path] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"driftloop-record-log:{self._root.name}", daemon=True
        )
        self._thread.start()
        self._stop_compacting = threading.Event()
        self._compactor: threading.Thread | None = None
        if compact_every_s is not None:
            if not compact_every_s > 0:
                raise ValueError(f"compact_every_s must be > 0, not {compact_every_s}")
            self._compactor = threading.Thread(
                target=self._compact_loop,
                args=(float(compact_every_s),),
                name=f"driftloop-record-log-compactor:{self._root.name}",
                daemon=True,
            )
            self._compactor.start()
        atexit.register(self._close_at_exit)

    # --- public API -----------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    @property
    def durability(self) -> Durability:
        return self._durability

    @property
    def backlog(self) -> int:
        """Rows submitted and not yet written (queued, or in the batch being written)."""
        return self._backlog

    @property
    def written_rows(self) -> int:
        """Rows written since the log was opened."""
        return self._written_rows

    @property
    def failed_rows(self) -> int:
        """Rows whose batch could not be written (their futures hold the error)."""
        return self._failed_rows

    def submit(self, model: str, table: pa.Table | Deferred) -> Future[None]:
        """Queue ``table``'s rows for ``model``; the future resolves once they are written.

        Each row needs ``at`` (a timezone-aware timestamp, stored as timestamp[us, UTC]),
        which picks its date partition. Raises :class:`~driftloop.errors.InputError` for
        a bad model name or table, :class:`~driftloop.errors.StateError` once closed.

        ``table`` may also be :class:`~driftloop.serving.records.Deferred` records (e.g.
        :class:`~driftloop.serving.records.PredictionRecords`), which the writer builds
        into a table together with the other deferred records of its batch; a build
        error fails their futures.
        """
        _check_model(model)
        if not isinstance(table, Deferred):
            table = _check_records(table)
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()  # a submitted record cannot be withdrawn
        rows = table.num_rows
        if rows == 0:
            future.set_result(None)
            return future
        with self._cond:
            self._check_open()
            self._seq += 1
            was_idle = not self._queue
            self._queue.append(_Entry(self._seq, model, table, future, time.monotonic()))
            self._queued_rows += rows
            self._backlog += rows
            if was_idle or self._strict or self._queued_rows >= self._max_rows:
                self._cond.notify_all()
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Write everything submitted so far now, and wait until it is written (or failed).

        Failures are reported through the records' futures, not raised here; raises
        ``TimeoutError`` if the writer has not finished within ``timeout`` seconds.
        """
        with self._cond:
            target = self._seq
            if self._done_seq >= target:
                return
            self._check_alive()
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
            if not self._cond.wait_for(
                lambda: self._done_seq >= target or self._died is not None, timeout
            ):
                raise TimeoutError(f"the record log at {self._root} did not flush in {timeout}s")
            self._check_alive()

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop the writer. Idempotent.

        Raises ``TimeoutError`` if the writer is still busy after ``timeout`` seconds (it
        goes on writing in the background).
        """
        atexit.unregister(self._close_at_exit)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stop_compacting.set()
        if os.getpid() != self._pid:  # a forked child has no writer thread
            return
        if self._compactor is not None:
            self._compactor.join(timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the record log at {self._root} did not close in {timeout}s")

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RecordLog({str(self._root)!r}, durability={self._durability!r})"

    # --- the writer -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise StateError(f"the record log at {self._root} is closed", root=str(self._root))
        self._check_alive()
        if os.getpid() != self._pid:
            raise StateError(
                "a RecordLog cannot be used in a forked process: open one per process",
                root=str(self._root),
            )

    def _check_alive(self) -> None:
        if self._died is not None:
            raise StateError(
                f"the record log writer at {self._root} stopped: {self._died!r}",
                root=str(self._root),
            )

    def _close_at_exit(self) -> None:
        self.close()

    def _compact_loop(self, every_s: float) -> None:
        """Merge the small files of the partitions this log writes to, every ``every_s``."""
        while not self._stop_compacting.wait(every_s):
            with self._cond:
                partitions = sorted(self._dirs)
            for partition in partitions:
                if self._stop_compacting.is_set():
                    return
                try:
                    compact_partition(partition)
                except Exception as exc:  # compaction is an optimisation: log and go on
                    _log.warning("record log %s: cannot compact %s: %s", self._root, partition, exc)

    def _run(self) -> None:
        batch: list[_Entry] = []
        try:
            while batch := self._next_batch():
                self._write_batch(batch)
        except BaseException as exc:  # a bug: fail every waiting record rather than hang
            with self._cond:
                self._died = exc
                pending = [*batch, *self._queue]
                self._queue.clear()
                self._cond.notify_all()
            for entry in pending:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            raise

    def _next_batch(self) -> list[_Entry]:
        """The next group to write, once it is due; empty when closed and drained."""
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return []
            if not self._strict:
                deadline = self._queue[0].queued_at + self._interval
                while (
                    not self._closing
                    and self._flush_upto <= self._done_seq
                    and self._queued_rows < self._max_rows
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch: list[_Entry] = []
            rows = 0
            while self._queue and (
                not batch or rows + self._queue[0].table.num_rows <= self._max_rows
            ):
                entry = self._queue.popleft()
                batch.append(entry)
                rows += entry.table.num_rows
            self._queued_rows -= rows
            return batch

    def _write_batch(self, batch: list[_Entry]) -> None:
        by_model: dict[str, list[_Entry]] = {}
        for entry in batch:
            by_model.setdefault(entry.model, []).append(entry)
        errors: dict[int, Exception] = {}
        for model, entries in by_model.items():
            try:
                pieces = _combine(entries)
            except Exception as exc:  # reported through the futures; the writer goes on
                self._report(model, None, sum(e.table.num_rows for e in entries), exc)
                errors.update(dict.fromkeys((e.seq for e in entries), exc))
                continue
            for table, owners in pieces:
                for day, part, part_owners in _split_by_day(table, owners):
                    try:
                        self._write_part(model, day, part)
                    except Exception as exc:
                        self._report(model, day, part.num_rows, exc)
                        for seq in np.unique(part_owners).tolist():
                            errors.setdefault(seq, exc)
        written = failed = 0
        for entry in batch:
            if entry.seq in errors:
                failed += entry.table.num_rows
            else:
                written += entry.table.num_rows
        with self._cond:
            self._written_rows += written
            self._failed_rows += failed
        for entry in batch:
            error = errors.get(entry.seq)
            if error is None:
                entry.future.set_result(None)
            else:
                entry.future.set_exception(error)
        with self._cond:
            self._backlog -= written + failed
            self._done_seq = batch[-1].seq
            self._cond.notify_all()

    def _report(self, model: str, day: date | None, rows: int, error: Exception) -> None:
        _log.error(
            "record log %s: %d rows of model %r%s could not be written: %s",
            self._root,
            rows,
            model,
            f" for {day}" if day else "",
            error,
        )

    def _write_part(self, model: str, day: date, table: pa.Table) -> None:
        directory = self._directory(model, day)
        try:
            self._write_file(directory, table)
            if self._strict:
                fsync_path(directory)
        except BaseException:
            self._dirs.discard(directory)  # it may have been removed: check it next time
            raise

    def _directory(self, model: str, day: date) -> Path:
        directory = self._root / f"model={model}" / f"date={day.isoformat()}"
        if directory not in self._dirs:
            for path in (self._root, directory.parent, directory):
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                if self._strict:  # the new directory entry must survive a crash too
                    fsync_path(path.parent)
            self._dirs.add(directory)
        return directory

    def _write_file(self, directory: Path, table: pa.Table) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{self._pid}-{next(_file_seq):06d}.parquet"
        final = directory / name
        temporary = directory / f".{name}.tmp"
        try:
            if table.num_rows < _SMALL_FILE_ROWS:  # compaction rewrites it compressed
                pq.write_table(
                    table,
                    str(temporary),
                    compression="none",
                    use_dictionary=False,
                    write_statistics=False,
                )
            else:
                pq.write_table(table, str(temporary), compression="zstd")
            if self._strict:
                fsync_path(temporary)
            temporary.replace(final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return final


def _check_model(model: str) -> None:
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        raise InputError(
            f"model name {model!r} must start with a letter or _ and use only "
            "letters, digits, '_', '.', '-' (at most 200 characters)",
            model=model,
        )


def _check_records(table: pa.Table) -> pa.Table:
    """``table`` with ``at`` as timestamp[us, UTC], or an InputError naming the column."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise InputError(f"records must be an Arrow table, not {type(table).__name__}")
    schema = table.schema  # (not column_names: that builds a list, slow on the hot path)
    for name in _PARTITION_COLUMNS:
        if schema.get_field_index(name) >= 0:
            raise InputError(
                f"records cannot have a column {name!r}: it is a partition of the log",
                field=name,
            )
    index = schema.get_field_index("at")
    if index < 0:
        raise InputError("records need a timestamp column 'at'", field="at")
    type_ = schema.field(index).type
    if not pa.types.is_timestamp(type_) or type_.tz is None:
        raise InputError(f"column 'at' must be a timezone-aware timestamp, not {type_}", field="at")
    at = table.column(index)
    if at.null_count:
        raise InputError(f"column 'at' has {at.null_count} null values", field="at")
    if type_ != _TS:
        table = table.set_column(index, "at", pc.cast(at, _TS, safe=False))
    return table


def _combine(entries: list[_Entry]) -> list[tuple[pa.Table, npt.NDArray[np.int64]]]:
    """The entries' rows as one table (one per schema if their columns do not unify),
    each row with the seq of the entry it came from.

    Deferred records are built first, all those of one kind in one call. Tables with
    the same schema are concatenated (cheap), then the few distinct schemas unified by
    name; the result has one chunk per column, because Parquet writes thousands of
    one-row chunks slowly (20,000 one-row tables: 0.8 s as they are, 0.14 s combined
    then written).
    """
    built: list[tuple[pa.Table, list[_Entry]]] = []
    deferred: dict[Any, list[_Entry]] = {}  # record class -> its entries
    tables: list[_Entry] = []
    for entry in entries:
        if isinstance(entry.table, pa.Table):
            tables.append(entry)
        else:
            deferred.setdefault(type(entry.table), []).append(entry)
    for kind, members in deferred.items():
        table = _check_records(kind.build_many([e.table for e in members]))
        built.append((table, members))
    groups: list[tuple[pa.Schema, list[_Entry]]] = []
    for entry in tables:
        schema = entry.table.schema  # type: ignore[union-attr]
        for known, members in groups:
            if known.equals(schema):
                members.append(entry)
                break
        else:
            groups.append((schema, [entry]))
    built += [(pa.concat_tables([e.table for e in members]), members) for _, members in groups]
    pieces = [
        (
            table,
            np.repeat(
                np.fromiter((e.seq for e in members), np.int64, len(members)),
                [e.table.num_rows for e in members],
            ),
        )
        for table, members in built
    ]
    if len(pieces) > 1:
        # One file when the schemas unify; when a column changed type they do not, and
        # each schema gets its own file (readers unify them by name).
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            table = pa.concat_tables([t for t, _ in pieces], promote_options="permissive")
            pieces = [(table, np.concatenate([o for _, o in pieces]))]
    return [(table.combine_chunks(), owners) for table, owners in pieces]


def _split_by_day(
    table: pa.Table, owners: npt.NDArray[np.int64]
) -> Iterator[tuple[date, pa.Table, npt.NDArray[np.int64]]]:
    """The rows by the UTC day of ``at`` (one slice in the usual case)."""
    days = pc.cast(table.column("at"), pa.date32())  # `at` is UTC: the cast keeps the day
    low, high = pc.min_max(days).values()
    if low == high:
        yield low.as_py(), table, owners
        return
    for day in pc.unique(days).to_pylist():
        mask = pc.equal(days, pa.scalar(day, pa.date32()))
        yield day, table.filter(mask), owners[np.asarray(mask)]


# --- reading --------------------------------------------------------------------------


def read_log(
    root: Path,
    model: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    request_id: str | None = None,
) -> pa.Table:
    """Every record under ``root`` (of one model, or all), with ``since <= at < until``
    (and of one request, with ``request_id``).

    Columns are the union over all files (absent ones null), plus ``model``; rows are
    ordered by ``at``. With nothing to read, an empty table with ``at`` and ``model``.
    Files being written are never read half-way (they appear by an atomic rename).
    """
    root = Path(root)
    if model is not None:
        _check_model(model)
    conditions = ["TRUE"]
    params: dict[str, Any] = {}
    if since is not None:
        params["since"] = clock.ensure_utc(since, what="since")
        params["since_day"] = params["since"].date()
        conditions += ['"at" >= $since', "date >= $since_day"]
    if until is not None:
        params["until"] = clock.ensure_utc(until, what="until")
        params["until_day"] = params["until"].date()
        conditions += ['"at" < $until', "date <= $until_day"]
    if request_id is not None:
        params["request_id"] = request_id
        conditions.append("request_id = $request_id")
    since_day = params.get("since_day")
    until_day = params.get("until_day")
    attempt = 0
    while True:  # until a read finds every file it listed (a compactor may remove one)
        attempt += 1
        files = [
            str(path)
            for partition in sorted(root.glob(f"model={model or '*'}/date=*"))
            if _day_in(partition.name, since_day, until_day)
            for path in live_files(partition)
        ]
        if not files:
            return pa.table({"at": pa.array([], _TS), "model": pa.array([], pa.string())})
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        query = f"""
            SELECT * EXCLUDE (date)
            FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true,
                              hive_types = {{'model': VARCHAR, 'date': DATE}})
            WHERE {" AND ".join(conditions)}
            ORDER BY "at"
        """
        try:
            with _duckdb() as con:
                return con.sql(query, params=params or None).to_arrow_table()
        except duckdb.IOException:  # a compactor replaced a file after it was listed
            if attempt >= _READ_ATTEMPTS or all(Path(f).exists() for f in files):
                raise


def _day_in(name: str, since: date | None, until: date | None) -> bool:
    """Whether partition ``date=YYYY-MM-DD`` can hold rows in [since, until]."""
    try:
        day = date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return False
    return (since is None or day >= since) and (until is None or day <= until)


_duckdb = cursor


# --- record schemas ---------------------------------------------------------------------


def prediction_table(
    *,
    request_id: Any,
    at: Any,
    version: Any,
    role: Any,
    prediction: Any,
    latency_ms: Any,
    instance: Any = None,
    probabilities: Any = None,
    keys: Mapping[str, Any] | pa.Table | None = None,
    features: Mapping[str, Any] | pa.Table | None = None,
    missing: Mapping[str, Any] | None = None,
    error: Any = None,
) -> pa.Table:
    """The prediction records of one request (or several), one row per instance.

    ``prediction`` gives the number of rows; every other argument is either one value
    per row or a single value repeated for every row (a request id, a time...).

    ==================  =======================  ===========================================
    column              type                     content
    ==================  =======================  ===========================================
    request_id          string                   the request's id
    instance            int32                    index within the request (default 0..n-1)
    at                  timestamp[us, UTC]       when the prediction was made
    version             int32                    the model version that answered
    role                string                   champion, canary, split:<arm>, shadow
    latency_ms          float64                  time to serve the request
    prediction          float64                  the value (regression), P(class 1) (binary),
                                                 P(predicted class) (multiclass)
    probabilities       list<float64>, nullable  multiclass: per class, in the version's order
    error               string, nullable         why the version failed to score; prediction
                                                 is NaN (a column only when ``error`` is given)
    key.<name>          as given                 entity keys of the instance
    feature.<name>      as given                 model inputs as served (after online lookup,
                                                 request overrides and defaults)
    missing.<name>      bool                     the input fell back to its default
    ==================  =======================  ===========================================

    >>> from datetime import datetime, UTC
    >>> t = prediction_table(request_id="r1", at=datetime(2024, 5, 1, tzinfo=UTC),
    ...     version=3, role="champion", prediction=[0.2, 0.9], latency_ms=1.5,
    ...     keys={"customer_id": [7, 8]}, features={"age": [31.0, 40.0]},
    ...     missing={"age": [False, True]})
    >>> t.column_names[:8]
    ['request_id', 'instance', 'at', 'version', 'role', 'latency_ms', 'prediction', 'probabilities']
    >>> t.column_names[8:]
    ['key.customer_id', 'feature.age', 'missing.age']
    >>> t.column("instance").to_pylist()
    [0, 1]
    """
    predictions = _array(prediction, pa.float64(), None, "prediction")
    n = len(predictions)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "request_id": _array(request_id, pa.string(), n, "request_id"),
        "instance": _array(
            np.arange(n, dtype=np.int32) if instance is None else instance,
            pa.int32(),
            n,
            "instance",
        ),
        "at": _times(at, n, "at"),
        "version": _array(version, pa.int32(), n, "version"),
        "role": _array(role, pa.string(), n, "role"),
        "latency_ms": _array(latency_ms, pa.float64(), n, "latency_ms"),
        "prediction": predictions,
        "probabilities": _probabilities(probabilities, n),
    }
    if error is not None:
        columns["error"] = _array(error, pa.string(), n, "error")
    columns.update(_prefixed("key.", keys, None, n))
    columns.update(_prefixed("feature.", features, None, n))
    columns.update(_prefixed("missing.", missing, pa.bool_(), n))
    return pa.table(columns)


def feedback_table(
    *,
    label: Any = None,
    label_text: Any = None,
    request_id: Any = None,
    instance: Any = None,
    keys: Mapping[str, Any] | pa.Table | None = None,
    event_time: Any = None,
    at: Any = None,
) -> pa.Table:
    """Feedback records: the true outcome of earlier predictions, one row per label.

    A row names its predictions either by ``request_id`` (and ``instance``; null for
    every instance of the request) or by entity ``keys`` and ``event_time`` (when the
    outcome happened; see :func:`join_feedback`). Each argument is one value per row or
    a single value for every row; ``at`` (when the feedback was received) defaults to
    now.

    ==============  ===========================  ==========================================
    column          type                         content
    ==============  ===========================  ==========================================
    request_id      string, nullable             the request the label is for
    instance        int32, nullable              index within the request; null: all
    at              timestamp[us, UTC]           when the feedback was received
    label           float64, nullable            the outcome (a class as a number, a value)
    label_text      string, nullable (optional)  the outcome as text (a string class)
    event_time      timestamp[us, UTC], nullable when the outcome happened (default ``at``)
    key.<name>      as given                     entity keys, for labels given by entity
    ==============  ===========================  ==========================================

    Raises :class:`~driftloop.errors.InputError` when a row has neither a request id nor
    keys, or neither a label nor a label text, or a label that is not finite.

    >>> fb = feedback_table(request_id=["r1", "r2"], label=[1.0, 0.0])
    >>> fb.column_names
    ['request_id', 'instance', 'at', 'label', 'event_time']
    """
    lengths = [
        _length(v)
        for v in (label, label_text, request_id, instance, event_time, at)
        if v is not None
    ]
    if isinstance(keys, pa.Table):
        lengths.append(keys.num_rows)
    elif keys:
        lengths += [_length(v) for v in keys.values()]
    known = [n for n in lengths if n is not None]
    n = max(known) if known else 1
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "request_id": _array(request_id, pa.string(), n, "request_id"),
        "instance": _array(instance, pa.int32(), n, "instance"),
        "at": _times(clock.now() if at is None else at, n, "at"),
        "label": _array(label, pa.float64(), n, "label"),
    }
    if label_text is not None:
        columns["label_text"] = _array(label_text, pa.string(), n, "label_text")
    columns["event_time"] = _times(event_time, n, "event_time")
    columns.update(_prefixed("key.", keys, None, n))
    table = pa.table(columns)
    _check_feedback(table)
    return table


def _check_feedback(table: pa.Table) -> None:
    label = table.column("label")
    no_label = pc.is_null(label)
    if "label_text" in table.column_names:
        no_label = pc.and_(no_label, pc.is_null(table.column("label_text")))
    if pc.any(no_label).as_py():
        row = pc.index(no_label, True).as_py()
        raise InputError(f"feedback row {row} has no label", field="label", row=row)
    finite = pc.fill_null(pc.is_finite(label), True)
    if not pc.all(finite).as_py():
        row = pc.index(finite, False).as_py()
        raise InputError(f"feedback row {row}: the label is not finite", field="label", row=row)
    keys = [c for c in table.column_names if c.startswith("key.")]
    unnamed = pc.is_null(table.column("request_id"))
    if keys:
        partial = functools.reduce(pc.or_, (pc.is_null(table.column(k)) for k in keys))
        unnamed = pc.and_(unnamed, partial)
    if pc.any(unnamed).as_py():
        row = pc.index(unnamed, True).as_py()
        raise InputError(
            f"feedback row {row} names no prediction: give a request id or every entity key",
            field="request_id",
            row=row,
        )


def _length(value: Any) -> int | None:
    if isinstance(value, str | bytes | datetime) or not hasattr(value, "__len__"):
        return None
    return len(value)


def _array(value: Any, type_: pa.DataType | None, n: int | None, name: str) -> pa.Array:
    """``value`` as an Arrow array of ``n`` rows (a single value is repeated)."""
    try:
        if isinstance(value, pa.ChunkedArray):
            value = value.combine_chunks()
        if isinstance(value, pa.Array):
            array = value if type_ is None else pc.cast(value, type_)
        elif _length(value) is None:
            if n is None:
                raise InputError(f"{name} must have one value per row", field=name)
            scalar = pa.scalar(value, type_) if type_ is not None else pa.scalar(value)
            array = pa.repeat(scalar, n)
        else:
            array = pa.array(value, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as e:
        raise InputError(f"{name}: {e}", field=name) from None
    if n is not None and len(array) != n:
        raise InputError(f"{name} has {len(array)} values for {n} rows", field=name)
    return array


def _times(value: Any, n: int, name: str) -> pa.Array:
    if isinstance(value, datetime):
        try:
            value = clock.ensure_utc(value, what=name)
        except ValueError as exc:
            raise InputError(str(exc), field=name) from None
    array = value if isinstance(value, pa.Array | pa.ChunkedArray) else None
    if array is not None and (not pa.types.is_timestamp(array.type) or array.type.tz is None):
        raise InputError(f"{name} must be a timezone-aware timestamp, not {array.type}", field=name)
    return _array(value, _TS, n, name)


def _probabilities(value: Any, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, pa.list_(pa.float64()))
    if isinstance(value, np.ndarray) and value.ndim == 2:
        value = probability_lists(value)
    return _array(value, pa.list_(pa.float64()), n, "probabilities")


def _prefixed(
    prefix: str,
    values: Mapping[str, Any] | pa.Table | None,
    type_: pa.DataType | None,
    n: int,
) -> dict[str, pa.Array]:
    if values is None:
        return {}
    items: Sequence[tuple[str, Any]] = (
        list(zip(values.column_names, values.columns, strict=True))
        if isinstance(values, pa.Table)
        else list(values.items())
    )
    return {prefix + name: _array(column, type_, n, prefix + name) for name, column in items}


# --- labels ---------------------------------------------------------------------------


def join_feedback(predictions: pa.Table, feedback: pa.Table) -> pa.Table:
    """Each prediction with its label: every row of ``predictions``, in order, plus
    ``label``, ``label_text`` (if the feedback has it), ``feedback_at`` (when the label
    was received) and ``feedback_by`` (``"request"``, ``"entity"`` or null: no label).

    - **By request.** Feedback with a request id labels the prediction with the same
      ``request_id`` and ``instance``; a null instance labels every instance of the
      request. An exact instance wins over a null one; among several, the latest
      received (``at``) wins (a correction).
    - **By entity and time.** Feedback without a request id, with entity keys
      ``key.*`` and ``event_time`` (``at`` when null), labels the predictions for the
      same keys made at or before ``event_time`` and after the previous such feedback
      for those keys: each prediction takes the first label whose event time is at or
      after its ``at`` (an as-of join). Predictions made after the latest label for
      their keys stay unlabelled. A label by request wins over one by entity.

    When both tables have a ``model`` column (as :func:`read_log` gives), labels only
    apply within the same model.
    """
    for name in ("request_id", "instance", "at"):
        if name not in predictions.column_names:
            raise InputError(f"predictions need a column {name!r}", field=name)
    clash = [c for c in _JOIN_OUTPUTS if c in predictions.column_names]
    if clash:
        raise InputError(f"predictions already have a column {clash[0]!r}", field=clash[0])
    feedback = _feedback_columns(feedback)
    keys = [c for c in feedback.column_names if c.startswith("key.")]
    by_entity = pc.sum(pc.is_null(feedback.column("request_id"))).as_py() or 0
    absent = [k for k in keys if k not in predictions.column_names]
    if by_entity and absent:
        raise InputError(
            f"feedback is given by {absent[0]!r}, which the predictions do not have",
            field=absent[0],
        )
    same_model = "model" in predictions.column_names and "model" in feedback.column_names
    text = "label_text" in feedback.column_names
    q = _quote
    model_eq = "b.model = p.model AND " if same_model else ""
    model_col = "model, " if same_model else ""
    text_col = ", label_text" if text else ""
    ctes = [
        f"""by_request AS (
            SELECT {model_col}request_id, instance, label{text_col}, "at" AS feedback_at
            FROM f WHERE request_id IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY {model_col}request_id, instance ORDER BY "at" DESC) = 1
        )""",
        f"""req AS (
            SELECT p.__row, b.label{", b.label_text" if text else ""}, b.feedback_at
            FROM p JOIN by_request b
              ON {model_eq}b.request_id = p.request_id
             AND (b.instance = p.instance OR b.instance IS NULL)
            QUALIFY row_number() OVER (
                PARTITION BY p.__row ORDER BY b.instance IS NULL, b.feedback_at DESC) = 1
        )""",
    ]
    if keys:
        key_cols = ", ".join(q(k) for k in keys)
        key_eq = " AND ".join(f"p.{q(k)} = e.{q(k)}" for k in keys)
        not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in keys)
        ctes += [
            f"""by_entity AS (
                SELECT {model_col}{key_cols}, coalesce(event_time, "at") AS event_at,
                       label{text_col}, "at" AS feedback_at
                FROM f WHERE request_id IS NULL AND {not_null}
                QUALIFY row_number() OVER (
                    PARTITION BY {model_col}{key_cols}, coalesce(event_time, "at")
                    ORDER BY "at" DESC) = 1
            )""",
            f"""ent AS (
                SELECT p.__row, e.label{", e.label_text" if text else ""}, e.feedback_at
                FROM p ASOF JOIN by_entity e
                  ON {model_eq.replace("b.", "e.")}{key_eq} AND e.event_at >= p."at"
            )""",
        ]
    else:
        ctes.append(
            "ent AS (SELECT * FROM req WHERE FALSE)"  # nothing is given by entity
        )
    pick = "CASE WHEN r.__row IS NOT NULL THEN r.{0} ELSE e.{0} END AS {0}"
    query = f"""
        WITH {", ".join(ctes)}
        SELECT p.* EXCLUDE (__row),
               {pick.format("label")},
               {(pick.format("label_text") + ",") if text else ""}
               coalesce(r.feedback_at, e.feedback_at) AS feedback_at,
               CASE WHEN r.__row IS NOT NULL THEN 'request'
                    WHEN e.__row IS NOT NULL THEN 'entity' END AS feedback_by
        FROM p LEFT JOIN req r ON r.__row = p.__row LEFT JOIN ent e ON e.__row = p.__row
        ORDER BY p.__row
    """
    rows = pa.array(np.arange(predictions.num_rows, dtype=np.int64))
    with _duckdb() as con:
        con.register("p", predictions.append_column("__row", rows))
        con.register("f", feedback)
        joined = con.sql(query).to_arrow_table()
    extra = [
        pa.field("label", pa.float64()),
        *([pa.field("label_text", pa.string())] if text else []),
        pa.field("feedback_at", _TS),
        pa.field("feedback_by", pa.string()),
    ]
    return joined.cast(pa.schema([*predictions.schema, *extra]))


def _feedback_columns(feedback: pa.Table) -> pa.Table:
    """``feedback`` with every column the join reads (absent ones null)."""
    wanted = {
        "request_id": pa.string(),
        "instance": pa.int32(),
        "at": _TS,
        "label": pa.float64(),
        "event_time": _TS,
    }
    for name, type_ in wanted.items():
        if name not in feedback.column_names:
            if name == "at":
                raise InputError("feedback needs a column 'at'", field="at")
            feedback = feedback.append_column(name, pa.nulls(feedback.num_rows, type_))
    return feedback


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
