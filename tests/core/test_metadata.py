"""The metadata store contract, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from driftloop.core.metadata import JSON, METADATA, MetadataStore, UTCDateTime
from driftloop.errors import MetadataStoreError

probe = sa.Table(
    "probe",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime),
    sa.Column("body", JSON),
    sa.Column("n", sa.Integer),
)


@pytest.fixture
def store(metadata_url: str) -> MetadataStore:
    store = MetadataStore.open(metadata_url)
    probe.create(store.engine)
    yield store  # type: ignore[misc]
    store.close()


def test_opening_applies_every_migration(store: MetadataStore) -> None:
    """A new database is migrated to the newest revision on open."""
    assert store.revision() == "0008"
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"sources", "contract_versions", "dataset_versions", "quarantine", "ingest_log"} <= names


def test_migrations_match_the_declared_tables(metadata_url: str) -> None:
    """The migrated schema equals the tables the packages declare (no drift)."""
    store = MetadataStore.open(metadata_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), METADATA)
    store.close()
    assert diff == []


def test_reopening_is_idempotent(metadata_url: str, store: MetadataStore) -> None:
    """Opening an up-to-date store again changes nothing."""
    again = MetadataStore.open(metadata_url)
    assert again.revision() == store.revision()
    again.close()


def test_datetimes_come_back_aware_utc(store: MetadataStore) -> None:
    """A time written with any offset is read back as the same instant in UTC."""
    written = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=5)))
    with store.transaction() as conn:
        conn.execute(probe.insert().values(id=1, at=written))
    with store.connect() as conn:
        read = conn.execute(sa.select(probe.c.at)).scalar_one()
    assert read == written
    assert read.tzinfo is not None
    assert read.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(store: MetadataStore) -> None:
    """The store never guesses the zone of a naive time."""
    with pytest.raises(sa.exc.StatementError, match="naive"), store.transaction() as conn:
        conn.execute(probe.insert().values(id=1, at=datetime(2024, 1, 1)))


def test_json_round_trips(store: MetadataStore) -> None:
    """Nested JSON bodies are stored and read back unchanged."""
    body = {"a": [1, 2.5, None, "x"], "b": {"c": True}}
    with store.transaction() as conn:
        conn.execute(probe.insert().values(id=1, body=body))
    with store.connect() as conn:
        assert conn.execute(sa.select(probe.c.body)).scalar_one() == body


def test_a_failed_transaction_leaves_nothing(store: MetadataStore) -> None:
    """An exception inside transaction() rolls every statement back."""

    def insert_then_fail() -> None:
        with store.transaction() as conn:
            conn.execute(probe.insert().values(id=1))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        insert_then_fail()
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar_one() == 0


def test_compare_and_set_serialises_concurrent_writers(store: MetadataStore) -> None:
    """Concurrent read-modify-write transactions lose no update."""
    with store.transaction() as conn:
        conn.execute(probe.insert().values(id=1, n=0))

    def bump() -> None:
        for _ in range(10):
            while True:
                with store.transaction() as conn:
                    n = conn.execute(sa.select(probe.c.n).where(probe.c.id == 1)).scalar_one()
                    done = conn.execute(
                        probe.update().where(probe.c.id == 1, probe.c.n == n).values(n=n + 1)
                    ).rowcount
                if done == 1:
                    break

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.connect() as conn:
        assert conn.execute(sa.select(probe.c.n)).scalar_one() == 40


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    """The embedded default journals with WAL, so readers do not block the writer."""
    store = MetadataStore.open(f"sqlite:///{tmp_path}/m.db")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_a_bad_url_is_a_metadata_store_error() -> None:
    """A string that is not a database URL is refused with the URL in the message."""
    with pytest.raises(MetadataStoreError, match="not a database URL"):
        MetadataStore.open("not a url")


def test_an_unreachable_server_is_a_metadata_store_error() -> None:
    """A PostgreSQL URL nobody answers is reported, not a raw driver traceback."""
    with pytest.raises(MetadataStoreError, match="cannot open the metadata store"):
        MetadataStore.open("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_times_are_stored_in_utc(store: MetadataStore) -> None:
    """What is written as 10:00+02:00 reads as 08:00 UTC."""
    with store.transaction() as conn:
        conn.execute(
            probe.insert().values(
                id=1, at=datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2)))
            )
        )
    with store.connect() as conn:
        assert conn.execute(sa.select(probe.c.at)).scalar_one() == datetime(
            2024, 1, 1, 8, tzinfo=UTC
        )
