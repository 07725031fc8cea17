"""The retraining controller: pipeline runs advanced step by step, one controller at a
time, every step idempotent."""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from driftloop.cli.init import write_example
from driftloop.core import clock
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.loop import runs, triggers
from driftloop.loop.controller import Controller, PolicyTriggers, ProgressiveRollout
from driftloop.loop.executors import InlineExecutor, LocalExecutor
from driftloop.loop.lease import Lease
from driftloop.loop.steps import RUN_TAG, train_step
from driftloop.loop.triggers import Age, NewData, RetrainPolicy
from driftloop.project import Project
from driftloop.rollout.policy import RolloutPolicy
from driftloop.serving import deployments
from driftloop.serving.predictionlog import RecordLog, prediction_table


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with both batches and fraud v1 as champion."""
    folder = tmp_path_factory.mktemp("controller") / "shop"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
        project.train("fraud", promote=True)
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Iterator[Project]:
    with Project(shutil.copytree(template, tmp_path / "shop")) as opened:
        yield opened


def run_until_done(controller: Controller, run_id: str, ticks: int = 20) -> runs.PipelineRun:
    for _ in range(ticks):
        controller.tick()
        run = runs.get_run(controller.store, run_id)
        if run.finished:
            return run
    return runs.get_run(controller.store, run_id)


def test_a_run_started_by_hand_is_trained_gated_and_promoted(project: Project) -> None:
    queued = project.start_pipeline_run("fraud", reason="new data")
    controller = project.controller(executor="inline")
    run = run_until_done(controller, queued.id)
    assert run.state == runs.PROMOTED
    version = run.outputs["version"]
    assert project.model_aliases("fraud")["champion"] == version
    assert project.model_version("fraud", version).tags[RUN_TAG] == run.id
    _, timeline = project.pipeline_run(run.id)
    steps = [e["step"] for e in timeline if e["kind"] == "step"]
    assert steps == ["started", "training_set", "train", "evaluate", "gate", "register"]
    assert [e["kind"] for e in timeline if e["kind"] != "step"] == [
        "created",
        "training",
        "rollout",
        "promoted",
    ]


def test_a_step_started_again_finds_the_version_it_registered(project: Project) -> None:
    """The controller was killed after the version was registered but before the step's
    result was recorded: the next controller's step returns that version."""
    queued = project.start_pipeline_run("fraud")
    first = train_step(project.train, project.store, "fraud", queued.id)
    assert first["resumed"] is False
    runs.transition(project.store, queued.id, runs.PENDING, runs.TRAINING, step="train")
    run = run_until_done(project.controller(executor="inline"), queued.id)
    assert run.state == runs.PROMOTED
    assert run.outputs["version"] == first["version"]
    assert run.outputs["resumed"] is True
    tagged = [v for v in project.model_versions("fraud") if v.tags.get(RUN_TAG) == run.id]
    assert len(tagged) == 1


def test_runs_of_one_model_wait_their_turn(project: Project) -> None:
    first = project.start_pipeline_run("fraud")
    second = project.start_pipeline_run("fraud")
    controller = project.controller(executor="inline")
    controller.tick()
    assert runs.get_run(project.store, first.id).state == runs.ROLLOUT
    assert runs.get_run(project.store, second.id).state == runs.PENDING
    assert run_until_done(controller, second.id).state == runs.PROMOTED
    assert runs.get_run(project.store, first.id).state == runs.PROMOTED


def test_a_failing_step_is_tried_again_then_the_run_fails(project: Project) -> None:
    queued = project.start_pipeline_run("fraud")
    calls: list[str] = []

    def broken(run_id: str) -> dict[str, object]:
        calls.append(run_id)
        raise RuntimeError("the disk is full")

    controller = Controller(project.store, InlineExecutor({"train": broken}), max_attempts=3)
    run = run_until_done(controller, queued.id)
    assert run.state == runs.FAILED
    assert len(calls) == 3
    assert run.error is not None
    assert "the disk is full" in run.error


def test_only_the_lease_holder_acts_and_another_takes_over_when_it_expires(
    project: Project,
) -> None:
    queued = project.start_pipeline_run("fraud")
    ttl = timedelta(seconds=30)
    first = Controller(
        project.store,
        InlineExecutor({}),
        lease=Lease(project.store, holder="first", ttl=ttl),
    )
    second = project.controller(executor="inline", holder="second")
    second.lease.ttl = ttl
    now = clock.now()
    assert first.lease.acquire(now)
    report = second.tick(now + timedelta(seconds=10))
    assert report.leader is False
    assert runs.get_run(project.store, queued.id).state == runs.PENDING
    later = second.tick(now + ttl + timedelta(seconds=1))
    assert later.leader is True
    assert second.lease.generation == 2
    assert runs.get_run(project.store, queued.id).state != runs.PENDING


