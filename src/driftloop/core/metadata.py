"""The metadata store: SQLAlchemy 2 over SQLite (embedded default) or PostgreSQL.

Each package declares its tables on :data:`METADATA` (``data/tables.py``...), and
Alembic migrations in ``core/migrations`` create them. Opening a store applies
any pending migration, so a project is always at the schema of the installed
driftloop::

    store = MetadataStore.open("sqlite:///metadata.db")
    with store.transaction() as conn:
        conn.execute(...)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from driftloop.errors import MetadataStoreError, MissingExtraError

__all__ = ["JSON", "METADATA", "MetadataStore", "UTCDateTime"]

METADATA = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the metadata store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_MIGRATIONS = Path(__file__).with_name("migrations")
_migrate_lock = threading.Lock()


def _load_table_modules() -> None:
    """Import every package's table declarations so METADATA is complete."""
    import driftloop.data.tables
    import driftloop.features.tables
    import driftloop.loop.tables
    import driftloop.monitoring.tables
    import driftloop.registry.tables
    import driftloop.rollout.tables
    import driftloop.serving.tables
    import driftloop.training.tables  # noqa: F401


class MetadataStore:
    """A handle on the metadata database; cheap to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, echo: bool = False) -> MetadataStore:
        """Connect to ``url``, apply pending migrations, and return the store."""
        try:
            sa_url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise MetadataStoreError(f"not a database URL: {url!r} ({exc})", url=url) from None
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if sa_url.get_backend_name() == "sqlite":
            database = sa_url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = sa.create_engine(sa_url, **kwargs)
        except ModuleNotFoundError as exc:
            raise MissingExtraError(
                "a PostgreSQL metadata store", "postgres", exc.name or "psycopg"
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, safe to call concurrently)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        _load_table_modules()
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with _migrate_lock:
            try:
                with self.transaction() as conn:
                    if conn.dialect.name == "postgresql":
                        # one migrator at a time across processes
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7263910021)"))
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except (sa.exc.OperationalError, sa.exc.DatabaseError) as exc:
                raise MetadataStoreError(
                    f"cannot open the metadata store at {self.url}: {exc.orig}", url=self.url
                ) from None

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one write transaction: committed on success, rolled back on error.

        On SQLite the write lock is taken at the start (``BEGIN IMMEDIATE``), so concurrent
        compare-and-set transactions queue up rather than fail at commit.
        """
        with self.engine.connect().execution_options(driftloop_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is disabled so that BEGIN is ours (see _sqlite_begin)
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("driftloop_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
