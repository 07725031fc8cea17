"""What a model card says, gathered from the registry, the training run and the report.

:func:`card_data` returns plain data; :mod:`driftloop.registry.cards` renders it as
Markdown or HTML. Everything comes from stored records, so the card of any version
can be produced again at any time and says the same thing (apart from its current
aliases).
"""

from __future__ import annotations

import json
from typing import Any

from driftloop.core.artifacts import ArtifactStore
from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError
from driftloop.registry.models import ModelVersion, aliases
from driftloop.training.runs import get_run

__all__ = ["card_data", "evaluation_report"]


def evaluation_report(artifacts: ArtifactStore, version: ModelVersion) -> dict[str, Any]:
    """The stored evaluation report of ``version`` (JSON, as a dict)."""
    digest = version.lineage.get("evaluation_report")
    if not digest:
        raise NotFoundError("evaluation report of model version", version.ref)
    report: dict[str, Any] = json.loads(artifacts.get_bytes(str(digest)))
    if report.get("challenger", {}).get("version") is None:
        report["challenger"] = {
            **report.get("challenger", {}),
            "label": f"{version.ref} (challenger)",
            "version": version.version,
        }
    return report


def card_data(
    store: MetadataStore, artifacts: ArtifactStore, version: ModelVersion
) -> dict[str, Any]:
    """The model card's content for ``version`` (see :mod:`driftloop.registry.cards`)."""
    run = get_run(store, version.run_id) if version.run_id else None
    spec: dict[str, Any] = run.spec if run else {}
    inputs = version.signature.get("inputs", [])
    current = {a: v for a, v in aliases(store, version.model).items() if v == version.version}
    split = run.split if run else {}
    return {
        "model": version.model,
        "version": version.version,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "description": version.description,
        "intended_use": spec.get("intended_use", ""),
        "limitations": spec.get("limitations", ""),
        "flavor": version.flavor,
        "trust_pickle": bool(version.tags.get("trust_pickle", version.flavor == "pickle")),
        "artifact_digest": version.artifact_digest,
        "task": version.signature.get("output", {}).get("task", spec.get("task")),
        "trainer": spec.get("trainer"),
        "params": run.params if run else {},
        "seed": run.seed if run else None,
        "features": [
            {"name": i.get("name"), "type": i.get("type"), "ref": i.get("ref", "")} for i in inputs
        ],
        "label": spec.get("label"),
        "training_data": {
            "training_set": run.training_set_id if run else version.lineage.get("training_set"),
            "rows": sum((split.get(part) or {}).get("rows", 0) for part in ("train", "validation"))
            if split
            else None,
            "train": split.get("train"),
            "validation": split.get("validation"),
            "views": run.views if run else version.lineage.get("views", []),
            "dataset_versions": run.dataset_versions
            if run
            else version.lineage.get("dataset_versions", {}),
        },
        "run": None
        if run is None
        else {
            "id": run.id,
            "duration_s": run.fit_seconds,
            "peak_memory_mb": run.peak_memory_mb,
            "code_version": run.code_version,
            "library_versions": run.library_versions,
        },
        "evaluation": evaluation_report(artifacts, version)
        if version.lineage.get("evaluation_report")
        else None,
        "aliases": current,
    }
