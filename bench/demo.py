"""`driftloop demo` end to end: its wall time against the 5-minute target.

Runs the demo as `make demo` does (a fresh folder, the comparison included) and
reports the wall time, the stages' seconds from its summary and the loop's figures.
Appends a JSON line to bench/results/demo.jsonl.

    .venv/bin/python bench/demo.py [--from 2013-03-01] [--to 2014-01-01]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "demo.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2013-03-01")
    parser.add_argument("--to", dest="end", default="2014-01-01")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="driftloop-bench-demo-"))
    executable = Path(sys.executable).parent / "driftloop"
    command = [
        str(executable),
        "demo",
        "--folder",
        str(folder / "demo"),
        "--from",
        args.start,
        "--to",
        args.end,
        "--json",
    ]
    try:
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=True)
        seconds = time.perf_counter() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = json.loads(done.stdout)
    print(f"driftloop demo {args.start} .. {args.end}: {seconds:.0f} s wall (target < 300 s)")
    print(f"  stages: { {k: round(v, 1) for k, v in summary['seconds'].items()} }")
    print(
        f"  roc_auc: loop {summary['loop_overall']:.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in summary["compared_overall"].items() if v)
        + f"; runs {summary['counts']}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "demo",
            "at": datetime.now(UTC).isoformat(),
            "from": args.start,
            "to": args.end,
            "seconds": seconds,
            "stages": summary["seconds"],
            "loop_overall": summary["loop_overall"],
            "compared_overall": summary["compared_overall"],
            "counts": summary["counts"],
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
