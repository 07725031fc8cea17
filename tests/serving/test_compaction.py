"""Compaction of the record log: few files, every record exactly once, crash-safe."""

from __future__ import annotations

import math
import shutil
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from driftloop.serving.compaction import compact_log, compact_partition, live_files
from driftloop.serving.predictionlog import RecordLog, prediction_table, read_log

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def records(prefix: str, n: int = 3, **features: list[object]) -> pa.Table:
    return prediction_table(
        request_id=[f"{prefix}-{i}" for i in range(n)],
        at=[T0 + timedelta(seconds=i) for i in range(n)],
        version=1,
        role="champion",
        prediction=np.linspace(0, 1, n),
        latency_ms=0.5,
        features=features or None,
    )


def write_parts(root: Path, count: int, *, prefix: str = "r") -> None:
    """``count`` separate part files (one flush each), as a busy server leaves them."""
    with RecordLog(root, flush_interval_s=60.0, compact_every_s=None) as log:
        for i in range(count):
            log.submit("churn", records(f"{prefix}{i}"))
            log.flush()


def partition(root: Path) -> Path:
    (found,) = root.glob("model=churn/date=*")
    return found


def ids(root: Path) -> Counter[str]:
    return Counter(read_log(root, "churn").column("request_id").to_pylist())


def test_sixteen_small_files_become_one_with_the_same_records(tmp_path: Path) -> None:
    write_parts(tmp_path, 16)
    before = ids(tmp_path)
    assert compact_partition(partition(tmp_path)) == 16
    files = live_files(partition(tmp_path))
    assert [f.name[:10] for f in files] == ["compact-L1"]
    assert sorted(p.name for p in partition(tmp_path).glob("*.parquet")) == [files[0].name]
    assert ids(tmp_path) == before
    assert sum(before.values()) == 48


def test_fewer_files_than_a_tier_are_left_alone(tmp_path: Path) -> None:
    write_parts(tmp_path, 5)
    assert compact_partition(partition(tmp_path)) == 0
    assert len(live_files(partition(tmp_path))) == 5


def test_merged_files_are_merged_again_in_tiers(tmp_path: Path) -> None:
    """With tiers of 2: 2 parts -> a level-1 file; 2 more parts -> a second level-1 file,
    and the two level-1 files -> one level-2 file."""
    write_parts(tmp_path, 2)
    assert compact_partition(partition(tmp_path), min_files=2) == 2
    write_parts(tmp_path, 2, prefix="s")
    before = ids(tmp_path)
    assert compact_partition(partition(tmp_path), min_files=2) == 4
    (only,) = live_files(partition(tmp_path))
    assert only.name.startswith("compact-L2-")
    assert ids(tmp_path) == before
    assert sum(before.values()) == 12


def test_a_crash_before_the_replaced_files_are_deleted_shows_no_duplicates(
    tmp_path: Path,
) -> None:
    """The state a crash between the rename of the merged file and the deletion of its
    sources leaves: both on disk. Readers see each record once; the next compaction
    deletes the leftovers."""
    write_parts(tmp_path, 16)
    before = ids(tmp_path)
    saved = tmp_path / "saved"
    shutil.copytree(partition(tmp_path), saved)
    compact_partition(partition(tmp_path))
    for path in saved.glob("part-*.parquet"):
        shutil.copy(path, partition(tmp_path) / path.name)  # the undeleted sources
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 17
    assert ids(tmp_path) == before
    compact_partition(partition(tmp_path))
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 1
    assert ids(tmp_path) == before


def test_files_with_different_columns_merge_by_name(tmp_path: Path) -> None:
    with RecordLog(tmp_path, flush_interval_s=60.0, compact_every_s=None) as log:
        log.submit("churn", records("old", age=[1.0, 2.0, 3.0]))
        log.flush()
        log.submit("churn", records("new", age=[4.0, 5.0, 6.0], region=["eu", "us", "eu"]))
        log.flush()
    compact_partition(partition(tmp_path), min_files=2)
    table = read_log(tmp_path, "churn")
    assert table.num_rows == 6
    by_id = dict(zip(table.column("request_id").to_pylist(), table.to_pylist(), strict=True))
    assert by_id["old-0"]["feature.region"] is None
    assert by_id["new-1"]["feature.region"] == "us"
    assert by_id["new-1"]["feature.age"] == 5.0


