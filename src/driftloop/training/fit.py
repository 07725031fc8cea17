"""Fitting a model in a child process, with a time limit, a memory cap and a run record.

The parent writes ``X`` and ``y`` to a temporary directory and hands it to a child
forked from a warm fit server (:mod:`driftloop.training.forkserver`), which was
started with ``OMP_NUM_THREADS`` and friends set, so they hold for numpy and OpenMP,
and has scikit-learn and skops imported already. The child applies ``RLIMIT_AS`` when
a memory cap is given, fits, saves the model with its flavor and writes the bytes plus
a small JSON report back to the directory; the parent kills it by its pid past the
time limit. The parent never unpickles anything: the model is loaded from the
flavor's bytes.

::

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> result = fit_in_child("logistic_regression", X, np.array([0, 0, 1, 1]), task="binary")
    >>> result.flavor
    'sklearn'
    >>> result.model.predict([[0.5], [2.5]]).tolist()
    [0, 1]
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import pickle
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.errors import StateError
from driftloop.training.flavors import flavor_for, get_flavor
from driftloop.training.forkserver import FitTimeout, get_server

__all__ = [
    "BUILTIN_TRAINERS",
    "TASKS",
    "FitChild",
    "FitResult",
    "fit_in_child",
    "preload_for",
]

TASKS = ("binary", "multiclass", "regression")
"""The tasks a builtin trainer knows: binary and multiclass give classifiers."""

Trainer = Callable[[np.ndarray, np.ndarray, dict[str, Any]], object]
Builder = Callable[[str, Mapping[str, Any], int], object]

_VERSIONED = ("numpy", "scikit-learn", "pyarrow")
_DEFINITIONS_PREFIX = "_driftloop_definitions_"


@dataclass(frozen=True)
class FitResult:
    """A model fitted in a child process, and how the fit went."""

    model: object
    """The fitted model, loaded back from :attr:`artifact` by its flavor."""
    flavor: str
    artifact: bytes
    """The saved bytes; the same for the same deterministic training."""
    duration_s: float
    peak_memory_mb: float
    """The child's maximum resident set size."""
    library_versions: dict[str, str]
    seed: int
    phases_s: dict[str, float] = field(default_factory=dict)
    """Seconds the child spent importing, waiting for data, loading it, fitting, saving."""


def _is_classifier(task: str) -> bool:
    if task not in TASKS:
        raise StateError(
            f"unknown training task {task!r}; expected one of {', '.join(TASKS)}", task=task
        )
    return task != "regression"


def _hist_gradient_boosting(task: str, params: Mapping[str, Any], seed: int) -> object:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if _is_classifier(task):
        return HistGradientBoostingClassifier(random_state=seed, **params)
    return HistGradientBoostingRegressor(random_state=seed, **params)


def _logistic_regression(task: str, params: Mapping[str, Any], seed: int) -> object:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    if _is_classifier(task):
        return LogisticRegression(random_state=seed, **params)
    return LinearRegression(**params)


def _lightgbm(task: str, params: Mapping[str, Any], seed: int) -> object:
    import lightgbm

    settings: dict[str, Any] = {
        "random_state": seed,
        "deterministic": True,
        "n_jobs": 1,
        "verbose": -1,
    }
    settings.update(params)
    if _is_classifier(task):
        return lightgbm.LGBMClassifier(**settings)
    return lightgbm.LGBMRegressor(**settings)


def _xgboost(task: str, params: Mapping[str, Any], seed: int) -> object:
    import xgboost

    settings: dict[str, Any] = {"random_state": seed, "n_jobs": 1, "tree_method": "hist"}
    settings.update(params)
    if _is_classifier(task):
        return xgboost.XGBClassifier(**settings)
    return xgboost.XGBRegressor(**settings)


