"""A driftloop project: a folder with ``driftloop.yaml`` and a definitions module.

:class:`Project` is what the CLI, the server and Python users call; it wires the
config to the stores and delegates to the packages::

    project = Project("my-project")
    project.apply()                                   # register the definitions
    version = project.ingest("transactions", "data/2024-01.csv")
    table = project.read("transactions", as_of=...)   # time travel
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from driftloop._version import __version__
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.config import CONFIG_FILE, Config, load_config
from driftloop.core.metadata import MetadataStore
from driftloop.core.provenance import current_user
from driftloop.data import ingest as ingest_mod
from driftloop.data import quarantine as quarantine_mod
from driftloop.data.contract import Contract
from driftloop.data.datasets import (
    DatasetVersion,
    IngestOutcome,
    diff_versions,
    get_version,
    list_versions,
    read_source,
    source_profile,
)
from driftloop.data.ingest import IngestContext, SourceContract
from driftloop.data.profile import DatasetProfile
from driftloop.data.quarantine import QuarantineEntry
from driftloop.data.sources import (
    ContractVersion,
    Source,
    SourceState,
    contract_history,
    get_source_state,
    list_source_states,
    register_source,
)
from driftloop.errors import (
    ConfigError,
    DefinitionError,
    InputError,
    NotFoundError,
)
from driftloop.features.definitions import Entity, FeatureView
from driftloop.features.registry import (
    RegisteredView,
    list_views,
    register_entity,
    register_view,
    resolve_view,
)
from driftloop.loop.triggers import RetrainPolicy
from driftloop.monitoring.definitions import Monitor
from driftloop.registry import models as model_registry
from driftloop.serving import deployments as deployments_mod
from driftloop.training.spec import ModelSpec

if TYPE_CHECKING:
    from driftloop.features.online import OnlineStore
    from driftloop.features.store import FeatureContext, MaterializeResult, TrainingSet
    from driftloop.loop.controller import Controller
    from driftloop.loop.executors import Executor
    from driftloop.loop.pipeline import TrainOutcome
    from driftloop.loop.runs import PipelineRun
    from driftloop.monitoring.alerts import Alert
    from driftloop.monitoring.runner import MonitorContext, MonitorRun
    from driftloop.monitoring.series import Window, WindowMetrics
    from driftloop.rollout import engine as rollout_engine
    from driftloop.rollout.policy import RolloutPolicy
    from driftloop.training.runs import TrainingRun

__all__ = ["Applied", "AppliedView", "Definitions", "Project", "find_project_root"]


@dataclass(frozen=True)
class Definitions:
    """What a project's definitions module declares."""

    sources: dict[str, Source] = field(default_factory=dict)
    file: Path | None = None
    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    monitors: dict[str, Monitor] = field(default_factory=dict)
    policies: dict[str, RetrainPolicy] = field(default_factory=dict)
    """Retraining policies (:mod:`driftloop.loop.triggers`), by model."""


@dataclass(frozen=True)
class AppliedView:
    """A feature view registered by :meth:`Project.apply`."""

    name: str
    version: str
    new: bool


@dataclass(frozen=True)
class Applied:
    """What :meth:`Project.apply` registered: source contracts and feature view versions."""

    sources: list[ContractVersion]
    views: list[AppliedView]


