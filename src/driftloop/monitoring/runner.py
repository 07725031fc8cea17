"""Running a monitor: the windows of a model's prediction log not analysed yet.

:func:`run_monitor` analyses, for one :class:`~driftloop.monitoring.definitions.Monitor`:

- **time windows** ``[end - window, end)`` whose ends are whole multiples of the step
  (from the Unix epoch, in UTC), from the first prediction (or the window after the
  last one analysed) up to now: tumbling when the step is the window, sliding when it
  is shorter. Each step of the log is profiled once
  (:class:`~driftloop.monitoring.profiles.Profile`), cached under
  ``monitoring.profiles``, and a window is the merge of its steps' profiles — so
  sliding a window reads one step of the log, not the whole window;
- or, with ``last=N``, **one window of the latest N predictions**.

Each window is compared with the reference profile of the version that served most
of it (``against="reference"``) or with the window before it (``"previous"``); its
figures are stored as time series (:mod:`driftloop.monitoring.series`), its HTML
report written, and the monitor's alert rules evaluated
(:mod:`driftloop.monitoring.alerts`). Performance figures of recent windows (within
``label_horizon``) that still await labels are recomputed on every run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core import clock
from driftloop.core.artifacts import ArtifactStore
from driftloop.core.metadata import MetadataStore
from driftloop.errors import InputError, NotFoundError
from driftloop.monitoring import alerts as alerting
from driftloop.monitoring import series
from driftloop.monitoring.analysis import analyse, performance, reference_from_profile
from driftloop.monitoring.contracts import ContractCheck, contract_checks
from driftloop.monitoring.definitions import Monitor
from driftloop.monitoring.drift import TableReference
from driftloop.monitoring.html import write_window_report
from driftloop.monitoring.profiles import Profile
from driftloop.monitoring.references import load_reference
from driftloop.registry import models as registry

__all__ = ["LogReader", "MonitorContext", "MonitorRun", "run_monitor"]

_log = logging.getLogger("driftloop.monitoring")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROFILE_FORMAT = "v1"
SETTLE = timedelta(seconds=30)
"""A step of the log is cached once it ended this long ago (late records have landed)."""
MAX_WINDOWS = 10_000
"""At most this many windows per run (the rest wait for the next run)."""


class LogReader(Protocol):
    """Where the prediction and feedback logs are read from."""

    def predictions(self, model: str, since: datetime, until: datetime) -> pa.Table:
        """Records of ``model`` with ``since <= at < until``, ordered by time."""
        ...

    def join_labels(self, model: str, table: pa.Table, since: datetime, now: datetime) -> pa.Table:
        """``table`` (records of ``model`` made at or after ``since``) joined with the
        labels known for them at ``now`` (``label``, ``label_text``; null while awaited):
        feedback received, and the model's label source."""
        ...

    def first_day(self, model: str) -> date | None:
        """The first day with records of ``model``, or None."""
        ...


@dataclass(frozen=True)
class MonitorContext:
    store: MetadataStore
    artifacts: ArtifactStore
    log: LogReader
    profiles: Path | None = None
    """Folder of cached step profiles (None: no cache)."""
    reports: Path | None = None
    """Folder of the windows' HTML reports (None: none written)."""
    delivery: alerting.Delivery | None = None
    """Where alerts go (None: no alert rules are evaluated)."""


