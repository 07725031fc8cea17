"""`driftloop rollouts list|show|resume|abort` and `driftloop rollback` on a project made
by `driftloop init`, with three versions of 'fraud' registered by hand (v1 champion)
and prediction logs written in simulated time."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.project import Project
from driftloop.rollout.policy import RolloutPolicy, Step
from driftloop.serving.predictionlog import RecordLog, prediction_table

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None, "DRIFTLOOP_USER": "ann"}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FAST = RolloutPolicy(steps=[Step(50, "2m"), Step(100, "1m")], delay="0s", rollback_window="1h")


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rollouts") / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    with Project(folder) as project:
        for n in range(1, 4):
            project.register_model(
                "fraud", artifact_digest=hashlib.sha256(bytes([n])).hexdigest(), flavor="sklearn"
            )
        project.set_alias("fraud", "champion", 1, reason="first")
    return folder


@pytest.fixture
def clock() -> Iterator[SimulatedClock]:
    """Simulated time from T0."""
    sim = SimulatedClock(T0)
    with use_clock(sim):
        yield sim


@pytest.fixture
def project(template: Path, tmp_path: Path, clock: SimulatedClock) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def tick(project: Project, clock: SimulatedClock) -> None:
    """A minute passes; the project's rollouts advance."""
    clock.advance(timedelta(minutes=1))
    project.advance_rollouts()


def serve(project: Project, minute: int, roles: dict[tuple[int, str], tuple[int, int]]) -> None:
    """One minute of records: per (version, role), (requests, failed ones)."""
    at = T0 + timedelta(minutes=minute, seconds=30)
    with RecordLog(project.config.serving.predictions, durability="strict") as log:
        for (version, role), (n, failed) in roles.items():
            errors = [("RuntimeError: boom" if i < failed else None) for i in range(n)]
            log.submit(
                "fraud",
                prediction_table(
                    request_id=[f"{minute}-{role}-{i}" for i in range(n)],
                    at=at,
                    version=version,
                    role=role,
                    prediction=np.where(np.arange(n) < failed, np.nan, 0.4),
                    latency_ms=2.0,
                    error=errors,
                ),
            ).result()


def rolled_back(folder: Path, clock: SimulatedClock) -> int:
    """A rollout of v2 whose canary fails 40 % of its predictions: rolled back after a
    minute."""
    with Project(folder) as project:
        r = project.start_rollout("fraud", 2, FAST, reason="retrained")
        serve(project, 0, {(1, "champion"): (50, 0), (2, "canary"): (50, 20)})
        tick(project, clock)
        assert project.rollout(r.id).rollout.state == "rolled_back"
        return r.id


def promoted(folder: Path, clock: SimulatedClock) -> int:
    """A rollout of v2 that passes 50 % for two minutes and 100 % for one."""
    with Project(folder) as project:
        r = project.start_rollout("fraud", 2, FAST)
        for minute in range(3):
            split = {(1, "champion"): (50, 0), (2, "canary"): (50, 0)}
            serve(project, minute, split if minute < 2 else {(2, "canary"): (100, 0)})
            tick(project, clock)
        assert project.rollout(r.id).rollout.state == "promoted"
        return r.id


def test_rollouts_list_shows_each_rollout_and_why_it_ended(
    project: Path, clock: SimulatedClock
) -> None:
    rollout_id = rolled_back(project, clock)
    body = cli_json(project, "rollouts", "list")
    [listed] = body["rollouts"]
    assert (listed["id"], listed["version"], listed["previous"], listed["state"]) == (
        rollout_id,
        2,
        1,
        "rolled_back",
    )
    assert cli_json(project, "rollouts", "list", "fraud", "--state", "promoted") == {"rollouts": []}
    shown = cli(project, "rollouts", "list")
    assert shown.exit_code == 0, shown.output
    assert "rolled_back" in shown.stdout
    assert "error_rate failed 1 measurement(s)" in shown.stdout


