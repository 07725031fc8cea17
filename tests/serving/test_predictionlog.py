"""The durable prediction log, the feedback schema and the label join."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.errors import InputError, StateError
from driftloop.serving.predictionlog import (
    RecordLog,
    feedback_table,
    join_feedback,
    prediction_table,
    read_log,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def records(n: int, *, at: datetime = T0, prefix: str = "r", **extra: list[object]) -> pa.Table:
    """``n`` prediction records of one request each, made one second apart from ``at``."""
    return prediction_table(
        request_id=[f"{prefix}{i}" for i in range(n)],
        instance=[0] * n,
        at=[at + timedelta(seconds=i) for i in range(n)],
        version=1,
        role="champion",
        prediction=np.linspace(0, 1, n),
        latency_ms=0.5,
        features=extra or None,
    )


def parts(root: Path) -> list[Path]:
    return sorted(root.glob("model=*/date=*/*.parquet"))


@pytest.fixture
def relaxed(tmp_path: Path) -> Iterator[RecordLog]:
    """A relaxed log that only writes when flushed (its interval is a minute)."""
    log = RecordLog(tmp_path / "log", flush_interval_s=60.0)
    yield log
    log.close()


# --- writing --------------------------------------------------------------------------


def test_many_submits_are_group_committed_into_one_file(relaxed: RecordLog) -> None:
    """Everything queued for one model and day goes into one file."""
    futures = [relaxed.submit("churn", records(1, prefix=f"q{i}-")) for i in range(200)]
    relaxed.flush()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(parts(relaxed.root)) == 1
    assert read_log(relaxed.root).num_rows == 200
    assert relaxed.written_rows == 200


def test_strict_mode_groups_records_arriving_during_a_write(tmp_path: Path) -> None:
    """Records submitted while a batch is being fsynced share the next file."""
    with RecordLog(tmp_path, durability="strict") as log:
        futures = [log.submit("churn", records(1, prefix=f"q{i}-")) for i in range(300)]
        for future in futures:
            future.result(timeout=30)
    assert len(parts(tmp_path)) < 300
    assert read_log(tmp_path).num_rows == 300


def test_a_batch_holds_at_most_max_batch_rows(tmp_path: Path) -> None:
    """Batches are cut at max_batch_rows (whole submissions, never split)."""
    with RecordLog(tmp_path, flush_interval_s=60.0, max_batch_rows=100) as log:
        for i in range(10):
            log.submit("churn", records(50, prefix=f"s{i}-"))
        log.flush()
    sizes = [pq.read_metadata(p).num_rows for p in parts(tmp_path)]
    assert sum(sizes) == 500
    assert max(sizes) <= 100


def test_files_are_partitioned_by_model_and_utc_day(relaxed: RecordLog) -> None:
    """One directory per model and UTC day of `at`; a table spanning midnight is split."""
    midnight = datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC)
    relaxed.submit("churn", records(3, at=midnight))  # 23:59:59, 00:00:00, 00:00:01
    relaxed.submit("fraud", records(1, at=T0))
    relaxed.flush()
    found = {(p.parent.parent.name, p.parent.name) for p in parts(relaxed.root)}
    assert found == {
        ("model=churn", "date=2024-05-01"),
        ("model=churn", "date=2024-05-02"),
        ("model=fraud", "date=2024-05-01"),
    }
    name = parts(relaxed.root)[0].name
    assert name.startswith("part-")
    assert f"-{os.getpid()}-" in name
    churn = read_log(relaxed.root, "churn")
    assert churn.column("request_id").to_pylist() == ["r0", "r1", "r2"]
    assert set(churn.column("model").to_pylist()) == {"churn"}


def test_strict_futures_resolve_after_the_file_and_directory_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a strict future is done, its file is in place and was fsynced, and so was
    its directory."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    seen: list[bool] = []

    def check(_: Future[None]) -> None:
        files = parts(tmp_path)
        directory = str(files[0].parent) if files else ""
        seen.append(
            len(files) == 1
            and str(files[0].parent / f".{files[0].name}.tmp") in synced
            and directory in synced
        )

    with RecordLog(tmp_path, durability="strict") as log:
        future = log.submit("churn", records(5))
        future.add_done_callback(check)
        future.result(timeout=10)
    assert seen == [True]


def test_relaxed_mode_does_not_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relaxed writes leave write-back to the OS."""
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    with RecordLog(tmp_path, flush_interval_s=0.01) as log:
        log.submit("churn", records(3)).result(timeout=10)
    assert calls == []
    assert read_log(tmp_path).num_rows == 3


