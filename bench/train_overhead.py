"""What driftloop adds around the fit itself, on a 1,000,000-row training set.

The label source holds 1,000,000 examples (customer, time, a 0/1 label); a feature
view gives 10 float features per customer (feature_pit.py's shape: 100,000 customers
x 10 rows), taken point in time for each example. The training step of the pipeline
is then timed piece by piece:

- prepare: read the labels known at as_of, build the point-in-time training set,
  split by time, encode to a float matrix (the training set is stored, as Parquet with
  its lineage, in a thread while the model fits);
- fit in the child: as the pipeline does, the fit server (a warm process that forks
  one child per fit) is started before prepare if it is not running yet, and imports
  scikit-learn and skops meanwhile; the matrices are handed over, the model is fitted
  (HistGradientBoosting, 100 iterations, no early stopping, 1 thread), saved with skops
  and loaded back by the parent; ``fit`` is the child's own time for
  ``estimator.fit`` alone;
- store + record: the artifact into the artifact store, the run record.

The overhead is everything in the training step except the fit; it is reported for
the first training of the process (which starts the fit server) and for the next ones
(best of the rest). Evaluation against a
champion (1,000 bootstrap resamples of the validation rows) is timed too, but it is a
step of its own with its own benchmark (evaluate.py).

    .venv/bin/python bench/train_overhead.py [--rows 1000000] [--repeat 3] [--max-iter 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

import feature_pit as shape
from driftloop import (
    Entity,
    Feature,
    FeatureView,
    Label,
    ModelSpec,
    Project,
    SimulatedClock,
    Source,
    TimeSplit,
    use_clock,
)
from driftloop.data.contract import Column, Contract
from driftloop.evaluation.compare import compare
from driftloop.features.store import FeatureContext
from driftloop.training import train as train_step
from driftloop.training.predict import predict

HERE = Path(__file__).resolve().parent


def _labels(rows: int, entities: int, seed: int = 5) -> pa.Table:
    frame = shape.make_entity_frame(rows, entities)
    rng = np.random.default_rng(seed)
    customer = frame.column("customer_id").to_numpy()
    # a label that depends on the customer, so the model has something to learn
    logit = -1.0 + 2.0 * np.sin(customer * 0.37) + rng.normal(0, 1, rows)
    return pa.table(
        {
            "customer_id": frame.column("customer_id"),
            "event_time": frame.column("__ts"),
            "label": pa.array(logit > 0),
        }
    )


def _summary(r: dict[str, float]) -> dict[str, float]:
    """The overheads of one repetition, rounded."""
    step = r["prepare_s"] + r["fit_in_child_s"] + r["store_s"]
    overhead = step - r["fit_s"]
    # given the training set: what driftloop adds around the fit once the 1M rows exist
    given = overhead - r["prepare_label_rows_s"] - r["prepare_training_set_s"]
    out = {
        **r,
        "child_overhead_s": r["fit_in_child_s"] - r["fit_s"],
        "training_step_s": step,
        "overhead_s": overhead,
        "overhead_of_fit": overhead / r["fit_s"],
        "given_s": given,
        "given_of_fit": given / r["fit_s"],
    }
    return {k: round(v, 4) for k, v in out.items()}


def _timed_store(ctx: FeatureContext, spec: ModelSpec, prepared: train_step.Prepared) -> float:
    t0 = time.perf_counter()
    train_step.store_training_set(ctx, spec, prepared)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--per-entity", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--max-iter", type=int, default=100, help="boosting iterations: a longer or shorter fit"
    )
    args = parser.parse_args()
    customer = Entity("customer", keys={"customer_id": "int"})
    stats = Source(
        "stats",
        contract=Contract(
            event_time="event_time",
            columns=(
                Column("customer_id", "int64", nullable=False),
                Column("event_time", "timestamp", nullable=False),
                *(Column(name, "float") for name in shape.FEATURES),
            ),
        ),
    )
    labels = Source(
        "labels",
        contract=Contract(
            event_time="event_time",
            columns=(
                Column("customer_id", "int64", nullable=False),
                Column("event_time", "timestamp", nullable=False),
                Column("label", "bool", nullable=False),
            ),
        ),
    )
    view = FeatureView(
        "customer_stats",
        entity=customer,
        source=stats,
        ttl=shape.TTL,
        features=[Feature(name, "float") for name in shape.FEATURES],
    )
    spec = ModelSpec(
        "bench",
        task="binary",
        features=["customer_stats:*"],
        label=Label("labels", "label", entity=customer),
        params={"max_iter": args.max_iter, "early_stopping": False},
        split=TimeSplit(fraction=0.1),
    )
    results: list[dict[str, float]] = []
    now = shape.START + shape.SPAN + timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp, use_clock(SimulatedClock(now)):
        root = Path(tmp)
        (root / "driftloop.yaml").write_text(f"name: bench\noffline:\n  threads: {shape.THREADS}\n")
        with Project(root) as project:
            project.apply(stats, labels, customer, view)
            project.ingest("stats", shape.make_source(args.entities, args.per_entity))
            project.ingest("labels", _labels(args.rows, args.entities))
            ctx = project._features()
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                # as the pipeline does: the child imports its libraries during prepare
                with train_step.start_child(spec) as child:
                    prepared = train_step.prepare(ctx, spec, store=False, child=child)
                    t1 = time.perf_counter()
                    # and the training set is stored while the model fits
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        saving = pool.submit(_timed_store, ctx, spec, prepared)
                        result = train_step.fit(spec, prepared, child)
                        store_set_s = saving.result()
                t2 = time.perf_counter()
                project.artifacts.put_bytes(result.artifact)
                t3 = time.perf_counter()
                pred = predict(result.model, prepared.X_valid, "binary")
                compare("binary", prepared.y_valid, pred, np.clip(pred * 0.9, 0, 1))
                t4 = time.perf_counter()
                results.append(
                    {
                        "prepare_s": t1 - t0,
                        "fit_in_child_s": t2 - t1,
                        "fit_s": result.duration_s,
                        "store_s": t3 - t2,
                        "store_training_set_s": store_set_s,
                        "evaluate_s": t4 - t3,
                        **{f"child_{k}_s": v for k, v in result.phases_s.items()},
                        **{f"prepare_{k}_s": v for k, v in prepared.phases_s.items()},
                        "train_rows": float(len(prepared.y_train)),
                        "valid_rows": float(len(prepared.y_valid)),
                    }
                )
            t0 = time.perf_counter()
            outcome = project.train(spec)
            pipeline_s = time.perf_counter() - t0
    cold = _summary(results[0])
    warm = _summary(min(results[1:] or results, key=lambda r: _summary(r)["overhead_s"]))
    record = {
        "bench": "train_overhead",
        "at": datetime.now(UTC).isoformat(),
        "rows": args.rows,
        "max_iter": args.max_iter,
        "repeat": args.repeat,
        "cold": cold,
        "warm": warm,
        "pipeline_s": round(pipeline_s, 3),
        "pipeline_fit_s": round(outcome.run.fit_seconds or 0.0, 3),
    }
    print(
        f"training set of {args.rows:,} rows ({int(warm['train_rows']):,} train, "
        f"{int(warm['valid_rows']):,} validation), HistGradientBoosting {args.max_iter} iterations"
    )
    for title, r in (
        ("first training in the process (fit server starts)", cold),
        ("next trainings (warm fit server), best", warm),
    ):
        print(
            f"{title}:\n"
            f"  prepare {r['prepare_s']:.2f} s: labels {r['prepare_label_rows_s']:.2f} s, "
            f"training set {r['prepare_training_set_s']:.2f} s, split + encode "
            f"{r['prepare_split_encode_s']:.2f} s\n"
            f"  fit in the child {r['fit_in_child_s']:.2f} s, of which the fit {r['fit_s']:.2f} s "
            f"(child overhead {r['child_overhead_s']:.2f} s: load {r['child_load_data_s']:.2f} s, "
            f"save {r['child_save_s']:.2f} s)\n"
            f"  store the training set (during the fit) {r['store_training_set_s']:.2f} s\n"
            f"  => around the fit, given the training set (split, encode, child, store): "
            f"{r['given_s']:.2f} s = {r['given_of_fit']:.1%} of the fit (target < 10%)\n"
            f"  => including building the training set: {r['overhead_s']:.2f} s = "
            f"{r['overhead_of_fit']:.1%} of the fit\n"
            f"  evaluation with 1,000 resamples (own step): {r['evaluate_s']:.2f} s"
        )
    print(f"whole Project.train (train + evaluate + register), warm: {pipeline_s:.2f} s")
    out = HERE / "results" / "train_overhead.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
