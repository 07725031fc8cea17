"""Prediction records built by the log's writer in batches equal those built one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftloop.serving.predictionlog import RecordLog, prediction_table, read_log
from driftloop.serving.records import PredictionRecords

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def one(i: int, n: int = 2, **extra: object) -> PredictionRecords:
    return PredictionRecords(
        request_id=f"r{i}",
        at=T0 + timedelta(seconds=i),
        version=1 + i % 2,
        role="champion" if i % 2 == 0 else "canary",
        latency_ms=0.5 * i,
        prediction=np.linspace(0, 1, n),
        keys=pa.table({"customer_id": [f"c{i}-{j}" for j in range(n)]}),
        features=pa.table({"amount": np.arange(n, dtype=np.float64) + i}),
        missing={"amount": np.array([j == 0 for j in range(n)])},
        **extra,  # type: ignore[arg-type]
    )


def test_a_batch_is_the_concatenation_of_the_one_request_tables() -> None:
    """build_many gives exactly the rows prediction_table gives for each request."""
    items = [one(i) for i in range(5)]
    expected = pa.concat_tables(
        [
            prediction_table(
                request_id=r.request_id,
                at=r.at,
                version=r.version,
                role=r.role,
                prediction=r.prediction,
                latency_ms=r.latency_ms,
                keys=r.keys,
                features=r.features,
                missing=r.missing,
            )
            for r in items
        ]
    )
    assert PredictionRecords.build_many(items).equals(expected)


def test_requests_with_other_inputs_or_no_keys_are_unified_by_name() -> None:
    """A version with another input and a request without keys: absent values are null."""
    plain = one(0)
    other = PredictionRecords(
        request_id="x",
        at=T0,
        version=3,
        role="shadow",
        latency_ms=1.0,
        prediction=np.array([0.3]),
        features=pa.table({"amount": [1.0], "channel": ["web"]}),
        instance=np.array([4], dtype=np.int32),
        probabilities=np.array([[0.2, 0.3, 0.5]]),
    )
    table = PredictionRecords.build_many([plain, other])
    rows = table.to_pylist()
    assert [r["feature.channel"] for r in rows] == [None, None, "web"]
    assert [r["key.customer_id"] for r in rows] == ["c0-0", "c0-1", None]
    assert [r["instance"] for r in rows] == [0, 1, 4]
    assert [r["probabilities"] for r in rows] == [None, None, [0.2, 0.3, 0.5]]
    assert [r["missing.amount"] for r in rows] == [True, False, None]


def test_records_of_a_failure_add_an_error_column_null_for_the_others() -> None:
    """A group with a version's failure gets ``error`` (null for the records scored); it
    is the column prediction_table gives for the same error."""
    failed = PredictionRecords(
        request_id="f",
        at=T0,
        version=3,
        role="canary",
        latency_ms=2.0,
        prediction=np.full(2, np.nan),
        keys=pa.table({"customer_id": ["c9-0", "c9-1"]}),
        error="ValueError: cannot score",
    )
    table = PredictionRecords.build_many([one(0), failed])
    assert table.column("error").to_pylist() == [None, None, *["ValueError: cannot score"] * 2]
    assert table.column("error").type == pa.string()
    assert [r["feature.amount"] for r in table.to_pylist()] == [0.0, 1.0, None, None]
    alone = prediction_table(
        request_id="f",
        at=T0,
        version=3,
        role="canary",
        prediction=[np.nan, np.nan],
        latency_ms=2.0,
        keys=pa.table({"customer_id": ["c9-0", "c9-1"]}),
        error="ValueError: cannot score",
    )
    built = PredictionRecords.build_many([failed])
    assert built.schema == alone.schema
    assert built.drop_columns("prediction").equals(alone.drop_columns("prediction"))
    assert np.isnan(built.column("prediction").to_numpy()).all()


def test_records_without_a_failure_have_no_error_column() -> None:
    """Ordinary groups keep today's columns."""
    assert "error" not in PredictionRecords.build_many([one(0), one(1)]).column_names


def test_deferred_records_go_through_the_log_like_tables(tmp_path: Path) -> None:
    with RecordLog(tmp_path, durability="strict") as log:
        futures = [log.submit("churn", one(i)) for i in range(20)]
        futures.append(
            log.submit(
                "churn",
                prediction_table(
                    request_id="t",
                    at=T0,
                    version=1,
                    role="champion",
                    prediction=[0.5],
                    latency_ms=1.0,
                ),
            )
        )
        for future in futures:
            future.result(timeout=30)
    table = read_log(tmp_path, "churn")
    assert table.num_rows == 41
    assert sorted(set(table.column("request_id").to_pylist())) == sorted(
        [f"r{i}" for i in range(20)] + ["t"]
    )


def test_records_that_cannot_be_built_fail_only_their_futures(tmp_path: Path) -> None:
    """A naive time cannot be stored: its future fails, the next records are written."""
    bad = PredictionRecords(
        request_id="bad",
        at=datetime(2024, 5, 1, 12, 0),  # no zone
        version=1,
        role="champion",
        latency_ms=1.0,
        prediction=np.array([0.1]),
    )
    with RecordLog(tmp_path, flush_interval_s=60.0) as log:
        failed = log.submit("churn", bad)
        log.flush()
        good = log.submit("churn", one(1))
        log.flush()
    assert failed.exception() is not None
    assert good.exception() is None
    assert read_log(tmp_path, "churn").column("request_id").to_pylist() == ["r1", "r1"]
