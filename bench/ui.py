"""Dashboard pages on a large project: 100 model versions and 10,000 monitoring windows.

Builds an empty project, registers one model with ``--versions`` versions (and a
champion), records ``--windows`` hourly monitoring windows of 26 drifted-or-not columns
with their operational, performance and quality figures, ingests the example's two
clean batches, then starts ``driftloop ui`` and times
each page's first answer (a fresh process: nothing cached) and then the best of
``--repeat``. Appends a JSON line to bench/results/ui.jsonl.

    .venv/bin/python bench/ui.py [--versions 100] [--windows 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from driftloop import Project
from driftloop.cli.init import write_example
from driftloop.core.processes import ChildServer, free_port
from driftloop.monitoring import series
from driftloop.monitoring.series import MetricValue

RESULTS = Path(__file__).parent / "results" / "ui.jsonl"
PAGES = (
    "/ui/",
    "/ui/models/fraud",
    "/ui/models/fraud/monitoring",
    "/ui/runs",
    "/ui/data",
    "/ui/sources/transactions",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def populate(root: Path, versions: int, windows: int) -> None:
    write_example(root)
    rng = np.random.default_rng(0)
    with Project(root) as project:
        project.apply()
        for batch in ("transactions-1.csv", "transactions-2.csv"):
            project.ingest("transactions", root / "data" / batch)
        for v in range(1, versions + 1):
            project.register_model(
                "fraud",
                artifact_digest=f"{v:064x}",
                flavor="sklearn",
                metrics={"roc_auc": float(rng.uniform(0.7, 0.9)), "log_loss": 0.3},
                tags={"verdict": "pass"},
            )
        project.set_alias("fraud", "champion", versions)
        columns = [f"feature.x{i}" for i in range(25)] + ["prediction"]
        for i in range(windows):
            start = T0 + timedelta(hours=i)
            values = rng.uniform(0, 0.3, len(columns))
            metrics = [
                MetricValue(
                    "drift.value",
                    float(value),
                    column,
                    details={
                        "threshold": 0.1,
                        "drifted": bool(value > 0.1),
                        "statistic": "wasserstein",
                    },
                )
                for column, value in zip(columns, values, strict=True)
            ]
            metrics += [
                MetricValue("drift.share", float((values > 0.1).mean())),
                MetricValue("requests", 500.0, version=versions),
                MetricValue("latency.p50", float(rng.uniform(1, 3)), version=versions),
                MetricValue("latency.p99", float(rng.uniform(5, 9)), version=versions),
                MetricValue("error_rate", 0.0, version=versions),
                MetricValue("performance.roc_auc", float(rng.uniform(0.7, 0.8))),
                MetricValue("quality.missing_rate", 0.0),
            ]
            metrics += [
                MetricValue("quality.null_rate", float(rng.uniform(0, 0.01)), column)
                for column in columns[:-1]
            ]
            series.record_window(
                project.store,
                model="fraud",
                against="reference",
                start=start,
                end=start + timedelta(hours=1),
                rows=500,
                version=versions,
                reference={},
                metrics=metrics,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="driftloop-bench-ui-"))
    root = folder / "shop"
    began = time.perf_counter()
    populate(root, args.versions, args.windows)
    print(f"populated in {time.perf_counter() - began:.1f} s")
    # the overview asks a prediction server's health: here one that is not running
    nowhere = f"http://127.0.0.1:{free_port()}"
    server = ChildServer(
        root,
        ["ui", "--server", nowhere],
        log=folder / "ui.log",
        ready="/ui/static/ui.js",
        what="dashboard",
    )
    url = server.url
    figures: dict[str, dict[str, float]] = {}
    try:
        for page in PAGES:
            times = []
            for _ in range(1 + args.repeat):
                started = time.perf_counter()
                response = httpx.get(url + page, timeout=60)
                times.append(time.perf_counter() - started)
                response.raise_for_status()
            figures[page] = {
                "first_s": times[0],
                "best_s": min(times[1:]),
                "bytes": len(response.content),
            }
            print(
                f"{page:32} first {times[0] * 1000:6.0f} ms, then best {min(times[1:]) * 1000:6.0f}"
                f" ms, {len(response.content):,} bytes"
            )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "ui",
            "at": datetime.now(UTC).isoformat(),
            "versions": args.versions,
            "windows": args.windows,
            "pages": figures,
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