BUILTIN_TRAINERS: dict[str, Builder] = {
    "hist_gradient_boosting": _hist_gradient_boosting,
    "lightgbm": _lightgbm,
    "logistic_regression": _logistic_regression,
    "xgboost": _xgboost,
}
"""Builders ``(task, params, seed) -> estimator``; lightgbm and xgboost run single-threaded."""


def _trainer_spec(trainer: str | Trainer) -> dict[str, str]:
    """How the child finds ``trainer``: a builtin name, or a module and qualified name."""
    if isinstance(trainer, str):
        if trainer not in BUILTIN_TRAINERS:
            raise StateError(
                f"unknown builtin trainer {trainer!r}; "
                f"expected one of {', '.join(sorted(BUILTIN_TRAINERS))}",
                trainer=trainer,
            )
        return {"builtin": trainer}
    module = getattr(trainer, "__module__", None)
    qualname = getattr(trainer, "__qualname__", repr(trainer))
    if module is not None and module.startswith(_DEFINITIONS_PREFIX) and "<" not in qualname:
        # a project's definitions module is loaded from its file, not imported by name
        return {"file": inspect.getfile(trainer), "qualname": qualname}
    problem = None
    if module is None or module == "__main__" or "<" in qualname:
        problem = "it is a lambda, a local function or defined in __main__"
    else:
        try:
            pickle.dumps(trainer)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            problem = str(exc)
    if problem is not None:
        raise StateError(
            f"the trainer {qualname} cannot be run in a child process: {problem}; "
            "define it as a module-level function in an importable module",
            trainer=qualname,
        )
    return {"module": str(module), "qualname": qualname}


_PRELOAD: dict[str, tuple[str, ...]] = {
    "hist_gradient_boosting": ("sklearn.ensemble", "skops.io"),
    "logistic_regression": ("sklearn.linear_model", "skops.io"),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost",),
}


def preload_for(trainer: str | Trainer) -> tuple[str, ...]:
    """The modules a child should import before its data arrives, for ``trainer``."""
    if isinstance(trainer, str):
        return _PRELOAD.get(trainer, ())
    return ("skops.io",)


