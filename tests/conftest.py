"""Fixtures shared by the whole test suite: real PostgreSQL and Redis servers.

The servers are started for real, from the binaries installed on the machine, and
listen on 127.0.0.1 only, each on a port the OS reports free. Under pytest-xdist
every worker is its own process and starts its own servers.

When a binary is missing the tests that need it are skipped, unless
``DRIFTLOOP_REQUIRE_BACKENDS=1`` is set (as in CI), in which case they fail.

Environment variables:

- ``DRIFTLOOP_REQUIRE_BACKENDS=1``: fail instead of skip when a server is missing.
- ``DRIFTLOOP_PG_BIN``: the directory holding ``initdb`` and ``pg_ctl``; otherwise
  they are looked up on ``PATH``, then in ``/usr/lib/postgresql/*/bin`` (newest).
- ``DRIFTLOOP_REDIS_SERVER``: the ``redis-server`` binary; otherwise from ``PATH``.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis
from psycopg import sql

pytest_plugins = ["pytester"]

LOOPBACK = "127.0.0.1"
PG_SUPERUSER = "postgres"
PG_OS_USER = "postgres"
START_ATTEMPTS = 3
ADDRESS_IN_USE = "Address already in use"


def missing_backend(reason: str) -> NoReturn:
    """Skip the requesting test, or fail it when CI requires every backend."""
    if os.environ.get("DRIFTLOOP_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"{reason} (DRIFTLOOP_REQUIRE_BACKENDS=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Ask the OS for a TCP port on the loopback interface that nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# --- PostgreSQL -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server running for this test session (trust auth, no password)."""

    host: str
    port: int
    user: str

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """The libpq connection string of database ``dbname``, for psycopg."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Order /usr/lib/postgresql/<version>/bin directories by version (9.6 < 15)."""
    parts = bin_dir.parent.name.split(".")
    return tuple(int(part) for part in parts if part.isdigit())


def _find_pg_bin() -> Path:
    """The directory holding initdb and pg_ctl, or skip/fail when there is none."""
    override = os.environ.get("DRIFTLOOP_PG_BIN")
    if override:
        candidates = [Path(override)]
    else:
        on_path = shutil.which("initdb")
        candidates = [Path(on_path).parent] if on_path else []
        installed = Path("/usr/lib/postgresql").glob("*/bin")
        candidates += sorted(installed, key=_version_key, reverse=True)
    for bin_dir in candidates:
        if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return bin_dir
    where = override or "PATH or /usr/lib/postgresql/*/bin"
    missing_backend(f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where}")


def _pg_runner() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs PostgreSQL tools, and the OS user to run them as.

    initdb and postgres refuse to run as root, so under root they run as the
    ``postgres`` system user (created by Debian's postgresql package).
    """
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        missing_backend(
            f"running as root and there is no {PG_OS_USER!r} OS user to run PostgreSQL as"
        )
    runuser = shutil.which("runuser")
    if runuser is None:
        missing_backend("running as root and runuser (util-linux) is not installed")
    return [runuser, "-u", PG_OS_USER, "--"], account


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a server tool to completion, raising with its output when it fails."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def _start_postgres(prefix: list[str], pg_bin: Path, base: Path) -> int:
    """Start the cluster in ``base/data`` on a free port and return the port."""
    data, log = base / "data", base / "postgres.log"
    attempt = 1
    while True:
        port = free_port()
        options = (
            f"-p {port} -k {base} -c listen_addresses={LOOPBACK}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        command = [str(pg_bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data)]
        command += ["-l", str(log), "-o", options]
        try:
            _run(prefix + command, cwd=base)
        except RuntimeError as error:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            # Another process may take the port between free_port() and bind().
            if ADDRESS_IN_USE in server_log and attempt < START_ATTEMPTS:
                attempt += 1
                continue
            raise RuntimeError(f"{error}\nserver log:\n{server_log}") from None
        return port


def _stop_postgres(prefix: list[str], pg_bin: Path, base: Path) -> None:
    """Stop the server by the PID in its postmaster.pid file."""
    data = base / "data"
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    command = [str(pg_bin / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)]
    try:
        _run(prefix + command, cwd=base)
    except RuntimeError:
        # pg_ctl signals the same PID; this is the fallback when pg_ctl itself fails.
        if pid_file.exists():
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session: initdb in a temp dir, started with pg_ctl."""
    pg_bin = _find_pg_bin()
    prefix, account = _pg_runner()
    # Under root, pytest's own temp dirs are private (0700): the postgres user could
    # not traverse them, so the cluster gets its own directory directly under /tmp.
    base = Path(tempfile.mkdtemp(prefix="driftloop-pg-", dir="/tmp" if account else None))
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        initdb = [str(pg_bin / "initdb"), "-D", str(base / "data"), "-A", "trust"]
        initdb += ["-U", PG_SUPERUSER, "-E", "UTF8", "--no-locale", "--no-sync"]
        _run(prefix + initdb, cwd=base)
        port = _start_postgres(prefix, pg_bin, base)
        try:
            yield PostgresServer(host=LOOPBACK, port=port, user=PG_SUPERUSER)
        finally:
            _stop_postgres(prefix, pg_bin, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _drop_database(server: PostgresServer, name: str) -> None:
    """Drop a database, closing any connection a test left open on it."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        if conn.info.server_version >= 130000:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            return
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _create_database(server: PostgresServer) -> str:
    """A fresh, empty database on ``server``; its name."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


@pytest.fixture
def postgres_url_factory(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """A function creating a fresh, empty database per call and returning its URL."""
    created: list[str] = []

    def create() -> str:
        created.append(_create_database(postgres_server))
        return postgres_server.url(created[-1])

    yield create
    for name in created:
        _drop_database(postgres_server, name)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_metadata_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``metadata_url``, shared by a module's tests: an SQLite file, then a fresh
    PostgreSQL database dropped after the module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('metadata') / 'metadata.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = _create_database(server)
    try:
        yield server.url(name)
    finally:
        _drop_database(server, name)


@pytest.fixture
def postgres_url(postgres_url_factory: Callable[[], str]) -> str:
    """The SQLAlchemy URL of a fresh database, dropped after the test."""
    return postgres_url_factory()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata store URL: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# --- Redis ----------------------------------------------------------------------------


def _find_redis_server() -> str:
    """The redis-server binary, or skip/fail when there is none."""
    override = os.environ.get("DRIFTLOOP_REDIS_SERVER")
    binary = shutil.which(override or "redis-server")
    if binary is None:
        missing_backend(f"redis-server not found ({override or 'on PATH'})")
    return binary


def _wait_for_ping(process: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """Wait until the server answers PING; False when it exited (e.g. port taken)."""
    deadline = time.monotonic() + 30
    client = redis.Redis(host=LOOPBACK, port=port, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError(f"redis-server did not answer PING within 30s; log:\n{log.read_text()}")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """End a server we started, by its own PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_redis(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server on a free port, wait for PING, return the process and port."""
    log = workdir / "redis.log"
    attempt = 1
    while True:
        port = free_port()
        command = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(workdir)]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            ready = _wait_for_ping(process, port, log)
        except BaseException:
            _terminate(process)
            raise
        if ready:
            return process, port
        process.wait()
        server_log = log.read_text(errors="replace")
        # Another process may take the port between free_port() and bind().
        if ADDRESS_IN_USE in server_log and attempt < START_ATTEMPTS:
            attempt += 1
            continue
        raise RuntimeError(f"redis-server exited with {process.returncode}:\n{server_log}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis server of this session, without persistence."""
    binary = _find_redis_server()
    process, port = _start_redis(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        _terminate(process)
