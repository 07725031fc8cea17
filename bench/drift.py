"""Drift statistics benchmark (issue 6, first part): every statistic on every column.

    .venv/bin/python bench/drift.py [--rows 100000] [--repeat 3]

A reference and a current sample of ``--rows`` rows each, 20 numeric columns (normal,
lognormal and uniform) and 5 categorical ones (5 to 50 categories), drift injected in
5 columns (a 0.05-sd mean shift, a 10% scale change, a tail, a new category, a share
change). The references are fitted once (as they are at training time, untimed); the
timed part compares the current sample to them: Kolmogorov-Smirnov, Wasserstein,
chi-square (numeric: over the reference's bins), PSI and Jensen-Shannon for each
numeric column, chi-square, PSI and Jensen-Shannon for each categorical one. Prints
the best time of ``--repeat``, the peak RSS and which columns drifted by each
statistic; appends a JSON line to bench/results/drift.jsonl.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.monitoring.statistics import (
    CategoricalReference,
    NumericReference,
    chisquare,
    jensenshannon,
    numeric_statistics,
    psi,
)

RESULTS = Path(__file__).parent / "results" / "drift.jsonl"
DRIFTED = {"num_00", "num_01", "num_02", "cat_00", "cat_01"}


def samples(rows: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for i in range(20):
        kind = i % 3
        make = (
            (lambda n, shift=0.0, scale=1.0: rng.normal(shift, scale, n))
            if kind == 0
            else (lambda n, shift=0.0, scale=1.0: rng.lognormal(shift, scale, n))
            if kind == 1
            else (lambda n, shift=0.0, scale=1.0: rng.uniform(shift, shift + 10 * scale, n))
        )
        name = f"num_{i:02d}"
        reference[name] = make(rows)
        if name == "num_00":
            current[name] = make(rows, shift=0.05)  # subtle mean shift
        elif name == "num_01":
            current[name] = make(rows, scale=1.1)
        elif name == "num_02":
            values = make(rows)
            values[: rows // 50] = values.max() * 3  # a new tail
            current[name] = values
        else:
            current[name] = make(rows)
    for i in range(5):
        k = 5 + 10 * i
        cats = np.array([f"c{j}" for j in range(k)])
        shares = rng.dirichlet(np.ones(k))
        name = f"cat_{i:02d}"
        reference[name] = rng.choice(cats, rows, p=shares)
        if name == "cat_00":
            current[name] = np.concatenate(
                [rng.choice(cats, rows - rows // 20, p=shares), np.full(rows // 20, "new")]
            )
        elif name == "cat_01":
            current[name] = rng.choice(cats, rows, p=np.roll(shares, 1))
        else:
            current[name] = rng.choice(cats, rows, p=shares)
    return reference, current


def compare(refs: dict[str, Any], current: dict[str, Any]) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for name, ref in refs.items():
        cur = current[name]
        if isinstance(ref, NumericReference):
            results = list(numeric_statistics(ref, cur).values())
        else:
            results = [chisquare(ref, cur), psi(ref, cur), jensenshannon(ref, cur)]
        out[name] = {r.name: r.drifted for r in results}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reference, current = samples(args.rows, seed=0)
    refs: dict[str, Any] = {
        name: NumericReference.fit(values)
        if name.startswith("num")
        else CategoricalReference.fit(values)
        for name, values in reference.items()
    }
    times = []
    verdicts: dict[str, dict[str, bool]] = {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        verdicts = compare(refs, current)
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(times)
    print(f"{args.rows:,} x 25 columns, all statistics: best {best:.3f} s of {args.repeat}")
    print(f"peak RSS {peak_mib:.0f} MiB")
    for name, flags in verdicts.items():
        drifted = [s for s, d in flags.items() if d]
        mark = "(drift injected)" if name in DRIFTED else ""
        print(f"  {name}: {', '.join(drifted) or '-'} {mark}")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "drift",
            "at": datetime.now(UTC).isoformat(),
            "rows": args.rows,
            "seconds": best,
            "peak_rss_mib": peak_mib,
            "verdicts": verdicts,
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
