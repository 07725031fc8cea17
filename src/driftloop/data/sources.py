"""Sources and their versioned contracts in the metadata store."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.data.contract import Contract, compare_contracts, load_contract, parse_contract
from driftloop.data.tables import contract_versions, sources
from driftloop.errors import BreakingContractChange, ContractError, NotFoundError

__all__ = [
    "ContractVersion",
    "Source",
    "SourceState",
    "get_source_state",
    "list_source_states",
    "register_source",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class Source:
    """A named stream of batches that must honour a data contract.

    ``contract`` is a :class:`Contract` or the path of a YAML contract file
    (relative paths are resolved against the project folder)::

        transactions = Source("transactions", contract="contracts/transactions.yaml")
    """

    name: str
    contract: Contract | str | Path
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ContractError(
                f"source name {self.name!r} must start with a letter or _ and use only "
                "letters, digits, '_', '.', '-'",
                field="name",
            )

    def load_contract(self, base_dir: Path | None = None) -> Contract:
        """The contract object, reading the YAML file when the contract is a path."""
        if isinstance(self.contract, Contract):
            return self.contract
        path = Path(self.contract)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return load_contract(path)


@dataclass(frozen=True)
class ContractVersion:
    source: str
    version: int
    hash: str
    contract: Contract
    changes: list[str]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class SourceState:
    """What the metadata store knows of a source: its current contract version."""

    name: str
    contract_version: int
    created_at: datetime
    updated_at: datetime
    contract: Contract


def _version_from_row(row: Any) -> ContractVersion:
    return ContractVersion(
        source=row.source,
        version=row.version,
        hash=row.hash,
        contract=parse_contract(row.body),
        changes=list(row.changes),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def register_source(
    store: MetadataStore, name: str, contract: Contract, *, who: str
) -> ContractVersion:
    """Record ``contract`` as the current contract of source ``name``.

    An unchanged contract returns its existing version. A changed one becomes the
    next version when every change is additive; a breaking change raises
    :class:`BreakingContractChange` listing them, and nothing is written. Safe to call
    from several processes at once: a writer that loses a race reads the winner's row.
    """
    try:
        return _register(store, name, contract, who=who)
    except sa.exc.IntegrityError:
        return _register(store, name, contract, who=who)


def _register(store: MetadataStore, name: str, contract: Contract, *, who: str) -> ContractVersion:
    now = clock.now()
    digest = contract.hash
    with store.transaction() as conn:
        state = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        if state is None:
            conn.execute(
                sources.insert().values(
                    name=name, contract_version=1, created_at=now, updated_at=now
                )
            )
            conn.execute(
                contract_versions.insert().values(
                    source=name,
                    version=1,
                    hash=digest,
                    body=contract.to_dict(),
                    changes=[],
                    created_at=now,
                    created_by=who,
                )
            )
            row = conn.execute(
                sa.select(contract_versions).where(
                    contract_versions.c.source == name, contract_versions.c.version == 1
                )
            ).one()
            return _version_from_row(row)
        current = conn.execute(
            sa.select(contract_versions).where(
                contract_versions.c.source == name,
                contract_versions.c.version == state.contract_version,
            )
        ).one()
        if current.hash == digest:
            return _version_from_row(current)
        changes = compare_contracts(parse_contract(current.body), contract)
        if changes.breaking:
            raise BreakingContractChange(name, list(changes.breaking))
        existing = conn.execute(
            sa.select(contract_versions).where(
                contract_versions.c.source == name, contract_versions.c.hash == digest
            )
        ).first()
        if existing is not None:
            # going back to an earlier, compatible body: point at it again
            conn.execute(
                sources.update()
                .where(sources.c.name == name)
                .values(contract_version=existing.version, updated_at=now)
            )
            return _version_from_row(existing)
        version = (
            int(
                conn.execute(
                    sa.select(sa.func.max(contract_versions.c.version)).where(
                        contract_versions.c.source == name
                    )
                ).scalar_one()
            )
            + 1
        )
        conn.execute(
            contract_versions.insert().values(
                source=name,
                version=version,
                hash=digest,
                body=contract.to_dict(),
                changes=list(changes.additive),
                created_at=now,
                created_by=who,
            )
        )
        conn.execute(
            sources.update()
            .where(sources.c.name == name)
            .values(contract_version=version, updated_at=now)
        )
        row = conn.execute(
            sa.select(contract_versions).where(
                contract_versions.c.source == name, contract_versions.c.version == version
            )
        ).one()
        return _version_from_row(row)


def _state(conn: sa.Connection, row: Any) -> SourceState:
    body = conn.execute(
        sa.select(contract_versions.c.body).where(
            contract_versions.c.source == row.name,
            contract_versions.c.version == row.contract_version,
        )
    ).scalar_one()
    return SourceState(
        row.name, row.contract_version, row.created_at, row.updated_at, parse_contract(body)
    )


def get_source_state(store: MetadataStore, name: str) -> SourceState:
    with store.connect() as conn:
        row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        if row is None:
            known = list(conn.execute(sa.select(sources.c.name).order_by(sources.c.name)).scalars())
            raise NotFoundError("source", name, known=known)
        return _state(conn, row)


def list_source_states(store: MetadataStore) -> list[SourceState]:
    with store.connect() as conn:
        rows = conn.execute(sa.select(sources).order_by(sources.c.name)).all()
        return [_state(conn, row) for row in rows]


def contract_history(store: MetadataStore, name: str) -> list[ContractVersion]:
    """Every contract version of a source, oldest first."""
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(contract_versions)
            .where(contract_versions.c.source == name)
            .order_by(contract_versions.c.version)
        ).all()
    if not rows:
        get_source_state(store, name)  # raises NotFoundError naming the known sources
    return [_version_from_row(r) for r in rows]
