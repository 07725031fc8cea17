"""The prediction and feedback logs of a real ``driftloop serve`` survive what they promise.

- ``--durability strict``: a response is sent only once its record is fsynced, so after
  a SIGKILL of the whole server under load every acknowledged request is in the log,
  and the log holds no partial file (files appear by an atomic rename; a temporary file
  left behind is hidden and ignored by readers).
- ``--durability relaxed``: records are written within ``serving.flush_interval`` while
  the server runs, and a graceful stop (SIGTERM) writes everything acknowledged.

Clients send requests with unique ids from several threads, each request on a new
connection (answered by either worker), and record which ids were acknowledged.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from driftloop.project import Project
from driftloop.serving.compaction import live_files
from driftloop.serving.predictionlog import read_log

WAIT_S = 30.0
"""How long to wait for something that should happen much sooner (a loaded machine)."""
CUSTOMERS = [f"cu_{n:04d}" for n in range(1, 201)]
FLUSH_MARGIN_S = 1.0
"""Relaxed mode: a record is readable within serving.flush_interval plus this margin."""

Body = Callable[[str, int], dict[str, Any]]


def predict_body(request_id: str, n: int) -> dict[str, Any]:
    return {"keys": {"customer_id": CUSTOMERS[n % len(CUSTOMERS)]}}


def feedback_body(request_id: str, n: int) -> dict[str, Any]:
    return {"model": "fraud", "request_id": request_id, "label": n % 2}


@dataclass(frozen=True)
class Sent:
    request_id: str
    sent: float
    status: int | None  # None: no answer (connection refused or cut)


class Load:
    """Clients in threads posting to ``path`` until stopped, each request with a unique
    id (its x-request-id header; ``body`` may use it too), on a new connection."""

    def __init__(self, url: str, path: str, body: Body, *, clients: int = 6, name: str = "rq"):
        self.url = url + path
        self.body = body
        self._sent: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(f"{name}-{i}",), daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_S)

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    def acknowledged(self, status: int) -> set[str]:
        return {s.request_id for s in self.sent if s.status == status}

    def _run(self, name: str) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=WAIT_S, limits=limits) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                request_id = f"{name}-{n}"
                sent = time.monotonic()
                status = None
                try:
                    response = client.post(
                        self.url,
                        json=self.body(request_id, n),
                        headers={"x-request-id": request_id},
                    )
                    status = response.status_code
                except httpx.TransportError:  # the server was killed: no answer
                    time.sleep(0.01)
                with self._lock:
                    self._sent.append(Sent(request_id, sent, status))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> float:
    """Poll ``condition`` until it holds; the time it took. Fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


def kill(server: Any) -> float:
    """SIGKILL the whole server, and remove the metrics folder it can no longer remove
    (PROMETHEUS_MULTIPROC_DIR, found in its workers' environment); when it was killed."""
    folders = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _parent(entry) == server.pid:
                environ = (entry / "environ").read_bytes().split(b"\0")
                folders.update(
                    Path(v.split(b"=", 1)[1].decode())
                    for v in environ
                    if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
                )
        except OSError:  # a process that just went away
            continue
    killed = time.monotonic()
    server.stop(signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return killed


def _parent(process: Path) -> int:
    return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])


def log_roots(project_dir: Path) -> tuple[Path, Path, float]:
    """The prediction log, the feedback log and the flush interval (s) of a project."""
    with Project(project_dir) as project:
        serving = project.config.serving
        return serving.predictions, serving.feedback, serving.flush_interval.total_seconds()


def logged_ids(root: Path) -> Counter[str]:
    """How many records each request id has in the log at ``root`` (model fraud)."""
    table = read_log(root, "fraud")
    if "request_id" not in table.column_names:  # nothing written yet
        return Counter()
    return Counter(table.column("request_id").to_pylist())