class FitChild:
    """One fit in a child process, whose server may be started before the data is ready.

    The child is forked from a warm :class:`~driftloop.training.forkserver.FitServer`
    (started on first use with these thread settings and preloaded modules, then kept);
    creating a FitChild starts that server if needed without waiting for it, so it
    imports its libraries while the parent builds the training set. Use it as a context
    manager: leaving the block removes its working directory.
    """

    def __init__(self, *, threads: int = 1, seed: int = 0, preload: Sequence[str] = ()) -> None:
        self.threads = threads
        self.seed = seed
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._matrix: np.ndarray | None = None
        self._server = get_server(threads, preload)
        # This process loads the fitted model with the same libraries: import them now,
        # in the background, while the data is prepared (Arrow and DuckDB release the GIL).
        threading.Thread(target=_import_quietly, args=(tuple(preload),), daemon=True).start()
        self._used = False

    def __enter__(self) -> FitChild:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _work(self, nbytes: int) -> Path:
        """The hand-over directory, made on first use (in shared memory when it fits)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="driftloop-fit-", dir=_scratch(nbytes))
        return Path(self._tmp.name)

    def matrix(self, rows: int, columns: int) -> np.ndarray:
        """A float64 ``(rows, columns)`` column-major matrix that is already the hand-over
        file: fill it and pass it to :meth:`fit` as ``X``, and it is not copied again."""
        path = self._work(rows * columns * 8) / "X.npy"
        self._matrix = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float64, shape=(rows, columns), fortran_order=True
        )
        return self._matrix

    def close(self) -> None:
        """Remove the working directory (the server stays for the next fit)."""
        if self._tmp is not None:
            self._tmp.cleanup()

    def fit(
        self,
        trainer: str | Trainer,
        X: np.ndarray,
        y: np.ndarray,
        *,
        task: str,
        params: dict[str, Any] | None = None,
        time_limit_s: float = 600,
        memory_limit_mb: int | None = None,
        trust_pickle: bool = False,
    ) -> FitResult:
        """Hand the child ``X``/``y`` and the trainer, wait for the fit, load the model.

        The time limit counts from the hand-over. See :func:`fit_in_child`.
        """
        if self._used:
            raise StateError("a FitChild fits once; start another for the next fit")
        self._used = True
        _is_classifier(task)
        spec = _trainer_spec(trainer)
        name = spec.get("builtin") or f"{spec.get('module', spec.get('file'))}.{spec['qualname']}"
        work = self._work(np.asarray(X).nbytes + np.asarray(y).nbytes)
        if X is not self._matrix:  # else the caller filled the hand-over file in place
            np.save(work / "X.npy", np.asarray(X), allow_pickle=False)
        elif isinstance(X, np.memmap):
            X.flush()
        np.save(work / "y.npy", np.asarray(y), allow_pickle=False)
        request = {
            "trainer": spec,
            "task": task,
            "params": params or {},
            "seed": self.seed,
            "memory_limit_mb": memory_limit_mb,
            "trust_pickle": trust_pickle,
        }
        (work / "request.json").write_text(json.dumps(request))
        try:
            returncode = self._server.run(work, time_limit_s)
        except FitTimeout:
            raise StateError(
                f"training {name} exceeded its time limit of {time_limit_s:g} s",
                trainer=name,
                time_limit_s=time_limit_s,
            ) from None
        stderr_path = work / "stderr.txt"
        stderr = stderr_path.read_bytes() if stderr_path.exists() else b""
        report_path = work / "report.json"
        report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
        return _result(
            name,
            report,
            returncode=returncode,
            stderr=stderr,
            work=work,
            memory_limit_mb=memory_limit_mb,
            seed=self.seed,
            trust_pickle=trust_pickle,
        )


_SHM = Path("/dev/shm")


def _scratch(nbytes: int) -> str | None:
    """Where to hand the data over: shared memory when it has room for it twice over
    (no disk writes), else the default temporary directory."""
    try:
        free = shutil.disk_usage(_SHM).free if _SHM.is_dir() else 0
    except OSError:
        free = 0
    return str(_SHM) if free > 2 * nbytes + (64 << 20) else None


def _import_quietly(modules: tuple[str, ...]) -> None:
    for module in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def fit_in_child(
    trainer: str | Trainer,
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    time_limit_s: float = 600,
    memory_limit_mb: int | None = None,
    threads: int = 1,
    trust_pickle: bool = False,
) -> FitResult:
    """Fit ``trainer`` on ``X``/``y`` in a fresh Python process and load the result.

    ``trainer`` is a name from :data:`BUILTIN_TRAINERS` or a module-level function
    ``(X, y, params) -> model``; a model that no safe flavor saves needs
    ``trust_pickle=True`` (the pickle flavor). Raises :class:`StateError` when the child
    runs past ``time_limit_s`` (it is killed), exceeds ``memory_limit_mb``, or the
    trainer raises.
    """
    _is_classifier(task)
    _trainer_spec(trainer)
    with FitChild(threads=threads, seed=seed, preload=preload_for(trainer)) as child:
        return child.fit(
            trainer,
            X,
            y,
            task=task,
            params=params,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            trust_pickle=trust_pickle,
        )


def _result(
    name: str,
    report: dict[str, Any],
    *,
    returncode: int,
    stderr: bytes,
    work: Path,
    memory_limit_mb: int | None,
    seed: int,
    trust_pickle: bool = False,
) -> FitResult:
    """The :class:`FitResult` from the child's report, or the :class:`StateError` it implies."""
    status = report.get("status")
    if status == "memory" or (status is None and memory_limit_mb is not None and returncode < 0):
        raise StateError(
            f"training {name} ran out of memory under its cap of {memory_limit_mb} MB",
            trainer=name,
            memory_limit_mb=memory_limit_mb,
            traceback=report.get("traceback"),
        )
    if status == "error":
        raise StateError(
            f"training {name} failed: {report['error_type']}: {report['error_message']}",
            trainer=name,
            error_type=report["error_type"],
            traceback=report["traceback"],
        )
    if status != "ok" or returncode != 0:
        raise StateError(
            f"training {name} ended without a result (exit code {returncode})",
            trainer=name,
            exit_code=returncode,
            stderr=stderr.decode("utf-8", "replace")[-4000:],
        )
    artifact = (work / "model.bin").read_bytes()
    flavor = str(report["flavor"])
    return FitResult(
        model=get_flavor(flavor, trust_pickle=trust_pickle).load(artifact),
        flavor=flavor,
        artifact=artifact,
        duration_s=float(report["duration_s"]),
        peak_memory_mb=float(report["peak_memory_mb"]),
        library_versions=dict(report["library_versions"]),
        seed=seed,
        phases_s=dict(report.get("phases_s", {})),
    )


