"""Materialization benchmark: 100,000 entities x 10 features into the SQLite online store.

Target (issue 3): under 1 s on a 2-core machine for the whole `driftloop materialize`
of one view: finding the entities, computing their latest values point-in-time with
DuckDB over the source's Parquet, and writing them to SQLite.

    .venv/bin/python bench/materialize.py [--entities 100000] [--repeat 3]

Source: 100,000 entities x 10 events over 30 days, 10 float features (1,000,000 rows),
ingested through the normal path. Each repeat is a full (non-incremental) run; an
incremental run after a small new batch is timed too.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftloop import Entity, Feature, FeatureView, Project, SimulatedClock, Source, use_clock
from driftloop.data.contract import Column, Contract

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 1, 31, tzinfo=UTC)
FEATURES = [f"f{i}" for i in range(10)]


def source_table(entities: int, per_entity: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = entities * per_entity
    start = int((NOW - timedelta(days=30)).timestamp() * 1e6)
    span = int(timedelta(days=30).total_seconds() * 1e6) - 1
    columns: dict[str, pa.Array] = {
        "entity_id": pa.array(np.repeat(np.arange(entities, dtype=np.int64), per_entity)),
        "event_time": pa.array(rng.integers(start, start + span, rows), pa.timestamp("us", "UTC")),
    }
    for name in FEATURES:
        columns[name] = pa.array(rng.normal(size=rows))
    return pa.table(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--per-entity", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    contract = Contract(
        event_time="event_time",
        columns=(
            Column("entity_id", "int64", nullable=False),
            Column("event_time", "timestamp", nullable=False),
            *(Column(name, "float") for name in FEATURES),
        ),
    )
    source = Source("events", contract=contract)
    view = FeatureView(
        "stats",
        entity=Entity("thing", keys={"entity_id": "int"}),
        source=source,
        features=[Feature(name, "float", default=0.0) for name in FEATURES],
    )
    with tempfile.TemporaryDirectory() as tmp, use_clock(SimulatedClock(NOW)) as sim:
        root = Path(tmp)
        (root / "driftloop.yaml").write_text("name: bench\noffline:\n  threads: 2\n")
        with Project(root) as project:
            project.apply(source, view)
            project.ingest("events", source_table(args.entities, args.per_entity))
            full = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                [result] = project.materialize(["stats"], until=NOW, full=True)
                full.append(time.perf_counter() - t0)
            written = result.entities
            assert isinstance(sim, SimulatedClock)
            sim.advance(timedelta(minutes=5))
            late = source_table(1000, 1, seed=9)
            project.ingest("events", late)
            t0 = time.perf_counter()
            [incremental] = project.materialize(["stats"], until=NOW + timedelta(minutes=5))
            incremental_s = time.perf_counter() - t0
            count = project.online.count(view.ref)  # type: ignore[attr-defined]
            keys = pa.table({"entity_id": [42]})
            refs = [f"stats:{name}" for name in FEATURES]
            latencies = []
            for _ in range(500):
                t0 = time.perf_counter_ns()
                project.get_online_features(keys, refs)
                latencies.append((time.perf_counter_ns() - t0) / 1e6)
    best = min(full)
    result_line = {
        "bench": "materialize",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}",
        "entities": args.entities,
        "source_rows": args.entities * args.per_entity,
        "features": len(FEATURES),
        "full_s_best": best,
        "full_s_all": full,
        "entities_written": written,
        "incremental_s": incremental_s,
        "incremental_entities": incremental.entities,
        "online_rows": count,
        "project_online_p50_ms": float(np.percentile(latencies, 50)),
        "project_online_p99_ms": float(np.percentile(latencies, 99)),
    }
    print(f"source rows              {args.entities * args.per_entity:,}")
    print(
        f"full materialize         {best:.3f} s for {written:,} entities x {len(FEATURES)} "
        f"features (target < 1 s; runs: {', '.join(f'{t:.3f}' for t in full)})"
    )
    print(f"incremental, 1,000 late  {incremental_s:.3f} s for {incremental.entities:,} entities")
    print(f"rows in the online store {count:,}")
    print(
        f"project.get_online_features, 1 entity: p50 "
        f"{result_line['project_online_p50_ms']:.3f} ms, p99 "
        f"{result_line['project_online_p99_ms']:.3f} ms (resolves the view in the metadata "
        "store on every call)"
    )
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "materialize.jsonl", "a") as fh:
        fh.write(json.dumps(result_line) + "\n")


if __name__ == "__main__":
    main()
