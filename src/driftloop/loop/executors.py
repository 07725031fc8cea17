"""Where a pipeline run's steps execute: a small protocol, and the local executor.

The controller hands a step to an :class:`Executor` and polls the :class:`Job` it gets
back; it does not care where the step runs. :class:`LocalExecutor` (the default) runs
each step in a child process (``python -m driftloop.loop.worker``) that ends itself if
the controller dies; :class:`InlineExecutor` runs it in the calling thread (backtests,
tests). A Ray executor runs it as a Ray task (``executor: ray``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Executor", "InlineExecutor", "Job", "LocalExecutor", "StepFailed"]


class StepFailed(Exception):
    """A step ended with an error (its message is the step's)."""


class Job(Protocol):
    def poll(self) -> dict[str, Any] | None:
        """The step's result once it ended (raises :class:`StepFailed`), else None."""
        ...

    def cancel(self) -> None:
        """Stop the step (over its time budget, or the run was stopped)."""
        ...

    @property
    def elapsed(self) -> float:
        """Seconds since the step started."""
        ...


class Executor(Protocol):
    def submit(self, run_id: str, step: str) -> Job: ...


class _Done:
    def __init__(self, result: dict[str, Any] | None, error: str | None, seconds: float) -> None:
        self._result, self._error, self._seconds = result, error, seconds

    def poll(self) -> dict[str, Any] | None:
        if self._error is not None:
            raise StepFailed(self._error)
        return self._result

    def cancel(self) -> None:
        return None

    @property
    def elapsed(self) -> float:
        return self._seconds


class InlineExecutor:
    """Runs each step at once in the calling thread: ``steps[step](run_id)``."""

    def __init__(self, steps: dict[str, Callable[[str], dict[str, Any]]]) -> None:
        self.steps = steps

    def submit(self, run_id: str, step: str) -> Job:
        started = time.perf_counter()
        try:
            result = self.steps[step](run_id)
        except Exception as exc:  # the step's failure is its result
            return _Done(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        return _Done(result, None, time.perf_counter() - started)


class _ChildJob:
    def __init__(self, process: subprocess.Popen[bytes], result: Path) -> None:
        self.process = process
        self.result = result
        self.started = time.monotonic()

    def poll(self) -> dict[str, Any] | None:
        code = self.process.poll()
        if code is None:
            return None
        try:
            body: dict[str, Any] = json.loads(self.result.read_text())
        except (OSError, ValueError):
            raise StepFailed(f"the step's process ended with code {code} and no result") from None
        finally:
            self.result.unlink(missing_ok=True)
        if "error" in body:
            raise StepFailed(str(body["error"]))
        return body

    def cancel(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.process.wait()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class LocalExecutor:
    """Each step in a child process of its own process group, which ends itself when
    the controller's process is gone."""

    def __init__(self, project_root: Path, workdir: Path) -> None:
        self.project_root = Path(project_root)
        self.workdir = Path(workdir)

    def submit(self, run_id: str, step: str) -> Job:
        self.workdir.mkdir(parents=True, exist_ok=True)
        result = self.workdir / f"{run_id}-{step}-{os.getpid()}-{time.monotonic_ns()}.json"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftloop.loop.worker",
                "--project",
                str(self.project_root),
                "--run",
                run_id,
                "--step",
                step,
                "--result",
                str(result),
                "--parent",
                str(os.getpid()),
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        return _ChildJob(process, result)
