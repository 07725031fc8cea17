"""Online store benchmark: write 100,000 entities x 10 features, then read latency.

Targets (issue: online stores): in-process SQLite read p99 under 0.1 ms for 1
entity, 1.5 ms for 100 and 10 ms for 1,000; Redis on loopback p99 under 1 ms for
1 entity; writing 100,000 entities x 10 float features into SQLite well under 1 s.

    .venv/bin/python bench/online.py [--entities 100000] [--iterations 2000]

Each backend (memory, SQLite in a temporary file, and Redis when a redis-server
binary is found: started here on a free loopback port and ended by its PID) gets
a fresh view written twice (the first write inserts, the second upserts every
row), then ``read`` is timed with ``time.perf_counter_ns`` for batches of 1, 100
and 1,000 random known entities. Prints a table and appends a JSON line to
bench/results/online.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.features.online import OnlineStore, open_online_store

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 1, 15, tzinfo=UTC)
VIEW = "customer_stats@3f2a9c1b"
FEATURES = 10
BATCHES = (1, 100, 1000)


def make_table(entities: int, seed: int = 7) -> pa.Table:
    """``entities`` rows: an int64 key, an event time and 10 float features."""
    rng = np.random.default_rng(seed)
    start = int((NOW - timedelta(days=1)).timestamp() * 1e6)
    columns: dict[str, Any] = {
        "customer_id": pa.array(rng.permutation(entities).astype(np.int64) * 7 + 1000),
        "__event_time": pa.array(
            rng.integers(start, start + 86_400_000_000, entities), pa.timestamp("us", tz="UTC")
        ),
    }
    for i in range(FEATURES):
        columns[f"f{i}"] = pa.array(rng.normal(10 * i, 1 + i, entities))
    return pa.table(columns)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    """A redis-server on a free loopback port (its URL), or None without the binary."""
    binary = shutil.which(os.environ.get("DRIFTLOOP_REDIS_SERVER", "redis-server"))
    if binary is None:
        yield None
        return
    import redis

    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0?prefix=bench"
    finally:
        process.terminate()  # ends the server we started, by its own PID
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def time_reads(
    store: OnlineStore, keys: np.ndarray, batch: int, iterations: int, seed: int
) -> dict[str, float]:
    """p50, p99 and mean latency in ms of reading ``batch`` random known entities."""
    rng = np.random.default_rng(seed)
    requests = [
        pa.table({"customer_id": pa.array(rng.choice(keys, batch))})
        for _ in range(iterations + 100)
    ]
    for request in requests[:100]:  # warm up caches and prepared statements
        store.read(VIEW, request)
    samples = np.empty(iterations, dtype=np.int64)
    for i, request in enumerate(requests[100:]):
        started = time.perf_counter_ns()
        store.read(VIEW, request)
        samples[i] = time.perf_counter_ns() - started
    ms = samples / 1e6
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def bench_backend(url: str, table: pa.Table, iterations: int) -> dict[str, Any]:
    store = open_online_store(url)
    try:
        started = time.perf_counter()
        store.write(VIEW, ["customer_id"], table)
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        store.write(VIEW, ["customer_id"], table)
        upsert_s = time.perf_counter() - started
        keys = table.column("customer_id").to_numpy()
        result: dict[str, Any] = {
            "insert_s": insert_s,
            "upsert_s": upsert_s,
            "insert_entities_per_s": table.num_rows / insert_s,
            "upsert_entities_per_s": table.num_rows / upsert_s,
        }
        for batch in BATCHES:
            result[f"read_{batch}"] = time_reads(store, keys, batch, iterations, seed=batch)
        store.delete(VIEW)
        return result
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    table = make_table(args.entities)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["memory"] = bench_backend("memory://", table, args.iterations)
        results["sqlite"] = bench_backend(f"sqlite:///{tmp}/online.db", table, args.iterations)
        with redis_server(Path(tmp)) as url:
            if url is None:
                print("redis-server not found: Redis skipped", file=sys.stderr)
            else:
                results["redis"] = bench_backend(url, table, args.iterations)

    print(f"{args.entities:,} entities x {FEATURES} float features; {args.iterations} reads each")
    header = f"{'backend':8} {'insert/s':>10} {'upsert/s':>10}"
    header += "".join(f" {f'p50/p99 {b}':>18}" for b in BATCHES)
    print(header + "   (ms)")
    for name, r in results.items():
        line = f"{name:8} {r['insert_entities_per_s']:>10,.0f} {r['upsert_entities_per_s']:>10,.0f}"
        for b in BATCHES:
            read = r[f"read_{b}"]
            line += f" {read['p50_ms']:>8.3f}/{read['p99_ms']:<9.3f}"
        print(line)

    record = {
        "bench": "online",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "entities": args.entities,
        "features": FEATURES,
        "iterations": args.iterations,
        **results,
    }
    out = HERE / "results" / "online.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as file:
        file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
