"""Replaying the loop over history in simulated time: the engine of backtests and of
the demo.

A :class:`Replay` drives one project through days of simulated time. For each day
``[start, end)``, in slices of ``tick``:

1. the requests whose time falls in the slice are scored by a :class:`Scorer` — the
   serving engine in this process (:class:`EngineScorer`), or a real server over HTTP
   (the demo) — one request per hour (``request_every``), stamped with its start;
   routing, shadow and canary copies and the prediction log are serving's own;
2. at the slice's end the clock moves there and the controller ticks: triggers are
   evaluated, runs train (inline), gates decide, rollouts advance on the traffic just
   logged.

At the day's end the day's rows of every source are ingested (a day's data arrives
once the day is over; a batch the contract rejects is quarantined and counted), the
online store is materialized when asked, and the model's monitor analyses the windows
that ended, before the controller's tick — so triggers see the day's data, drift and
labels. The replay's last day ends without a tick: a run started then would serve
nothing.

Every part reads the time from :mod:`driftloop.core.clock`, which the replay sets: data
versions, training sets, registry and deployment changes, firings and rollouts carry
simulated times, and a training run sees only the rows ingested, and the labels known,
by its simulated time.

Requests carry their inputs: the features of each request are computed once, point in
time, from the history (:func:`model_requests`) — the values an online store kept
up to date would have served. ``client_features`` limits the inputs a request carries;
the others are looked up in the online store by the request's keys.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.core.clock import SimulatedClock
from driftloop.errors import BatchRejected

if TYPE_CHECKING:
    from driftloop.loop.controller import Controller
    from driftloop.project import Project
    from driftloop.serving.engine import Engine

__all__ = [
    "DayReport",
    "EngineScorer",
    "Feed",
    "HistoryFeed",
    "Replay",
    "Scorer",
    "model_requests",
    "time_slices",
]

_TS = pa.timestamp("us", tz="UTC")
_HOUR = timedelta(hours=1)
REQUEST_TIME = "__request_time"
"""The column of a requests table holding each request's time."""


class Feed(Protocol):
    """The rows each source delivers for a span of time, to ingest at its end."""

    def between(self, start: datetime, end: datetime) -> Mapping[str, pa.Table]: ...


class Scorer(Protocol):
    """Where a replay's requests go."""

    def score(self, model: str, instances: pa.Table, keys: Sequence[str], at: datetime) -> None:
        """Score one request of ``instances`` (key columns ``keys``, the others are
        features) received at ``at``."""
        ...

    def settle(self) -> None:
        """Wait until every record of the requests scored so far is in the log."""
        ...


def _sorted_times(table: pa.Table, column: str) -> tuple[pa.Table, np.ndarray[Any, Any]]:
    table = table.sort_by(column)
    times = pc.cast(table.column(column), _TS).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return table, times


