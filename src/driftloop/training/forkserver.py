"""A warm process that forks one child per fit.

Starting Python and importing scikit-learn and skops takes about a second of CPU,
as long as a small fit itself. A :class:`FitServer` pays it once: it is started with
the thread settings of the fits it will run (``OMP_NUM_THREADS`` and friends must be
set before numpy and OpenMP load), imports the trainers' libraries, and then, for
each fit, forks a child that already has them. The server never starts a thread nor
runs a parallel region, so forking it is safe; each child is a fresh copy, so one
fit cannot leak state into the next.

The protocol is one line each way over the server's stdin and stdout::

    server -> parent   ready
    parent -> server   fit /tmp/driftloop-fit-xyz
    server -> parent   pid 12345
    server -> parent   exit 0          (or exit -9 when killed by a signal)

The child reads its request from the directory, writes ``report.json`` (and the
model) there, and its stderr goes to ``stderr.txt`` in the same directory. The parent
enforces the time limit by killing the child by its pid. One fit runs at a time per
server; servers are kept per (threads, preloaded modules) for the life of the parent
process and ended when it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from driftloop.errors import StateError

__all__ = ["FitServer", "FitTimeout", "get_server", "stop_servers"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_READY_TIMEOUT_S = 120.0


class FitTimeout(Exception):
    """The child ran past its time limit and was killed."""


class FitServer:
    """The parent's handle on one fork server (see the module docstring)."""

    def __init__(self, threads: int, preload: Sequence[str]) -> None:
        self.threads = threads
        self.preload = tuple(preload)
        env = dict(os.environ)
        env.update({variable: str(threads) for variable in THREAD_VARIABLES})
        # Fixed, so string hashing (set order) is the same in every fit.
        env["PYTHONHASHSEED"] = "0"
        self._log = tempfile.TemporaryFile(prefix="driftloop-fitserver-")  # noqa: SIM115 (kept open while the server runs)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "driftloop.training.forkserver", *self.preload],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            # unbuffered: select() on the pipe must see every line not yet read
            bufsize=0,
        )
        self._ready = False
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def _read_line(self, timeout: float | None) -> str | None:
        """The server's next line, or None when ``timeout`` passes first."""
        out = self._process.stdout
        assert out is not None
        if timeout is not None:
            readable, _, _ = select.select([out], [], [], max(timeout, 0.0))
            if not readable:
                return None
        line = out.readline()
        if not line:
            raise StateError(f"the fit server stopped unexpectedly: {self._stderr_tail()}")
        return line.decode().strip()

    def _stderr_tail(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip()
        return text[-2000:] or f"exit code {self._process.poll()}"

    def _wait_ready(self) -> None:
        if self._ready:
            return
        line = self._read_line(_READY_TIMEOUT_S)
        if line != "ready":
            raise StateError(f"the fit server did not start: {line or self._stderr_tail()}")
        self._ready = True

    def run(self, work: Path, timeout: float) -> int:
        """Fork a child for the request in ``work`` and wait for it, at most ``timeout``
        seconds from the hand-over; returns its exit code (negative: killed by a signal).

        Raises :class:`FitTimeout` after killing a child that ran too long.
        """
        with self._lock:
            self._wait_ready()
            stdin = self._process.stdin
            assert stdin is not None
            stdin.write(f"fit {work}\n".encode())
            stdin.flush()
            pid_line = self._read_line(_READY_TIMEOUT_S)
            if pid_line is None or not pid_line.startswith("pid "):
                raise StateError(f"the fit server did not fork a child: {pid_line}")
            pid = int(pid_line.split()[1])
            line = self._read_line(timeout)
            if line is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._read_line(_READY_TIMEOUT_S)  # the server reports the killed child
                raise FitTimeout(pid)
            return int(line.split()[1])

    def close(self) -> None:
        """Ask the server to stop (end of its input); kill it if it does not."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


_servers: dict[tuple[int, tuple[str, ...]], FitServer] = {}
_servers_lock = threading.Lock()
_owner = [os.getpid()]  # the process the servers in _servers belong to


def get_server(threads: int, preload: Sequence[str]) -> FitServer:
    """The running server for these settings, started (not awaited) if there is none."""
    key = (threads, tuple(preload))
    with _servers_lock:
        if os.getpid() != _owner[0]:  # a forked copy of the owner: start its own servers
            _servers.clear()
            _owner[0] = os.getpid()
        server = _servers.get(key)
        if server is not None and not server.alive:
            server.close()  # it died: reap it and release its pipes
            server = None
        if server is None:
            server = FitServer(threads, preload)
            _servers[key] = server
        return server


def stop_servers() -> None:
    """End every server this process started."""
    with _servers_lock:
        servers = list(_servers.values()) if os.getpid() == _owner[0] else []
        _servers.clear()
    for server in servers:
        server.close()


atexit.register(stop_servers)


# -- the server --------------------------------------------------------------


def _serve(preload: Sequence[str], commands: IO[bytes], replies: IO[bytes]) -> None:
    for module in preload:
        # a missing extra is reported by the fit itself, with its own error
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    from driftloop.training.fit import run_request

    replies.write(b"ready\n")
    replies.flush()
    for raw in commands:
        command, _, argument = raw.decode().strip().partition(" ")
        if command != "fit":
            continue
        work = Path(argument)
        pid = os.fork()
        if pid == 0:  # the child: run the request, never return into the loop
            code = 1
            try:
                _detach(work)
                run_request(work)
                code = 0
            finally:
                os._exit(code)
        replies.write(f"pid {pid}\n".encode())
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        replies.flush()


def _detach(work: Path) -> None:
    """Point the child's stdin at /dev/null and its stderr at ``work/stderr.txt``."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    err = os.open(work / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    os.close(devnull)
    os.close(err)


if __name__ == "__main__":
    # The replies go to the real stdout; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.argv[1:], sys.stdin.buffer, replies)