def test_a_step_over_its_training_budget_is_stopped(project: Project, tmp_path: Path) -> None:
    queued = project.start_pipeline_run("fraud")
    policy = RetrainPolicy("fraud", when=Age("3650d"), max_training_time="1ms")
    controller = Controller(
        project.store,
        LocalExecutor(project.root, tmp_path / "jobs"),
        triggers=PolicyTriggers(project.store, {"fraud": policy}),
    )
    run = run_until_done(controller, queued.id, ticks=3)
    assert run.state == runs.STOPPED
    assert "training-time budget" in (run.error or "")


def test_new_data_fires_the_trigger_and_the_firing_starts_a_run(
    template: Path, tmp_path: Path
) -> None:
    """The champion was trained before the second batch: the batch fires NewData; the
    firing is recorded with its evidence and names the run it started; the next tick,
    within the cooldown, is suppressed and says why."""
    folder = tmp_path / "fresh"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.train("fraud", promote=True)
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
        policy = RetrainPolicy("fraud", when=NewData(versions=1), cooldown="1s")
        controller = Controller(
            project.store,
            InlineExecutor({}),
            triggers=PolicyTriggers(project.store, {"fraud": policy}),
        )
        report = controller.tick()
        (started,) = report.started
        (firing,) = triggers.list_firings(project.store, "fraud")
        assert firing.fired
        assert firing.run_id == started
        assert runs.get_run(project.store, started).firing_id == firing.id
        controller.tick()
        latest = triggers.list_firings(project.store, "fraud")[0]
        assert latest.outcome == "suppressed"
        assert latest.reason.startswith("cooldown until")


def test_a_firing_recorded_without_its_run_gets_one_from_the_next_controller(
    project: Project,
) -> None:
    """Killed between recording a firing and starting its run: nothing is lost."""
    firing = triggers.Firing("fraud", clock.now(), "fired", "new data", {"when": {}})
    firing_id = triggers.record(project.store, firing)
    controller = project.controller(executor="inline")
    report = controller.tick()
    (started,) = report.started
    assert triggers.get_firing(project.store, firing_id).run_id == started
    assert controller.tick().started == []


def _serve_minute(project: Project, start: datetime, failing: int | None) -> None:
    """A minute of 200 requests routed as the deployment says (the canary for its share
    of the request ids); ``failing``: the version whose predictions fail."""
    d = deployments.get_deployment(project.store, "fraud")
    rng = np.random.default_rng(int(start.timestamp()))
    ids = [f"r-{int(start.timestamp())}-{i}" for i in range(200)]
    share = np.array([zlib.crc32(i.encode()) % 10_000 for i in ids]) / 100.0
    canary = share < d.canary_weight if d.canary is not None else np.zeros(200, bool)
    with RecordLog(project.config.serving.predictions) as log:
        for version, role, mask in (
            (d.champion, "champion", ~canary),
            (d.canary, "canary", canary),
        ):
            n = int(mask.sum())
            if version is None or n == 0:
                continue
            fails = (rng.random(n) < 0.3) if version == failing else np.zeros(n, bool)
            log.submit(
                "fraud",
                prediction_table(
                    request_id=[i for i, m in zip(ids, mask, strict=True) if m],
                    at=start + timedelta(seconds=30),
                    version=version,
                    role=role,
                    prediction=np.where(fails, np.nan, rng.random(n)),
                    latency_ms=rng.uniform(1.0, 2.0, n),
                    error=["RuntimeError: boom" if f else None for f in fails],
                ),
            )


@pytest.mark.parametrize(("failing", "final"), [(False, runs.PROMOTED), (True, runs.ROLLED_BACK)])
def test_a_version_that_passed_its_gates_is_rolled_out_and_judged_on_live_traffic(
    project: Project, failing: bool, final: str
) -> None:
    """Canary steps of 50% and 100%, measured every simulated minute on the prediction
    log: a healthy challenger is promoted; one whose predictions fail is rolled back and
    the champion stays."""
    plan = RolloutPolicy(steps=(50, 100), step_duration="2m", interval="1m", delay="0s")
    policy = RetrainPolicy("fraud", when=Age("3650d"), rollout=plan)
    queued = project.start_pipeline_run("fraud")
    clock_ = SimulatedClock(clock.now())
    with use_clock(clock_):
        controller = Controller(
            project.store,
            project.controller(executor="inline").executor,
            triggers=PolicyTriggers(project.store, {"fraud": policy}),
            rollout=ProgressiveRollout(
                project.store, {"fraud": policy}, project.monitoring_context().log
            ),
        )
        controller.tick()
        run = runs.get_run(project.store, queued.id)
        assert run.state == runs.ROLLOUT
        challenger = run.outputs["version"]
        for _ in range(20):
            _serve_minute(project, clock_.now(), challenger if failing else None)
            clock_.advance(timedelta(minutes=1))
            controller.tick()
            run = runs.get_run(project.store, queued.id)
            if run.finished:
                break
    assert run.state == final
    champion = project.model_aliases("fraud")["champion"]
    assert champion == (1 if failing else challenger)
    assert run.outputs["rollout_state"] == ("rolled_back" if failing else "promoted")
