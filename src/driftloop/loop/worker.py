"""``python -m driftloop.loop.worker``: one step of one pipeline run, in a child process.

The local executor starts it; it writes the step's result as JSON to ``--result``
(atomically) and exits 0, or writes ``{"error": ...}`` and exits 1. With ``--parent``
it ends itself when that process is gone (the controller was killed): the next
controller runs the step again, and the step is idempotent.

:func:`run_step` is the step itself, shared by every executor that runs steps out of
the controller's process: this worker and the Ray task
(:mod:`driftloop.loop.ray_executor`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["STEPS", "main", "run_step"]

STEPS = ("train",)
"""The steps a worker runs."""


def _watch(parent: int) -> None:
    def run() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)  # the controller is gone: leave the step to its successor
            time.sleep(0.2)

    threading.Thread(target=run, daemon=True, name="driftloop-parent-watch").start()


def _write(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, default=str))
    os.replace(tmp, path)


def run_step(project_root: str | os.PathLike[str], run_id: str, step: str) -> dict[str, Any]:
    """Run ``step`` of pipeline run ``run_id`` in the project at ``project_root``.

    Returns the step's result, or ``{"error": "<type>: <message>", "trace": ...}`` when
    it failed: a failure is the step's result, never an exception.
    """
    try:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r} (known: {', '.join(STEPS)})")
        from driftloop.loop import runs
        from driftloop.loop.steps import train_step
        from driftloop.project import Project

        with Project(project_root) as project:
            run = runs.get_run(project.store, run_id)
            return train_step(project.train, project.store, run.model, run.id)
    except Exception as exc:  # any failure is the step's result
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop.loop.worker")
    parser.add_argument("--project", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--step", required=True, choices=STEPS)
    parser.add_argument("--result", required=True)
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    if args.parent is not None:
        _watch(args.parent)
    body = run_step(args.project, args.run, args.step)
    _write(Path(args.result), body)
    return 1 if "error" in body else 0


if __name__ == "__main__":
    sys.exit(main())