def _micros(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def time_slices(
    table: pa.Table, times: np.ndarray[Any, Any], start: datetime, end: datetime, step: timedelta
) -> list[tuple[datetime, pa.Table]]:
    """The rows of ``table`` (sorted, with ``times`` in microseconds) in ``[start, end)``
    cut at every ``step`` from ``start``: ``(slice start, rows)`` for each non-empty one."""
    edges = []
    t = start
    while t < end:
        edges.append(t)
        t += step
    bounds = np.searchsorted(times, [_micros(e) for e in [*edges, end]], side="left")
    return [
        (edge, table.slice(int(lo), int(hi - lo)))
        for edge, lo, hi in zip(edges, bounds[:-1], bounds[1:], strict=True)
        if hi > lo
    ]


class HistoryFeed:
    """A project's sources as known now, delivered again by event time: the rows of
    each source whose event time falls in a span (with the given ``tables``, the rows
    to deliver instead of the stored ones)."""

    def __init__(
        self,
        project: Project,
        sources: Sequence[str] | None = None,
        *,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> None:
        self._data: dict[str, tuple[pa.Table, np.ndarray[Any, Any]]] = {}
        names = list(sources) if sources is not None else sorted(project.declared_sources())
        for name in names:
            contract, _ = project.contract(name)
            table = tables[name] if tables and name in tables else project.read(name)
            self._data[name] = _sorted_times(table, contract.event_time)

    def between(self, start: datetime, end: datetime) -> dict[str, pa.Table]:
        out = {}
        for name, (table, times) in self._data.items():
            lo, hi = np.searchsorted(times, [_micros(start), _micros(end)], side="left")
            if hi > lo:
                out[name] = table.slice(int(lo), int(hi - lo))
        return out


def model_requests(
    project: Project, model: str, start: datetime, end: datetime
) -> tuple[pa.Table, list[str], list[str]]:
    """The requests a model would have received in ``[start, end)``: one per row of its
    label source (its entity keys, at the label's timestamp), with the features each
    would have been served, point in time from ``project``'s history.

    Returns the table (sorted by :data:`REQUEST_TIME`), the key columns and the
    feature columns."""
    spec = project.model_spec(model)
    label = spec.label
    entity = project.definitions.entities.get(label.entity_name)
    keys = list(entity.join_keys) if entity is not None else []
    rows = project.read(label.source, columns=[*keys, label.timestamp])
    ts = pc.cast(rows.column(label.timestamp), _TS)
    inside = pc.and_(pc.greater_equal(ts, pa.scalar(start, _TS)), pc.less(ts, pa.scalar(end, _TS)))
    rows = rows.filter(inside)
    served = project.get_training_set(
        rows, spec.features, timestamp_column=label.timestamp, store=False
    ).table
    features = [c for c in served.column_names if c not in {*keys, label.timestamp}]
    table = served.append_column(
        REQUEST_TIME, pc.cast(served.column(label.timestamp), _TS)
    ).drop_columns([label.timestamp])
    return table.sort_by(REQUEST_TIME), keys, features


class EngineScorer:
    """The serving engine in this process: the same routing, shadow copies, feature
    lookups, scoring and prediction log as a server, without HTTP."""

    def __init__(self, project: Project) -> None:
        from driftloop.serving.engine import Engine

        self.engine: Engine = Engine(project)
        self.engine.start()
        self.requests = 0

    def score(self, model: str, instances: pa.Table, keys: Sequence[str], at: datetime) -> None:
        from driftloop.serving.schemas import PredictRequest

        self.engine.refresh()
        request = PredictRequest.model_validate({"instances": instance_dicts(instances, keys)})
        self.engine.predict(model, request, uuid.uuid4().hex, at=at)
        self.requests += 1

    def settle(self) -> None:
        self.engine.drain()

    def close(self) -> None:
        self.engine.stop()


def instance_dicts(instances: pa.Table, keys: Sequence[str]) -> list[dict[str, Any]]:
    """A request's instances as the API takes them: ``{"keys": ..., "features": ...}``."""
    key_rows = instances.select(list(keys)).to_pylist()
    features = [c for c in instances.column_names if c not in keys]
    feature_rows = instances.select(features).to_pylist()
    return [{"keys": k, "features": f} for k, f in zip(key_rows, feature_rows, strict=True)]


@dataclass
class DayReport:
    """What one simulated day did."""

    day: datetime
    requests: int = 0
    scored: int = 0
    ingested: dict[str, int] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    windows: int = 0
    alerts: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    finished: dict[str, str] = field(default_factory=dict)
    """Pipeline runs that ended this day, by id: their final state."""
    seconds: dict[str, float] = field(default_factory=dict)


class Replay:
    """See the module doc. ``requests`` come from :func:`model_requests`;
    ``client_features``: the features a request carries (None: all); ``materialize``:
    the feature views written to the online store at each day's end (for the features
    requests do not carry); ``extra_batches(end)``: more batches to ingest at a day's
    end (e.g. a malformed one); ``before_tick(now)``: called before each tick;
    ``request_every``: the span of requests one call scores, stamped with its start."""

    def __init__(
        self,
        project: Project,
        model: str,
        *,
        clock: SimulatedClock,
        feed: Feed,
        requests: pa.Table,
        keys: Sequence[str],
        scorer: Scorer,
        controller: Controller | None = None,
        client_features: Sequence[str] | None = None,
        monitor: bool = True,
        materialize: Sequence[str] = (),
        tick: timedelta = timedelta(days=1),
        request_every: timedelta = _HOUR,
        extra_batches: Callable[[datetime], Mapping[str, pa.Table]] | None = None,
        before_tick: Callable[[datetime], None] | None = None,
    ) -> None:
        self.project, self.model, self.clock = project, model, clock
        self.feed, self.scorer, self.controller = feed, scorer, controller
        self.keys = list(keys)
        table, self._times = _sorted_times(requests, REQUEST_TIME)
        if client_features is not None:
            table = table.select([*self.keys, *client_features, REQUEST_TIME])
        self.requests = table
        self.monitor, self.materialize, self.tick = monitor, materialize, tick
        self.request_every = request_every
        self.extra_batches = extra_batches
        self.before_tick = before_tick

    def day(self, start: datetime, end: datetime, *, last: bool = False) -> DayReport:
        """Replay ``[start, end)``: see the module doc. ``last``: the replay stops at
        ``end``, so nothing ticks there (a run started then would serve nothing)."""
        report = DayReport(start)
        seconds = report.seconds
        t = start
        while t < end:
            until = min(t + self.tick, end)
            began = time.perf_counter()
            for hour, rows in time_slices(self.requests, self._times, t, until, self.request_every):
                self.scorer.score(self.model, rows.drop_columns([REQUEST_TIME]), self.keys, hour)
                report.requests += 1
                report.scored += rows.num_rows
            self.scorer.settle()
            seconds["score"] = seconds.get("score", 0.0) + time.perf_counter() - began
            self.clock.set(until)
            if until == end:
                self._end_of_day(end, report)
            if not (last and until == end):
                self._tick(until, report)
            t = until
        return report

    def _end_of_day(self, end: datetime, report: DayReport) -> None:
        seconds = report.seconds
        began = time.perf_counter()
        batches = dict(self.feed.between(end - timedelta(days=1), end))
        extra = self.extra_batches(end) if self.extra_batches is not None else {}
        for source, table in [*batches.items(), *extra.items()]:
            try:
                version = self.project.ingest(source, table)
                report.ingested[source] = report.ingested.get(source, 0) + version.rows
            except BatchRejected as exc:
                report.quarantined.append(exc.quarantine_id)
        seconds["ingest"] = time.perf_counter() - began
        if self.materialize:
            began = time.perf_counter()
            self.project.materialize(list(self.materialize), until=end)
            seconds["materialize"] = time.perf_counter() - began
        if self.monitor:
            began = time.perf_counter()
            for run in self.project.monitor(self.model, now=end):
                report.windows += len(run.windows)
                report.alerts.extend(
                    f"{c.alert.rule} {c.alert.column}" for c in run.alerts if c.kind == "fired"
                )
            seconds["monitor"] = time.perf_counter() - began

    def _tick(self, now: datetime, report: DayReport) -> None:
        if self.before_tick is not None:
            self.before_tick(now)
        if self.controller is None:
            return
        began = time.perf_counter()
        tick = self.controller.tick(now)
        report.started.extend(tick.started)
        for run_id, state in tick.advanced.items():
            if state in _FINAL:
                report.finished[run_id] = state
        # a run started by this tick trains now (inline); the next tick moves it on
        if tick.started:
            tick = self.controller.tick(now)
            for run_id, state in tick.advanced.items():
                if state in _FINAL:
                    report.finished[run_id] = state
        report.seconds["loop"] = report.seconds.get("loop", 0.0) + time.perf_counter() - began

    def run(
        self,
        start: datetime,
        end: datetime,
        *,
        on_day: Callable[[DayReport], None] | None = None,
    ) -> list[DayReport]:
        """Replay every day from ``start`` to ``end``."""
        reports = []
        day = start
        while day < end:
            following = day + timedelta(days=1)
            report = self.day(day, min(following, end), last=following >= end)
            reports.append(report)
            if on_day is not None:
                on_day(report)
            day += timedelta(days=1)
        return reports


_FINAL = ("promoted", "rejected", "rolled_back", "failed", "stopped", "paused")
