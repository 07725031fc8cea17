"""Benchmark: profile_table and merge_profiles on 1,000,000 rows x 20 columns.

The table mixes 6 float and 4 integer columns, 6 string columns of about 50
categories, 2 timezone-aware timestamp columns and 2 boolean columns; a few columns
hold 1% nulls. Run from the repository root::

    PYTHONPATH=src .venv/bin/python bench/profile.py [--rows N] [--repeat R]

It prints the figures and appends one JSON line to ``bench/results/profile.jsonl``.
The target (issue: validation + profile >= 1,000,000 rows/s, peak memory under 3x the
table's Arrow size) lives here, never in a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftloop.data.profile import DatasetProfile, merge_profiles, profile_table

RESULTS = Path(__file__).parent / "results" / "profile.jsonl"


def build_table(rows: int, seed: int = 0) -> pa.Table:
    """A seeded table of numeric, categorical, timestamp and boolean columns."""
    rng = np.random.default_rng(seed)
    nulls = rng.random(rows) < 0.01
    columns: dict[str, pa.Array] = {}
    for i in range(6):
        values = rng.lognormal(i / 3, 1.0, rows) if i % 2 else rng.normal(i, 1 + i, rows)
        columns[f"f{i}"] = pa.array(values, mask=nulls if i < 2 else None)
    for i in range(4):
        columns[f"i{i}"] = pa.array(rng.integers(-(10 ** (i + 2)), 10 ** (i + 2), rows))
    for i in range(6):
        names = pa.array([f"cat_{i}_{j:02d}" for j in range(50)])
        weights = rng.dirichlet(np.ones(50))
        indices = pa.array(
            rng.choice(50, size=rows, p=weights).astype(np.int32), mask=nulls if i == 0 else None
        )
        columns[f"c{i}"] = pa.DictionaryArray.from_arrays(indices, names).cast(pa.string())
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for i in range(2):
        micros = start + rng.integers(0, 365 * 86_400_000_000, rows)
        columns[f"t{i}"] = pa.array(micros, pa.timestamp("us", tz="UTC"))
    for i in range(2):
        columns[f"b{i}"] = pa.array(rng.random(rows) < 0.2 + 0.3 * i)
    return pa.table(columns)


def _rss_peak(run: Callable[[], object]) -> tuple[int, int]:
    """Resident memory before ``run`` and its peak during ``run`` (Linux; else zeros).

    Writing 5 to /proc/self/clear_refs resets the kernel's high-water mark, so the
    peak is the profile's own, not the table build's.
    """
    status, clear = Path("/proc/self/status"), Path("/proc/self/clear_refs")
    if not status.exists():
        run()
        return 0, 0

    def read(field: str) -> int:
        line = next(x for x in status.read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) * 1024

    try:
        clear.write_text("5")
    except OSError:
        run()
        return 0, 0
    before = read("VmRSS:")
    run()
    return before, read("VmHWM:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batches", type=int, default=100, help="batches merged")
    args = parser.parse_args()

    table = build_table(args.rows)
    data_bytes = table.nbytes
    profile_table(table)  # warm up imports and kernels

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        profile_table(table)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)

    rss_before, rss_peak = _rss_peak(lambda: profile_table(table))
    tracemalloc.start()
    profile_table(table)
    _, numpy_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    size = args.rows // args.batches
    parts = [profile_table(table.slice(i * size, size)) for i in range(args.batches)]
    start = time.perf_counter()
    merged = merge_profiles(parts)
    merge_seconds = time.perf_counter() - start
    start = time.perf_counter()
    merge_profiles(parts[:2])
    merge2_seconds = time.perf_counter() - start
    json_bytes = len(json.dumps(merged.to_dict(), allow_nan=False))
    assert DatasetProfile.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged

    result = {
        "benchmark": "profile",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": args.rows,
        "columns": table.num_columns,
        "data_mb": round(data_bytes / 1e6, 1),
        "profile_seconds_best": round(best, 4),
        "profile_seconds_median": round(median, 4),
        "rows_per_second": round(args.rows / median),
        "numpy_peak_mb": round(numpy_peak / 1e6, 1),
        # The whole process (interpreter, libraries, the table itself) against the data.
        "process_rss_peak_mb": round(rss_peak / 1e6, 1) if rss_peak else None,
        "process_peak_over_data": round(rss_peak / data_bytes, 2) if rss_peak else None,
        "profile_extra_rss_mb": round((rss_peak - rss_before) / 1e6, 1) if rss_peak else None,
        "merge_batches": args.batches,
        "merge_seconds": round(merge_seconds, 4),
        "merge_two_seconds": round(merge2_seconds, 4),
        "profile_json_kb": round(json_bytes / 1e3, 1),
    }
    for key, value in result.items():
        print(f"{key:>34}: {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