def test_rollouts_show_prints_steps_measurements_and_the_reason(
    project: Path, clock: SimulatedClock
) -> None:
    rollout_id = rolled_back(project, clock)
    body = cli_json(project, "rollouts", "show", str(rollout_id))
    assert body["state"] == "rolled_back"
    assert [(m["metric"], m["status"]) for m in body["measurement_list"]] == [
        ("error_rate", "failed"),
        ("latency_p99", "successful"),
    ]
    kinds = [e["kind"] for e in body["timeline"]]
    assert kinds[:3] == ["started", "deployment", "rolled_back"]
    shown = cli(project, "rollouts", "show", str(rollout_id))
    assert shown.exit_code == 0, shown.output
    for text in (
        "fraud v2 against champion v1",
        "error_rate 0.4 meets the failure condition >= 0.05",
        "canary v2 at 50%",
        "rolled back: error_rate failed",
        "retrained",
    ):
        assert text in shown.stdout, text


def test_rollback_after_a_promotion_returns_to_the_staged_champion(
    project: Path, clock: SimulatedClock
) -> None:
    """Within the rollback window the previous champion is still loaded: rollback is a
    switch back to it, and the promotion is marked rolled back."""
    rollout_id = promoted(project, clock)
    body = cli_json(project, "rollback", "fraud", "--reason", "complaints")
    assert (body["from_version"], body["to_version"], body["preloaded"]) == (2, 1, True)
    assert body["rolled_back"] == [rollout_id]
    shown = cli_json(project, "rollouts", "show", str(rollout_id))
    assert (shown["state"], shown["reason"]) == ("rolled_back", "rolled back by ann: complaints")


def test_rollback_to_a_version_and_its_human_output(project: Path) -> None:
    done = cli(project, "rollback", "fraud", "--to", "3")
    assert done.exit_code == 0, done.output
    assert "fraud@champion  v1 -> v3 (servers load it now)" in done.stdout
    back = cli(project, "rollback", "fraud")
    assert back.exit_code == 0, back.output
    assert "v3 -> v1" in back.stdout


def test_rollback_error_cases_exit_with_their_codes(project: Path) -> None:
    """Unknown model or version 4, a malformed version 3, nothing to roll back 6, a
    missing argument 2."""
    assert cli(project, "rollback", "nope").exit_code == 4
    assert cli(project, "rollback", "fraud", "--to", "9").exit_code == 4
    assert cli(project, "rollback", "fraud", "--to", "not a ref!").exit_code == 3
    nothing = cli(project, "rollback", "fraud")
    assert nothing.exit_code == 6
    assert "no earlier champion to roll back to" in nothing.output
    assert cli(project, "rollback").exit_code == 2


def test_rollouts_show_resume_and_abort_error_cases(project: Path, clock: SimulatedClock) -> None:
    """An unknown rollout or model exits 4, a non-number 2, an unknown state 3; only a
    paused rollout resumes and only an active one aborts (6)."""
    assert cli(project, "rollouts", "show", "99").exit_code == 4
    assert cli(project, "rollouts", "show", "first").exit_code == 2
    assert cli(project, "rollouts", "list", "nope").exit_code == 4
    assert cli(project, "rollouts", "list", "--state", "done").exit_code == 3
    rollout_id = rolled_back(project, clock)
    assert cli(project, "rollouts", "resume", str(rollout_id)).exit_code == 6
    assert cli(project, "rollouts", "abort", str(rollout_id)).exit_code == 6


def test_rollouts_abort_stops_an_active_rollout(project: Path) -> None:
    with Project(project) as p:
        r = p.start_rollout("fraud", "latest", FAST)
    done = cli(project, "rollouts", "abort", str(r.id), "--reason", "wrong version")
    assert done.exit_code == 0, done.output
    assert f"rollout {r.id}  aborted at step 1/2 (50%)" in done.stdout
    assert cli_json(project, "deploy", "fraud")["canary"] is None
    assert cli_json(project, "rollouts", "list")["rollouts"][0]["reason"] == (
        "aborted by ann: wrong version"
    )
