"""Reading a source made of many batches: `Project.read` against the per-file path.

Ingests ``--batches`` batches of ``--rows`` example payments each into a fresh
project, then times ``Project.read`` (all columns, first and repeated: each blob is
hashed once per process) and a two-column read, beside the per-file path it replaced
(every blob hashed and every column read on each call, one file at a time). Appends a
JSON line to bench/results/read_source.jsonl.

    .venv/bin/python bench/read_source.py [--batches 300] [--rows 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop import Project
from driftloop.cli.init import transactions_batch, write_example
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.data.datasets import list_versions

RESULTS = Path(__file__).parent / "results" / "read_source.jsonl"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def per_file(project: Project, columns: list[str] | None = None) -> pa.Table:
    """The reading before: hash, read every column, select and cast, file by file."""
    schema = project.contract("transactions")[0].arrow_schema
    parts = []
    for version in list_versions(project.store, "transactions"):
        project.artifacts.verify(version.id)
        with project.artifacts.open_input(version.id) as handle:
            parts.append(pq.read_table(handle).select(schema.names).cast(schema))
    table = pa.concat_tables(parts)
    return table.select(columns) if columns else table


def best(call: Callable[[], pa.Table], repeat: int) -> tuple[float, float, pa.Table]:
    """The first call's seconds, the best of ``repeat`` more, and the result."""
    began = time.perf_counter()
    result = call()
    first = time.perf_counter() - began
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return first, min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="driftloop-bench-read-"))
    root = folder / "shop"
    write_example(root, now=T0)
    clock = SimulatedClock(T0)
    figures: dict[str, dict[str, float]] = {}
    try:
        with use_clock(clock), Project(root) as project:
            project.apply()
            for i in range(args.batches):
                start = T0 - timedelta(days=1)
                batch = transactions_batch(i, args.rows, i * args.rows, start, T0)
                project.ingest("transactions", batch)
            columns = ["amount", "event_time"]
            cases: dict[str, Callable[[], pa.Table]] = {
                "per-file, all columns": lambda: per_file(project),
                "read, all columns": lambda: project.read("transactions"),
                "per-file, 2 columns": lambda: per_file(project, columns),
                "read, 2 columns": lambda: project.read("transactions", columns=columns),
            }
            results = {}
            for name, call in cases.items():
                first, then, results[name] = best(call, args.repeat)
                figures[name] = {"first_s": first, "best_s": then}
                print(f"{name:24} first {first * 1000:7.0f} ms, then best {then * 1000:7.0f} ms")
            assert results["read, all columns"].equals(results["per-file, all columns"])
            assert results["read, 2 columns"].equals(results["per-file, 2 columns"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "read_source",
            "at": datetime.now(UTC).isoformat(),
            "batches": args.batches,
            "rows": args.rows,
            "figures": figures,
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
