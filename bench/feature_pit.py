"""Point-in-time join benchmark: latest values of 10 features for 1,000,000 entity rows.

Targets: ``latest_values`` within 1.3x of a hand-written DuckDB ``ASOF LEFT JOIN`` run in
the same process (Feast's offline store takes 2.6x), and peak memory under 1 GB.

    .venv/bin/python bench/feature_pit.py [--entities 100000] [--per-entity 10]
                                          [--rows 1000000] [--repeat 3]

The source (entities x timestamps spread over 30 days, 10 float features) is generated
with a fixed seed and written to Parquet as the store writes a batch; the entity frame
draws a random entity and a random time in the same 30 days per row; the view has a
2-day TTL and no created-time column. Both plans run warm in one process with DuckDB on
2 threads, alternately, best of ``--repeat``, each including the conversion of its
result to Arrow. The engine's result is checked against the baseline's (values and
number of matches), and a separate child process runs the engine alone to measure its
peak RSS. Prints the figures and
appends a JSON line to bench/results/feature_pit.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.data.datasets import write_parquet
from driftloop.features.definitions import Entity, Feature, FeatureView
from driftloop.features.offline import latest_values
from driftloop.features.sourcedata import SourceBatch, ViewData, register_view_source

HERE = Path(__file__).resolve().parent
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TTL = timedelta(days=2)
FEATURES = [f"f{i}" for i in range(10)]
THREADS = 2
TS = pa.timestamp("us", tz="UTC")


def make_source(entities: int, per_entity: int, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    start = int(START.timestamp() * 1e6)
    span = int(SPAN.total_seconds() * 1e6)
    cols: dict[str, pa.Array] = {
        "customer_id": pa.array(np.repeat(np.arange(entities, dtype=np.int64), per_entity)),
        "event_time": pa.array(rng.integers(start, start + span, n), TS),
    }
    for name in FEATURES:
        cols[name] = pa.array(rng.random(n))
    return pa.table(cols)


def make_entity_frame(rows: int, entities: int, seed: int = 12) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = int(START.timestamp() * 1e6)
    span = int(SPAN.total_seconds() * 1e6)
    return pa.table(
        {
            "__row": pa.array(np.arange(rows, dtype=np.int64)),
            "customer_id": pa.array(rng.integers(0, entities, rows, dtype=np.int64)),
            "__ts": pa.array(rng.integers(start, start + span, rows), TS),
        }
    )


def make_view() -> FeatureView:
    customer = Entity("customer", keys={"customer_id": "int"})
    return FeatureView(
        "customer_stats",
        entity=customer,
        source="stats",
        ttl=TTL,
        features=[Feature(name, "float") for name in FEATURES],
    )


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": THREADS})
    con.execute("SET TimeZone = 'UTC'")
    return con


def baseline(con: duckdb.DuckDBPyConnection, source_path: str) -> pa.Table:
    """The hand-written ASOF LEFT JOIN, with the TTL applied to the matched row."""
    ttl = f"INTERVAL {int(TTL.total_seconds())} SECONDS"
    cols = ", ".join(
        f"CASE WHEN s.event_time > e.__ts - {ttl} THEN s.{f} END AS {f}" for f in FEATURES
    )
    path = source_path.replace("'", "''")
    return con.sql(
        f"SELECT e.*, {cols}, CASE WHEN s.event_time > e.__ts - {ttl} THEN s.event_time END "
        f"AS __event_time FROM entity_rows AS e ASOF LEFT JOIN read_parquet('{path}') AS s "
        "ON e.customer_id = s.customer_id AND e.__ts >= s.event_time"
    ).to_arrow_table()


def engine(con: duckdb.DuckDBPyConnection, source_path: str, schema: pa.Schema) -> pa.Table:
    """latest_values through register_view_source, reading the Parquet batch in place."""
    view = make_view()
    data = ViewData(view, "event_time", [SourceBatch("v1", START, path=source_path)], schema)
    source = register_view_source(con, data, "source", FEATURES)
    return latest_values(con, "entity_rows", source, view, FEATURES)


def _rss_mib() -> float:
    """This process's peak RSS. Linux carries ru_maxrss over fork + exec (a child started
    by a 1 GB parent reports 1 GB), so read the address space's own high-water mark."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(source_path: str, entity_path: str) -> None:
    """The engine alone, once, in a fresh process: its peak RSS."""
    schema = pq.read_schema(source_path)
    libs = _rss_mib()
    con = connect()
    con.register("entity_rows", pq.read_table(entity_path))
    t0 = time.perf_counter()
    out = engine(con, source_path, schema)
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rows": out.num_rows,
                "seconds": elapsed,
                "rss_libs_mib": libs,
                "rss_peak_mib": _rss_mib(),
            }
        )
    )


