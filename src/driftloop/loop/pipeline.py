"""One training pipeline run: train → evaluate against the champion → gate → register.

:func:`train_model` runs the steps in order and records each outcome:

1. a training run is started (code version: driftloop's version, the project's git
   commit and dirty flag);
2. the label rows and their point-in-time features become a stored training set,
   split by time (:func:`driftloop.training.train.prepare`);
3. the trainer fits in a child process with the spec's time limit and memory cap;
4. the challenger and the current ``champion`` (if any) are scored on the same
   validation rows, the champion with its own features as recorded in its signature;
   the paired bootstrap, slices and gates give the verdict, and the report is stored
   in the artifact store;
5. the artifact and the version's reference profile for monitoring (its inputs, its
   predictions on the validation rows, the labels:
   :mod:`driftloop.monitoring.references`) are stored, the run is completed, and a new
   model version is registered with its metrics, signature and lineage, whatever the
   verdict (a failed candidate is evidence too);
6. if the gates pass, the ``challenger`` alias moves to it; with ``promote=True`` the
   ``champion`` alias does too, by compare-and-set against the champion it was
   judged against.

A failure at any step marks the run failed with the error, and re-raises it.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from driftloop._version import __version__
from driftloop.core.provenance import git_info
from driftloop.errors import DriftloopError, NotFoundError, StateError
from driftloop.evaluation.compare import EvaluationReport, check_gates, compare
from driftloop.features.store import FeatureContext, get_training_set
from driftloop.monitoring.drift import TableReference
from driftloop.monitoring.references import build_reference
from driftloop.registry import models as registry
from driftloop.training import runs
from driftloop.training.encoding import encode, inputs_from_signature
from driftloop.training.flavors import load_model
from driftloop.training.predict import predict
from driftloop.training.spec import ModelSpec
from driftloop.training.train import (
    Prepared,
    fit,
    prepare,
    signature,
    start_child,
    store_training_set,
)

__all__ = ["TrainOutcome", "code_version", "score_version", "train_model"]


@dataclass(frozen=True)
class TrainOutcome:
    """What one pipeline run produced."""

    run: runs.TrainingRun
    version: registry.ModelVersion
    report: EvaluationReport
    report_digest: str
    champion: registry.ModelVersion | None
    """The champion the challenger was judged against."""
    aliases: list[registry.AliasMove]
    """The alias moves made (``challenger``, and ``champion`` when promoted)."""

    @property
    def passed(self) -> bool:
        return self.report.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.model,
            "version": self.version.version,
            "run": self.run.id,
            "passed": self.passed,
            "reasons": self.report.verdict.reasons,
            "metrics": self.version.metrics,
            "champion": self.champion.version if self.champion else None,
            "report": self.report_digest,
            "aliases": [m.to_dict() for m in self.aliases],
            "training_set": self.run.training_set_id,
            "split": self.run.split,
            "fit_seconds": self.run.fit_seconds,
            "total_seconds": self.run.total_seconds,
            "peak_memory_mb": self.run.peak_memory_mb,
        }


def code_version(project_root: Path | None) -> dict[str, Any]:
    """driftloop's version and the project's git commit and dirty flag (None outside git)."""
    info = git_info(project_root) if project_root is not None else None
    return {
        "driftloop": __version__,
        "git_sha": info.sha if info else None,
        "git_dirty": info.dirty if info else None,
    }


def _champion(ctx: FeatureContext, name: str) -> registry.ModelVersion | None:
    try:
        return registry.resolve(ctx.store, name, "champion")
    except NotFoundError:
        return None


def score_version(
    ctx: FeatureContext,
    version: registry.ModelVersion,
    rows: pa.Table,
    *,
    timestamp_column: str,
    refs: Mapping[str, str] | None = None,
    trust_pickle: bool = False,
) -> npt.NDArray[np.float64]:
    """Scores of a registered version on ``rows`` (entity keys, timestamp and any features).

    ``refs`` tells which feature reference each column of ``rows`` holds; features the
    rows lack, or hold from another view version than the model was trained on, are
    fetched point in time through the version's pinned references.
    """
    inputs = inputs_from_signature(version.signature)
    task = str(version.signature.get("output", {}).get("task", ""))
    if not inputs or not task:
        raise StateError(
            f"model version {version.ref} has no signature to score it with", model=version.model
        )
    known = refs or {}
    have = {i.name for i in inputs if i.name in rows.column_names and known.get(i.name) == i.ref}
    missing = [i for i in inputs if i.name not in have]
    table = rows
    if missing:
        keys = list(version.signature.get("entity_keys", []))
        base = rows.select([*keys, timestamp_column])
        fetched = get_training_set(
            ctx, base, [i.ref for i in missing], timestamp_column=timestamp_column, store=False
        ).table
        table = pa.table(
            {
                **{n: rows.column(n) for n in rows.column_names if n in have},
                **{i.name: fetched.column(i.name) for i in missing},
            }
        )
    model = load_model(
        ctx.artifacts, version.artifact_digest, version.flavor, trust_pickle=trust_pickle
    )
    return predict(model, encode(table, inputs), task)


def _columns(table: pa.Table, names: list[str]) -> dict[str, Any]:
    return {n: table.column(n).to_numpy(zero_copy_only=False) for n in names}


def _evaluate(
    ctx: FeatureContext,
    spec: ModelSpec,
    prepared: Prepared,
    challenger_pred: npt.NDArray[np.float64],
    champion: registry.ModelVersion | None,
    *,
    run_id: str,
) -> EvaluationReport:
    champion_pred = None
    if champion is not None:
        output = champion.signature.get("output", {})
        if output.get("task") is None:
            raise StateError(
                f"the champion {champion.ref} was registered without a signature (its task "
                "and inputs), so it cannot be scored against the challenger; register it "
                "with signature=..., or point the champion alias at a trained version "
                f"(driftloop models alias {spec.name} champion N)",
                model=spec.name,
            )
        if output.get("task") != spec.task:
            raise StateError(
                f"the champion {champion.ref} is a {output.get('task')} model; it cannot be "
                f"compared with a {spec.task} challenger",
                model=spec.name,
            )
        if spec.task == "multiclass" and output.get("classes") != prepared.classes:
            raise StateError(
                f"the champion {champion.ref} predicts classes {output.get('classes')}, the "
                f"challenger {prepared.classes}; they cannot be compared row by row",
                model=spec.name,
            )
        champion_pred = score_version(
            ctx,
            champion,
            prepared.valid,
            timestamp_column=spec.label.timestamp,
            refs={i.name: i.ref for i in prepared.inputs},
            trust_pickle=spec.trust_pickle,
        )
    valid = prepared.valid
    return compare(
        spec.task,
        prepared.y_valid,
        challenger_pred,
        champion_pred,
        model=spec.name,
        challenger={"label": f"{spec.name} (challenger)", "version": None, "run_id": run_id},
        champion=None
        if champion is None
        else {
            "label": f"{champion.ref} (champion)",
            "version": champion.version,
            "run_id": champion.run_id,
        },
        gates=list(spec.gates),
        slices=_columns(valid, list(spec.slices)),
        custom=dict(spec.metrics) or None,
        rows=_columns(valid, valid.column_names) if spec.metrics else None,
        threshold=spec.threshold,
        resamples=spec.resamples,
        seed=spec.seed,
        min_slice_size=spec.min_slice_size,
    )


def _reference(
    spec: ModelSpec, prepared: Prepared, valid_pred: npt.NDArray[np.float64]
) -> TableReference:
    """The version's reference profile for monitoring: its inputs over the training set,
    its predictions on the validation rows, the labels."""
    table = prepared.training_set.table
    names = [i.name for i in prepared.inputs if i.name in table.column_names]
    labels = np.concatenate([prepared.y_train, prepared.y_valid])
    return build_reference(table.select(names), valid_pred, labels, spec.task)


def train_model(
    ctx: FeatureContext,
    spec: ModelSpec,
    *,
    as_of: datetime | None = None,
    project_root: Path | None = None,
    promote: bool = False,
    tags: Mapping[str, Any] | None = None,
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> TrainOutcome:
    """Run the pipeline for ``spec`` once; see the module docstring.

    ``tags`` are added to the registered version's; ``on_step(step, outputs)`` is called
    when the training run starts (``started``) and as each step ends (``training_set``,
    ``train``, ``evaluate``, ``gate``, ``register``): the durable controller records them
    on its run's timeline.
    """

    def done(step: str, **outputs: Any) -> None:
        if on_step is not None:
            on_step(step, outputs)

    check_gates(list(spec.gates), spec.task, spec.metrics)
    started = time.perf_counter()
    run_id = runs.start_run(
        ctx.store,
        model=spec.name,
        spec=spec.to_dict(),
        spec_version=spec.version,
        code_version=code_version(project_root),
        who=ctx.who,
    )
    done("started", training_run=run_id)
    try:
        with start_child(spec) as child:  # imports its libraries while we prepare
            prepared = prepare(ctx, spec, as_of=as_of, store=False, child=child)
            done("training_set", rows=prepared.training_set.table.num_rows, split=prepared.split)
            # the training set is written while the model fits, off the critical path
            with ThreadPoolExecutor(max_workers=1) as pool:
                saving = pool.submit(store_training_set, ctx, spec, prepared)
                result = fit(spec, prepared, child)
                done("train", fit_seconds=result.duration_s, training_run=run_id)
                ts = saving.result()
        challenger_pred = predict(result.model, prepared.X_valid, spec.task)
        champion = _champion(ctx, spec.name)
        report = _evaluate(ctx, spec, prepared, challenger_pred, champion, run_id=run_id)
        done("evaluate", champion=champion.version if champion else None)
        body = report.to_dict()
        report_digest = ctx.artifacts.put_bytes(
            json.dumps(body, sort_keys=True, allow_nan=False).encode()
        )
        digest = ctx.artifacts.put_bytes(result.artifact)
        reference_digest = ctx.artifacts.put_bytes(
            _reference(spec, prepared, challenger_pred).to_bytes()
        )
        verdict = report.verdict
        done("gate", passed=verdict.passed, reasons=verdict.reasons, report=report_digest)
        run = runs.finish_run(
            ctx.store,
            run_id,
            training_set_id=ts.id,
            views=ts.views,
            dataset_versions=ts.dataset_versions,
            split=prepared.split,
            metrics={m["name"]: m["challenger"] for m in body["metrics"]},
            library_versions=result.library_versions,
            fit_seconds=result.duration_s,
            total_seconds=time.perf_counter() - started,
            peak_memory_mb=result.peak_memory_mb,
            artifact_digest=digest,
            flavor=result.flavor,
            signature=signature(spec, prepared),
            evaluation={
                "report": report_digest,
                "passed": verdict.passed,
                "reasons": verdict.reasons,
                "champion_version": champion.version if champion else None,
            },
        )
    except BaseException as exc:
        message = (
            exc.message
            if isinstance(exc, DriftloopError)
            else f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        )
        runs.fail_run(ctx.store, run_id, message, total_seconds=time.perf_counter() - started)
        raise
    version = registry.register_version(
        ctx.store,
        spec.name,
        artifact_digest=digest,
        flavor=result.flavor,
        who=ctx.who,
        run_id=run.id,
        metrics=run.metrics,
        signature=run.signature,
        tags={
            "verdict": "pass" if verdict.passed else "fail",
            "spec_version": spec.version,
            "trust_pickle": spec.trust_pickle,
            "trainer": spec.trainer_name,
            **(tags or {}),
        },
        lineage={
            "run": run.id,
            "training_set": ts.id,
            "views": ts.views,
            "dataset_versions": ts.dataset_versions,
            "evaluation_report": report_digest,
            "reference": reference_digest,
            "champion_version": champion.version if champion else None,
            "code_version": run.code_version,
        },
        description=spec.description,
    )
    runs.set_run_version(ctx.store, run.id, version.version)
    done("register", version=version.version)
    moves: list[registry.AliasMove] = []
    if verdict.passed:
        reason = f"gates passed in run {run.id}"
        moves.append(
            registry.set_alias(
                ctx.store, spec.name, "challenger", version.version, who=ctx.who, reason=reason
            )
        )
        if promote:
            moves.append(
                registry.set_alias(
                    ctx.store,
                    spec.name,
                    "champion",
                    version.version,
                    expected=champion.version if champion else None,
                    who=ctx.who,
                    reason=reason,
                )
            )
    return TrainOutcome(
        run=runs.get_run(ctx.store, run.id),
        version=version,
        report=report,
        report_digest=report_digest,
        champion=champion,
        aliases=moves,
    )
