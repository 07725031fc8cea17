"""``driftloop serve``: the prediction server on uvicorn, with N worker processes.

Options override the project's ``serving.*`` settings; they reach the workers through
the settings' environment variables (each worker opens the project itself). With more
than one worker, Prometheus metrics are shared through a temporary folder
(``PROMETHEUS_MULTIPROC_DIR``) removed when the server stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from driftloop.cli.output import console, session
from driftloop.core.config import env_var

__all__ = ["serve"]

_METRICS_PREFIX = "driftloop-metrics-"


def _remove_stale_metrics() -> None:
    """Remove metrics folders left by servers that were killed (their pid is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*"):
        pid = folder.name.removeprefix(_METRICS_PREFIX).partition("-")[0]
        if not pid.isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue


def serve(
    ctx: typer.Context,
    *,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: serving.host].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port to listen on [default: serving.port]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes [default: serving.workers]."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="Inference (OpenMP/BLAS) threads per worker [default: serving.threads]."
        ),
    ] = None,
    durability: Annotated[
        str | None,
        typer.Option(
            help="Prediction log durability, strict or relaxed [default: serving.durability]."
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (debug, info, warning, error).")
    ] = "info",
) -> None:
    """Serve predictions over HTTP: /v1/models/{model}/predict, /v1/feedback, /v1/models,
    /healthz, /readyz, /metrics and /openapi.json (see docs/serving.md)."""
    import uvicorn

    if durability is not None and durability not in ("strict", "relaxed"):
        raise typer.BadParameter(
            f"{durability!r} is not strict or relaxed", param_hint="'--durability'"
        )
    project = session(ctx).project()
    overrides = {"serving.threads": threads, "serving.durability": durability}
    for key, value in overrides.items():
        if value is not None:
            os.environ[env_var(key)] = str(value)
    os.environ["DRIFTLOOP_PROJECT"] = str(project.root)
    config = project.config.serving
    host = host or config.host
    port = config.port if port is None else port
    workers = workers or config.workers
    threads = threads or config.threads
    # Set before any worker imports OpenMP or BLAS; threadpoolctl enforces it again.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    metrics_dir = None
    if workers > 1:
        _remove_stale_metrics()
        metrics_dir = tempfile.mkdtemp(prefix=f"driftloop-metrics-{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    models = len(project.deployments())
    console(stderr=True).print(
        f"serving {models} model{'s' * (models != 1)} of {project.root} on http://{host}:{port} "
        f"({workers} worker{'s' * (workers != 1)}, {threads} inference thread"
        f"{'s' * (threads != 1)} each, {durability or config.durability} prediction log)",
        soft_wrap=True,
    )
    project.close()
    # The logs' small files are merged by a process of their own, at a lower priority.
    compactor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftloop.serving.compaction",
            "--parent",
            str(os.getpid()),
            str(config.predictions),
            str(config.feedback),
        ]
    )
    try:
        uvicorn.run(
            "driftloop.ui.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    finally:
        compactor.terminate()
        try:
            compactor.wait(10)
        except subprocess.TimeoutExpired:
            compactor.kill()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
