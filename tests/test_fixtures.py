"""The server fixtures of conftest.py start real servers that tests can use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import sqlalchemy as sa

if TYPE_CHECKING:
    from conftest import PostgresServer

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def connect() -> Iterator[Callable[[str], sa.Connection]]:
    """Open SQLAlchemy connections that are closed, with their engines, after the test."""
    engines: list[sa.Engine] = []
    connections: list[sa.Connection] = []

    def open_connection(url: str) -> sa.Connection:
        engine = sa.create_engine(url)
        engines.append(engine)
        connections.append(engine.connect())
        return connections[-1]

    yield open_connection
    for connection in connections:
        connection.close()
    for engine in engines:
        engine.dispose()


def test_postgres_url_answers_select_1(
    postgres_url: str, connect: Callable[[str], sa.Connection]
) -> None:
    """A fresh PostgreSQL database answers SELECT 1 through SQLAlchemy and psycopg."""
    connection = connect(postgres_url)
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_postgres_databases_are_isolated(
    postgres_url: str,
    postgres_url_factory: Callable[[], str],
    connect: Callable[[str], sa.Connection],
) -> None:
    """A table created in one test database does not exist in another one."""
    first, second = connect(postgres_url), connect(postgres_url_factory())
    first.execute(sa.text("CREATE TABLE marker (id integer)"))
    first.commit()
    assert sa.inspect(first).has_table("marker")
    assert not sa.inspect(second).has_table("marker")


def test_postgres_server_is_local_and_unsynced(
    postgres_server: PostgresServer, postgres_url: str, connect: Callable[[str], sa.Connection]
) -> None:
    """The PostgreSQL server listens on 127.0.0.1 only and skips fsync for speed."""
    connection = connect(postgres_url)
    settings = {
        name: connection.execute(sa.text(f"SHOW {name}")).scalar_one()
        for name in ("listen_addresses", "fsync", "synchronous_commit", "full_page_writes")
    }
    assert postgres_server.host == "127.0.0.1"
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }


def test_metadata_url_accepts_queries(
    metadata_url: str, connect: Callable[[str], sa.Connection]
) -> None:
    """Both metadata store URLs, SQLite and PostgreSQL, take a table and its rows."""
    connection = connect(metadata_url)
    connection.execute(sa.text("CREATE TABLE runs (id integer)"))
    connection.execute(sa.text("INSERT INTO runs VALUES (1), (2)"))
    assert connection.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 2


def test_redis_server_answers_ping(redis_server: str) -> None:
    """The Redis server answers PING and keeps a value on 127.0.0.1."""
    client = redis.Redis.from_url(redis_server)
    try:
        assert redis_server.startswith("redis://127.0.0.1:")
        assert client.ping() is True
        client.set("driftloop", "ok")
        assert client.get("driftloop") == b"ok"
    finally:
        client.close()


MISSING_SERVER_TEST = """
def test_needs_postgres(postgres_server):
    pass

def test_needs_redis(redis_server):
    pass
"""


def run_without_binaries(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.RunResult:
    """Run two server tests in a child pytest with both server binaries missing."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(MISSING_SERVER_TEST)
    monkeypatch.setenv("DRIFTLOOP_PG_BIN", str(pytester.path / "no-such-dir"))
    monkeypatch.setenv("DRIFTLOOP_REDIS_SERVER", str(pytester.path / "no-such-redis"))
    return pytester.runpytest_subprocess("-rsE", "-p", "no:cacheprovider")


def test_missing_servers_skip_by_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests needing a server that is not installed are skipped by default."""
    monkeypatch.delenv("DRIFTLOOP_REQUIRE_BACKENDS", raising=False)
    result = run_without_binaries(pytester, monkeypatch)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*initdb, pg_ctl*not found*", "*redis-server not found*"])


def test_missing_servers_fail_when_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DRIFTLOOP_REQUIRE_BACKENDS=1 a missing server is an error, not a skip."""
    monkeypatch.setenv("DRIFTLOOP_REQUIRE_BACKENDS", "1")
    result = run_without_binaries(pytester, monkeypatch)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*not found*DRIFTLOOP_REQUIRE_BACKENDS=1*"])