# -- the child ---------------------------------------------------------------


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            # xgboost ships as "xgboost" or "xgboost-cpu": ask the module itself.
            module = sys.modules.get(name)
            if module is not None:
                versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def _trainer_module(spec: dict[str, str]) -> Any:
    """The module holding a user trainer: imported by name, or loaded from its file."""
    if "module" in spec:
        return importlib.import_module(spec["module"])
    path = Path(spec["file"])
    module_spec = importlib.util.spec_from_file_location(_DEFINITIONS_PREFIX + "child", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load the trainer's module from {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    with contextlib.suppress(ImportError):
        # a model class defined there cannot be imported by the parent: store it by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module


def run_request(work: Path) -> None:
    """In the child: run the request in ``work`` and write ``report.json`` (and
    ``model.bin``); a trainer's failure is reported, never raised."""
    handed_over = time.perf_counter()
    request = json.loads((work / "request.json").read_text())
    spec: dict[str, str] = request["trainer"]
    params: dict[str, Any] = request["params"]
    # mapped copy-on-write: no copy is made unless the trainer writes to the arrays
    X = np.load(work / "X.npy", allow_pickle=False, mmap_mode="c")
    y = np.load(work / "y.npy", allow_pickle=False, mmap_mode="c")
    extra = (spec["builtin"],) if spec.get("builtin") in ("lightgbm", "xgboost") else ()
    report: dict[str, Any]
    try:
        if "builtin" in spec:
            estimator: Any = BUILTIN_TRAINERS[spec["builtin"]](
                request["task"], params, request["seed"]
            )
            fit: Callable[[], object] = lambda: estimator.fit(X, y)  # noqa: E731
        else:
            target: Any = _trainer_module(spec)
            for part in spec["qualname"].split("."):
                target = getattr(target, part)
            fit = lambda: target(X, y, params)  # noqa: E731
        cap = request["memory_limit_mb"]
        if cap is not None:
            limit = int(cap) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        started = time.perf_counter()
        model = fit()
        duration = time.perf_counter() - started
        flavor = flavor_for(model, trust_pickle=bool(request.get("trust_pickle")))
        (work / "model.bin").write_bytes(flavor.save(model))
        report = {
            "status": "ok",
            "flavor": flavor.name,
            "duration_s": duration,
            # where the child's time went, for the overhead benchmark and for diagnosis
            "phases_s": {
                "load_data": started - handed_over,
                "fit": duration,
                "save": time.perf_counter() - started - duration,
            },
        }
    except MemoryError:
        report = {"status": "memory", "traceback": traceback.format_exc()}
    except Exception as exc:  # every trainer failure is reported to the parent
        report = {
            "status": "error",
            "error_type": type(exc).__qualname__,
            "error_message": str(exc),
            "traceback": traceback.format_exc(),
        }
    # ru_maxrss is in kilobytes on Linux.
    report["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["library_versions"] = _versions(_VERSIONED + extra)
    (work / "report.json").write_text(json.dumps(report))
