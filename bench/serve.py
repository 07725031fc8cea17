"""Prediction server benchmark (issue 5): driftloop serve against a bare Starlette reference.

    .venv/bin/python bench/serve.py [--quick] [--workdir DIR] [--duration S]
                                    [--only bare|relaxed|strict] [--json PATH]
                                    [--profile relaxed|strict]

The project (bench/_serve_project.py: 100,000 customers, two feature views with 10
features in all, 2 of them categorical, a binary HistGradientBoosting model promoted to
champion, features materialized into the default SQLite online store) is built once in
``--workdir`` (reused when it is already there) or in a temporary folder.

Each server runs in a child process, on a free loopback port, with 2 workers and
OMP_NUM_THREADS=1, and is stopped by its PID (SIGTERM, SIGKILL after 15 s):

- ``bare``: bench/_serve_bare.py, Starlette on uvicorn (uvloop, httptools), the same
  fitted model, the request carrying the 10 encoded feature values; nothing else;
- ``relaxed`` and ``strict``: ``driftloop --project DIR serve --workers 2
  --durability relaxed|strict``, the request carrying only the customer id (the server
  reads the features from the online store and logs every prediction).

For each server, after a 2 s warm-up:

1. maximum throughput with wrk (bench/serve_post.lua, one thread, ``--connections``
   open connections, ``--duration`` seconds, bodies cycling through 20,000 different
   customers for 1 instance per request and 2,000 x 100 for 100), for 1 and 100
   instances per request;
2. latency at a fixed rate (500 req/s with 1 instance, 100 req/s with 100) from an
   open-loop generator in its own process (``--load-child``: asyncio on uvloop, raw
   HTTP/1.1 keep-alive over a pool of 64 connections, each request's latency taken
   from its *scheduled* send time, so a stalled server is not hidden by coordinated
   omission; the generator's own lag and CPU use are reported, and the time requests
   waited for a free connection when all 64 had a request in flight).

The CPU time used by the server processes, by the load generator and by every other
process of the machine is read from /proc and getrusage, in cores (1.0 = one core busy):
the load generator and the server share the machine's cores, and another process's load
shows in the "other CPU" column (the server's own CPU is also kept by role: master,
workers, driftloop's log compactor). Before each run the benchmark waits (up to
``--quiet-wait`` s) until other processes use under ``--quiet-limit`` cores, and a run
that was disturbed anyway (other processes above the limit, or one worker doing most of
the work because the kernel handed it most of the connections) is run again, up to
``--retries`` times, keeping the least disturbed; the table's note says what disturbed
a row that was kept. Each driftloop server starts with an empty prediction log.
``--profile relaxed`` (repeatable) runs py-spy on that server's workers and compactor
under wrk load (1 and 100 instances) after its measurements and prints the hottest
functions.

Prints a Markdown table, the ratio of driftloop's to the bare maximum throughput, and
the largest difference between the scores both gave the same customers; ``--json PATH``
writes every figure (with each server's command, a sample answer and its log's tail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import _serve_project as proj

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
LUA = HERE / "serve_post.lua"
SERVERS = ("bare", "relaxed", "strict")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), depth first."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in map(int, text.split()):
            out.append(child)
            out.extend(_children(child))
    return out


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


class Server:
    """A server process we started, its port and the PIDs of its tree."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.log = log
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent
        )
        self.command = command
        self.ready_s = 0.0

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]

    def role(self, pid: int) -> str:
        """``master``, ``worker``, ``compactor`` (driftloop's log compactor), ``tracker``
        (multiprocessing's resource tracker) or ``other``."""
        if pid == self.process.pid:
            return "master"
        command = _cmd(pid)
        if "resource_tracker" in command:
            return "tracker"
        if "multiprocessing" in command:
            return "worker"
        return "compactor" if "compaction" in command else "other"

    def cpu_s(self) -> dict[int, float]:
        """CPU seconds used so far by each process of the server."""
        return {pid: _cpu_ticks([pid]) / CLK_TCK for pid in self.pids}

    def wait_ready(self, timeout: float = 180.0) -> float:
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/readyz"
        ok = 0
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited with {self.process.returncode}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    ok = ok + 1 if response.status == 200 else 0
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                ok = 0
            if ok >= 5:  # in a row, on new connections: every worker is up, most likely
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.name} server not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the server's PID, SIGKILL (to it and its leftover children) after
        ``timeout``; only processes this benchmark started."""
        tree = self.pids
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        deadline = time.monotonic() + 5
        for pid in tree[1:]:  # workers the server started, if it left any behind
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._out.close()
        return self.process.returncode


def start_server(name: str, project: Path, workdir: Path, workers: int) -> Server:
    port = free_port()
    log = workdir / f"server-{name}.log"
    if name == "bare":
        command = [sys.executable, str(HERE / "_serve_bare.py"), "--project", str(project)]
        command += ["--model", proj.MODEL, "--port", str(port), "--workers", str(workers)]
    else:
        command = [str(VENV_BIN / "driftloop"), "--project", str(project), "serve"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        command += ["--durability", name]
    return Server(name, command, port, log)


@contextlib.contextmanager
def running(name: str, project: Path, workdir: Path, workers: int) -> Iterator[Server]:
    server = start_server(name, project, workdir, workers)
    try:
        server.ready_s = server.wait_ready()
        yield server
    finally:
        server.stop()


def post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# -- wrk -------------------------------------------------------------------------------------


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def wait_quiet(server: Server | None, limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until processes other than ``server`` use under ``limit``
    cores over a 1 s sample; the last sample's figure."""
    deadline = time.monotonic() + max_wait
    while True:
        cpu0 = server.cpu_s() if server else {}
        busy, wall = _busy_s(), time.monotonic()
        time.sleep(1.0)
        wall = time.monotonic() - wall
        ours = _total(_cpu_delta(server, cpu0, server.cpu_s(), wall)) if server else 0.0
        other = (_busy_s() - busy) / wall - ours
        if other < limit or time.monotonic() > deadline:
            if other >= limit:
                print(f"  (busy machine: {other:.2f} cores used by other processes)", flush=True)
            return other