def test_relaxed_mode_writes_within_its_interval_without_a_flush(tmp_path: Path) -> None:
    """A relaxed record is written by the writer on its own once its interval passes."""
    with RecordLog(tmp_path, flush_interval_s=0.05) as log:
        future = log.submit("churn", records(2))
        future.result(timeout=10)
        assert len(parts(tmp_path)) == 1
        assert log.backlog == 0


def test_relaxed_mode_waits_for_its_interval(relaxed: RecordLog) -> None:
    """Within the interval the writer gathers records; flush() writes them at once."""
    future = relaxed.submit("churn", records(10))
    time.sleep(0.2)
    assert not future.done()
    assert relaxed.backlog == 10
    relaxed.flush()
    assert future.done()
    assert relaxed.backlog == 0


def test_tables_with_different_columns_read_back_by_name(relaxed: RecordLog) -> None:
    """A model's records may gain columns; older rows read them as null."""
    relaxed.submit("churn", records(2, prefix="old", age=[30.0, 40.0]))
    relaxed.flush()
    relaxed.submit("churn", records(1, prefix="new", age=[50.0], income=[1200.0]))
    relaxed.submit("churn", records(1, prefix="mixed", income=[900.0]))
    relaxed.flush()
    table = read_log(relaxed.root, "churn")
    rows = {r["request_id"]: (r["feature.age"], r["feature.income"]) for r in table.to_pylist()}
    assert rows == {
        "old0": (30.0, None),
        "old1": (40.0, None),
        "new0": (50.0, 1200.0),
        "mixed0": (None, 900.0),
    }


def test_a_failed_write_fails_only_its_records(relaxed: RecordLog) -> None:
    """A batch that cannot be written fails its futures with the OSError, is counted,
    and the writer goes on with later batches."""
    (relaxed.root / "model=broken").write_text("a file where a directory should be")
    bad = relaxed.submit("broken", records(3))
    good = relaxed.submit("fine", records(2))
    relaxed.flush()
    assert isinstance(bad.exception(), OSError)
    assert good.exception() is None
    assert relaxed.failed_rows == 3
    assert relaxed.written_rows == 2
    assert relaxed.backlog == 0

    (relaxed.root / "model=broken").unlink()
    later = relaxed.submit("broken", records(4))
    relaxed.flush()
    assert later.exception() is None
    assert read_log(relaxed.root, "broken").num_rows == 4
    assert not list(relaxed.root.glob("**/.*.tmp"))


def test_close_flushes_and_refuses_new_records(tmp_path: Path) -> None:
    """close() writes what is queued, stops the writer, and is idempotent."""
    log = RecordLog(tmp_path, flush_interval_s=60.0)
    future = log.submit("churn", records(7))
    log.close()
    assert future.done()
    assert future.exception() is None
    assert read_log(tmp_path).num_rows == 7
    assert not any(t.name.startswith("driftloop-record-log") for t in threading.enumerate())
    log.close()
    with pytest.raises(StateError, match="closed"):
        log.submit("churn", records(1))


def test_an_empty_table_is_done_at_once(relaxed: RecordLog) -> None:
    """Zero rows need no write."""
    assert relaxed.submit("churn", records(0)).done()
    relaxed.flush()
    assert parts(relaxed.root) == []


