"""The Ray executor (``executor: ray``): each step of a pipeline run as a Ray task.

The task is :func:`driftloop.loop.worker.run_step` — the same code a local child
process runs: it opens the project, finds the run and calls
:func:`~driftloop.loop.steps.train_step`. So the **project folder and the metadata
store must be reachable from every Ray worker** at the same path: a cluster on one
machine, or the project on shared storage with a PostgreSQL metadata store (SQLite is
only safe within one machine) and a shared artifact store.

Ray is an optional extra (``pip install 'driftloop[ray]'``), imported when a
:class:`RayExecutor` is made, never by ``import driftloop``. The controller uses it
with ``driftloop run --executor ray [--ray-address ADDR]`` or::

    controller = project.controller(executor="ray", ray_address="auto")
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

from driftloop.errors import InputError, MissingExtraError
from driftloop.loop.executors import Job, StepFailed
from driftloop.loop.worker import run_step

__all__ = ["RayExecutor"]

_CANCEL_WAIT_S = 30.0
"""How long :meth:`_RayJob.cancel` waits for Ray to report the task ended."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("the Ray executor", extra="ray", package="ray") from None
    return ray


@functools.cache
def _remote_step() -> Any:
    """``run_step`` as a Ray remote function, made once per process. Ray does not retry
    it (``max_retries=0``): the controller counts failed attempts itself."""
    ray = _import_ray()
    return ray.remote(num_cpus=1, max_retries=0)(run_step)


def _reason(exc: BaseException) -> str:
    """What a Ray error says, on one line (``TaskCancelledError`` says nothing)."""
    cause = getattr(exc, "cause", None)  # RayTaskError: the exception raised in the task
    shown = cause if isinstance(cause, BaseException) else exc
    lines = str(shown).strip().splitlines()
    return f"{type(shown).__name__}: {lines[0]}" if lines else type(shown).__name__


class _RayJob:
    def __init__(self, ray: Any, ref: Any) -> None:
        self._ray = ray
        self._ref = ref
        self._started = time.monotonic()

    def poll(self) -> dict[str, Any] | None:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if not ready:
            return None
        try:
            body: dict[str, Any] = self._ray.get(self._ref)
        except self._ray.exceptions.RayError as exc:  # cancelled, or its worker died
            raise StepFailed(f"the Ray task ended without a result: {_reason(exc)}") from None
        if "error" in body:
            raise StepFailed(str(body["error"]))
        return body

    def cancel(self) -> None:
        """Kill the task's worker process (and the processes it started, which share
        its process group), then wait for Ray to report the task ended."""
        self._ray.cancel(self._ref, force=True)
        self._ray.wait([self._ref], timeout=_CANCEL_WAIT_S)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


class RayExecutor:
    """Each step as a Ray task on the cluster at ``address``.

    ``address=None`` starts a local Ray cluster for this process, which ends with it
    (or joins the one ``RAY_ADDRESS`` names), with ``num_cpus`` CPUs (default: all);
    ``"auto"`` joins the cluster started on this machine with ``ray start --head``;
    ``"host:port"`` joins that cluster's head (with Ray's token authentication, an
    explicit address also needs ``RAY_AUTH_MODE=token`` and the cluster's token). The
    connection is made once per process: a process already connected to Ray keeps its
    cluster. See the module doc for what the workers must reach.
    """

    def __init__(
        self,
        project_root: str | os.PathLike[str],
        *,
        address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        if address is not None and num_cpus is not None:
            raise InputError("num_cpus is for a local Ray cluster; it cannot go with an address")
        self._ray = _import_ray()
        if not self._ray.is_initialized():
            if address is None:
                self._ray.init(
                    num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING
                )
            else:
                self._ray.init(address=address)

    def submit(self, run_id: str, step: str) -> Job:
        ref = _remote_step().remote(str(self.project_root), run_id, step)
        return _RayJob(self._ray, ref)
