"""A training set through the public API, on feature_pit.py's shape.

`Project.get_training_set` adds, around the point-in-time join that feature_pit.py
measures, everything a user gets: resolving the view, verifying the source blob's hash,
filling defaults, assembling the output in input order and (with store=True) writing
the result as Parquet into the artifact store with its lineage. This script times it
without and with storing, next to the hand-written DuckDB ASOF JOIN of the same data.

    .venv/bin/python bench/training_set.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

import feature_pit as shape
from driftloop import Entity, Feature, FeatureView, Project, SimulatedClock, Source, use_clock
from driftloop.data.contract import Column, Contract

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--per-entity", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    contract = Contract(
        event_time="event_time",
        columns=(
            Column("customer_id", "int64", nullable=False),
            Column("event_time", "timestamp", nullable=False),
            *(Column(name, "float") for name in shape.FEATURES),
        ),
    )
    source = Source("stats", contract=contract)
    view = FeatureView(
        "customer_stats",
        entity=Entity("customer", keys={"customer_id": "int"}),
        source=source,
        ttl=shape.TTL,
        features=[Feature(name, "float") for name in shape.FEATURES],
    )
    frame = shape.make_entity_frame(args.rows, args.entities)
    entity_rows = pa.table(
        {"customer_id": frame.column("customer_id"), "event_time": frame.column("__ts")}
    )
    refs = [f"customer_stats:{name}" for name in shape.FEATURES]
    times: dict[str, list[float]] = {"baseline": [], "unstored": [], "stored": []}
    with tempfile.TemporaryDirectory() as tmp, use_clock(SimulatedClock(datetime.now(UTC))):
        root = Path(tmp)
        (root / "driftloop.yaml").write_text(f"name: bench\noffline:\n  threads: {shape.THREADS}\n")
        with Project(root) as project:
            project.apply(source, view)
            version = project.ingest("stats", shape.make_source(args.entities, args.per_entity))
            path = project.artifacts.local_path(version.id)
            assert path is not None
            con = shape.connect()
            con.register("entity_rows", frame)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                shape.baseline(con, path)
                times["baseline"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                project.get_training_set(entity_rows, refs, store=False)
                times["unstored"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                result = project.get_training_set(entity_rows, refs)
                times["stored"].append(time.perf_counter() - t0)
            con.close()
    best = {k: min(v) for k, v in times.items()}
    line = {
        "bench": "training_set",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "source_rows": args.entities * args.per_entity,
        **{f"{k}_s": v for k, v in best.items()},
        "unstored_ratio": best["unstored"] / best["baseline"],
        "stored_ratio": best["stored"] / best["baseline"],
        "training_set_rows": result.table.num_rows,
    }
    print(f"hand-written ASOF JOIN              {best['baseline']:.3f} s")
    print(
        f"get_training_set(store=False)       {best['unstored']:.3f} s "
        f"({line['unstored_ratio']:.2f}x)"
    )
    print(
        f"get_training_set() (stored, lineage) {best['stored']:.3f} s ({line['stored_ratio']:.2f}x)"
    )
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "training_set.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