def test_futures_of_submitted_records_cannot_be_cancelled(relaxed: RecordLog) -> None:
    """A record once submitted is written; cancel() does not withdraw it."""
    future = relaxed.submit("churn", records(1))
    assert not future.cancel()
    relaxed.flush()
    assert future.exception() is None


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (pa.table({"x": [1]}), "at"),
        (pa.table({"at": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us"))}), "at"),
        (pa.table({"at": pa.array([None], TS)}), "at"),
        (pa.table({"at": pa.array([T0], TS), "model": ["m"]}), "model"),
        (pa.table({"at": pa.array([T0], TS), "date": ["d"]}), "date"),
    ],
)
def test_records_without_a_usable_at_are_refused(
    relaxed: RecordLog, table: pa.Table, field: str
) -> None:
    """Every record needs an aware, non-null `at`; partition names are reserved."""
    with pytest.raises(InputError) as info:
        relaxed.submit("churn", table)
    assert info.value.fields["field"] == field


@pytest.mark.parametrize("model", ["", "../up", "a/b", "model=x", ".hidden"])
def test_model_names_that_are_not_safe_paths_are_refused(relaxed: RecordLog, model: str) -> None:
    """The model name becomes a directory name."""
    with pytest.raises(InputError, match="model name"):
        relaxed.submit(model, records(1))


def test_at_in_another_unit_or_zone_is_stored_as_utc_microseconds(relaxed: RecordLog) -> None:
    """`at` is normalised to timestamp[us, UTC]; the day partition follows UTC."""
    at = pa.array([T0.replace(hour=23)], TS).cast(pa.timestamp("ns", tz="Asia/Tokyo"))
    relaxed.submit("churn", pa.table({"at": at}))
    relaxed.flush()
    table = read_log(relaxed.root)
    assert table.schema.field("at").type == TS
    assert table.column("at").to_pylist() == [T0.replace(hour=23)]
    assert parts(relaxed.root)[0].parent.name == "date=2024-05-01"


DURABILITY_SCRIPT = """
import sys, threading
from datetime import UTC, datetime
from pathlib import Path
from driftloop.serving.predictionlog import RecordLog, prediction_table

log = RecordLog(Path(sys.argv[1]), durability="strict")
out = threading.Lock()

def acknowledge(request_id):
    def done(future):
        if future.exception() is None:
            with out:
                sys.stdout.write(request_id + "\\n")
                sys.stdout.flush()
    return done

i = 0
while True:
    in_flight = []
    for _ in range(20):
        request_id = f"req-{i}"
        i += 1
        table = prediction_table(request_id=request_id, at=datetime.now(UTC), version=1,
                                 role="champion", prediction=[0.5], latency_ms=0.1)
        future = log.submit("churn", table)
        future.add_done_callback(acknowledge(request_id))
        in_flight.append(future)
    in_flight[-1].result()
"""


def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    """A strict writer killed with SIGKILL under load loses no acknowledged record."""
    script = tmp_path / "writer.py"
    script.write_text(DURABILITY_SCRIPT)
    root = tmp_path / "log"
    acknowledged: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(script), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        while len(acknowledged) < 500:
            line = proc.stdout.readline()
            assert line, f"the writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            acknowledged.append(line.rstrip("\n"))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    acknowledged += [line for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    acknowledged = [a.rstrip("\n") for a in acknowledged]
    logged = set(read_log(root, "churn").column("request_id").to_pylist())
    assert set(acknowledged) <= logged
    assert len(parts(root)) < len(logged)  # records were group-committed


# --- reading --------------------------------------------------------------------------


def test_read_log_filters_by_model_and_time(relaxed: RecordLog) -> None:
    """since is inclusive, until exclusive; rows come ordered by `at`."""
    relaxed.submit("churn", records(5, at=T0))
    relaxed.submit("fraud", records(2, at=T0 - timedelta(days=3), prefix="f"))
    relaxed.flush()
    assert read_log(relaxed.root).num_rows == 7
    assert read_log(relaxed.root, "fraud").column("request_id").to_pylist() == ["f0", "f1"]
    window = read_log(
        relaxed.root, since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)
    )
    assert window.column("request_id").to_pylist() == ["r1", "r2"]
    recent = read_log(relaxed.root, since=T0 - timedelta(days=1))
    assert set(recent.column("model").to_pylist()) == {"churn"}
    at = read_log(relaxed.root).column("at").to_pylist()
    assert at == sorted(at)


def test_read_log_of_nothing_is_an_empty_table(tmp_path: Path) -> None:
    """No files (or no such model): zero rows with an `at` column."""
    for table in (read_log(tmp_path), read_log(tmp_path / "missing", "churn")):
        assert table.num_rows == 0
        assert table.schema.field("at").type == TS


def test_read_log_refuses_naive_times(tmp_path: Path) -> None:
    """A bound without a timezone is an error, not a guess."""
    with pytest.raises(ValueError, match="timezone"):
        read_log(tmp_path, since=datetime(2024, 1, 1))


# --- record schemas -------------------------------------------------------------------


