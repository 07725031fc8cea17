"""Short-lived DuckDB connections without the cost of a new database each time.

Opening an in-memory DuckDB database costs about 12 ms; a cursor on one already open
costs about 0.05 ms. :func:`cursor` hands out a cursor (its own connection: its own
registered tables and settings) on a process-wide in-memory database, opened on first
use and again in a forked child::

    with cursor() as con:
        con.register("log", table)
        con.sql("SELECT count(*) FROM log").fetchall()
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import duckdb

__all__ = ["cursor"]

_lock = threading.Lock()
_bases: dict[int, duckdb.DuckDBPyConnection] = {}
"""The database of each process id: a forked child opens its own (and never touches,
not even to close, the one it inherited)."""


def _database() -> duckdb.DuckDBPyConnection:
    pid = os.getpid()
    with _lock:
        base = _bases.get(pid)
        if base is None:
            base = _bases[pid] = duckdb.connect()
        return base


@contextlib.contextmanager
def cursor() -> Iterator[duckdb.DuckDBPyConnection]:
    """A private connection to the process's in-memory database, speaking UTC."""
    con = _database().cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()