def find_project_root(start: str | os.PathLike[str] = ".") -> Path:
    """The nearest folder at or above ``start`` that holds a ``driftloop.yaml``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        "not found, nor in any folder above "
        "(run `driftloop init` to create a project, or pass --project)",
        file=str(here / CONFIG_FILE),
    )


def _load_definitions(path: Path) -> Definitions:
    if not path.is_file():
        return Definitions(file=None)
    name = f"_driftloop_definitions_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError("cannot be imported as a Python module", file=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise DefinitionError(
            f"failed to load{line}: {type(exc).__name__}: {exc}", file=str(path)
        ) from exc
    finally:
        sys.modules.pop(name, None)
    found: dict[type, dict[str, Any]] = {
        Source: {},
        Entity: {},
        FeatureView: {},
        ModelSpec: {},
        Monitor: {},
        RetrainPolicy: {},
    }
    for value in vars(module).values():
        kind = type(value)
        if kind not in found:
            continue
        other = found[kind].get(value.name)
        if other is not None and other is not value:
            label = {
                Source: "source",
                Entity: "entity",
                FeatureView: "feature view",
                ModelSpec: "model",
                Monitor: "monitor of model",
                RetrainPolicy: "retrain policy of model",
            }[kind]
            raise DefinitionError(f"{label} {value.name!r} is defined twice", file=str(path))
        found[kind][value.name] = value
    return Definitions(
        sources=dict(sorted(found[Source].items())),
        file=path,
        entities=dict(sorted(found[Entity].items())),
        views=dict(sorted(found[FeatureView].items())),
        models=dict(sorted(found[ModelSpec].items())),
        monitors=dict(sorted(found[Monitor].items())),
        policies=dict(sorted(found[RetrainPolicy].items())),
    )


class _ProjectLog:
    """The project's prediction and feedback logs, as monitoring reads them."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.config = project.config
        self._labels: dict[tuple[str, datetime, datetime], tuple[ModelSpec, pa.Table] | None] = {}

    def predictions(self, model: str, since: datetime, until: datetime) -> pa.Table:
        from driftloop.serving.predictionlog import read_log

        return read_log(self.config.serving.predictions, model, since=since, until=until)

    def _source_rows(
        self, model: str, now: datetime, since: datetime
    ) -> tuple[ModelSpec, pa.Table] | None:
        """The model's spec and the label rows of its label source known at ``now``
        from the batches with rows since ``since`` (read once per pair)."""
        from driftloop.monitoring.labels import known_labels

        key = (model, now, since)
        if key not in self._labels:
            spec = self.project.definitions.models.get(model)
            self._labels[key] = (
                None
                if spec is None
                else (
                    spec,
                    known_labels(self.project._features(), spec, now=now, since=since),
                )
            )
        return self._labels[key]

    def join_labels(self, model: str, table: pa.Table, since: datetime, now: datetime) -> pa.Table:
        from driftloop.monitoring.labels import as_feedback
        from driftloop.serving.predictionlog import join_feedback, read_log

        # a label is received after its prediction: older feedback cannot apply
        feedback = read_log(self.config.serving.feedback, model, since=since)
        source = self._source_rows(model, now, since)
        if source is not None and source[1].num_rows:
            labels = as_feedback(source[0], source[1], model=model, since=since)
            keys = [c for c in labels.column_names if c.startswith("key.")]
            if labels.num_rows and all(k in table.column_names for k in keys):
                parts = [feedback, labels] if feedback.num_rows else [labels]
                feedback = pa.concat_tables(parts, promote_options="permissive")
        return join_feedback(table, feedback)

    def first_day(self, model: str) -> date | None:
        days = sorted((self.config.serving.predictions / f"model={model}").glob("date=*"))
        for day in days:
            try:
                return date.fromisoformat(day.name.removeprefix("date="))
            except ValueError:
                continue
        return None


