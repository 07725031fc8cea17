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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

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
    NotFoundError,
)

__all__ = ["Definitions", "Project", "find_project_root"]


@dataclass(frozen=True)
class Definitions:
    """What a project's definitions module declares."""

    sources: dict[str, Source] = field(default_factory=dict)
    file: Path | None = None


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
    found: dict[str, Source] = {}
    for value in vars(module).values():
        if isinstance(value, Source):
            other = found.get(value.name)
            if other is not None and other is not value:
                raise DefinitionError(f"source {value.name!r} is defined twice", file=str(path))
            found[value.name] = value
    return Definitions(sources=dict(sorted(found.items())), file=path)


class Project:
    """The entry point to one project's data, models and deployments."""

    def __init__(self, root: str | os.PathLike[str] = ".", *, config: Config | None = None) -> None:
        self.root = Path(root).resolve()
        self.config = config or load_config(self.root)

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

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- definitions --------------------------------------------------------------

    def apply(self, *objects: Source) -> list[ContractVersion]:
        """Register definitions: the given objects, or everything the definitions module
        declares. Each source's contract becomes a new version when it changed compatibly;
        a breaking change raises :class:`~driftloop.errors.BreakingContractChange`."""
        targets = list(objects) or list(self.definitions.sources.values())
        who = current_user()
        return [
            register_source(self.store, s.name, s.load_contract(self.root), who=who)
            for s in targets
        ]

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
            applied = self.apply(declared)[0]
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
