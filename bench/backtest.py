"""Backtest cost: the flights example replayed in simulated time, per policy.

Writes the flights project with all of 2013, then backtests ``late`` from 1 March
(New York midnight) for ``--days`` days with the policies given, and reports each
policy's wall time, seconds per simulated day, runs and training seconds, with the
metric it served. Appends a JSON line to bench/results/backtest.jsonl.

    .venv/bin/python bench/backtest.py [--days 61] [--policy never,monthly,hybrid]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.examples.flights import create_flights_project
from driftloop.loop.backtest import policy_names, run_backtest

RESULTS = Path(__file__).parent / "results" / "backtest.jsonl"
START = datetime(2013, 3, 1, 5, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=61)
    parser.add_argument("--policy", default="never,monthly,hybrid")
    args = parser.parse_args()
    logging.getLogger("driftloop").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="driftloop-bench-backtest-"))
    try:
        with create_flights_project(folder / "flights", months=range(1, 13)) as project:
            began = time.perf_counter()
            result = run_backtest(
                project,
                "late",
                START,
                START + timedelta(days=args.days),
                policy_names([args.policy]),
                workdir=folder / "backtests",
            )
            total = time.perf_counter() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"late, {args.days} simulated days from {START:%Y-%m-%d}: {total:.1f} s in all")
    rows = []
    for r in result.results:
        per_day = r.seconds / args.days
        print(
            f"  {r.name:8} {r.seconds:6.1f} s ({per_day:.3f} s/day), {r.runs} runs, "
            f"{r.training_seconds:.1f} training s, roc_auc {r.overall:.4f}"
        )
        rows.append(
            {
                "policy": r.name,
                "seconds": r.seconds,
                "seconds_per_day": per_day,
                "runs": r.runs,
                "training_seconds": r.training_seconds,
                "roc_auc": r.overall,
                "predictions": r.predictions,
            }
        )
    print(f"peak RSS {peak_mib:.0f} MiB")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "backtest",
            "at": datetime.now(UTC).isoformat(),
            "days": args.days,
            "seconds": total,
            "policies": rows,
            "peak_rss_mib": peak_mib,
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