class Project:
    """The entry point to one project's data, models and deployments."""

    def __init__(self, root: str | os.PathLike[str] = ".", *, config: Config | None = None) -> None:
        self.root = Path(root).resolve()
        self.config = config or load_config(self.root)
        # views applied from Python in this process: their transforms stay usable
        self._applied_views: dict[str, FeatureView] = {}

    @classmethod
    def find(cls, start: str | os.PathLike[str] = ".") -> Project:
        """Open the project whose ``driftloop.yaml`` is at or above ``start``."""
        return cls(find_project_root(start))

    # -- stores -----------------------------------------------------------------

    @cached_property
    def store(self) -> MetadataStore:
        return MetadataStore.open(self.config.metadata.url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore.from_uri(self.config.artifacts.uri, base_dir=self.root)

    @cached_property
    def definitions(self) -> Definitions:
        return _load_definitions(self.config.definitions)

    @cached_property
    def online(self) -> OnlineStore:
        """The online feature store (``online.url``), opened on first use."""
        from driftloop.features.online import open_online_store

        return open_online_store(self.config.online.url)

    def close(self) -> None:
        if "online" in self.__dict__:
            self.online.close()
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- definitions --------------------------------------------------------------

    def apply(self, *objects: Source | Entity | FeatureView) -> Applied:
        """Register definitions: the given objects, or everything the definitions module
        declares. Each source's contract becomes a new version when it changed compatibly
        (a breaking change raises :class:`~driftloop.errors.BreakingContractChange`); each
        feature view is recorded under the hash of its definition."""
        if objects:
            sources = [o for o in objects if isinstance(o, Source)]
            entities = [o for o in objects if isinstance(o, Entity)]
            views = [o for o in objects if isinstance(o, FeatureView)]
        else:
            sources = list(self.definitions.sources.values())
            entities = list(self.definitions.entities.values())
            views = list(self.definitions.views.values())
        who = current_user()
        contracts = [
            register_source(self.store, s.name, s.load_contract(self.root), who=who)
            for s in sources
        ]
        for entity in entities:
            register_entity(self.store, entity)
        applied = []
        for view in views:
            version, new = register_view(self.store, view, who=who)
            applied.append(AppliedView(view.name, version, new))
            if objects:
                self._applied_views[view.name] = view
        return Applied(contracts, applied)

    def sources(self) -> list[SourceState]:
        """Sources registered in the metadata store (after ``apply`` or a first ingest)."""
        return list_source_states(self.store)

    def declared_sources(self) -> dict[str, Source]:
        return self.definitions.sources

    def contract(self, source: str) -> tuple[Contract, int | None]:
        """The source's registered contract and its version; for a source declared but not
        yet registered, the declared contract and ``None``."""
        for state in self.sources():
            if state.name == source:
                return state.contract, state.contract_version
        declared = self.definitions.sources.get(source)
        if declared is None:
            raise self._unknown_source(source)
        return declared.load_contract(self.root), None

    def _unknown_source(self, name: str) -> NotFoundError:
        known = sorted({*self.definitions.sources, *(s.name for s in self.sources())})
        return NotFoundError("source", name, known=known)

    def contract_history(self, source: str) -> list[ContractVersion]:
        return contract_history(self.store, source)

    def _target(self, source: str | Source) -> SourceContract:
        """Register the declared contract of ``source`` (if declared) and return it."""
        if isinstance(source, Source) or source in self.definitions.sources:
            declared = source if isinstance(source, Source) else self.definitions.sources[source]
            applied = register_source(
                self.store, declared.name, declared.load_contract(self.root), who=current_user()
            )
            return SourceContract(declared.name, applied.contract, applied.version)
        try:
            state = get_source_state(self.store, source)
        except NotFoundError:
            raise self._unknown_source(source) from None
        return SourceContract(state.name, state.contract, state.contract_version)

    def _context(self, who: str | None) -> IngestContext:
        return IngestContext(
            store=self.store,
            artifacts=self.artifacts,
            config=self.config.ingest,
            who=who or current_user(),
            project_root=self.root,
        )

    # -- ingest -------------------------------------------------------------------

    def ingest(
        self,
        source: str | Source,
        data: Any,
        *,
        format: str | None = None,
        parents: Sequence[str] = (),
        who: str | None = None,
    ) -> DatasetVersion:
        """Validate ``data`` (a path/URI, pyarrow.Table or pandas.DataFrame) against the
        source's contract and store it as a dataset version.

        A batch that fails is kept in quarantine and :class:`~driftloop.errors.BatchRejected`
        is raised with the entry id and every failed rule. A missing file raises
        :class:`~driftloop.errors.InputNotFound`.
        """
        return self.ingest_outcome(source, data, format=format, parents=parents, who=who).version

    def ingest_outcome(
        self,
        source: str | Source,
        data: Any,
        *,
        format: str | None = None,
        parents: Sequence[str] = (),
        who: str | None = None,
    ) -> IngestOutcome:
        """Like :meth:`ingest`, also telling whether the content was already a version."""
        return ingest_mod.ingest(
            self._context(who), self._target(source), data, format=format, parents=parents
        )

    # -- dataset versions -----------------------------------------------------------

    def versions(
        self, source: str | None = None, *, as_of: datetime | None = None
    ) -> list[DatasetVersion]:
        if source is not None:
            get_source_state(self.store, source)
        return list_versions(self.store, source, as_of=as_of)

    def version(self, ref: str, *, source: str | None = None) -> DatasetVersion:
        return get_version(self.store, ref, source=source)

    def read(
        self, source: str, *, as_of: datetime | None = None, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """The source's data as known at ``as_of`` (default: now), as one Arrow table."""
        return read_source(self.store, self.artifacts, source, as_of=as_of, columns=columns)

    def profile(self, source: str, *, as_of: datetime | None = None) -> DatasetProfile:
        """The source's profile as of a time, merged from its batches' profiles."""
        return source_profile(self.store, source, as_of=as_of)

    def diff(self, old: str, new: str) -> dict[str, Any]:
        return diff_versions(self.version(old), self.version(new))

    # -- quarantine ---------------------------------------------------------------

    def quarantined(
        self, source: str | None = None, *, status: str | None = "held"
    ) -> list[QuarantineEntry]:
        return quarantine_mod.list_entries(self.store, source=source, status=status)

    def quarantine_entry(self, entry_id: str) -> QuarantineEntry:
        return quarantine_mod.get_entry(self.store, entry_id)

    def release(self, entry_id: str, *, who: str | None = None) -> DatasetVersion:
        """Re-validate a held batch against the source's current contract; accept it if it
        now passes (else :class:`~driftloop.errors.BatchRejected`, and it stays held)."""
        entry = quarantine_mod.get_entry(self.store, entry_id)
        return ingest_mod.release(self._context(who), self._target(entry.source), entry_id).version

    def drop(
        self, entry_id: str, *, purge: bool = False, who: str | None = None
    ) -> QuarantineEntry:
        return quarantine_mod.drop(
            self.store, self.artifacts, entry_id, who=who or current_user(), purge=purge
        )

    # -- features -----------------------------------------------------------------

    def _features(self, who: str | None = None) -> FeatureContext:
        from driftloop.features.store import FeatureContext

        return FeatureContext(
            store=self.store,
            artifacts=self.artifacts,
            offline=self.config.offline,
            declared=self._declared_views(),
            who=who or current_user(),
        )

    def _declared_views(self) -> dict[str, FeatureView]:
        return {**self.definitions.views, **self._applied_views}

    def feature_views(self, name: str | None = None) -> list[RegisteredView]:
        """Registered feature view versions (the current one of each flagged)."""
        return list_views(self.store, name)

    def feature_view(self, ref: str) -> FeatureView:
        """A feature view by ``name`` (current version) or ``name@version``."""
        name, _, version = ref.partition("@")
        return resolve_view(self.store, name, version or None, self._declared_views())

    def get_training_set(
        self,
        entity_rows: Any,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_time",
        full_names: bool = False,
        missing_flags: bool = False,
        store: bool = True,
    ) -> TrainingSet:
        """Point-in-time correct features for each entity row (keys + timestamp).

        Every input row comes back once, in input order, with each feature as it was
        (or would have been) known at the row's timestamp. The result is stored as an
        immutable training set with its lineage (``store=False`` skips that).
        """
        from driftloop.features.store import get_training_set

        return get_training_set(
            self._features(),
            entity_rows,
            features,
            timestamp_column=timestamp_column,
            full_names=full_names,
            missing_flags=missing_flags,
            store=store,
        )

    def training_set(self, ref: str) -> TrainingSet:
        """A stored training set by id or unambiguous prefix."""
        from driftloop.features.store import load_training_set

        return load_training_set(self._features(), ref)

    def materialize(
        self,
        views: Sequence[str] | None = None,
        *,
        until: datetime | None = None,
        full: bool = False,
    ) -> list[MaterializeResult]:
        """Write the latest feature values as of ``until`` (default: now) to the online
        store, incrementally from each view's watermark (``full=True``: every entity)."""
        from driftloop.features.store import materialize

        names = list(views) if views else [v.name for v in self.feature_views() if v.current]
        targets = [self.feature_view(name) for name in names]
        return materialize(self._features(), self.online, targets, until=until, full=full)

    def get_online_features(
        self, entity_keys: Any, features: Sequence[str], *, full_names: bool = False
    ) -> pa.Table:
        """The materialized feature values of each entity, with their age; values older
        than a view's TTL come back as its defaults, marked stale."""
        from driftloop.features.store import get_online_features

        return get_online_features(
            self._features(), self.online, entity_keys, features, full_names=full_names
        )

    # -- training -----------------------------------------------------------------

    def model_spec(self, name: str) -> ModelSpec:
        """The model spec called ``name`` in the definitions module."""
        spec = self.definitions.models.get(name)
        if spec is None:
            raise NotFoundError("model spec", name, known=sorted(self.definitions.models))
        return spec

    def train(
        self,
        model: str | ModelSpec,
        *,
        as_of: datetime | None = None,
        promote: bool = False,
        who: str | None = None,
        tags: Mapping[str, Any] | None = None,
        on_step: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> TrainOutcome:
        """Train ``model`` (a spec or its name), evaluate it against the champion on the
        most recent window, and register it as a new version with its verdict
        (``tags`` added to its tags; ``on_step`` told as each step ends).

        The ``challenger`` alias moves to it when its gates pass; with ``promote=True``
        the ``champion`` alias too. Labels and data are those known at ``as_of``
        (default: now). See :mod:`driftloop.loop.pipeline` for every step.
        """
        from driftloop.loop.pipeline import train_model

        spec = self.model_spec(model) if isinstance(model, str) else model
        try:
            return train_model(
                self._features(who),
                spec,
                as_of=as_of,
                project_root=self.root,
                promote=promote,
                tags=tags,
                on_step=on_step,
            )
        except NotFoundError as exc:
            if exc.kind not in ("feature view", "entity", "source") or exc.name not in {
                *self.definitions.views,
                *self.definitions.entities,
                *self.definitions.sources,
            }:
                raise
            hint = NotFoundError(exc.kind, exc.name)
            hint.message = (
                f"{exc.message}; it is declared but not registered yet: run `driftloop apply` "
                "(Project.apply()) first"
            )
            hint.args = (hint.message,)
            raise hint from exc

    def runs(self, model: str | None = None, *, limit: int = 100) -> list[TrainingRun]:
        """Recent training runs (of ``model``), newest first."""
        from driftloop.training.runs import list_runs

        return list_runs(self.store, model, limit=limit)

    def run(self, run_id: str) -> TrainingRun:
        """A training run by id or unique prefix."""
        from driftloop.training.runs import get_run

        return get_run(self.store, run_id)

    def evaluation_report(self, model: str, ref: int | str = "latest") -> dict[str, Any]:
        """The evaluation report (JSON) of a model version trained by :meth:`train`."""
        from driftloop.registry.card_data import evaluation_report

        version = model_registry.resolve(self.store, model, ref)
        return evaluation_report(self.artifacts, version)

    def model_card(self, model: str, ref: int | str = "latest") -> dict[str, Any]:
        """Everything the model card of a version shows, as data (see
        :mod:`driftloop.registry.cards` for its Markdown and HTML forms)."""
        from driftloop.registry.card_data import card_data

        version = model_registry.resolve(self.store, model, ref)
        return card_data(self.store, self.artifacts, version)

    # -- models -------------------------------------------------------------------

    def models(self) -> list[model_registry.RegisteredModel]:
        """Every registered model with its latest version number and current aliases."""
        return model_registry.list_models(self.store)

    def model_versions(self, model: str) -> list[model_registry.ModelVersion]:
        """Every version of ``model``, oldest (1) first."""
        return model_registry.list_versions(self.store, model)

    def model_version(self, model: str, ref: int | str = "latest") -> model_registry.ModelVersion:
        """The version ``ref`` names: a number, ``"latest"`` or an alias (``"champion"``)."""
        return model_registry.resolve(self.store, model, ref)

    def model_aliases(self, model: str) -> dict[str, int]:
        """The current aliases of ``model`` and the version each points at."""
        return model_registry.aliases(self.store, model)

    def register_model(
        self,
        model: str,
        *,
        artifact_digest: str,
        flavor: str,
        metrics: Mapping[str, Any] | None = None,
        signature: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        description: str = "",
        run_id: str | None = None,
    ) -> model_registry.ModelVersion:
        """Record a new immutable version of ``model`` (created if new), numbered next."""
        return model_registry.register_version(
            self.store,
            model,
            artifact_digest=artifact_digest,
            flavor=flavor,
            who=current_user(),
            run_id=run_id,
            metrics=metrics,
            signature=signature,
            tags=tags,
            lineage=lineage,
            description=description,
        )

    def set_alias(
        self,
        model: str,
        alias: str,
        ref: int | str,
        *,
        expected: model_registry.Expected = model_registry.ANY,
        reason: str = "",
    ) -> model_registry.AliasMove:
        """Point ``alias`` at the version ``ref`` names; with ``expected`` (a version, or
        ``None`` for "not set yet") only if it still points there, else
        :class:`~driftloop.errors.StateError` and nothing changes."""
        version = model_registry.resolve(self.store, model, ref).version
        return model_registry.set_alias(
            self.store,
            model,
            alias,
            version,
            expected=expected,
            who=current_user(),
            reason=reason,
        )

    def delete_alias(
        self,
        model: str,
        alias: str,
        *,
        expected: model_registry.Expected = model_registry.ANY,
        reason: str = "",
    ) -> model_registry.AliasMove:
        """Remove ``alias`` (compare-and-set like :meth:`set_alias`); the history keeps it."""
        return model_registry.delete_alias(
            self.store, model, alias, expected=expected, who=current_user(), reason=reason
        )

    def rollback(
        self, model: str, alias: str = "champion", *, reason: str = ""
    ) -> model_registry.AliasMove:
        """Move ``alias`` back to the version it pointed at before its last move."""
        return model_registry.rollback(self.store, model, alias, who=current_user(), reason=reason)

    def alias_history(self, model: str, alias: str | None = None) -> list[model_registry.AliasMove]:
        """Every move of ``model``'s aliases (or only of ``alias``), oldest first."""
        return model_registry.alias_history(self.store, model, alias)

    def version_at(self, model: str, alias: str, at: datetime) -> int | None:
        """The version ``alias`` pointed at at time ``at`` (None when it was unset then)."""
        return model_registry.version_at(self.store, model, alias, at)

    def diff_models(self, model: str, a: int | str, b: int | str) -> model_registry.VersionDiff:
        """What differs between two versions of ``model`` (numbers, ``latest`` or aliases):
        metrics, training parameters, tags, signature (features) and lineage (data)."""
        va = model_registry.resolve(self.store, model, a)
        vb = model_registry.resolve(self.store, model, b)
        return model_registry.diff_versions(va, vb, params=(self._params(va), self._params(vb)))

    def _params(self, version: model_registry.ModelVersion) -> dict[str, Any]:
        """The hyperparameters of the training run behind ``version`` ({} without one)."""
        if not version.run_id:
            return {}
        try:
            return self.run(version.run_id).params
        except NotFoundError:  # registered by hand with a run id of another system
            return {}

    # -- deployments --------------------------------------------------------------

    def deployment(self, model: str) -> deployments_mod.Deployment:
        """The deployment state of ``model``: champion (its alias), canary, shadow, split,
        staged version, routing key and revision."""
        return deployments_mod.get_deployment(self.store, model)

    def deployments(self) -> list[deployments_mod.Deployment]:
        """The deployment state of every registered model, by name."""
        return deployments_mod.list_deployments(self.store)

    def _version_number(self, model: str, ref: int | str) -> int:
        return model_registry.resolve(self.store, model, ref).version

    def deploy_canary(
        self,
        model: str,
        ref: int | str,
        weight: float,
        *,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> deployments_mod.Deployment:
        """Send ``weight`` percent of the traffic (sticky by routing key) to the version
        ``ref`` names (a number, ``"latest"`` or an alias)."""
        return deployments_mod.set_canary(
            self.store,
            model,
            self._version_number(model, ref),
            weight,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def deploy_shadow(
        self,
        model: str,
        ref: int | str | None,
        *,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> deployments_mod.Deployment:
        """Let the version ``ref`` names score a copy of each request (``None``: stop)."""
        version = None if ref is None else self._version_number(model, ref)
        return deployments_mod.set_shadow(
            self.store,
            model,
            version,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def deploy_split(
        self,
        model: str,
        split: Mapping[str, int | str] | None,
        weights: Mapping[str, int] | None = None,
        *,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> deployments_mod.Deployment:
        """Run an A/B split: arm name -> version ref, with whole percents summing to 100
        (default: equal); ``None`` ends it."""
        arms = (
            None
            if split is None
            else {arm: self._version_number(model, ref) for arm, ref in split.items()}
        )
        return deployments_mod.set_split(
            self.store,
            model,
            arms,
            weights,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def deploy_routing_key(
        self,
        model: str,
        key: str | None,
        *,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> deployments_mod.Deployment:
        """Route by the request field or entity key ``key`` (``None``: the entity keys)."""
        return deployments_mod.set_routing_key(
            self.store,
            model,
            key,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def stage(
        self,
        model: str,
        ref: int | str,
        *,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> deployments_mod.Deployment:
        """Stage the version ``ref`` names for a blue-green :meth:`switch`."""
        return deployments_mod.stage(
            self.store,
            model,
            self._version_number(model, ref),
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def switch(
        self, model: str, *, reason: str = "", expected_revision: int | None = None
    ) -> deployments_mod.Deployment:
        """Make the staged version champion, atomically."""
        return deployments_mod.switch(
            self.store,
            model,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def promote(
        self, model: str, *, reason: str = "", expected_revision: int | None = None
    ) -> deployments_mod.Deployment:
        """Make the canary champion (the ``champion`` alias moves, the canary is cleared)."""
        return deployments_mod.promote(
            self.store,
            model,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def abort(
        self, model: str, *, reason: str = "", expected_revision: int | None = None
    ) -> deployments_mod.Deployment:
        """Clear the canary, shadow, split and staged version; the champion alone serves."""
        return deployments_mod.abort(
            self.store,
            model,
            who=current_user(),
            reason=reason,
            expected_revision=expected_revision,
        )

    def deployment_history(self, model: str) -> list[deployments_mod.DeploymentChange]:
        """Every change of ``model``'s deployment, oldest first, with the state after it."""
        return deployments_mod.deployment_history(self.store, model)

    # -- prediction log -------------------------------------------------------------

    def predictions(
        self,
        model: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        labelled: bool = False,
    ) -> pa.Table:
        """The prediction log (``serving.predictions``) of one model or all, with
        ``since <= at < until``, ordered by time: one row per served or shadow
        prediction, with the inputs as served (``feature.<name>``). ``labelled=True``
        joins the feedback log: ``label``, ``feedback_at``, ``feedback_by`` (by request
        id, or by entity and time; null while no label has arrived)."""
        from driftloop.serving.predictionlog import join_feedback, read_log

        table = read_log(self.config.serving.predictions, model, since=since, until=until)
        if not labelled or table.num_rows == 0:
            return table
        return join_feedback(table, read_log(self.config.serving.feedback, model))

    def feedback(self, model: str | None = None) -> pa.Table:
        """The feedback log (``serving.feedback``): labels received, oldest first."""
        from driftloop.serving.predictionlog import read_log

        return read_log(self.config.serving.feedback, model)

    # -- the loop: pipeline runs and the controller ---------------------------------

    def pipeline_runs(
        self, model: str | None = None, *, limit: int | None = 50
    ) -> list[PipelineRun]:
        """Pipeline runs (of ``model``), newest first."""
        from driftloop.loop import runs as loop_runs

        return loop_runs.list_runs(self.store, model, limit=limit)

    def pipeline_run(self, run_id: str) -> tuple[PipelineRun, list[dict[str, Any]]]:
        """A pipeline run and its timeline."""
        from driftloop.loop import runs as loop_runs

        return loop_runs.get_run(self.store, run_id), loop_runs.events(self.store, run_id)

    def start_pipeline_run(
        self, model: str, *, reason: str = "started by hand", who: str | None = None
    ) -> PipelineRun:
        """A pending run of ``model``: the controller (``driftloop run``) trains it,
        gates it and rolls it out."""
        from driftloop.loop import runs as loop_runs

        self.model_spec(model)  # an undeclared model: NotFoundError
        return loop_runs.create_run(self.store, model, reason=reason, who=who or current_user())

    def controller(
        self,
        *,
        executor: str | Executor | None = None,
        holder: str | None = None,
        lease_ttl: float = 15.0,
        ray_address: str | None = None,
        policies: Mapping[str, RetrainPolicy] | None = None,
    ) -> Controller:
        """The retraining controller of this project (see :mod:`driftloop.loop.controller`).

        ``executor``: ``local`` (child processes), ``inline`` (this thread) or ``ray``
        (Ray tasks on the cluster at ``ray_address``; see
        :mod:`driftloop.loop.ray_executor`), or an :class:`~driftloop.loop.executors.Executor`;
        by default the ``loop.executor`` and ``loop.ray_address`` settings. ``policies``:
        the retraining policies by model (default: those of the definitions module)."""
        from datetime import timedelta

        from driftloop.loop.controller import Controller, PolicyTriggers, ProgressiveRollout
        from driftloop.loop.executors import InlineExecutor, LocalExecutor
        from driftloop.loop.lease import Lease
        from driftloop.loop.steps import train_step

        settings = self.config.loop
        executor = executor or settings.executor
        if ray_address is None and executor == "ray":
            ray_address = settings.ray_address or None
        chosen: Executor
        if not isinstance(executor, str):
            chosen = executor
        elif executor == "local":
            chosen = LocalExecutor(self.root, self.root / ".driftloop" / "jobs")
        elif executor == "inline":

            def train(run_id: str) -> dict[str, Any]:
                from driftloop.loop import runs as loop_runs

                run = loop_runs.get_run(self.store, run_id)
                return train_step(self.train, self.store, run.model, run_id)

            chosen = InlineExecutor({"train": train})
        elif executor == "ray":
            from driftloop.loop.ray_executor import RayExecutor

            chosen = RayExecutor(self.root, address=ray_address)
        else:
            raise InputError(f"executor must be 'local', 'inline' or 'ray', not {executor!r}")
        lease = Lease(self.store, holder=holder, ttl=timedelta(seconds=lease_ttl))
        policies = self.definitions.policies if policies is None else policies
        triggers = PolicyTriggers(self.store, policies)
        rollout = ProgressiveRollout(self.store, policies, _ProjectLog(self))
        return Controller(self.store, chosen, lease=lease, triggers=triggers, rollout=rollout)

    # -- monitoring ---------------------------------------------------------------

    def monitor_of(self, model: str) -> Monitor:
        """The model's declared :class:`Monitor`, or one with the defaults."""
        declared = self.definitions.monitors.get(model)
        if declared is not None:
            return declared
        model_registry.get_model(self.store, model)  # an unknown model: NotFoundError
        return Monitor(model)

    def monitoring_context(self, monitor: Monitor | None = None) -> MonitorContext:
        from driftloop.monitoring.alerts import Delivery, Webhook
        from driftloop.monitoring.runner import MonitorContext

        settings = self.config.monitoring
        url = (monitor.webhook if monitor is not None else None) or settings.webhook_url
        webhook = (
            Webhook(
                url,
                timeout_s=settings.webhook_timeout.total_seconds(),
                retries=settings.webhook_retries,
            )
            if url
            else None
        )
        return MonitorContext(
            store=self.store,
            artifacts=self.artifacts,
            log=_ProjectLog(self),
            profiles=settings.profiles,
            reports=settings.reports,
            delivery=Delivery(webhook=webhook),
        )

    def monitor(
        self,
        model: str | None = None,
        *,
        window: str | None = None,
        step: str | None = None,
        against: str | None = None,
        last: int | None = None,
        now: datetime | None = None,
    ) -> list[MonitorRun]:
        """Analyse the prediction log's windows not analysed yet, for one model or every
        model with predictions (see :mod:`driftloop.monitoring.runner`); ``window``,
        ``step`` and ``against`` override the model's declared monitor for this run."""
        import dataclasses

        from driftloop.monitoring.runner import run_monitor

        if model is not None:
            models = [model]
        else:
            folders = sorted(self.config.serving.predictions.glob("model=*"))
            models = [f.name.removeprefix("model=") for f in folders]
        runs = []
        for name in models:
            monitor = self.monitor_of(name)
            changes: dict[str, Any] = {}
            if window is not None:
                changes.update(window=window, step=step)
            elif step is not None:
                changes["step"] = step
            if against is not None:
                changes["against"] = against
            if changes:
                try:
                    monitor = dataclasses.replace(monitor, **changes)
                except DefinitionError as exc:
                    raise InputError(str(exc)) from None
            runs.append(run_monitor(self.monitoring_context(monitor), monitor, now=now, last=last))
        return runs

    def monitoring_windows(
        self, model: str, *, limit: int | None = 20, against: str | None = None
    ) -> list[WindowMetrics]:
        """The model's latest analysed windows with their figures, oldest first."""
        from driftloop.monitoring import series

        model_registry.get_model(self.store, model)
        windows: list[Window] = series.list_windows(self.store, model, against=against, limit=limit)
        return series.metrics_of(self.store, windows)

    def alerts(
        self, model: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> list[Alert]:
        """Alerts, newest first (``status``: ``"firing"`` or ``"resolved"``)."""
        from driftloop.monitoring.alerts import list_alerts

        return list_alerts(self.store, model, status=status, limit=limit)

    # -- status -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A summary of the project: where its stores are, and its sources' state."""
        sources = []
        registered = {s.name: s for s in self.sources()}
        for name in sorted({*registered, *self.definitions.sources}):
            versions = list_versions(self.store, name) if name in registered else []
            held = len(self.quarantined(name)) if name in registered else 0
            sources.append(
                {
                    "name": name,
                    "declared": name in self.definitions.sources,
                    "registered": name in registered,
                    "contract_version": registered[name].contract_version
                    if name in registered
                    else None,
                    "versions": len(versions),
                    "rows": sum(v.rows for v in versions),
                    "latest": versions[-1].id if versions else None,
                    "latest_at": versions[-1].created_at.isoformat() if versions else None,
                    "quarantined": held,
                }
            )
        return {
            "project": self.config.name,
            "root": str(self.root),
            "driftloop_version": __version__,
            "metadata": self.store.url,
            "metadata_revision": self.store.revision(),
            "artifacts": self.artifacts.uri,
            "sources": sources,
        }

    # -- progressive rollouts (driftloop.rollout) ----------------------------------

    def start_rollout(
        self,
        model: str,
        ref: int | str,
        policy: RolloutPolicy | None = None,
        *,
        reason: str = "",
        run_id: str | None = None,
    ) -> rollout_engine.Rollout:
        """Start rolling the version ``ref`` names out by ``policy`` (a
        :class:`~driftloop.rollout.policy.RolloutPolicy`; default: the default policy)."""
        from driftloop.rollout import engine

        version = self._version_number(model, ref)
        return engine.start_rollout(
            self.store, model, version, policy, who=current_user(), reason=reason, run_id=run_id
        )

    def advance_rollouts(
        self, *, now: datetime | None = None
    ) -> list[rollout_engine.RolloutStatus]:
        """Advance every rollout not yet done, reading this project's logs."""
        from driftloop.rollout import engine

        return engine.advance_rollouts(self.store, _ProjectLog(self), now=now)

    def rollouts(
        self, model: str | None = None, *, state: str | None = None, limit: int | None = None
    ) -> list[rollout_engine.Rollout]:
        """Rollouts, newest first."""
        from driftloop.rollout import engine

        return engine.list_rollouts(self.store, model, state=state, limit=limit)

    def rollout(self, rollout_id: int) -> rollout_engine.RolloutDetail:
        """One rollout with its measurements and timeline."""
        from driftloop.rollout import engine

        return engine.get_rollout(self.store, rollout_id)

    def resume_rollout(self, rollout_id: int, *, reason: str = "") -> rollout_engine.Rollout:
        """Resume a paused rollout (its current step starts again)."""
        from driftloop.rollout import engine

        return engine.resume_rollout(self.store, rollout_id, who=current_user(), reason=reason)

    def abort_rollout(self, rollout_id: int, *, reason: str = "") -> rollout_engine.Rollout:
        """Stop an active rollout; the champion stays."""
        from driftloop.rollout import engine

        return engine.abort_rollout(self.store, rollout_id, who=current_user(), reason=reason)

    def rollback_model(
        self, model: str, *, to: int | str | None = None, reason: str = ""
    ) -> rollout_engine.RollbackResult:
        """The instant way back: an active rollout is rolled back, and the champion
        returns to ``to`` (a version ref) or to the champion before it."""
        from driftloop.rollout import engine

        version = None if to is None else self._version_number(model, to)
        return engine.rollback(
            self.store, model, to_version=version, who=current_user(), reason=reason
        )