@dataclass
class MonitorRun:
    """What one run analysed."""

    model: str
    windows: list[series.WindowMetrics] = field(default_factory=list)
    alerts: list[alerting.AlertChange] = field(default_factory=list)
    refreshed: int = 0
    """Earlier windows whose performance was recomputed with newly arrived labels."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "windows": [w.to_dict() for w in self.windows],
            "alerts": [a.to_dict() for a in self.alerts],
            "refreshed": self.refreshed,
        }


def _floor(at: datetime, step: timedelta) -> datetime:
    return _EPOCH + ((at - _EPOCH) // step) * step


def _ends(ctx: MonitorContext, monitor: Monitor, now: datetime) -> list[datetime]:
    """The ends of the time windows to analyse now."""
    window, step = monitor.window_length, monitor.step_length
    last = series.last_end(ctx.store, monitor.model, monitor.against)
    if last is not None:
        first = last + step
    else:
        day = ctx.log.first_day(monitor.model)
        if day is None:
            return []
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        offset = monitor.offset_length
        # the step holding the log's first UTC midnight, shifted by the offset (the
        # day's first predictions may fall in the step that started the day before)
        first = _floor(start - offset, step) + offset + window
        if monitor.against == "previous":
            first += window  # the first window is the reference of the second
    ends: list[datetime] = []
    end = first
    while end + monitor.delay_length <= now and len(ends) < MAX_WINDOWS:
        ends.append(end)
        end += step
    return ends


class _Steps:
    """Profiles of the log's steps, built once (cached in memory and on disk)."""

    def __init__(self, ctx: MonitorContext, model: str, step: timedelta, now: datetime) -> None:
        self.ctx, self.model, self.step, self.now = ctx, model, step, now
        self.memory: dict[datetime, Profile] = {}
        self.tables: dict[datetime, pa.Table] = {}
        """The records of the steps read in this run (performance needs them again)."""
        seconds = int(step.total_seconds() * 1000)
        self.folder = (
            None
            if ctx.profiles is None
            else ctx.profiles / _safe(model) / _PROFILE_FORMAT / f"step-{seconds}ms"
        )

    def _path(self, start: datetime) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{int((start - _EPOCH).total_seconds() * 1000)}.parquet"

    def _cached(self, start: datetime) -> Profile | None:
        path = self._path(start)
        if path is not None and path.is_file():
            try:
                return Profile.from_bytes(path.read_bytes())
            except InputError:
                _log.warning("ignoring an unreadable profile cache file %s", path)
        return None

    def _profile(self, start: datetime, table: pa.Table) -> Profile:
        end = start + self.step
        self.tables[start] = table
        profile = Profile.build(table, start=start, end=end)
        path = self._path(start)
        if path is not None and end + SETTLE <= self.now:
            _write_atomic(path, profile.to_bytes())
        return profile

    def get(self, start: datetime) -> Profile:
        profile = self.memory.get(start) or self._cached(start)
        if profile is None:
            profile = self._profile(
                start, self.ctx.log.predictions(self.model, start, start + self.step)
            )
        self.memory[start] = profile
        return profile

    def _prefetch(self, starts: list[datetime]) -> None:
        """Profile the steps not profiled yet with one read of the log for all of them
        (one read of a day instead of 24 of an hour each)."""
        missing = []
        for at in starts:
            if at in self.memory:
                continue
            cached = self._cached(at)
            if cached is not None:
                self.memory[at] = cached
            else:
                missing.append(at)
        if len(missing) < 2:
            return
        table = self.ctx.log.predictions(self.model, missing[0], missing[-1] + self.step)
        micros = (
            pc.cast(table.column("at"), pa.int64()).to_numpy(zero_copy_only=False)
            if table.num_rows
            else np.empty(0, dtype=np.int64)
        )
        for at in missing:
            low, high = (
                int((t - _EPOCH) / timedelta(microseconds=1)) for t in (at, at + self.step)
            )
            a, b = np.searchsorted(micros, [low, high], side="left")
            self.memory[at] = self._profile(at, table.slice(int(a), int(b - a)))

    def _starts(self, start: datetime, end: datetime) -> list[datetime]:
        starts = []
        at = start
        while at < end:
            starts.append(at)
            at += self.step
        return starts

    def window(self, start: datetime, end: datetime) -> Profile:
        starts = self._starts(start, end)
        self._prefetch(starts)
        return Profile.merge([self.get(at) for at in starts])

    def records(self, start: datetime, end: datetime) -> pa.Table:
        """The window's records: from the steps read in this run, or from the log."""
        starts = self._starts(start, end)
        if all(at in self.tables for at in starts):
            parts = [self.tables[at] for at in starts if self.tables[at].num_rows]
            if parts:
                return pa.concat_tables(parts, promote_options="permissive")
        return self.ctx.log.predictions(self.model, start, end)

    def forget_before(self, start: datetime) -> None:
        """Drop what no later window needs."""
        for cache in (self.memory, self.tables):
            for at in [a for a in cache if a < start]:
                del cache[at]

    def prune_disk(self, before: datetime) -> int:
        """Delete the cached step profiles starting before ``before`` (no later window
        of this monitor reads them; another window length would profile them again
        from the log); how many were deleted."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        limit = int((before - _EPOCH).total_seconds() * 1000)
        deleted = 0
        for path in self.folder.glob("*.parquet"):
            if path.stem.lstrip("-").isdigit() and int(path.stem) < limit:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _Versions:
    """The registered versions a window needs: references and output schemas."""

    def __init__(self, ctx: MonitorContext, model: str) -> None:
        self.ctx, self.model = ctx, model
        self.found: dict[int, registry.ModelVersion | None] = {}
        self.checks: dict[int, dict[str, ContractCheck]] = {}

    def get(self, version: int) -> registry.ModelVersion | None:
        if version not in self.found:
            try:
                self.found[version] = registry.get_version(self.ctx.store, self.model, version)
            except NotFoundError:
                self.found[version] = None
        return self.found[version]

    def contracts(self, version: int | None) -> dict[str, ContractCheck]:
        if version is None:
            return {}
        found = self.get(version)
        if found is None:
            return {}
        if version not in self.checks:
            self.checks[version] = contract_checks(self.ctx.store, found.signature)
        return self.checks[version]

    def output(self, version: int) -> Mapping[str, Any] | None:
        found = self.get(version)
        return None if found is None else found.signature.get("output")

    def reference(self, version: int | None) -> tuple[TableReference | None, dict[str, Any]]:
        if version is None:
            return None, {"kind": "none", "reason": "no predictions"}
        found = self.get(version)
        digest = None if found is None else (found.lineage or {}).get("reference")
        if not digest:
            return None, {
                "kind": "none",
                "version": version,
                "reason": "the version has no reference profile (registered without a "
                "training run)",
            }
        return load_reference(self.ctx.artifacts, str(digest)), {
            "kind": "training",
            "version": version,
            "digest": digest,
        }


def _report_path(ctx: MonitorContext, window: series.Window) -> Path | None:
    if ctx.reports is None:
        return None
    stamp = "%Y%m%dT%H%M%S"
    name = f"{window.against}-{window.start.strftime(stamp)}-{window.end.strftime(stamp)}.html"
    return ctx.reports / _safe(window.model) / name


def _finish(
    ctx: MonitorContext,
    monitor: Monitor,
    run: MonitorRun,
    *,
    start: datetime,
    end: datetime,
    profile: Profile,
    reference: TableReference | None,
    about: dict[str, Any],
    versions: _Versions,
    records: pa.Table,
    now: datetime,
) -> None:
    metrics = analyse(profile, reference, monitor, versions.contracts(profile.main_version))
    labelled = (
        ctx.log.join_labels(monitor.model, records, start, now) if records.num_rows else records
    )
    metrics += performance(labelled, versions.output, monitor, profile.main_version)
    window = series.record_window(
        ctx.store,
        model=monitor.model,
        against=monitor.against,
        start=start,
        end=end,
        rows=profile.rows,
        version=profile.main_version,
        reference=about,
        metrics=metrics,
    )
    path = _report_path(ctx, window)
    result = series.WindowMetrics(window, metrics)
    if path is not None:
        write_window_report(result, path)
        series.set_report(ctx.store, window.id, str(path))
        result = series.WindowMetrics(series.get_window(ctx.store, window.id) or window, metrics)
    run.windows.append(result)
    if ctx.delivery is not None and monitor.rules:
        run.alerts += alerting.evaluate(
            ctx.store, monitor.model, list(monitor.rules), result, deliver=ctx.delivery
        )


def _refresh_performance(
    ctx: MonitorContext, monitor: Monitor, now: datetime, skip: set[int], versions: _Versions
) -> int:
    """Recompute the performance of recent windows still awaiting labels."""
    recent = series.list_windows(
        ctx.store, monitor.model, against=monitor.against, since=now - monitor.horizon
    )
    todo = [w for w in recent if w.id not in skip]
    refreshed = 0
    for found in series.metrics_of(ctx.store, todo):
        awaiting = found.get("performance.awaiting")
        if awaiting is not None and not awaiting.value:
            continue
        records = ctx.log.predictions(monitor.model, found.window.start, found.window.end)
        labelled = (
            ctx.log.join_labels(monitor.model, records, found.window.start, now)
            if records.num_rows
            else records
        )
        values = performance(labelled, versions.output, monitor, found.window.version)
        series.replace_metrics(ctx.store, found.window.id, "performance.", values)
        refreshed += 1
    return refreshed


def _compared_with(
    monitor: Monitor,
    versions: _Versions,
    profile: Profile,
    before: Profile | None,
    span: dict[str, Any],
) -> tuple[TableReference | None, dict[str, Any]]:
    """What a window is compared with, and how that is recorded: the profile of the
    window before it, or the reference of the version that served most of it."""
    if monitor.against != "previous":
        return versions.reference(profile.main_version)
    rows = before.rows if before is not None else 0
    reference = reference_from_profile(before) if before is not None and rows else None
    return reference, {"kind": "previous", **span, "rows": rows}


def run_monitor(
    ctx: MonitorContext,
    monitor: Monitor,
    *,
    now: datetime | None = None,
    last: int | None = None,
) -> MonitorRun:
    """Analyse the windows of ``monitor.model`` not analysed yet (see the module doc)."""
    now = clock.ensure_utc(now, what="now") if now is not None else clock.now()
    run = MonitorRun(monitor.model)
    versions = _Versions(ctx, monitor.model)
    if last is not None:
        _last(ctx, monitor, run, last, now=now, versions=versions)
        return run
    steps = _Steps(ctx, monitor.model, monitor.step_length, now)
    window = monitor.window_length
    for end in _ends(ctx, monitor, now):
        start = end - window
        profile = steps.window(start, end)
        if not profile.versions:
            steps.forget_before(start - window)
            continue  # nothing was served in this window
        before = steps.window(start - window, start) if monitor.against == "previous" else None
        reference, about = _compared_with(
            monitor,
            versions,
            profile,
            before,
            {"start": (start - window).isoformat(), "end": start.isoformat()},
        )
        _finish(
            ctx,
            monitor,
            run,
            start=start,
            end=end,
            profile=profile,
            reference=reference,
            about=about,
            versions=versions,
            records=steps.records(start, end),
            now=now,
        )
        steps.forget_before(start - window)
    if run.windows:
        # the next window, and the one before it (against="previous"), start from here
        steps.prune_disk(run.windows[-1].window.end + monitor.step_length - 2 * window)
    run.refreshed = _refresh_performance(
        ctx, monitor, now, {w.window.id for w in run.windows}, versions
    )
    return run


def _tail(ctx: MonitorContext, model: str, rows: int, until: datetime) -> tuple[pa.Table, bool]:
    """At least ``rows`` served records before ``until`` (fewer if the log has fewer),
    read backwards a doubling span at a time; and whether the log was read to its start."""
    first = ctx.log.first_day(model)
    if first is None:
        return pa.table({}), True
    begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
    span = timedelta(hours=1)
    while True:
        since = max(until - span, begin)
        table = ctx.log.predictions(model, since, until)
        served = (
            int(pc.sum(pc.not_equal(table.column("role"), "shadow")).as_py() or 0)
            if table.num_rows
            else 0
        )
        if served >= rows or since <= begin:
            return table, since <= begin
        span *= 2


def _last_rows(table: pa.Table, rows: int) -> tuple[pa.Table, pa.Table]:
    """The records of the last ``rows`` served predictions (with the shadow copies made
    meanwhile), and the records before them."""
    served = pc.not_equal(table.column("role"), "shadow")
    positions = pc.indices_nonzero(served).to_numpy(zero_copy_only=False)
    if positions.size <= rows:
        return table, table.slice(0, 0)
    cut = int(positions[positions.size - rows])
    return table.slice(cut), table.slice(0, cut)


def _last(
    ctx: MonitorContext,
    monitor: Monitor,
    run: MonitorRun,
    rows: int,
    *,
    now: datetime,
    versions: _Versions,
) -> None:
    if rows < 1:
        raise InputError(f"--last must be a positive number of predictions, got {rows}")
    wanted = rows * 2 if monitor.against == "previous" else rows
    table, _ = _tail(ctx, monitor.model, wanted, now)
    if table.num_rows == 0:
        return
    current, before = _last_rows(table, rows)
    at = current.column("at")
    start = at[0].as_py()
    end = at[-1].as_py() + timedelta(microseconds=1)
    profile = Profile.build(current, start=start, end=end)
    earlier = _last_rows(before, rows)[0] if monitor.against == "previous" else None
    before_profile = (
        Profile.build(earlier, start=start, end=start)
        if earlier is not None and earlier.num_rows
        else None
    )
    reference, about = _compared_with(monitor, versions, profile, before_profile, {})
    about["last"] = rows
    _finish(
        ctx,
        monitor,
        run,
        start=start,
        end=end,
        profile=profile,
        reference=reference,
        about=about,
        versions=versions,
        records=current,
        now=now,
    )
