"""Benchmark: point-in-time windowed aggregates (``features.aggregates.window_aggregates``).

1,000,000 source rows (100,000 entities x 10 events, uniform over 30 days, in one
Parquet batch as the offline store keeps them) and 1,000,000 entity rows (each entity
10 times, at uniform times over the same 30 days), one view with sum, count and mean
over 1d and 7d and max over 28d (7 aggregates). DuckDB with 2 threads and the offline
store's default 4GB memory limit. Run from the repository root::

    .venv/bin/python bench/feature_aggregates.py [--entities N] [--events E] [--repeat R]

It times ``window_aggregates`` (best of ``--repeat``) with the automatic plan, then
each plan forced (the markers and the range join) and the known-at variant (a
created-time column; the join is then the only plan), then the view without its max
(counts, sums and means: the running-totals plan applies too) with every plan,
prints rows/s, and measures the
peak resident memory of a child process that builds the data and runs the automatic
plan once. ``--events 100`` with ``--entities 10000`` (same row counts, 100 rows per
key) shows where the markers overtake the join. Appends one JSON line to
``bench/results/feature_aggregates.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.features.aggregates import Plan, window_aggregates
from driftloop.features.definitions import Aggregate, Entity, FeatureView
from driftloop.features.sourcedata import SourceBatch, ViewData, register_view_source

RESULTS = Path(__file__).parent / "results" / "feature_aggregates.jsonl"
START = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
CUSTOMER = Entity("customer", keys={"customer_id": "int"})
AGGREGATES = [
    *(Aggregate("amount", f, w) for w in ("1d", "7d") for f in ("sum", "count", "mean")),
    Aggregate("amount", "max", "28d"),
]
TOTALS = AGGREGATES[:-1]
"""The counts, sums and means alone: running totals can compute them."""


def build(entities: int, events: int, days: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """The source rows (with a created time up to a day late) and the entity rows."""
    rng = np.random.default_rng(seed)
    n = entities * events
    start = int(START.timestamp() * 1_000_000)
    span = days * 86_400_000_000
    ids = np.repeat(np.arange(entities, dtype=np.int64), events)
    event = start + rng.integers(0, span, n)
    source = pa.table(
        {
            "customer_id": ids,
            "event_time": pa.array(event, TS),
            "created_at": pa.array(event + rng.integers(0, 86_400_000_000, n), TS),
            "amount": rng.gamma(2.0, 20.0, n),
        }
    )
    rows = pa.table(
        {
            "__row": np.arange(n, dtype=np.int64),
            "customer_id": rng.permutation(ids),
            "__ts": pa.array(start + rng.integers(0, span, n), TS),
        }
    )
    return source, rows


def connect(threads: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": threads, "memory_limit": "4GB"})
    con.execute("SET TimeZone = 'UTC'")
    return con


def prepare(
    con: duckdb.DuckDBPyConnection,
    parquet: Path,
    rows: pa.Table,
    *,
    known_at: bool,
    aggregates: list[Aggregate] = AGGREGATES,
) -> tuple[str, FeatureView]:
    """Register the Parquet batch through the view and the entity rows; the source name."""
    view = FeatureView(
        "spend",
        entity=CUSTOMER,
        source="transactions",
        aggregates=aggregates,
        created_time="created_at" if known_at else None,
    )
    schema = pq.read_schema(parquet)
    batch = SourceBatch("v1", START + timedelta(days=60), path=str(parquet))
    data = ViewData(view, "event_time", [batch], schema)
    source = register_view_source(con, data, "transactions", view.feature_names)
    con.register("entity_rows", rows)
    return source, view


def best_of(
    con: duckdb.DuckDBPyConnection, source: str, view: FeatureView, plan: Plan, repeat: int
) -> tuple[float, pa.Table]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = window_aggregates(con, "entity_rows", source, view, view.feature_names, plan=plan)
        times.append(time.perf_counter() - started)
    assert result is not None
    return min(times), result


class RssSampler:
    """The largest resident size of this process seen every 5 ms (Linux; else 0).

    Sampled, not read from VmHWM: the kernel updates its high-water mark lazily and
    misses memory an allocator returns with madvise.
    """

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        status = Path("/proc/self/status")
        if not status.exists():
            return 0
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def child(args: argparse.Namespace) -> None:
    """Build the data, run the automatic plan once, print this process's memory figures."""
    with RssSampler() as build_sampler:
        source_table, rows = build(args.entities, args.events, args.days)
        tmp = tempfile.TemporaryDirectory()
        parquet = Path(tmp.name) / "batch.parquet"
        pq.write_table(source_table, parquet)
        del source_table
        con = connect(args.threads)
        source, view = prepare(con, parquet, rows, known_at=False)
    before = RssSampler.rss()
    with RssSampler() as call_sampler:
        result = window_aggregates(con, "entity_rows", source, view, view.feature_names)
    memory = {
        "build_peak": build_sampler.peak,
        "rss_before": before,
        "call_peak": call_sampler.peak,
        "result_bytes": result.nbytes,
    }
    con.close()
    tmp.cleanup()
    print(json.dumps(memory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10, help="source and entity rows per key")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    # The child runs first: a child's ru_maxrss includes its parent's memory before exec.
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    memory = json.loads(out.strip().splitlines()[-1])
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux

    source_table, rows = build(args.entities, args.events, args.days)
    n_source, n_rows = source_table.num_rows, rows.num_rows
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "batch.parquet"
        pq.write_table(source_table, parquet)
        con = connect(args.threads)
        source, view = prepare(con, parquet, rows, known_at=False)
        results: dict[str, pa.Table] = {}
        for plan in ("auto", "window", "join"):
            timings[plan], results[plan] = best_of(con, source, view, plan, args.repeat)
        con.close()
        con = connect(args.threads)
        source, known_view = prepare(con, parquet, rows, known_at=True)
        timings["known_at_join"], _ = best_of(con, source, known_view, "auto", args.repeat)
        con.close()
        # counts, sums and means only: the running totals apply too
        con = connect(args.threads)
        source, totals_view = prepare(con, parquet, rows, known_at=False, aggregates=TOTALS)
        totals: dict[str, pa.Table] = {}
        for plan in ("auto", "window", "join", "prefix"):
            timings[f"totals_{plan}"], totals[plan] = best_of(
                con, source, totals_view, plan, args.repeat
            )
        con.close()
    agree = all(
        np.allclose(
            results["window"].column(c).to_numpy(zero_copy_only=False).astype(float),
            results["join"].column(c).to_numpy(zero_copy_only=False).astype(float),
            rtol=1e-9,
            equal_nan=True,
        )
        for c in view.feature_names
    )
    # exact sums: the running totals give the very bits the other plans give
    totals_agree = all(totals["prefix"].equals(totals[plan]) for plan in ("window", "join"))

    result: dict[str, Any] = {
        "benchmark": "feature_aggregates",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "threads": args.threads,
        "source_rows": n_source,
        "entity_rows": n_rows,
        "entities": args.entities,
        "events_per_entity": args.events,
        "days": args.days,
        "aggregates": len(AGGREGATES),
        "auto_seconds_best": round(timings["auto"], 3),
        "auto_rows_per_second": round(n_rows / timings["auto"]),
        "window_plan_seconds_best": round(timings["window"], 3),
        "join_plan_seconds_best": round(timings["join"], 3),
        "known_at_join_seconds_best": round(timings["known_at_join"], 3),
        "known_at_rows_per_second": round(n_rows / timings["known_at_join"]),
        "plans_agree": agree,
        "totals_auto_seconds_best": round(timings["totals_auto"], 3),
        "totals_window_plan_seconds_best": round(timings["totals_window"], 3),
        "totals_join_plan_seconds_best": round(timings["totals_join"], 3),
        "totals_prefix_plan_seconds_best": round(timings["totals_prefix"], 3),
        "totals_plans_identical": totals_agree,
        "child_peak_rss_mb": round(child_peak / 1e6, 1),
        "child_build_peak_rss_mb": round(memory["build_peak"] / 1e6, 1),
        "child_rss_before_call_mb": round(memory["rss_before"] / 1e6, 1),
        "child_call_peak_rss_mb": round(memory["call_peak"] / 1e6, 1),
        "child_call_extra_rss_mb": round((memory["call_peak"] - memory["rss_before"]) / 1e6, 1),
        "result_mb": round(memory["result_bytes"] / 1e6, 1),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out_file:
        out_file.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
