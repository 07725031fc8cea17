"""``python -m driftloop.loop.worker``: one step of one pipeline run, in a child process.

The local executor starts it; it writes the step's result as JSON to ``--result``
(atomically) and exits 0, or writes ``{"error": ...}`` and exits 1. With ``--parent``
it ends itself when that process is gone (the controller was killed): the next
controller runs the step again, and the step is idempotent.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop.loop.worker")
    parser.add_argument("--project", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--step", required=True, choices=["train"])
    parser.add_argument("--result", required=True)
    parser.add_argument("--parent", type=int)
    args = parser.parse_args(argv)
    if args.parent is not None:
        _watch(args.parent)
    result = Path(args.result)
    try:
        from driftloop.loop import runs
        from driftloop.loop.steps import train_step
        from driftloop.project import Project

        with Project(args.project) as project:
            run = runs.get_run(project.store, args.run)
            body = train_step(project.train, project.store, run.model, run.id)
        _write(result, body)
        return 0
    except Exception as exc:  # any failure is the step's result
        _write(result, {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        return 1


if __name__ == "__main__":
    sys.exit(main())
