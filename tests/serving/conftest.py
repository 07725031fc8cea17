"""Fixtures for the serving tests: a trained example project, and real servers.

``served_template`` is the example project with ``fraud`` trained twice: version 1 on
the first batch (promoted to champion) and version 2 on both batches (registered, not
deployed), so the two versions give different scores. Its online store is
materialized.

``launch_server(project_dir, *args)`` runs ``driftloop serve`` in a subprocess (its
own process group) on a free loopback port and waits until ``/readyz`` answers 200.
``start_server`` starts servers for one test, ``module_servers`` servers shared by a
module, each on its own copy of the template (or of another project folder); both kill
what they started, by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from driftloop.cli.init import write_example
from driftloop.project import Project

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
DRIFTLOOP = [str(Path(sys.executable).parent / "driftloop")]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A ``driftloop serve`` subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    project_dir: Path
    log_path: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` to the server (the whole process group) and wait for it to exit."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.stopped = True
        return self.process.returncode


def launch_server(
    project_dir: Path, *args: str, env: dict[str, str] | None = None
) -> RunningServer:
    """Start ``driftloop serve`` on ``project_dir`` (its own process group, a free
    loopback port) and wait until /readyz answers 200; the log goes next to the project."""
    port = free_port()
    log_path = project_dir.parent / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *DRIFTLOOP,
                *("--project", str(project_dir), "serve"),
                *("--host", LOOPBACK, "--port", str(port), *args),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: stop() reaches the workers
        )
    server = RunningServer(process, f"http://{LOOPBACK}:{port}", project_dir, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"driftloop serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    pytest.fail(f"driftloop serve was not ready in {START_TIMEOUT_S}s:\n{server.log()}")


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Start servers on given project folders; each is killed at the end of the test."""
    started: list[RunningServer] = []

    def start(project_dir: Path, *args: str, env: dict[str, str] | None = None) -> RunningServer:
        started.append(launch_server(project_dir, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        if not server.stopped:
            server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def module_servers(
    served_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RunningServer]]:
    """Start servers shared by a module, each on its own copy of the served project (or
    of another ``template``); they are killed after the module."""
    started: list[RunningServer] = []

    def start(
        *args: str, env: dict[str, str] | None = None, template: Path | None = None
    ) -> RunningServer:
        source = served_template if template is None else template
        folder = Path(shutil.copytree(source, tmp_path_factory.mktemp("served") / "shop"))
        started.append(launch_server(folder, *args, env=env))
        return started[-1]

    yield start
    for server in started:
        if not server.stopped:
            server.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project: fraud v1 (champion, first batch) and v2 (both batches)."""
    folder = tmp_path_factory.mktemp("served") / "shop"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        first = project.train("fraud", promote=True)
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
        second = project.train("fraud")
        assert (first.version.version, second.version.version) == (1, 2)
        assert first.version.artifact_digest != second.version.artifact_digest
        project.materialize()
    return folder


@pytest.fixture
def served_project(served_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the served template (its own metadata, logs and online store)."""
    return Path(shutil.copytree(served_template, tmp_path / "shop"))
