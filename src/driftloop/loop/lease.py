"""A lease in the metadata store: only one controller acts at a time.

A lease is a row ``(name, holder, expires_at, generation)``. :meth:`Lease.acquire`
takes it when it is free or expired, or renews it when this holder already has it, in
one write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock), so two
contenders never both hold it. A holder that stops renewing (killed, hung, cut off)
loses the lease ``ttl`` after its last renewal, and the next contender takes over; the
``generation`` goes up at every change of holder, so work can be fenced by it::

    lease = Lease(store, "controller", ttl=timedelta(seconds=15))
    if lease.acquire():
        ...   # act, renewing more often than the ttl
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.loop.tables import leases

__all__ = ["Lease", "LeaseState", "default_holder"]


def default_holder() -> str:
    """``host:pid:random``: unique per process, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseState:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    generation: int


class Lease:
    """One named lease held by ``holder`` (see the module doc)."""

    def __init__(
        self,
        store: MetadataStore,
        name: str = "controller",
        *,
        holder: str | None = None,
        ttl: timedelta = timedelta(seconds=15),
    ) -> None:
        self.store = store
        self.name = name
        self.holder = holder or default_holder()
        self.ttl = ttl
        self.generation: int | None = None
        """The generation this holder got the lease at (None: not held)."""

    def acquire(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; whether this holder has it until ``now + ttl``."""
        now = now or clock.now()
        t = leases
        with self.store.transaction() as conn:
            query = sa.select(t).where(t.c.name == self.name)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                values = {
                    "name": self.name,
                    "holder": self.holder,
                    "acquired_at": now,
                    "expires_at": now + self.ttl,
                    "generation": 1,
                }
                insert: sa.Executable
                if conn.dialect.name == "postgresql":
                    insert = postgresql.insert(t).values(**values).on_conflict_do_nothing()
                else:
                    insert = sa.insert(t).values(**values).prefix_with("OR IGNORE")
                inserted = conn.execute(insert.returning(t.c.name)).first()
                if inserted is None:  # someone inserted first
                    self.generation = None
                    return False
                self.generation = 1
                return True
            mine = row.holder == self.holder
            if not mine and row.expires_at > now:
                self.generation = None
                return False
            generation = row.generation if mine else row.generation + 1
            conn.execute(
                sa.update(t)
                .where(t.c.name == self.name, t.c.generation == row.generation)
                .values(
                    holder=self.holder,
                    acquired_at=row.acquired_at if mine else now,
                    expires_at=now + self.ttl,
                    generation=generation,
                )
            )
            self.generation = generation
            return True

    def release(self) -> None:
        """Give the lease up now (only if this holder has it)."""
        t = leases
        with self.store.transaction() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.name == self.name, t.c.holder == self.holder)
                .values(expires_at=clock.now())
            )
        self.generation = None

    def state(self) -> LeaseState | None:
        """The lease as stored (whoever holds it)."""
        with self.store.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == self.name)).one_or_none()
        if row is None:
            return None
        return LeaseState(row.name, row.holder, row.acquired_at, row.expires_at, row.generation)