def test_prediction_table_has_the_documented_schema() -> None:
    """Fixed columns first, then key., feature. and missing. columns."""
    served = pa.table({"age": [30.0, None], "plan": ["a", "b"]})
    table = prediction_table(
        request_id="r1",
        at=T0,
        version=4,
        role="canary",
        prediction=[0.7, 0.1],
        latency_ms=2.5,
        probabilities=np.array([[0.3, 0.7], [0.9, 0.1]]),
        keys=pa.table({"customer_id": [1, 2]}),
        features=served,
        missing={"age": np.array([False, True]), "plan": [False, False]},
    )
    assert table.schema == pa.schema(
        [
            ("request_id", pa.string()),
            ("instance", pa.int32()),
            ("at", TS),
            ("version", pa.int32()),
            ("role", pa.string()),
            ("latency_ms", pa.float64()),
            ("prediction", pa.float64()),
            ("probabilities", pa.list_(pa.float64())),
            ("key.customer_id", pa.int64()),
            ("feature.age", pa.float64()),
            ("feature.plan", pa.string()),
            ("missing.age", pa.bool_()),
            ("missing.plan", pa.bool_()),
        ]
    )
    assert table.column("probabilities").to_pylist() == [[0.3, 0.7], [0.9, 0.1]]
    assert table.column("request_id").to_pylist() == ["r1", "r1"]
    assert table.column("instance").to_pylist() == [0, 1]


def test_prediction_table_gives_the_error_column_only_when_asked() -> None:
    """``error`` (one value, or one per row) follows probabilities; null where a row
    has none."""
    table = prediction_table(
        request_id="r1",
        at=T0,
        version=2,
        role="champion",
        prediction=[np.nan, 0.4],
        latency_ms=1.0,
        keys={"customer_id": [1, 2]},
        error=["ZeroDivisionError: division by zero", None],
    )
    assert table.column_names[7:] == ["probabilities", "error", "key.customer_id"]
    assert table.schema.field("error").type == pa.string()
    assert table.column("error").to_pylist() == ["ZeroDivisionError: division by zero", None]
    one = prediction_table(
        request_id="r2",
        at=T0,
        version=2,
        role="shadow",
        prediction=[np.nan] * 3,
        latency_ms=1.0,
        error="KeyError: 'x'",
    )
    assert one.column("error").to_pylist() == ["KeyError: 'x'"] * 3
    assert "error" not in records(1).column_names


def test_prediction_table_names_the_bad_argument() -> None:
    """A column of the wrong length or type is an InputError naming it."""
    with pytest.raises(InputError, match=r"feature\.age has 1 values for 2 rows"):
        prediction_table(
            request_id="r",
            at=T0,
            version=1,
            role="champion",
            prediction=[0.1, 0.2],
            latency_ms=1.0,
            features={"age": [1.0]},
        )
    with pytest.raises(InputError, match="timezone"):
        prediction_table(
            request_id="r",
            at=datetime(2024, 1, 1),
            version=1,
            role="champion",
            prediction=[0.1],
            latency_ms=1.0,
        )


def test_feedback_table_needs_a_label_and_a_target() -> None:
    """Every feedback row has a label (or label text) and a request id or every key."""
    with pytest.raises(InputError, match="row 1 has no label"):
        feedback_table(request_id=["a", "b"], label=[1.0, None])
    with pytest.raises(InputError, match="row 0 names no prediction"):
        feedback_table(label=[1.0], keys={"customer_id": [None]})
    with pytest.raises(InputError, match="not finite"):
        feedback_table(request_id="a", label=float("nan"))
    text = feedback_table(request_id="a", label_text="churned", at=T0)
    assert text.column("label_text").to_pylist() == ["churned"]
    assert text.column("label").to_pylist() == [None]


# --- the label join -------------------------------------------------------------------


def predictions_for(rows: list[tuple[str, int, int, datetime]]) -> pa.Table:
    """Prediction records from (request id, instance, customer id, at) rows."""
    return prediction_table(
        request_id=[r[0] for r in rows],
        instance=[r[1] for r in rows],
        at=[r[3] for r in rows],
        version=1,
        role="champion",
        prediction=[0.5] * len(rows),
        latency_ms=1.0,
        keys={"customer_id": [r[2] for r in rows]},
    )


