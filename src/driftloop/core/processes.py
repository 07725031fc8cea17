"""A ``driftloop`` command run as a server in a child process, on a free loopback port.

The demo starts ``driftloop serve`` this way, the dashboard's tests and benchmark
``driftloop ui``: :class:`ChildServer` picks the port, starts the command in its own
process group with its output in a log file, waits until a URL answers 200, and
:meth:`ChildServer.stop` ends the group it started (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from driftloop.errors import BackendUnavailable

__all__ = ["ChildServer", "free_port"]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class ChildServer:
    """``driftloop -p PROJECT <args> --host 127.0.0.1 --port PORT`` in a child process,
    ready once ``ready`` (a path) answers 200. ``what`` names it in errors."""

    def __init__(
        self,
        project: Path,
        args: Sequence[str],
        *,
        log: Path,
        ready: str,
        what: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.what = what
        executable = Path(sys.executable).parent / "driftloop"
        command = [str(executable), "-p", str(project), *args]
        command += ["--host", LOOPBACK, "--port", str(self.port)]
        self.log_path = log
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(ready, timeout)

    def _answers(self, path: str) -> bool:
        try:
            return httpx.get(self.url + path, timeout=1).status_code == 200
        except httpx.HTTPError:  # not listening yet
            return False

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise BackendUnavailable(
                    self.what, self.url, f"exited at start; see {self.log_path}"
                )
            if self._answers(path):
                return
            time.sleep(0.1)
        self.stop()
        raise BackendUnavailable(
            self.what, self.url, f"not ready in {timeout:g} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """End the process group this server started, and close its log."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not self.log.closed:
            self.log.close()
