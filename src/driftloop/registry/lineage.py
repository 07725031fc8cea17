"""Lineage queries: where a model version comes from, and what a dataset version fed.

Backward, :func:`version_lineage` follows a version to the training run that produced
it, the training set it was fitted on, the feature view versions that computed its
inputs, the dataset versions of every source those read, and the files (or frames)
those batches were ingested from. Forward, :func:`dataset_users` lists the model
versions whose training read a dataset version. Everything comes from records kept at
training and ingest time (the run's ``training_set_id``, ``views`` and
``dataset_versions``, each batch's provenance): nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftloop.core.metadata import MetadataStore
from driftloop.data.datasets import get_version as get_dataset_version
from driftloop.errors import NotFoundError
from driftloop.registry import models as registry
from driftloop.training import runs

__all__ = ["Lineage", "Node", "dataset_users", "version_lineage"]

KINDS = ("model_version", "training_run", "training_set", "feature_view", "dataset_version",
         "input")  # fmt: skip
"""Node kinds, from the model back to its inputs."""


@dataclass(frozen=True)
class Node:
    """One thing in a lineage: its kind, a stable id, a label and its facts."""

    kind: str
    id: str
    label: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "label": self.label, "facts": self.facts}


@dataclass
class Lineage:
    """Nodes, and edges ``(from, to)`` meaning "``from`` was made from ``to``"."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: Node, made_from_by: str | None = None) -> None:
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)
        if made_from_by is not None and (made_from_by, node.id) not in self.edges:
            self.edges.append((made_from_by, node.id))

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
        }


def version_lineage(store: MetadataStore, model: str, version: int) -> Lineage:
    """Everything model ``version`` of ``model`` was made from (see the module doc)."""
    v = registry.get_version(store, model, version)
    graph = Lineage()
    top = Node(
        "model_version",
        f"{model}:v{version}",
        f"{model} v{version}",
        {"artifact": v.artifact_digest, "flavor": v.flavor, "created_at": v.created_at},
    )
    graph.add(top)
    if v.run_id is None:
        return graph
    try:
        run = runs.get_run(store, v.run_id)
    except NotFoundError:
        return graph
    run_node = Node(
        "training_run",
        run.id,
        run.id,
        {"trainer": run.trainer, "code": run.code_version, "status": run.status},
    )
    graph.add(run_node, top.id)
    parent = run_node.id
    if run.training_set_id:
        set_node = Node("training_set", run.training_set_id, run.training_set_id[:12], {})
        graph.add(set_node, run_node.id)
        parent = set_node.id
    for view in run.views:
        name, view_version = view.get("name", "?"), view.get("version", "?")
        graph.add(Node("feature_view", f"{name}@{view_version}", f"{name}@{view_version}"), parent)
    for source, ids in sorted(run.dataset_versions.items()):
        for dataset_id in ids:
            node = _dataset_node(store, source, dataset_id)
            graph.add(node, parent)  # the label rows and the views' inputs
            provenance = node.facts.get("input")
            if provenance:
                graph.add(Node("input", f"input:{provenance}", str(provenance)), node.id)
    return graph


def _dataset_node(store: MetadataStore, source: str, dataset_id: str) -> Node:
    try:
        d = get_dataset_version(store, dataset_id, source=source)
    except NotFoundError:
        return Node("dataset_version", dataset_id, f"{source} {dataset_id[:12]}", {})
    provenance = d.provenance or {}
    return Node(
        "dataset_version",
        dataset_id,
        f"{source} {dataset_id[:12]}",
        {
            "source": source,
            "rows": d.rows,
            "created_at": d.created_at,
            "input": provenance.get("input_uri") or provenance.get("input"),
        },
    )


def dataset_users(store: MetadataStore, dataset_id: str) -> list[registry.ModelVersion]:
    """The model versions whose training read dataset version ``dataset_id``."""
    found = []
    for model in registry.list_models(store):
        for version in registry.list_versions(store, model.name):
            sources = (version.lineage or {}).get("dataset_versions") or {}
            if any(dataset_id in ids for ids in sources.values()):
                found.append(version)
    return found