def assert_whole_files(root: Path) -> None:
    """Every visible file of the log reads whole (none is partial), the log reads as
    the records of its live files (those not replaced by compaction), and a temporary
    file a kill leaves behind (hidden, half-written) is ignored by readers."""
    files = sorted(root.rglob("*.parquet"))
    assert files
    assert all(not p.name.startswith(".") for p in files)
    for path in files:
        pq.ParquetFile(path).read()  # raises on a truncated or corrupt file
    live = [p for partition in {f.parent for f in files} for p in live_files(partition)]
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in live)
    leftover = files[-1].parent / f".{files[-1].name}.tmp"
    leftover.write_bytes(files[-1].read_bytes()[:100])
    assert read_log(root, "fraud").num_rows == rows


def test_every_acknowledged_prediction_survives_a_sigkill_in_strict_mode(
    start_server: Callable[..., Any], served_project: Path
) -> None:
    """Strict mode, two workers, six clients: the whole server is SIGKILLed after about
    two seconds with requests in flight; every request answered 200 is in the log once
    (requests in flight may be too), and no file is partial."""
    predictions, _, _ = log_roots(served_project)
    server = start_server(served_project, "--workers", "2", "--durability", "strict")
    with Load(server.url, "/v1/models/fraud/predict", predict_body) as load:
        started = time.monotonic()
        wait_until(lambda: len(load.acknowledged(200)) >= 100, "100 acknowledged predictions")
        wait_until(lambda: time.monotonic() - started >= 2.0, "two seconds of load")
        killed = kill(server)

    acknowledged = load.acknowledged(200)
    assert {s.status for s in load.sent} <= {200, None}
    cut = [s for s in load.sent if s.sent < killed and s.status is None]
    assert cut, "no request was in flight when the server was killed"
    logged = logged_ids(predictions)
    missing = acknowledged - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions lost"
    assert all(logged[r] == 1 for r in acknowledged)
    assert_whole_files(predictions)


def test_every_acknowledged_label_survives_a_sigkill_in_strict_mode(
    start_server: Callable[..., Any], served_project: Path
) -> None:
    """Strict mode: labels posted to /v1/feedback and answered 202 are in the feedback
    log after a SIGKILL of the whole server under load."""
    _, feedback, _ = log_roots(served_project)
    server = start_server(served_project, "--workers", "2", "--durability", "strict")
    with Load(server.url, "/v1/feedback", feedback_body, clients=4, name="fb") as load:
        wait_until(lambda: len(load.acknowledged(202)) >= 100, "100 acknowledged labels")
        kill(server)

    acknowledged = load.acknowledged(202)
    assert {s.status for s in load.sent} <= {202, None}
    logged = logged_ids(feedback)
    missing = acknowledged - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged labels lost"
    assert_whole_files(feedback)


def test_relaxed_mode_writes_records_within_the_flush_interval_and_all_on_sigterm(
    start_server: Callable[..., Any],
    served_project: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Relaxed mode, two workers: a prediction's record can be read within
    serving.flush_interval (plus a margin) of its response while the server runs; after
    SIGTERM in the middle of a load every acknowledged prediction is in the log."""
    predictions, _, flush_interval = log_roots(served_project)
    server = start_server(served_project, "--workers", "2", "--durability", "relaxed")
    delays = []
    with httpx.Client(timeout=WAIT_S, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        for n in range(5):
            request_id = f"single-{n}"
            response = c.post(
                f"{server.url}/v1/models/fraud/predict",
                json=predict_body(request_id, n),
                headers={"x-request-id": request_id},
            )
            assert response.status_code == 200, response.text
            delays.append(
                wait_until(
                    lambda request_id=request_id: request_id in logged_ids(predictions),
                    f"the record of {request_id}",
                )
            )
    request.node.user_properties.append(("relaxed flush delays (s)", [round(d, 3) for d in delays]))
    assert max(delays) < flush_interval + FLUSH_MARGIN_S, delays

    with Load(server.url, "/v1/models/fraud/predict", predict_body) as load:
        wait_until(lambda: len(load.acknowledged(200)) >= 300, "300 acknowledged predictions")
        assert server.stop(signal.SIGTERM) == 0

    acknowledged = load.acknowledged(200)
    logged = logged_ids(predictions)
    missing = acknowledged - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions lost"
    assert all(logged[r] == 1 for r in acknowledged)