def _timed(fn: Callable[[], pa.Table], times: list[float], cpu: list[float]) -> pa.Table:
    """Run ``fn``, recording its wall time and this process's CPU time (all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--per-entity", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source_path = str(Path(tmp) / "source.parquet")
        entity_path = str(Path(tmp) / "entity_rows.parquet")
        source_table = make_source(args.entities, args.per_entity)
        # as the store writes a batch: zstd, 256Ki-row groups (DuckDB scans them in parallel)
        Path(source_path).write_bytes(write_parquet(source_table))
        schema = source_table.schema
        del source_table
        entity_rows = make_entity_frame(args.rows, args.entities)
        pq.write_table(entity_rows, entity_path)

        con = connect()
        con.register("entity_rows", entity_rows)
        base_times: list[float] = []
        engine_times: list[float] = []
        base_cpu: list[float] = []
        engine_cpu: list[float] = []
        for _ in range(args.repeat):  # alternate, so both see the same machine load
            base = _timed(lambda: baseline(con, source_path), base_times, base_cpu)
            ours = _timed(lambda: engine(con, source_path, schema), engine_times, engine_cpu)
        out = subprocess.run(
            [sys.executable, __file__, "--child", source_path, entity_path],
            check=True,
            capture_output=True,
            text=True,
        )
        alone = json.loads(out.stdout.strip().splitlines()[-1])

    base = base.sort_by("__row")
    matches = ours.num_rows - ours.column("__event_time").null_count
    base_matches = base.num_rows - base.column("__event_time").null_count
    same = ours.num_rows == base.num_rows and all(
        ours.column(c).equals(base.column(c)) for c in ["__row", *FEATURES, "__event_time"]
    )
    if not same:
        differ = pc.sum(pc.invert(pc.equal(ours.column("f0"), base.column("f0")))).as_py()
        raise SystemExit(f"the engine's result differs from the baseline's ({differ} rows of f0)")
    best_base, best_engine = min(base_times), min(engine_times)
    result = {
        "bench": "feature_pit",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "duckdb_threads": THREADS,
        "source_rows": args.entities * args.per_entity,
        "entity_rows": args.rows,
        "features": len(FEATURES),
        "ttl": str(TTL),
        "baseline_asof_s": best_base,
        "latest_values_s": best_engine,
        "ratio": best_engine / best_base,
        "baseline_asof_cpu_s": min(base_cpu),
        "latest_values_cpu_s": min(engine_cpu),
        "cpu_ratio": min(engine_cpu) / min(base_cpu),
        "baseline_runs_s": base_times,
        "latest_values_runs_s": engine_times,
        "matches": matches,
        "equal_to_baseline": same and matches == base_matches,
        "child_latest_values_s": alone["seconds"],
        "child_rss_peak_mib": alone["rss_peak_mib"],
        "child_rss_libs_mib": alone["rss_libs_mib"],
    }
    print(f"source rows x features   {result['source_rows']:,} x {len(FEATURES)} (Parquet)")
    print(f"entity rows              {args.rows:,}  ({matches:,} with a value inside the TTL)")
    print(f"hand-written ASOF join   {best_base:.3f} s  (best of {args.repeat})")
    print(f"latest_values            {best_engine:.3f} s  (best of {args.repeat}, sorted by __row)")
    print(f"ratio                    {result['ratio']:.2f}x  (target <= 1.3)")
    print(
        f"CPU time (all threads)   {min(base_cpu):.3f} s vs {min(engine_cpu):.3f} s = "
        f"{result['cpu_ratio']:.2f}x  (less sensitive to other load on the machine)"
    )
    print(
        f"peak RSS, engine alone   {alone['rss_peak_mib']:.0f} MiB  (target < 1024; "
        f"{alone['rss_libs_mib']:.0f} MiB of interpreter and libraries)"
    )
    print("same values as baseline  yes")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "feature_pit.jsonl", "a") as fh:
        fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