def _cpu_delta(
    server: Server, before: dict[int, float], after: dict[int, float], wall: float
) -> dict[str, list[float]]:
    """Cores used by the server's processes over ``wall`` seconds, by role."""
    out: dict[str, list[float]] = {}
    for pid, used in after.items():
        cores = round((used - before.get(pid, 0.0)) / wall, 3)
        out.setdefault(server.role(pid), []).append(cores)
    return out


def _total(by_role: dict[str, list[float]]) -> float:
    return sum(sum(v) for v in by_role.values())


def run_wrk(
    server: Server, path: str, bodies: Path, connections: int, duration: float
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}{path}"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout"]
    command += ["10s", "-s", str(LUA), url, "--", str(bodies)]
    cpu0, gen_cpu, busy, wall = server.cpu_s(), _children_cpu_s(), _busy_s(), time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - wall
    server_cpu, gen_cpu = (
        _cpu_delta(server, cpu0, server.cpu_s(), wall),
        _children_cpu_s() - gen_cpu,
    )
    busy = (_busy_s() - busy) / wall
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    errors = raw["errors"]
    non2xx = errors["status"]
    for line in done.stdout.splitlines():  # wrk's own count also covers 3xx
        if "Non-2xx or 3xx responses:" in line:
            non2xx = max(non2xx, int(line.rsplit(":", 1)[1]))
    return {
        "kind": "max",
        "connections": connections,
        "requests": raw["requests"],
        "req_s": raw["requests"] / raw["duration_s"],
        "p50_ms": raw["latency_ms"]["p50"],
        "p90_ms": raw["latency_ms"]["p90"],
        "p99_ms": raw["latency_ms"]["p99"],
        "max_ms": raw["latency_ms"]["max"],
        "non2xx": non2xx,
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "server_cpu_cores": _total(server_cpu),
        "server_cpu_by_role": server_cpu,
        "loadgen_cpu_cores": gen_cpu / wall,
        "other_cpu_cores": max(0.0, busy - _total(server_cpu) - gen_cpu / wall),
    }