def test_files_with_and_without_an_error_column_merge_by_name(tmp_path: Path) -> None:
    """A version's failures (records with ``error``) merge with ordinary files, whose
    records read a null error."""
    failed = prediction_table(
        request_id="failed",
        at=T0,
        version=2,
        role="canary",
        prediction=[np.nan],
        latency_ms=0.5,
        error="ValueError: cannot score",
    )
    with RecordLog(tmp_path, flush_interval_s=60.0, compact_every_s=None) as log:
        log.submit("churn", records("old"))
        log.flush()
        log.submit("churn", failed)
        log.flush()
        log.submit("churn", records("new"))
        log.flush()
    assert compact_partition(partition(tmp_path), min_files=2) == 3
    assert len(live_files(partition(tmp_path))) == 1
    table = read_log(tmp_path, "churn")
    errors = dict(zip(*table.select(["request_id", "error"]).to_pydict().values(), strict=True))
    assert errors == {
        **{f"{p}-{i}": None for p in ("old", "new") for i in range(3)},
        "failed": "ValueError: cannot score",
    }
    (row,) = table.filter(pc.equal(table.column("request_id"), "failed")).to_pylist()
    assert math.isnan(row["prediction"])
    assert row["version"] == 2


def test_two_compactors_never_merge_the_same_files_twice(tmp_path: Path) -> None:
    write_parts(tmp_path, 32)
    before = ids(tmp_path)
    merged: list[int] = []
    threads = [
        threading.Thread(target=lambda: merged.append(compact_log(tmp_path, min_files=2)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ids(tmp_path) == before
    assert sum(merged) >= 31


def test_readers_during_compaction_see_every_record_once(tmp_path: Path) -> None:
    write_parts(tmp_path, 64)
    before = ids(tmp_path)
    done = threading.Event()
    seen: list[Counter[str]] = []

    def read() -> None:
        while not done.is_set():
            seen.append(ids(tmp_path))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        compact_partition(partition(tmp_path), min_files=2)
    finally:
        done.set()
        reader.join()
    assert seen
    assert all(counts == before for counts in seen)


def test_a_record_log_compacts_the_partitions_it_writes(tmp_path: Path) -> None:
    log = RecordLog(tmp_path, flush_interval_s=60.0, compact_every_s=0.05)
    try:
        for i in range(40):
            log.submit("churn", records(f"r{i}"))
            log.flush()
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while len(live_files(partition(tmp_path))) >= 16 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        log.close()
    assert len(live_files(partition(tmp_path))) < 16
    assert sum(ids(tmp_path).values()) == 120


def test_tiers_need_at_least_two_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_files"):
        compact_partition(tmp_path, min_files=1)


def test_the_compactor_process_compacts_until_its_parent_is_gone(tmp_path: Path) -> None:
    """`python -m driftloop.serving.compaction` (what `driftloop serve` starts) merges
    the small files of every log root it is given, and exits with its parent."""
    import os
    import subprocess
    import sys

    write_parts(tmp_path / "predictions", 20)
    write_parts(tmp_path / "feedback", 16, prefix="f")
    # a parent that ends when we close its stdin: the compactor must follow it
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', "
            "'driftloop.serving.compaction', '--every', '0.1', '--parent', str(__import__('os')"
            ".getpid()), *sys.argv[1:]]); print(p.pid, flush=True); sys.stdin.read()",
            str(tmp_path / "predictions"),
            str(tmp_path / "feedback"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    compactor = int(parent.stdout.readline())
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while datetime.now(UTC) < deadline and (
            len(live_files(partition(tmp_path / "predictions"))) > 1
            or len(live_files(partition(tmp_path / "feedback"))) > 1
        ):
            threading.Event().wait(0.1)
        assert len(live_files(partition(tmp_path / "predictions"))) == 1
        assert len(live_files(partition(tmp_path / "feedback"))) == 1
        assert sum(ids(tmp_path / "predictions").values()) == 60
    finally:
        parent.communicate("", timeout=30)
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while datetime.now(UTC) < deadline:
        try:
            os.kill(compactor, 0)
        except ProcessLookupError:
            break
        threading.Event().wait(0.1)
    else:
        os.kill(compactor, 9)
        raise AssertionError("the compactor outlived its parent")