def test_join_by_request_id_and_instance() -> None:
    """A label by request id names one instance, or all of them when instance is null;
    the exact instance wins, and the latest received correction wins."""
    predictions = predictions_for(
        [("a", 0, 1, T0), ("a", 1, 2, T0), ("b", 0, 3, T0), ("b", 1, 4, T0), ("c", 0, 5, T0)]
    )
    feedback = feedback_table(
        request_id=["a", "a", "b", "b"],
        instance=[0, 0, None, 1],
        label=[0.0, 1.0, 7.0, 9.0],
        at=[T0, T0 + timedelta(hours=1), T0, T0],
    )
    joined = join_feedback(predictions, feedback)
    assert joined.column("label").to_pylist() == [1.0, None, 7.0, 9.0, None]
    assert joined.column("feedback_by").to_pylist() == [
        "request",
        None,
        "request",
        "request",
        None,
    ]
    assert joined.column_names[: predictions.num_columns] == predictions.column_names
    assert joined.schema.field("feedback_at").type == TS


def test_join_by_entity_and_time() -> None:
    """A label given by entity at event time T applies to that entity's predictions made
    at or before T and after its previous label; later predictions stay unlabelled."""
    hour = timedelta(hours=1)
    predictions = predictions_for(
        [
            ("p1", 0, 1, T0),
            ("p2", 0, 1, T0 + 2 * hour),  # exactly at the first label's event time
            ("p3", 0, 1, T0 + 3 * hour),
            ("p4", 0, 1, T0 + 9 * hour),  # after the last label
            ("p5", 0, 2, T0),  # another customer
        ]
    )
    feedback = feedback_table(
        label=[0.0, 1.0],
        keys={"customer_id": [1, 1]},
        event_time=[T0 + 2 * hour, T0 + 5 * hour],
        at=T0 + 10 * hour,
    )
    joined = join_feedback(predictions, feedback)
    assert joined.column("label").to_pylist() == [0.0, 0.0, 1.0, None, None]
    assert joined.column("feedback_by").to_pylist() == ["entity", "entity", "entity", None, None]


def test_a_label_by_request_wins_over_one_by_entity() -> None:
    """When both apply, the request id is the more precise link."""
    predictions = predictions_for([("a", 0, 1, T0), ("b", 0, 1, T0)])
    feedback = pa.concat_tables(
        [
            feedback_table(request_id="a", label=5.0, at=T0),
            feedback_table(label=1.0, keys={"customer_id": [1]}, event_time=T0, at=T0),
        ],
        promote_options="permissive",
    )
    joined = join_feedback(predictions, feedback)
    assert joined.column("label").to_pylist() == [5.0, 1.0]
    assert joined.column("feedback_by").to_pylist() == ["request", "entity"]


def test_join_reads_both_logs_and_keeps_models_apart(tmp_path: Path) -> None:
    """Predictions and feedback read from their logs join within each model."""
    with RecordLog(tmp_path / "predictions") as log:
        log.submit("churn", predictions_for([("a", 0, 1, T0), ("b", 0, 1, T0)]))
        log.submit("fraud", predictions_for([("x", 0, 1, T0)]))
    with RecordLog(tmp_path / "feedback") as log:
        log.submit("churn", feedback_table(request_id="a", label=1.0, at=T0))
        log.submit(
            "fraud",
            feedback_table(label=0.0, keys={"customer_id": [1]}, event_time=T0, at=T0),
        )
    joined = join_feedback(read_log(tmp_path / "predictions"), read_log(tmp_path / "feedback"))
    labels = {r["request_id"]: r["label"] for r in joined.to_pylist()}
    assert labels == {"a": 1.0, "b": None, "x": 0.0}


def test_join_without_feedback_leaves_labels_null(tmp_path: Path) -> None:
    """An empty feedback log labels nothing."""
    predictions = predictions_for([("a", 0, 1, T0)])
    joined = join_feedback(predictions, read_log(tmp_path / "feedback"))
    assert joined.column("label").to_pylist() == [None]
    assert joined.num_rows == 1


def test_join_needs_the_feedback_keys_in_the_predictions() -> None:
    """Feedback by an entity key the predictions do not carry is an InputError."""
    predictions = predictions_for([("a", 0, 1, T0)])
    feedback = feedback_table(label=1.0, keys={"account": ["x"]}, event_time=T0, at=T0)
    with pytest.raises(InputError, match=r"key\.account"):
        join_feedback(predictions, feedback)
