"""The steps a pipeline run executes, each idempotent.

``train``: build the training set, train, evaluate against the champion, gate and
register — :func:`driftloop.loop.pipeline.train_model`, with the version tagged by the
pipeline run's id. Before training, the step looks for a version already carrying that
tag: a step started again after a crash (the controller or its child killed after the
version was registered but before the step's result was recorded) finds it and returns
it, so a run never registers two versions. Training runs an earlier attempt started and
never finished are marked failed ("abandoned") first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError, StateError
from driftloop.loop import runs
from driftloop.registry import models as registry
from driftloop.training import runs as training_runs

__all__ = ["RUN_TAG", "Trainer", "abandon_training_runs", "existing_version", "train_step"]

RUN_TAG = "pipeline_run"
"""The version tag naming the pipeline run that registered it."""


class Trainer(Protocol):
    """What trains a model: ``Project.train``."""

    def __call__(
        self,
        model: Any,
        *,
        tags: dict[str, Any] | None = ...,
        on_step: Callable[[str, dict[str, Any]], None] | None = ...,
    ) -> Any: ...


def existing_version(store: MetadataStore, model: str, run_id: str) -> registry.ModelVersion | None:
    """The version a run already registered, if any."""
    try:
        versions = registry.list_versions(store, model)
    except NotFoundError:  # a model never registered has no versions yet
        return None
    for version in reversed(versions):
        if version.tags.get(RUN_TAG) == run_id:
            return version
    return None


def _result(version: registry.ModelVersion, resumed: bool) -> dict[str, Any]:
    return {
        "version": version.version,
        "passed": version.tags.get("verdict") == "pass",
        "training_run": version.run_id,
        "report": (version.lineage or {}).get("evaluation_report"),
        "champion_version": (version.lineage or {}).get("champion_version"),
        "resumed": resumed,
    }


def abandon_training_runs(store: MetadataStore, run_id: str) -> list[str]:
    """Mark failed the training runs an earlier attempt of this pipeline run started and
    never finished (its process was killed): they would otherwise stay ``running``."""
    abandoned = []
    for event in runs.events(store, run_id):
        detail = event["detail"] if isinstance(event["detail"], dict) else {}
        training = detail.get("training_run")
        if event["kind"] != "step" or event["step"] != "started" or not training:
            continue
        if training_runs.get_run(store, training).status != training_runs.RUNNING:
            continue
        try:
            training_runs.fail_run(
                store,
                training,
                f"abandoned: the process of pipeline run {run_id}'s train step ended before "
                "it finished; the step was started again",
                total_seconds=0.0,
            )
        except StateError:  # it finished meanwhile
            continue
        abandoned.append(training)
    return abandoned


def train_step(train: Trainer, store: MetadataStore, model: str, run_id: str) -> dict[str, Any]:
    """Train ``model`` for pipeline run ``run_id`` (see the module doc)."""
    abandon_training_runs(store, run_id)
    found = existing_version(store, model, run_id)
    if found is not None:
        return _result(found, resumed=True)

    def on_step(step: str, outputs: dict[str, Any]) -> None:
        runs.add_event(store, run_id, "step", step, outputs)

    outcome = train(model, tags={RUN_TAG: run_id}, on_step=on_step)
    result = _result(outcome.version, resumed=False)
    result["reasons"] = outcome.report.verdict.reasons
    result["fit_seconds"] = outcome.run.fit_seconds
    return result
