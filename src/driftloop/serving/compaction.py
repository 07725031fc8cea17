"""Compaction of record-log partitions: many small part files into few large ones.

A serving log writes one small file per group commit (several per second per worker),
which would leave a day's partition with hundreds of thousands of files. Compaction
merges them in tiers, crash-safely and without ever showing a record twice or losing
one:

- A part file written by a log is level 0. When a partition holds ``min_files`` files
  of one level, they are merged into one file of the next level,
  ``compact-L<level>-<utc time>-<pid>-<seq>.parquet`` (rows in file order, each file in
  ``at`` order as written). A day of a busy server ends up
  with a few dozen files.
- The merged file records the names of the files it replaces in its Parquet metadata
  (``driftloop.compacted_from``) and appears by an atomic rename, fsynced. From that
  moment readers (:func:`live_files`) skip the replaced files, whether or not they are
  deleted yet; they are deleted next. A crash at any point leaves either the old files
  or the merged one visible, never both.
- The replaced files of every merged file are deleted before that merged file can
  itself be merged, so a replaced file never reappears.
- One compactor per partition at a time: an exclusive ``flock`` on
  ``<partition>/.compact.lock``; a busy partition is skipped (the next run does it).

:class:`~driftloop.serving.predictionlog.RecordLog` runs :func:`compact_partition` in a
background thread on the partitions it writes to; :func:`compact_log` compacts every
partition under a root (``driftloop serve`` is not needed for it).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.serving.records import aligned

__all__ = ["compact_log", "compact_partition", "fsync_path", "live_files"]

SOURCES_KEY = b"driftloop.compacted_from"
MIN_FILES = 16
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Files this large are final: never merged again (bounds a merge's work)."""
_ROW_GROUP = 256 * 1024
_LEVEL = re.compile(r"^compact-L(\d+)-")
_seq = itertools.count()


def _level(path: Path) -> int:
    match = _LEVEL.match(path.name)
    return int(match.group(1)) if match else 0


def _sources(path: Path) -> list[str]:
    """The names of the files a merged file replaces (none for a part file)."""
    if not path.name.startswith("compact-"):
        return []
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(SOURCES_KEY)
    return list(json.loads(raw)) if raw else []


def _visible(partition: Path) -> list[Path]:
    try:
        return sorted(
            p for p in partition.iterdir() if p.suffix == ".parquet" and not p.name.startswith(".")
        )
    except FileNotFoundError:
        return []


def live_files(partition: Path) -> list[Path]:
    """The files of ``partition`` that hold its records: every visible Parquet file not
    replaced by a merged one."""
    files = _visible(partition)
    replaced: set[str] = set()
    for path in files:
        with contextlib.suppress(FileNotFoundError):  # deleted by a compactor meanwhile
            replaced.update(_sources(path))
    return [p for p in files if p.name not in replaced]


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: its entries, e.g. a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(partition: Path) -> Iterator[bool]:
    fd = os.open(partition / ".compact.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _delete_replaced(partition: Path, files: list[Path]) -> None:
    replaced: set[str] = set()
    for path in files:
        replaced.update(_sources(path))
    removed = False
    for name in replaced:
        with contextlib.suppress(FileNotFoundError):
            (partition / name).unlink()
            removed = True
    if removed:
        fsync_path(partition)


def compact_partition(partition: Path, *, min_files: int = MIN_FILES) -> int:
    """Merge ``partition``'s files level by level while a level has ``min_files`` of
    them; returns the number of files merged (0 if the partition is busy or small)."""
    if min_files < 2:
        raise ValueError(f"min_files must be >= 2, not {min_files}")
    partition = Path(partition)
    if not partition.is_dir():
        return 0
    merged = 0
    with _locked(partition) as acquired:
        if not acquired:
            return 0
        while True:
            files = _visible(partition)
            _delete_replaced(partition, files)  # finish what a crashed run started
            files = live_files(partition)
            by_level: dict[int, list[Path]] = {}
            for path in files:
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_size < MAX_FILE_BYTES:
                        by_level.setdefault(_level(path), []).append(path)
            full = sorted(level for level, group in by_level.items() if len(group) >= min_files)
            if not full:
                return merged
            level = full[0]
            _merge(partition, by_level[level], level + 1)
            merged += len(by_level[level])


def _merge(partition: Path, sources: list[Path], level: int) -> Path:
    """Stream ``sources`` into one new file (one source in memory at a time)."""
    schema = pa.unify_schemas(
        [pq.read_schema(p).remove_metadata() for p in sources], promote_options="permissive"
    )
    schema = schema.with_metadata({SOURCES_KEY: json.dumps([p.name for p in sources]).encode()})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"compact-L{level}-{stamp}-{os.getpid()}-{next(_seq):06d}.parquet"
    final = partition / name
    temporary = partition / f".{name}.tmp"
    try:
        with pq.ParquetWriter(str(temporary), schema, compression="zstd") as writer:
            pending: list[pa.Table] = []
            rows = 0
            for path in sources:
                table = pq.read_table(path)
                table = aligned(table, schema, table.num_rows)
                pending.append(table)
                rows += table.num_rows
                if rows >= _ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP)
        fsync_path(temporary)
        temporary.replace(final)
        fsync_path(partition)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    for path in sources:
        path.unlink(missing_ok=True)
    fsync_path(partition)
    return final


def compact_log(root: Path, model: str | None = None, *, min_files: int = MIN_FILES) -> int:
    """Compact every partition under ``root`` (of one model, or all); files merged."""
    pattern = f"model={model if model is not None else '*'}/date=*"
    return sum(
        compact_partition(partition, min_files=min_files)
        for partition in sorted(Path(root).glob(pattern))
        if partition.is_dir()
    )


def run_compactor(roots: list[Path], every_s: float, parent: int | None = None) -> None:
    """Compact every partition under ``roots`` every ``every_s`` seconds, until the
    process ``parent`` (if given) is gone; errors are logged and retried next time."""
    import logging
    import time

    log = logging.getLogger(__name__)
    while True:
        for root in roots:
            try:
                compact_log(root)
            except Exception as exc:  # keep compacting the other roots, and later
                log.warning("cannot compact %s: %s", root, exc)
        deadline = time.monotonic() + every_s
        while time.monotonic() < deadline:
            if parent is not None and os.getppid() != parent:
                return
            time.sleep(min(1.0, every_s))


def main(argv: list[str] | None = None) -> None:
    """``python -m driftloop.serving.compaction [--every S] [--parent PID] ROOT...``"""
    import argparse

    parser = argparse.ArgumentParser(description="Compact record logs in the background.")
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between passes")
    parser.add_argument("--parent", type=int, help="stop when this process is gone")
    args = parser.parse_args(argv)
    os.nice(10)  # below the server's workers
    run_compactor(args.roots, args.every, args.parent)


if __name__ == "__main__":
    main()