# -- the fixed-rate, open-loop generator (runs in its own process) ---------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep = b"connection: close" not in lower
    at = lower.find(b"content-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at)
        await reader.readexactly(int(lower[at + 15 : end]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        keep = False
        await reader.read()
    return status, keep


async def _open_loop(config: dict[str, Any]) -> dict[str, Any]:
    host, port, path = "127.0.0.1", config["port"], config["path"]
    rate, duration, warmup = config["rate"], config["duration"], config["warmup"]
    bodies = [
        line.encode() for line in Path(config["bodies"]).read_text().splitlines() if line.strip()
    ]
    requests = [
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
    pool: asyncio.Queue[Conn | None] = asyncio.Queue()
    for _ in range(config["connections"]):
        pool.put_nowait(await asyncio.open_connection(host, port))
    total = int(rate * (warmup + duration))
    first_measured = int(rate * warmup)
    latency = np.full(total, np.nan)
    lag = np.full(total, np.nan)
    pool_wait = np.full(total, np.nan)
    status = np.zeros(total, dtype=np.int32)  # 0: no answer (connection error or timeout)
    failures: dict[str, int] = {}

    async def one(i: int, scheduled: float) -> None:
        lag[i] = clock() - scheduled  # the generator's own delay
        conn = await pool.get()  # waits while every connection has a request in flight
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            pool_wait[i] = clock() - scheduled - lag[i]
            writer.write(requests[i % len(requests)])
            code, keep = await asyncio.wait_for(_read_response(reader), config["timeout"])
            latency[i] = clock() - scheduled
            status[i] = code
            if not keep:
                writer.close()
                conn = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            if conn is not None:
                conn[1].close()
            conn = None
        finally:
            pool.put_nowait(conn)

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = clock() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    finished = clock()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn[1].close()
    if config.get("dump"):  # every request: scheduled time (s from start), latency, status
        offsets = np.arange(total) / rate - warmup
        np.savez(config["dump"], offset_s=offsets, latency_s=latency, status=status, lag_s=lag)
    ms = latency[first_measured:] * 1e3
    answered = ms[~np.isnan(ms)]
    codes = status[first_measured:]
    lag_ms = lag[first_measured:] * 1e3
    lag_ms = lag_ms[~np.isnan(lag_ms)]
    span = finished - (start + warmup)
    return {
        "kind": "rate",
        "rate": rate,
        "requests": len(ms),
        "answered": len(answered),
        "achieved_req_s": float(((codes >= 200) & (codes < 300)).sum() / span),
        "p50_ms": float(np.percentile(answered, 50)) if len(answered) else None,
        "p90_ms": float(np.percentile(answered, 90)) if len(answered) else None,
        "p99_ms": float(np.percentile(answered, 99)) if len(answered) else None,
        "max_ms": float(answered.max()) if len(answered) else None,
        "non2xx": int(((codes != 0) & ((codes < 200) | (codes >= 300))).sum()),
        "socket_errors": int((codes == 0).sum()),
        "failures": failures,
        "send_lag_p50_ms": float(np.percentile(lag_ms, 50)) if len(lag_ms) else None,
        "send_lag_p99_ms": float(np.percentile(lag_ms, 99)) if len(lag_ms) else None,
        "send_lag_max_ms": float(lag_ms.max()) if len(lag_ms) else None,
        "loadgen_cpu_cores_self": cpu / (finished - start),
        "pool_wait_p99_ms": float(np.nanpercentile(pool_wait[first_measured:], 99) * 1e3),
        "pool_wait_max_ms": float(np.nanmax(pool_wait[first_measured:]) * 1e3),
    }


def load_child(config_path: str) -> None:
    """Entry of the generator process: run the open loop, print its result as JSON."""
    import uvloop

    config = json.loads(Path(config_path).read_text())
    result = uvloop.run(_open_loop(config))
    print(json.dumps(result))


def run_rate(
    server: Server,
    path: str,
    bodies: Path,
    *,
    rate: float,
    duration: float,
    workdir: Path,
    connections: int = 64,
) -> dict[str, Any]:
    config = {
        "port": server.port,
        "path": path,
        "bodies": str(bodies),
        "rate": rate,
        "duration": duration,
        "warmup": min(2.0, duration / 5),
        "connections": connections,
        "timeout": 10.0,
    }
    config_path = workdir / "rate.json"
    config_path.write_text(json.dumps(config))
    command = [sys.executable, str(Path(__file__).resolve()), "--load-child", str(config_path)]
    cpu0, gen_cpu, busy, wall = server.cpu_s(), _children_cpu_s(), _busy_s(), time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.monotonic() - wall
    server_cpu, gen_cpu = (
        _cpu_delta(server, cpu0, server.cpu_s(), wall),
        _children_cpu_s() - gen_cpu,
    )
    busy = (_busy_s() - busy) / wall
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["connections"] = connections
    result["server_cpu_cores"] = _total(server_cpu)
    result["server_cpu_by_role"] = server_cpu
    result["loadgen_cpu_cores"] = gen_cpu / wall
    result["other_cpu_cores"] = max(0.0, busy - _total(server_cpu) - gen_cpu / wall)
    return result


# -- the benchmark ---------------------------------------------------------------------------


def bodies_files(
    project: Path, customers: int, workdir: Path, quick: bool
) -> dict[tuple[str, int], Path]:
    """(keyed|bare, instances) -> a file of JSON bodies, one a line."""
    counts = {1: 2_000 if quick else 20_000, 100: 200 if quick else 2_000}
    files = {}
    for instances, count in counts.items():
        keyed, bare = proj.request_bodies(project, customers, instances, count)
        for kind, bodies in (("keyed", keyed), ("bare", bare)):
            path = workdir / f"bodies-{kind}-{instances}.jsonl"
            path.write_bytes(b"\n".join(bodies) + b"\n")
            files[kind, instances] = path
    return files


def check_answers(server: Server, path: str, files: dict[tuple[str, int], Path]) -> dict[str, Any]:
    """One request of 1 and of 100 instances: status and the shape of the answer."""
    kind = "bare" if server.name == "bare" else "keyed"
    out: dict[str, Any] = {}
    for instances in (1, 100):
        body = files[kind, instances].read_bytes().split(b"\n", 1)[0]
        status, answer = post(server.port, path, body)
        text = json.dumps(answer)
        if status != 200:
            raise RuntimeError(f"{server.name}: {instances} instances -> {status}: {text[:2000]}")
        predictions = answer["predictions"]
        scores = [p if isinstance(p, float) else p["score"] for p in predictions]
        if len(scores) != instances:
            raise RuntimeError(f"{server.name}: {len(scores)} predictions for {instances}")
        out[str(instances)] = {"status": status, "answer": text[:400], "scores": scores}
    return out


def bench_server(
    name: str,
    project: Path,
    workdir: Path,
    files: dict[tuple[str, int], Path],
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    path = f"/v1/models/{proj.MODEL}/predict"
    kind = "bare" if name == "bare" else "keyed"
    rows: list[dict[str, Any]] = []
    logs = log_dirs(project) if name != "bare" else []
    for folder in logs:  # each server starts with an empty prediction log
        shutil.rmtree(folder, ignore_errors=True)
    with running(name, project, workdir, args.workers) as server:
        info: dict[str, Any] = {
            "command": server.command,
            "ready_s": round(server.ready_s, 2),
            "sample": check_answers(server, path, files),
        }
        print(f"{name}: ready in {info['ready_s']} s, pids {server.pids}", flush=True)
        run_wrk(server, path, files[kind, 1], 8, min(2.0, args.duration))  # warm-up
        run_wrk(server, path, files[kind, 100], 4, min(2.0, args.duration))

        def measure(run: Callable[[], dict[str, Any]], instances: int) -> None:
            """Run, again (up to --retries times) while the run was disturbed; keep the
            least disturbed."""
            tries: list[dict[str, Any]] = []
            for _ in range(1 + args.retries):
                wait_quiet(server, args.quiet_limit, args.quiet_wait)
                row = {"server": name, "instances": instances, **run()}
                row["disturbed"] = disturbed(row, args.quiet_limit)
                _progress(row)
                tries.append(row)
                if not row["disturbed"]:
                    break
            best = min(tries, key=lambda r: len(r["disturbed"]) + r["other_cpu_cores"])
            rows.append({**best, "attempts": len(tries)})

        for instances in (1, 100):
            bodies = files[kind, instances]
            for connections in args.connections:
                measure(
                    lambda b=bodies, c=connections: run_wrk(server, path, b, c, args.duration),
                    instances,
                )
        for instances, rate in ((1, args.rate_1), (100, args.rate_100)):
            bodies = files[kind, instances]
            measure(
                lambda b=bodies, r=rate: run_rate(
                    server, path, b, rate=r, duration=args.duration, workdir=workdir
                ),
                instances,
            )
        info["pids"] = server.pids
        if args.profile and name in args.profile:
            seconds = max(3, int(args.duration))
            info["profile"] = {
                str(n): profile(server, path, files[kind, n], workdir, seconds) for n in (1, 100)
            }
    info["exit_code"] = server.process.returncode
    info["logs"] = {str(folder): folder_size(folder) for folder in logs}
    info["log_tail"] = server.log.read_text(errors="replace")[-2000:]
    return rows, info


def log_dirs(project: Path) -> list[Path]:
    """The project's prediction and feedback logs (inside the project folder)."""
    from driftloop.core.config import load_config

    try:
        serving = load_config(project).serving
    except (AttributeError, ValueError):  # a driftloop without serving settings
        return []
    folders = [Path(serving.predictions).resolve(), Path(serving.feedback).resolve()]
    return [f for f in folders if f.is_relative_to(project.resolve())]


def folder_size(folder: Path) -> dict[str, int]:
    files = [p for p in folder.rglob("*.parquet") if p.is_file()]
    return {"parquet_files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def disturbed(row: dict[str, Any], limit: float) -> list[str]:
    """Why a run's figures are not the server's own: other processes' CPU use, or one
    worker doing most of the work (the kernel handed it most of the connections)."""
    why = []
    if row["other_cpu_cores"] > limit:
        why.append(f"other processes used {row['other_cpu_cores']:.2f} cores")
    workers = sorted(row["server_cpu_by_role"].get("worker", []))[-2:]
    if len(workers) == 2 and workers[1] > 0.7 and workers[0] < 0.5 * workers[1]:
        why.append(f"unbalanced workers ({workers[0]:.2f} and {workers[1]:.2f} cores)")
    return why


def profile(server: Server, path: str, bodies: Path, workdir: Path, seconds: int) -> dict[str, Any]:
    """py-spy (100 Hz, non-blocking, every thread) on each worker (and on driftloop's log
    compactor) while wrk (8 connections) loads the server; the folded stacks of the workers
    summed, and of the compactor (needs py-spy)."""
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if spy is None:
        return {"skipped": "py-spy is not installed (.venv/bin/pip install py-spy)"}
    targets = [p for p in server.pids if server.role(p) in ("worker", "compactor")]
    spies = []
    for pid in targets:
        out = workdir / f"profile-{server.name}-{bodies.stem}-{pid}.txt"
        command = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100"]
        command += ["--format", "raw", "--output", str(out), "--nonblocking"]
        spies.append(
            (
                server.role(pid),
                out,
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
            )
        )
    time.sleep(0.5)
    load = run_wrk(server, path, bodies, 8, seconds + 1)
    files: dict[str, list[Path]] = {}
    for role, out, spy_process in spies:
        try:
            spy_process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy_process.kill()
            spy_process.communicate()
        if out.is_file():
            files.setdefault(role, []).append(out)
    return {
        "load": load,
        "roles": {
            role: {"folded": [str(f) for f in paths], **summarize_folded(paths)}
            for role, paths in files.items()
        },
    }


_FRAMEWORK = ("starlette/", "uvicorn/", "asyncio/", "multiprocessing/", "threading.py", "<string>")


def summarize_folded(paths: list[Path], top: int = 25) -> dict[str, Any]:
    """The hottest functions of py-spy raw (folded) profiles: by own samples, and by the
    samples of the stacks they are in (without the server framework's frames), as
    percentages of all samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [_short(f) for f in stack.split(";")]
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in best]

    inside = {k: v for k, v in inclusive.items() if not any(f in k for f in _FRAMEWORK)}
    return {"samples": total, "self_pct": ranked(own), "inclusive_pct": ranked(inside)}


def _short(frame: str) -> str:
    """``function (/path/to/package/module.py:line)`` -> ``function (package/module.py)``."""
    name, _, where = frame.partition(" (")
    parts = Path(where.rstrip(")").rsplit(":", 1)[0]).parts
    for marker in ("site-packages", "src", "python3."):
        at = [i for i, part in enumerate(parts) if part.startswith(marker)]
        if at:
            return f"{name} ({'/'.join(parts[at[-1] + 1 :])})"
    return f"{name} ({'/'.join(parts[-3:] if parts[:1] == ('/',) else parts)})"


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _progress(row: dict[str, Any]) -> None:
    what = f"c={row['connections']}" if row["kind"] == "max" else f"{row['rate']:g} req/s"
    rate = row["req_s"] if row["kind"] == "max" else row["achieved_req_s"]
    print(
        f"  {row['server']:8} {row['instances']:>3} inst {what:>12}: {rate:8.0f} req/s "
        f"p50 {_fmt(row['p50_ms'])} ms p99 {_fmt(row['p99_ms'])} ms non-2xx {row['non2xx']} "
        f"socket errors {row['socket_errors']} "
        f"server cpu {row['server_cpu_cores']:.2f} {_roles(row['server_cpu_by_role'])} "
        f"loadgen cpu {row['loadgen_cpu_cores']:.2f} other cpu {row['other_cpu_cores']:.2f}",
        flush=True,
    )


def _roles(by_role: dict[str, list[float]]) -> str:
    return ", ".join(f"{k} {'/'.join(f'{v:.2f}' for v in vs)}" for k, vs in by_role.items())


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    lines = [
        "| server | mode | instances | load | req/s | p50 ms | p99 ms | max ms | errors "
        "| server CPU | loadgen CPU | other CPU | note |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        server = "bare" if r["server"] == "bare" else "driftloop"
        mode = "-" if r["server"] == "bare" else r["server"]
        if r["kind"] == "max":
            load, rate = f"wrk -c{r['connections']}", r["req_s"]
        else:
            load, rate = f"fixed {r['rate']:g}/s", r["achieved_req_s"]
        errors = r["non2xx"] + r["socket_errors"]
        lines.append(
            f"| {server} | {mode} | {r['instances']} | {load} | {_fmt(rate, 0)} "
            f"| {_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['max_ms'])} | {errors} "
            f"| {_fmt(r['server_cpu_cores'])} | {_fmt(r['loadgen_cpu_cores'])} "
            f"| {_fmt(r['other_cpu_cores'])} | {'; '.join(r.get('disturbed', []))} |"
        )
    if ratios:
        lines.append("")
        lines.append("driftloop / bare, best maximum throughput:")
        lines.extend(f"- {k}: {v:.2f}" for k, v in ratios.items())
    return "\n".join(lines)


def score_agreement(servers: dict[str, Any]) -> float | None:
    """The largest difference between the scores driftloop and the bare reference gave the
    first bodies (the same customers: keys for one, their served features for the other)."""
    if "bare" not in servers:
        return None
    worst = None
    for name, info in servers.items():
        if name == "bare":
            continue
        for instances, sample in info["sample"].items():
            reference = np.array(servers["bare"]["sample"][instances]["scores"], dtype=float)
            diff = float(np.max(np.abs(np.array(sample["scores"], dtype=float) - reference)))
            worst = diff if worst is None else max(worst, diff)
    return worst


def throughput_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    best: dict[tuple[str, int], float] = {}
    for r in rows:
        if r["kind"] == "max":
            key = (r["server"], r["instances"])
            best[key] = max(best.get(key, 0.0), r["req_s"])
    ratios = {}
    for mode in ("relaxed", "strict"):
        for instances in (1, 100):
            if (mode, instances) in best and ("bare", instances) in best:
                ratios[f"{mode}, {instances} instance(s)"] = (
                    best[mode, instances] / best["bare", instances]
                )
    return ratios


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def git_commit() -> str | None:
    """HEAD of the repository, with ``+dirty`` when src/ has uncommitted changes."""
    root = HERE.parent
    try:
        head = _git(root, "rev-parse", "--short", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--", "src")
    except OSError:
        return None
    return f"{head}+dirty" if dirty else head or None


RESULTS = Path(__file__).parent / "results" / "serve.jsonl"
SUMMARY_KEYS = ("bench", "at", "machine", "duration_s", "workers", "rows", "ratios")


def append_result(record: dict[str, Any]) -> None:
    """One JSON line per run in bench/results/serve.jsonl: the table and the ratios."""
    summary = {k: record[k] for k in SUMMARY_KEYS if k in record}
    summary["max_score_difference"] = record.get("max_score_difference")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(summary, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 customers, 3 s runs")
    parser.add_argument("--workdir", type=Path, help="build (or reuse) the project here")
    parser.add_argument("--duration", type=float, help="seconds per run (default 10, quick 3)")
    parser.add_argument("--only", choices=SERVERS, action="append", help="repeatable")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--labels", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="4,8", help="wrk connections, comma-separated")
    parser.add_argument("--rate-1", type=float, default=500.0)
    parser.add_argument("--rate-100", type=float, default=100.0)
    parser.add_argument(
        "--profile", action="append", choices=SERVERS, help="py-spy the workers of this server"
    )
    parser.add_argument(
        "--quiet-limit",
        type=float,
        default=0.25,
        help="before each run, wait until other processes use fewer cores than this",
    )
    parser.add_argument("--quiet-wait", type=float, default=300.0, help="for at most S seconds")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="run again when other processes used more than --quiet-limit cores, or one "
        "worker did most of the work; the least disturbed run is kept",
    )
    parser.add_argument("--load-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    customers = args.customers or (10_000 if args.quick else 100_000)
    labels = args.labels or (50_000 if args.quick else 200_000)
    args.connections = [int(c) for c in args.connections.split(",")]
    servers = [s for s in SERVERS if not args.only or s in args.only]

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-")))
        project = workdir / "project"
        info = proj.built(project)
        if info is None or info["customers"] != customers or info["labels"] != labels:
            if project.exists():
                shutil.rmtree(project)
            print(f"building the project in {project} ({customers:,} customers)...", flush=True)
            info = proj.build(project, customers, labels)
        print(
            f"project: {info['customers']:,} customers, model {info['model']} "
            f"v{info['champion']} (roc_auc {info['metrics'].get('roc_auc', 0):.3f}), "
            f"built {info['built_at']}",
            flush=True,
        )
        files = bodies_files(project, customers, workdir, args.quick)
        rows: list[dict[str, Any]] = []
        servers_info: dict[str, Any] = {}
        for name in servers:
            server_rows, servers_info[name] = bench_server(name, project, workdir, files, args)
            rows.extend(server_rows)
        ratios = throughput_ratios(rows)
        agreement = score_agreement(servers_info)
        record = {
            "bench": "serve",
            "at": datetime.now(UTC).isoformat(),
            "commit": git_commit(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "project": info,
            "duration_s": args.duration,
            "workers": args.workers,
            "rows": rows,
            "ratios": ratios,
            "max_score_difference": agreement,
            "servers": servers_info,
        }
        print()
        print(markdown(rows, ratios))
        if agreement is not None:
            print(f"\nlargest score difference, driftloop vs bare, same instances: {agreement:.2e}")
        for name, server_info in servers_info.items():
            for instances, run in server_info.get("profile", {}).items():
                for role, prof in run.get("roles", {}).items():
                    if prof["samples"] < 50:
                        continue
                    print(
                        f"\npy-spy, {name}, {instances} instance(s) per request, wrk -c8 "
                        f"({run['load']['req_s']:.0f} req/s), {role}s "
                        f"({prof['samples']} samples):"
                    )
                    print("  inclusive %:")
                    for frame, pct in prof["inclusive_pct"][:20]:
                        print(f"    {pct:5.1f}  {frame}")
                    print("  self %:")
                    for frame, pct in prof["self_pct"][:15]:
                        print(f"    {pct:5.1f}  {frame}")
        if args.json:
            args.json.write_text(json.dumps(record, indent=2) + "\n")
        append_result(record)


if __name__ == "__main__":
    main()
